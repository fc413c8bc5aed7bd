package local_test

import (
	"context"
	"crypto/ed25519"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/ton"

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
		Owner:   key(1),
		Proxies: []local.DemoProxy{{Operator: key(2), PaymentKey: pub(key(9)), WorkerEndpoint: "127.0.0.1:7000"}},
		Params:  contracts.DefaultParams(), Fund: []ed25519.PublicKey{pub(key(3)), pub(key(4))},
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
	entry, ok := r.Proxy(pub(key(9)))
	require.True(ok)
	assert.Equal(d.Proxy, entry.Contract)
	assert.Equal([]ton.AccountID{d.Proxy}, d.Proxies)
	assert.Equal("127.0.0.1:7000", entry.WorkerEndpoint)
	assert.Equal("127.0.0.1:7000", entry.ClientEndpoint, "the client endpoint defaults to the worker one")
	p, err := chain.Proxy(ctx, c, d.Proxy)
	require.NoError(err)
	assert.Equal(r.Params.MinProxyStake, p.ProxyStake)
	clientBalance, err := chain.WalletBalance(ctx, c, pub(key(3)))
	require.NoError(err)
	assert.Greater(clientBalance, uint64(0))
	gasBalance, err := chain.WalletBalance(ctx, c, pub(key(9)))
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

// TestSetupDemoProxies: a demo with several proxies lists each with its endpoints and contract;
// a restart on new ports moves the endpoints (bumping the version), and a restart with fewer
// proxies removes the others, so the registry always lists the proxies that run.
func TestSetupDemoProxies(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	ctx := context.Background()
	c := openDemoChain(t)
	proxies := []local.DemoProxy{
		{Operator: key(2), PaymentKey: pub(key(9)), WorkerEndpoint: "127.0.0.1:7000", ClientEndpoint: "127.0.0.1:7001"},
		{Operator: key(3), PaymentKey: pub(key(10)), WorkerEndpoint: "127.0.0.1:7010"},
		{Operator: key(2), PaymentKey: pub(key(11)), WorkerEndpoint: "127.0.0.1:7020", ClientEndpoint: "127.0.0.1:7021"},
	}
	cfg := local.DemoConfig{Owner: key(1), Proxies: proxies, Params: contracts.DefaultParams()}
	d, err := local.SetupDemo(ctx, c, cfg)
	require.NoError(err)
	require.Len(d.Proxies, 3)
	assert.Equal(d.Proxies[0], d.Proxy)
	r, err := chain.Registry(ctx, c, d.Registry)
	require.NoError(err)
	require.Len(r.Proxies, 3)
	for i, p := range proxies {
		entry, ok := r.Proxy(p.PaymentKey)
		require.True(ok, i)
		client := p.ClientEndpoint
		if client == "" {
			client = p.WorkerEndpoint
		}
		assert.Equal(contracts.ProxyEntry{Key: p.PaymentKey, Contract: d.Proxies[i], WorkerEndpoint: p.WorkerEndpoint, ClientEndpoint: client}, entry)
		contract, err := chain.Proxy(ctx, c, d.Proxies[i])
		require.NoError(err)
		assert.Equal(p.PaymentKey, contract.Key, "each proxy's contract is bound to its payment key")
		byEndpoint, ok := r.ProxyByEndpoint(client)
		assert.True(ok)
		assert.Equal(entry, byEndpoint)
	}

	// New ports at the next start: only the moved entry changes.
	cfg.Proxies = slices.Clone(proxies)
	cfg.Proxies[1].WorkerEndpoint = "127.0.0.1:7011"
	again, err := local.SetupDemo(ctx, c, cfg)
	require.NoError(err)
	assert.Equal(d, again)
	r2, err := chain.Registry(ctx, c, d.Registry)
	require.NoError(err)
	assert.Equal(r.Version+1, r2.Version, "one entry changed")
	moved, _ := r2.Proxy(proxies[1].PaymentKey)
	assert.Equal("127.0.0.1:7011", moved.WorkerEndpoint)
	assert.Equal("127.0.0.1:7011", moved.ClientEndpoint)

	// One proxy this time: the others leave the registry; their contracts stay.
	cfg.Proxies = proxies[:1]
	one, err := local.SetupDemo(ctx, c, cfg)
	require.NoError(err)
	assert.Equal(d.Proxies[:1], one.Proxies)
	r3, err := chain.Registry(ctx, c, d.Registry)
	require.NoError(err)
	require.Len(r3.Proxies, 1)
	assert.Equal(proxies[0].PaymentKey, r3.Proxies[0].Key)
	assert.Equal(r2.Version+2, r3.Version)
}

func TestSetupDemoRefusals(t *testing.T) {
	c, err := local.OpenDir(t.TempDir(), local.Options{})
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	a := local.DemoProxy{Operator: key(2), PaymentKey: pub(key(9)), WorkerEndpoint: "127.0.0.1:7000"}
	testCases := map[string]struct {
		proxies []local.DemoProxy
		wantErr string
	}{
		"no proxy":          {wantErr: "no proxy"},
		"same payment key":  {proxies: []local.DemoProxy{a, {Operator: key(3), PaymentKey: a.PaymentKey, WorkerEndpoint: "127.0.0.1:7010"}}, wantErr: "same payment key"},
		"same endpoint":     {proxies: []local.DemoProxy{a, {Operator: key(3), PaymentKey: pub(key(10)), WorkerEndpoint: "127.0.0.1:7010", ClientEndpoint: a.WorkerEndpoint}}, wantErr: "both use endpoint 127.0.0.1:7000"},
		"no endpoint":       {proxies: []local.DemoProxy{{Operator: key(2), PaymentKey: pub(key(9)), ClientEndpoint: "127.0.0.1:7000"}}, wantErr: "no endpoint"},
		"short payment key": {proxies: []local.DemoProxy{{Operator: key(2), PaymentKey: pub(key(9))[:5], WorkerEndpoint: "127.0.0.1:7000"}}, wantErr: "payment key has 5 bytes"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			_, err := local.SetupDemo(context.Background(), c, local.DemoConfig{Owner: key(1), Proxies: tc.proxies, Params: contracts.DefaultParams()})
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

// TestSetupDemoListsWhatRuns: the registry's allow-lists become exactly the given images and
// models (a build with another image replaces the old one), a proxy without endpoints gets its
// contract but is not listed, and the addresses are known before anything is deployed.
func TestSetupDemoListsWhatRuns(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	ctx := context.Background()
	c := openDemoChain(t)
	proxies := []local.DemoProxy{
		{Operator: key(2), PaymentKey: pub(key(9))},
		{Operator: key(3), PaymentKey: pub(key(10))},
	}
	cfg := local.DemoConfig{Owner: key(1), Proxies: proxies, Params: contracts.DefaultParams(),
		ProxyImages: [][32]byte{{1}}, WorkerImages: [][32]byte{{2}, {4}}, Models: [][32]byte{{3}}}
	registry, err := local.DemoRegistry(c, cfg.Owner, cfg.Params)
	require.NoError(err)
	d, err := local.SetupDemo(ctx, c, cfg)
	require.NoError(err)
	assert.Equal(registry, d.Registry, "the registry's address is known in advance")
	for i, p := range proxies {
		contract, err := local.DemoProxyContract(c, d.Registry, cfg.Params, p)
		require.NoError(err)
		assert.Equal(contract, d.Proxies[i], "proxy %d's contract is known in advance", i+1)
	}
	r, err := chain.Registry(ctx, c, d.Registry)
	require.NoError(err)
	assert.Empty(r.Proxies, "proxies that do not listen yet are not listed")

	// They listen now, and this build presents other images.
	cfg.Proxies = slices.Clone(proxies)
	cfg.Proxies[0].WorkerEndpoint, cfg.Proxies[1].WorkerEndpoint = "127.0.0.1:7000", "127.0.0.1:7010"
	cfg.ProxyImages, cfg.WorkerImages = [][32]byte{{5}}, [][32]byte{{2}}
	_, err = local.SetupDemo(ctx, c, cfg)
	require.NoError(err)
	r, err = chain.Registry(ctx, c, d.Registry)
	require.NoError(err)
	assert.Equal([][32]byte{{5}}, r.ProxyImages)
	assert.Equal([][32]byte{{2}}, r.WorkerImages)
	assert.Equal([][32]byte{{3}}, r.Models)
	require.Len(r.Proxies, 2)
	for i, p := range cfg.Proxies {
		entry, ok := r.Proxy(p.PaymentKey)
		require.True(ok)
		assert.Equal(p.WorkerEndpoint, entry.ClientEndpoint)
		assert.Equal(d.Proxies[i], entry.Contract)
	}
}

// openDemoChain is a new local chain, closed at the test's end.
func openDemoChain(t *testing.T) *local.Chain {
	c, err := local.OpenDir(t.TempDir(), local.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}
