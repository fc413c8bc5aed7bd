package node

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/roles/node/nodetest"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/chains"
	"github.com/cocoon-network/cocoon/settle/chaincmd"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

// TestClientClosesAtAnyMoment runs proxy, worker and clients with payments on the local chain.
// Each client closes its account at another moment and never submits a state itself; the proxy
// lands every charge it signed during the close delay, the worker is paid what it earned, and the
// proxy's stake is untouched: nobody is worse off than the signed states say.
func TestClientClosesAtAnyMoment(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the three roles; skipped with -short")
	}
	require := require.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), nodetest.Timescale(90*time.Second))
	defer cancel()
	data := t.TempDir()
	var set chains.Set
	defer func() { require.NoError(set.Close()) }()
	cfg := LoopbackConfig(data, "warn")
	cfg.Payments = config.Payments{Chain: "local", ChainData: filepath.Join(data, "chain.db")}
	ch, err := openChain(ctx, &set, cfg)
	require.NoError(err)

	// requests is how many answers each client takes before it closes.
	requests := map[string]int{"client-none": 0, "client-one": 1, "client-five": 5}
	keys := map[string]ed25519.PrivateKey{}
	for _, name := range []string{"owner", "operator", "worker", "payment", "client-none", "client-one", "client-five"} {
		k, err := chain.GenerateKey(filepath.Join(data, name+".key"))
		require.NoError(err)
		keys[name] = k
		require.NoError(chaincmd.Fund(ctx, ch, io.Discard, k.Public().(ed25519.PublicKey), 100_000_000_000))
	}
	params := contracts.DefaultParams()
	params.ClientCloseDelay = 2
	registry, err := chaincmd.DeployRegistry(ctx, ch, io.Discard, keys["owner"], params, 1_000_000_000)
	require.NoError(err)
	payPub := keys["payment"].Public().(ed25519.PublicKey)
	contract, err := chaincmd.DeployProxy(ctx, ch, io.Discard, keys["operator"], registry, payPub, 10_100_000_000)
	require.NoError(err)
	// The meter pays the gas of its own submissions from the payment key's wallet.
	const deposit = 3_000_000_000
	for name := range requests {
		require.NoError(chain.TopUp(ctx, ch, keys[name], contract, deposit))
	}
	before, err := chain.Proxy(ctx, ch, contract)
	require.NoError(err)

	log := zerolog.New(zerolog.NewTestWriter(t))
	role := func(name, kind string) config.Config {
		c := cfg
		c.Payments.Key = filepath.Join(data, name+".key")
		c.Payments.Registry, c.Payments.ProxyContract = config.Address{AccountID: registry, Set: true}, config.Address{AccountID: contract, Set: true}
		if kind == "worker" {
			c.Payments.SubmitThreshold = 1
		}
		require.NoError(c.Validate(kind))
		return c
	}
	m, err := proxyMeter(ctx, &set, role("payment", "proxy"), log)
	require.NoError(err)
	defer m.Close()
	p, err := BuildProxy(role("payment", "proxy"), "test", log, m, nil)
	require.NoError(err)
	done := make(chan error, 16)
	running := 0
	run := func(f func(context.Context) error) {
		running++
		go func() { done <- f(ctx) }()
	}
	defer func() {
		cancel()
		for range running {
			<-done
		}
	}()
	run(m.Run)
	run(p.Run)
	paddr := p.Addr(ctx).String()

	wcfg := role("worker", "worker")
	wcfg.Worker.Proxies = []string{paddr}
	wp, err := party(ctx, &set, wcfg, "worker", settle.KindWorkerEarned, log)
	require.NoError(err)
	w, err := BuildWorker(wcfg, "test", log, wp, nil)
	require.NoError(err)
	run(w.Run)
	run(wp.Submitter.Run)

	apis := map[string]string{}
	accounts := map[string]ton.AccountID{}
	for name := range requests {
		ccfg := role(name, "client")
		ccfg.Client.Proxies = []string{paddr}
		cp, err := party(ctx, &set, ccfg, "client", settle.KindClientCharged, log)
		require.NoError(err)
		cl, err := BuildClient(ccfg, "test", log, cp, nil)
		require.NoError(err)
		run(cl.Run)
		apis[name], accounts[name] = "http://"+cl.Addr().String(), cp.Account
	}
	nodetest.WaitFor(t, "the worker and every deposit", func() bool {
		for _, a := range accounts {
			if c, _ := m.Ledger().Client(a); c.Available() == 0 {
				return false
			}
		}
		return p.WorkerCount() == 1
	})

	told := map[string]uint64{} // what each app was told it paid
	for name, n := range requests {
		for range n {
			resp := nodetest.Post(t, ctx, apis[name]+"/v1/chat/completions", nodetest.ChatBody("cocoon-builtin", false, `,"max_tokens":40`))
			require.Equal(200, resp.StatusCode)
			var got struct {
				Usage struct {
					TotalCost uint64 `json:"total_cost"`
				} `json:"usage"`
			}
			require.NoError(json.NewDecoder(resp.Body).Decode(&got))
			require.NoError(resp.Body.Close())
			told[name] += got.Usage.TotalCost
		}
		require.NoError(chaincmd.Withdraw(ctx, ch, io.Discard, keys[name], contract), "%s closes", name)
	}

	// During the delay the proxy lands every charge it signed, without the clients' help.
	nodetest.WaitFor(t, "the proxy to settle what it charged the closing clients", func() bool {
		ps, err := chain.Proxy(ctx, ch, contract)
		if err != nil {
			return false
		}
		for name, a := range accounts {
			c, err := m.Ledger().Client(a)
			if err != nil || ps.Clients[a].Charged != c.Charged || c.Charged != told[name] {
				return false
			}
		}
		return true
	})
	// After the delay each client takes back what is left.
	nodetest.WaitFor(t, "every client to take back the rest", func() bool {
		ps, err := chain.Proxy(ctx, ch, contract)
		if err != nil {
			return false
		}
		left := false
		for name, a := range accounts {
			if acc := ps.Clients[a]; acc.Balance+acc.Stake > 0 {
				left = true
				_ = chaincmd.WithdrawStake(ctx, ch, io.Discard, keys[name], contract)
			}
		}
		return !left
	})
	earned, err := m.Ledger().Worker(wp.Account)
	require.NoError(err)
	nodetest.WaitFor(t, "the worker's payout", func() bool {
		ps, err := chain.Proxy(ctx, ch, contract)
		return err == nil && ps.Workers[wp.Account].Paid == earned.Earned
	})

	after, err := chain.Proxy(ctx, ch, contract)
	require.NoError(err)
	var charged uint64
	for name, a := range accounts {
		acc := after.Clients[a]
		assert.Equal(t, told[name], acc.Charged, "%s: the chain charged what the app was told", name)
		assert.Zero(t, acc.Balance+acc.Stake, "%s: got back deposit − charged", name)
		charged += acc.Charged
	}
	assert.Positive(t, charged)
	assert.LessOrEqual(t, after.Workers[wp.Account].Paid, charged, "workers are paid from what clients were charged")
	assert.Equal(t, before.ProxyStake, after.ProxyStake, "the proxy's stake paid nobody")
}
