package contracts_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

// TestProxyRandomOperations runs seeded random sequences of every operation, honest or not,
// and checks after each one what must always hold: the contract can pay back every client
// and its stake, its counters match its records, accepted totals and sequence numbers only
// grow, and a refused operation changes nothing.
func TestProxyRandomOperations(t *testing.T) {
	steps := 250
	if testing.Short() {
		steps = 60
	}
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, seed))
			p := newProxyEnv(t)
			clients := []ton.AccountID{p.client, p.user(20), p.user(21)}
			workers := []ton.AccountID{p.worker, p.user(30)}
			charged := map[ton.AccountID]uint64{}
			earned := map[ton.AccountID]uint64{}
			pick := func(ids []ton.AccountID) ton.AccountID { return ids[r.IntN(len(ids))] }
			var accepted int
			for range steps {
				var (
					from  ton.AccountID
					value uint64 = gasValue
					body  *boc.Cell
				)
				switch r.IntN(9) {
				case 0, 1:
					from, value, body = pick(clients), uint64(r.IntN(5*ton1)), contracts.TopUpBody(0)
				case 2, 3:
					c := pick(clients)
					total := charged[c] + uint64(r.IntN(2*ton1))
					if r.IntN(5) == 0 && charged[c] > 0 {
						total = charged[c] - 1 // dishonest: lower total
					}
					p.seq[c]++
					from, body = p.owner, p.signed(settle.KindClientCharged, c, p.seq[c], total, p.key)
				case 4, 5:
					w := pick(workers)
					total := earned[w] + uint64(r.IntN(ton1))
					seq := p.seq[w] + 1
					if r.IntN(5) == 0 {
						seq = p.seq[w] // dishonest: replay
					}
					p.seq[w] = max(p.seq[w], seq)
					from, body = w, p.signed(settle.KindWorkerEarned, w, seq, total, p.key)
				case 6:
					from, body = pick(clients), contracts.ClientCloseBody(0)
				case 7:
					p.chain.SetNow(p.chain.Now() + uint32(r.IntN(2*clientDelay)))
					from, body = pick(clients), contracts.ClientWithdrawStakeBody(0)
				case 8:
					from, body = p.owner, contracts.ProxyWithdrawBody(0, uint64(r.IntN(3*ton1)))
				}
				before := p.st()
				tx, _ := p.send(from, p.addr, value, body)
				after := p.st()
				if !tx.Success() {
					assert.Equal(t, before, after, "refused operation (exit %d) changed the state", tx.ExitCode())
				} else {
					accepted++
				}
				for id, a := range after.Clients {
					assert.GreaterOrEqual(t, a.Charged, before.Clients[id].Charged)
					assert.GreaterOrEqual(t, a.Seqno, before.Clients[id].Seqno)
					charged[id] = a.Charged
					p.seq[id] = max(p.seq[id], a.Seqno)
				}
				for id, w := range after.Workers {
					assert.GreaterOrEqual(t, w.Paid, before.Workers[id].Paid)
					earned[id] = w.Paid
				}
				p.solvent()
				require.False(t, t.Failed(), "invariant broken")
			}
			assert.Greater(t, accepted, steps/4, "the sequence exercised accepted operations too")
		})
	}
}
