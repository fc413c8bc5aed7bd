package contracts_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

// TestClientCloseAtAnyMoment: whenever a client closes, once the close delay passed and every
// party submitted its latest signed state (the proxy its client-charged state during the delay,
// the worker its earned state), the proxy stake is intact, the worker was paid no more than the
// client was charged on chain, and the client takes back exactly its deposit minus what it was
// charged. With the old ClientClose (balance back at once) a close with unsettled charges above
// the stake leaves the charge unpayable and the worker paid from the proxy stake.
func TestClientCloseAtAnyMoment(t *testing.T) {
	const deposit = 10 * ton1
	// Requests in order: what each costs the client; the worker earns 80% of it.
	requests := []uint64{ton1 / 2, ton1, 7 * ton1}
	testCases := map[string]struct {
		served    int  // requests served before the client closes
		submitted bool // the proxy put its latest client-charged state on chain before the close
	}{
		"before any request":             {served: 0},
		"mid-way with unsettled charges": {served: 2},
		"right after a large request":    {served: 3},
		"after the proxy submitted":      {served: 3, submitted: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			p := newProxyEnv(t)
			stake := p.st().ProxyStake
			p.ok(p.client, deposit, contracts.TopUpBody(0))

			var charged, earned uint64
			for _, cost := range requests[:tc.served] {
				charged += cost
				earned += cost * 8 / 10
			}
			submitCharge := func() {
				if charged > 0 {
					p.ok(p.owner, gasValue, p.state(settle.KindClientCharged, p.client, charged))
				}
			}
			if tc.submitted {
				submitCharge()
			}

			p.ok(p.client, gasValue, contracts.ClientCloseBody(1))
			// During the delay the proxy lands its last charge; the worker cashes its earnings.
			if !tc.submitted {
				submitCharge()
			}
			if earned > 0 {
				p.ok(p.worker, gasValue, p.state(settle.KindWorkerEarned, p.worker, earned))
			}
			tx, _ := p.send(p.client, p.addr, gasValue, contracts.ClientWithdrawStakeBody(2))
			require.Equal(contracts.ExitTooEarly, tx.ExitCode(), "nothing leaves before the delay")

			p.chain.SetNow(start + clientDelay)
			c := p.acct(p.client)
			owed := uint64(deposit - contracts.OpFee - charged)
			assert.Equal(owed, c.Balance+c.Stake, "the client is owed its deposit minus its charges")
			got := gained(p, p.client, func() { p.ok(p.client, gasValue, contracts.ClientWithdrawStakeBody(3)) })
			assert.GreaterOrEqual(got, owed)
			assert.Less(got, owed+gasValue, "no more than what is owed plus the change of the attached value")

			st := p.st()
			assert.Equal(charged, st.Clients[p.client].Charged, "every signed charge landed")
			assert.LessOrEqual(st.Workers[p.worker].Paid, st.Clients[p.client].Charged, "workers paid from client charges")
			assert.Equal(stake, st.ProxyStake, "the proxy stake is intact")
			assert.Zero(st.ClientFunds)
		})
	}
}
