package contracts_test

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/tlb"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/contracts"
	"github.com/cocoon-network/cocoon/settle/emu"
)

// cellStats counts the distinct cells and bits of a tree, as storage rent does.
func cellStats(c *boc.Cell, seen map[[32]byte]bool) (cells, bits int) {
	h, _ := c.Hash256()
	if seen[h] {
		return 0, 0
	}
	seen[h] = true
	cells, bits = 1, c.BitSize()
	for _, r := range c.Refs() {
		cc, bb := cellStats(r, seen)
		cells += cc
		bits += bb
	}
	return cells, bits
}

// TestProxyScaling measures what one client's deposit and one charge cost with many
// clients already in the dictionaries, and the storage the state needs (settle/contracts/README.md).
func TestProxyScaling(t *testing.T) {
	sizes := []int{1, 1_000, 10_000}
	if testing.Short() {
		sizes = []int{1, 1_000}
	}
	key := testKey(1)
	owner := account(1)
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			e := newEnv(t)
			st := contracts.ProxyState{
				Key: key.Public().(ed25519.PublicKey), Owner: owner, ProxyStake: 20 * ton1,
				Config:  contracts.ProxyConfig{Registry: account(50), MinClientStake: minClientStake, ClientCloseDelay: clientDelay, ProxyCloseDelay: proxyDelay},
				Clients: map[ton.AccountID]contracts.ClientAccount{},
				Workers: map[ton.AccountID]contracts.WorkerAccount{},
			}
			for i := range n {
				var id ton.AccountID
				binary.BigEndian.PutUint64(id.Address[:], uint64(i)*0x9E3779B97F4A7C15) // spread like real hashes
				st.Clients[id] = contracts.ClientAccount{Balance: 5 * ton1, Stake: ton1, Charged: 12345, Seqno: 7, Open: true}
				st.ClientFunds += 6 * ton1
			}
			st.OpenClients = uint32(n)
			data, err := st.Data()
			require.NoError(err)
			cells, bits := cellStats(data, map[[32]byte]bool{})
			addr, _, err := emu.StateInitAddress(0, contracts.ProxyCode(), data)
			require.NoError(err)
			// Install the state directly, as if n clients had deposited.
			e.chain.Mint(addr, st.ClientFunds+st.ProxyStake+contracts.Reserve)
			acc := e.chain.Account(addr)
			acc.Account.Account.Storage.State = tlb.AccountState{SumType: "AccountActive"}
			acc.Account.Account.Storage.State.AccountActive.StateInit.Code.Exists = true
			acc.Account.Account.Storage.State.AccountActive.StateInit.Code.Value.Value = *contracts.ProxyCode()
			acc.Account.Account.Storage.State.AccountActive.StateInit.Data.Exists = true
			acc.Account.Account.Storage.State.AccountActive.StateInit.Data.Value.Value = *data
			e.chain.SetAccount(addr, acc)

			client := e.user(200)
			topUp, _ := e.send(client, addr, 10*ton1, contracts.TopUpBody(0))
			require.True(topUp.Success(), "exit %d", topUp.ExitCode())
			s, err := settle.Sign(settle.State{Proxy: addr, Party: client, Kind: settle.KindClientCharged, Seqno: 1, Total: ton1}, key)
			require.NoError(err)
			body, err := contracts.SubmitStateBody(0, s)
			require.NoError(err)
			charge, _ := e.send(account(1), addr, gasValue, body)
			require.True(charge.Success(), "exit %d", charge.ExitCode())
			// Rent per year at the basechain prices of tongo's bundled config (param 18:
			// 1 unit per bit and 500 per cell per 65536 s, in nanoTON).
			rent := (uint64(bits) + 500*uint64(cells)) * 31_536_000 / 65_536
			t.Logf("clients=%d cells=%d bits=%d rent/year=%s TON; fees: top-up %s TON, charge %s TON",
				n, cells, bits, ton9(rent), ton9(topUp.Fees()), ton9(charge.Fees()))
			// Each operation stays within the fee the contract keeps, at every size.
			assert.Less(topUp.Fees(), uint64(contracts.OpFee))
			assert.Less(charge.Fees(), uint64(gasValue))
		})
	}
}

func ton9(n uint64) string { return fmt.Sprintf("%d.%09d", n/ton1, n%ton1) }
