package contracts_test

import (
	"crypto/ed25519"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle/contracts"
)

// decode turns fuzz bytes into a cell the way a lite server's answer would arrive; tongo's
// BOC parser itself can panic on some inputs, which is not what these targets test.
func decode(data []byte) *boc.Cell {
	defer func() { _ = recover() }()
	cells, err := boc.DeserializeBoc(data)
	if err != nil || len(cells) != 1 {
		return nil
	}
	return cells[0]
}

func FuzzParseRegistryData(f *testing.F) {
	data, err := contracts.RegistryData(contracts.Registry{
		Owner: account(1), Params: contracts.DefaultParams(), Models: [][32]byte{{1}},
		Proxies: []contracts.ProxyEntry{{Key: testKey(1).Public().(ed25519.PublicKey), Contract: account(2), WorkerEndpoint: "h:1", ClientEndpoint: "h:2"}},
	})
	require.NoError(f, err)
	for _, c := range []*boc.Cell{data, oneEndpointRegistry(f, account(1), testKey(1).Public().(ed25519.PublicKey), account(2), "h:1")} {
		b, err := c.ToBoc()
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c := decode(raw)
		if c == nil {
			return
		}
		r, err := contracts.ParseRegistryData(c)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to something that parses the same.
		again, err := contracts.RegistryData(r)
		if err != nil {
			return // e.g. an endpoint longer than the builder allows
		}
		r2, err := contracts.ParseRegistryData(again)
		require.NoError(t, err)
		require.Equal(t, r, r2)
	})
}

func FuzzParseProxyData(f *testing.F) {
	st := contracts.ProxyState{
		Key: testKey(1).Public().(ed25519.PublicKey), Owner: account(1),
		Clients: map[ton.AccountID]contracts.ClientAccount{account(3): {Balance: 4, Open: true}},
		Workers: map[ton.AccountID]contracts.WorkerAccount{account(4): {Paid: 1, Seqno: 2}},
	}
	data, err := st.Data()
	require.NoError(f, err)
	b, err := data.ToBoc()
	require.NoError(f, err)
	f.Add(b)
	f.Fuzz(func(t *testing.T, raw []byte) {
		c := decode(raw)
		if c == nil {
			return
		}
		_, _ = contracts.ParseProxyData(c)
	})
}
