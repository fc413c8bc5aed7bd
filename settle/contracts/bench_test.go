package contracts_test

import (
	"testing"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/contracts"
	"github.com/cocoon-network/cocoon/settle/emu"
)

// BenchmarkEmulateCharge is one signed client-charged state through the real contract in
// the emulator: the local chain's cost per settlement.
func BenchmarkEmulateCharge(b *testing.B) {
	p := newProxyEnv(b)
	p.ok(p.client, 100*ton1, contracts.TopUpBody(0))
	var seq uint64
	for b.Loop() {
		seq++
		s, err := settle.Sign(settle.State{Proxy: p.addr, Party: p.client, Kind: settle.KindClientCharged, Seqno: seq, Total: seq}, p.key)
		if err != nil {
			b.Fatal(err)
		}
		body, err := contracts.SubmitStateBody(seq, s)
		if err != nil {
			b.Fatal(err)
		}
		tr, err := p.chain.Send(emu.Internal(p.owner, p.addr, gasValue, true, body, nil))
		if err != nil || !tr[0].Success() {
			b.Fatalf("charge %d failed: %v", seq, err)
		}
	}
}
