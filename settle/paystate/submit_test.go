package paystate

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

func TestDue(t *testing.T) {
	party := ton.AccountID{Address: [32]byte{7}}
	onChain := contracts.ProxyState{
		Clients: map[ton.AccountID]contracts.ClientAccount{party: {Seqno: 4, Charged: 1000}},
		Workers: map[ton.AccountID]contracts.WorkerAccount{party: {Seqno: 2, Paid: 500}},
	}
	client := func(seqno, total uint64) settle.State {
		return settle.State{Kind: settle.KindClientCharged, Party: party, Seqno: seqno, Total: total}
	}
	worker := func(seqno, total uint64) settle.State {
		return settle.State{Kind: settle.KindWorkerEarned, Party: party, Seqno: seqno, Total: total}
	}
	testCases := map[string]struct {
		state     settle.State
		threshold uint64
		want      bool
	}{
		"newer client state, no threshold":    {state: client(5, 1000), want: true},
		"same seqno":                          {state: client(4, 2000)},
		"older seqno":                         {state: client(3, 2000)},
		"total below the chain's":             {state: client(5, 999)},
		"under the threshold":                 {state: client(5, 1099), threshold: 100},
		"at the threshold":                    {state: client(5, 1100), threshold: 100, want: true},
		"worker state compared with paid":     {state: worker(3, 600), threshold: 100, want: true},
		"worker state under its threshold":    {state: worker(3, 599), threshold: 100},
		"unknown party: everything is ahead":  {state: settle.State{Kind: settle.KindWorkerEarned, Seqno: 1, Total: 1}, want: true},
		"unknown party, nothing charged, new": {state: settle.State{Kind: settle.KindClientCharged, Seqno: 1}, want: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, Due(onChain, tc.state, tc.threshold))
		})
	}
}
