package paystate

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/local"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

func seedKey(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s)
}

const ton1 = 1_000_000_000

// TestTopUpper: against the local chain, a client's deposit below the floor (counting charges the
// proxy signed but nobody put on chain yet) is topped up by the amount; one above it is left alone.
func TestTopUpper(t *testing.T) {
	testCases := map[string]struct {
		deposit   uint64 // topped up before the check
		charged   uint64 // total of the latest state the proxy signed, not on chain
		wantTopUp bool
	}{
		"no account yet":             {wantTopUp: true},
		"below the floor":            {deposit: 3 * ton1 / 2, wantTopUp: true},
		"above the floor":            {deposit: 3 * ton1},
		"charges not on chain count": {deposit: 3 * ton1, charged: 5 * ton1 / 2, wantTopUp: true},
		"charges leave enough":       {deposit: 3 * ton1, charged: ton1 / 2},
		"charges beyond the balance": {deposit: 2 * ton1, charged: 3 * ton1, wantTopUp: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			ctx := context.Background()
			c, err := local.OpenDir(t.TempDir(), local.Options{})
			require.NoError(err)
			t.Cleanup(func() { require.NoError(c.Close()) })
			payKey, client := seedKey(9), seedKey(3)
			d, err := local.SetupDemo(ctx, c, local.DemoConfig{
				Owner:   seedKey(1),
				Proxies: []local.DemoProxy{{Operator: seedKey(2), PaymentKey: payKey.Public().(ed25519.PublicKey), WorkerEndpoint: "127.0.0.1:7000"}},
				Params:  contracts.DefaultParams(), Fund: []ed25519.PublicKey{client.Public().(ed25519.PublicKey)},
			})
			require.NoError(err)
			if tc.deposit > 0 {
				require.NoError(chain.TopUp(ctx, c, client, d.Proxy, tc.deposit))
			}
			party, err := c.WalletAddress(client.Public().(ed25519.PublicKey))
			require.NoError(err)
			store, err := Open(t.TempDir(), settle.KindClientCharged, party)
			require.NoError(err)
			if tc.charged > 0 {
				st, err := settle.Sign(settle.State{Proxy: d.Proxy, Party: party, Kind: settle.KindClientCharged, Seqno: 1, Total: tc.charged}, payKey)
				require.NoError(err)
				raw, err := st.MarshalBinary()
				require.NoError(err)
				_, err = store.Accept(payKey.Public().(ed25519.PublicKey), raw)
				require.NoError(err)
			}
			before := balance(t, c, d.Proxy, party)

			u := &TopUpper{Chain: c, Key: client, Below: ton1, Amount: 2 * ton1, Every: time.Hour, Store: store,
				Contracts: func() []ton.AccountID { return []ton.AccountID{d.Proxy, d.Proxy} },
				Log:       zerolog.New(zerolog.NewTestWriter(t))}
			rs := u.Once(ctx)
			require.Len(rs, 1, "each contract once")
			require.NoError(rs[0].Err)
			after := balance(t, c, d.Proxy, party)
			if !tc.wantTopUp {
				assert.Zero(rs[0].TopUp)
				assert.Equal(before, after)
				return
			}
			assert.Equal(uint64(2*ton1), rs[0].TopUp)
			assert.Greater(after, before, "the deposit grew (by the amount, less the stake of a new account and fees)")
			again := u.Once(ctx)
			if after-min(after, tc.charged) >= ton1 {
				assert.Zero(again[0].TopUp, "topped up once")
			}
		})
	}
}

func TestTopUpperErrors(t *testing.T) {
	require := require.New(t)
	ctx := context.Background()
	c, err := local.OpenDir(t.TempDir(), local.Options{})
	require.NoError(err)
	t.Cleanup(func() { require.NoError(c.Close()) })
	missing := ton.AccountID{Address: [32]byte{42}}
	u := &TopUpper{Chain: c, Key: seedKey(3), Below: ton1, Amount: ton1, Every: time.Hour,
		Contracts: func() []ton.AccountID { return []ton.AccountID{missing} }, Log: zerolog.New(zerolog.NewTestWriter(t))}
	rs := u.Once(ctx)
	require.Len(rs, 1)
	require.ErrorIs(rs[0].Err, chain.ErrNotDeployed)
	require.Zero(rs[0].TopUp)

	require.NoError((&TopUpper{}).Run(ctx), "off: returns at once")
	require.Error((&TopUpper{Below: 1}).Run(ctx), "on without an amount")
}

func balance(t *testing.T, c chain.Chain, proxy, party ton.AccountID) uint64 {
	t.Helper()
	p, err := chain.Proxy(context.Background(), c, proxy)
	require.NoError(t, err)
	_, a := OnChain(p, settle.KindClientCharged, party)
	return a.Balance
}
