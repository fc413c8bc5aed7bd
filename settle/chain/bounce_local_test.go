package chain_test

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/local"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

func seed(b byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = b
	return ed25519.NewKeyFromSeed(s)
}

// TestBounceOnLocalChain: against the contracts run by the local chain, a top-up below the
// min_client_stake is refused with nothing sent, and operations the contracts refuse after
// sending (a withdraw-stake of an account that is not closing, a registry change by someone
// other than its owner) are ErrBounced rather than silent no-ops; accepted ones return nil.
func TestBounceOnLocalChain(t *testing.T) {
	ctx := context.Background()
	c, err := local.OpenDir(t.TempDir(), local.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	owner, client := seed(1), seed(3)
	d, err := local.SetupDemo(ctx, c, local.DemoConfig{
		Owner:   owner,
		Proxies: []local.DemoProxy{{Operator: seed(2), PaymentKey: seed(9).Public().(ed25519.PublicKey), WorkerEndpoint: "127.0.0.1:7000"}},
		Params:  contracts.DefaultParams(), Fund: []ed25519.PublicKey{client.Public().(ed25519.PublicKey)},
	})
	require.NoError(t, err)
	walletBefore, err := chain.WalletBalance(ctx, c, client.Public().(ed25519.PublicKey))
	require.NoError(t, err)

	testCases := []struct {
		name    string
		op      func() error
		wantErr error // nil: accepted
	}{
		{"top-up below the stake", func() error { return chain.TopUp(ctx, c, client, d.Proxy, 500_000_000) }, chain.ErrRefused},
		{"withdraw-stake while open", func() error {
			return chain.Call(ctx, c, client, d.Proxy, 0, contracts.ClientWithdrawStakeBody(1))
		}, chain.ErrBounced},
		{"top-up covering the stake", func() error { return chain.TopUp(ctx, c, client, d.Proxy, 2_000_000_000) }, nil},
		{"set-params by a client", func() error {
			body, err := contracts.SetParamsBody(uint64(time.Now().Unix()), contracts.DefaultParams())
			require.NoError(t, err)
			return chain.Call(ctx, c, client, d.Registry, 0, body)
		}, chain.ErrBounced},
		{"set-params by the owner", func() error {
			body, err := contracts.SetParamsBody(uint64(time.Now().Unix()), contracts.DefaultParams())
			require.NoError(t, err)
			return chain.Call(ctx, c, owner, d.Registry, 0, body)
		}, nil},
	}
	for i, tc := range testCases {
		err := tc.op()
		if tc.wantErr == nil {
			require.NoError(t, err, tc.name)
		} else {
			require.ErrorIs(t, err, tc.wantErr, tc.name)
		}
		if i == 0 {
			after, err := chain.WalletBalance(ctx, c, client.Public().(ed25519.PublicKey))
			require.NoError(t, err)
			assert.Equal(t, walletBefore, after, "a refused top-up sends nothing, so costs no fee")
		}
	}
}
