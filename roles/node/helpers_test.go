package node

import (
	"context"
	"crypto/ed25519"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/roles/node/nodetest"
	"github.com/cocoon-network/cocoon/roles/worker"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/chains"
	"github.com/cocoon-network/cocoon/settle/chaincmd"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

// testNet is the set-up the tests of whole nodes share: a local chain in a temporary data
// directory, funded wallet keys by name, the roles' common configuration, and the goroutines the
// test starts, all stopped and closed at the end.
type testNet struct {
	t    *testing.T
	ctx  context.Context
	data string
	set  *chains.Set
	cfg  config.Config
	ch   chain.Chain
	keys map[string]ed25519.PrivateKey
	log  zerolog.Logger
	done chan error
	runs int
	// closers run once every goroutine the test started has stopped.
	closers []func() error
}

// newTestNet opens the chain and funds a wallet for each name; it skips with -short.
func newTestNet(t *testing.T, timeout time.Duration, names ...string) *testNet {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the three roles; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodetest.Timescale(timeout))
	n := &testNet{t: t, ctx: ctx, data: t.TempDir(), set: &chains.Set{}, keys: map[string]ed25519.PrivateKey{},
		log: zerolog.New(zerolog.NewTestWriter(t)), done: make(chan error, 32)}
	t.Cleanup(func() {
		cancel()
		for range n.runs {
			<-n.done
		}
		for _, c := range n.closers {
			require.NoError(t, c())
		}
		require.NoError(t, n.set.Close())
	})
	n.cfg = LoopbackConfig(n.data, "warn")
	n.cfg.Payments = config.Payments{Chain: "local", ChainData: filepath.Join(n.data, "chain.db")}
	var err error
	n.ch, err = openChain(ctx, n.set, n.cfg)
	require.NoError(t, err)
	for _, name := range names {
		k, err := chain.GenerateKey(filepath.Join(n.data, name+".key"))
		require.NoError(t, err)
		n.keys[name] = k
		require.NoError(t, chaincmd.Fund(ctx, n.ch, io.Discard, n.pub(name), 100_000_000_000))
	}
	return n
}

func (n *testNet) pub(name string) ed25519.PublicKey {
	return n.keys[name].Public().(ed25519.PublicKey)
}

// registry deploys a registry owned by the wallet of "owner".
func (n *testNet) registry(params contracts.RegistryParams) ton.AccountID {
	reg, err := chaincmd.DeployRegistry(n.ctx, n.ch, io.Discard, n.keys["owner"], params, 1_000_000_000)
	require.NoError(n.t, err)
	return reg
}

// proxyContract deploys the contract of payment key "payment-<name>" (or "payment"), owned by the
// wallet of operator.
func (n *testNet) proxyContract(registry ton.AccountID, operator, payment string) ton.AccountID {
	c, err := chaincmd.DeployProxy(n.ctx, n.ch, io.Discard, n.keys[operator], registry, n.pub(payment), 10_100_000_000)
	require.NoError(n.t, err)
	return c
}

// withKey is the common configuration with the key file of name and the registry.
func (n *testNet) withKey(name string, registry ton.AccountID) config.Config {
	c := n.cfg
	c.Payments.Key = filepath.Join(n.data, name+".key")
	c.Payments.Registry = config.Address{AccountID: registry, Set: true}
	return c
}

// run starts f until the test ends.
func (n *testNet) run(f func(context.Context) error) {
	n.runs++
	go func() { n.done <- f(n.ctx) }()
}

// closeAfter closes c at the end of the test, after the goroutines have stopped.
func (n *testNet) closeAfter(c func() error) { n.closers = append(n.closers, c) }

// paidWorker runs a worker with cfg's wallet against the proxy at paddr, with its submitter.
func (n *testNet) paidWorker(cfg config.Config, paddr string) (*worker.Worker, *Party) {
	cfg.Worker.Proxies = []string{paddr}
	wp, err := party(n.ctx, n.set, cfg, "worker", settle.KindWorkerEarned, n.log)
	require.NoError(n.t, err)
	w, err := BuildWorker(cfg, "test", n.log, wp, nil)
	require.NoError(n.t, err)
	n.run(w.Run)
	n.run(wp.Submitter.Run)
	return w, wp
}
