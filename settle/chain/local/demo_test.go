package local_test

import (
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/local"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

func TestSetupDemoIsIdempotent(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	ctx := context.Background()
	dir := t.TempDir()
	cfg := local.DemoConfig{
		Owner: key(1), Operator: key(2), PaymentKey: pub(key(9)), Endpoint: "127.0.0.1:7000",
		Params: contracts.DefaultParams(), Fund: []ed25519.PublicKey{pub(key(3)), pub(key(4))},
		ProxyImages: [][32]byte{{1}}, WorkerImages: [][32]byte{{2}}, Models: [][32]byte{{3}},
	}
	c, err := local.OpenDir(dir, local.Options{})
	require.NoError(err)
	d, err := local.SetupDemo(ctx, c, cfg)
	require.NoError(err)
	r, err := chain.Registry(ctx, c, d.Registry)
	require.NoError(err)
	assert.True(r.ProxyImageAllowed([32]byte{1}))
	assert.True(r.WorkerImageAllowed([32]byte{2}))
	assert.True(r.ModelAllowed([32]byte{3}))
	entry, ok := r.Proxy(cfg.PaymentKey)
	require.True(ok)
	assert.Equal(d.Proxy, entry.Contract)
	p, err := chain.Proxy(ctx, c, d.Proxy)
	require.NoError(err)
	assert.Equal(r.Params.MinProxyStake, p.ProxyStake)
	clientBalance, err := chain.WalletBalance(ctx, c, pub(key(3)))
	require.NoError(err)
	assert.Greater(clientBalance, uint64(0))
	gasBalance, err := chain.WalletBalance(ctx, c, cfg.PaymentKey)
	require.NoError(err)
	assert.Greater(gasBalance, uint64(0), "the payment key's wallet pays for the charges the proxy settles")
	require.NoError(c.Close())

	// A restart finds everything and changes nothing.
	c, err = local.OpenDir(dir, local.Options{})
	require.NoError(err)
	defer func() { require.NoError(c.Close()) }()
	again, err := local.SetupDemo(ctx, c, cfg)
	require.NoError(err)
	assert.Equal(d, again)
	r2, err := chain.Registry(ctx, c, d.Registry)
	require.NoError(err)
	assert.Equal(r.Version, r2.Version, "no registry change on restart")
}
