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

	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/roles/node/nodetest"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/chains"
	"github.com/cocoon-network/cocoon/settle/chaincmd"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

// TestStandalonePayments wires `cocoon proxy`, `worker` and `client` to a chain through the
// payments configuration (the local chain here; TON differs only in how the chain is opened):
// the operator deploys registry and proxy contract with `cocoon chain` functions, the client
// deposits, a request is charged, and the worker's threshold submission gets it paid.
func TestStandalonePayments(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the three roles; skipped with -short")
	}
	require := require.New(t)
	old := submitEvery
	submitEvery = 100 * time.Millisecond
	t.Cleanup(func() { submitEvery = old })
	ctx, cancel := context.WithTimeout(context.Background(), nodetest.Timescale(60*time.Second))
	defer cancel()
	data := t.TempDir()
	pay := config.Payments{Chain: "local", ChainData: filepath.Join(data, "chain.db")}
	var set chains.Set
	defer func() { require.NoError(set.Close()) }()
	cfg := LoopbackConfig(data, "warn")
	cfg.Payments = pay
	ch, err := openChain(ctx, &set, cfg)
	require.NoError(err)

	keys := map[string]ed25519.PrivateKey{}
	for _, name := range []string{"owner", "operator", "client", "worker", "payment", "broke"} {
		k, err := chain.GenerateKey(filepath.Join(data, name+".key"))
		require.NoError(err)
		keys[name] = k
		require.NoError(chaincmd.Fund(ctx, ch, io.Discard, k.Public().(ed25519.PublicKey), 100_000_000_000))
	}
	registry, err := chaincmd.DeployRegistry(ctx, ch, io.Discard, keys["owner"], contracts.DefaultParams(), 1_000_000_000)
	require.NoError(err)
	contract, err := chaincmd.DeployProxy(ctx, ch, io.Discard, keys["operator"], registry, keys["payment"].Public().(ed25519.PublicKey), 10_100_000_000)
	require.NoError(err)
	require.NoError(chain.TopUp(ctx, ch, keys["client"], contract, 3_000_000_000))

	log := zerolog.New(zerolog.NewTestWriter(t))
	withKey := func(name string, threshold uint64) config.Config {
		c := cfg
		c.Payments = pay
		c.Payments.Key, c.Payments.SubmitThreshold = filepath.Join(data, name+".key"), threshold
		c.Payments.Registry, c.Payments.ProxyContract = config.Address{AccountID: registry, Set: true}, config.Address{AccountID: contract, Set: true}
		require.NoError(c.Validate(map[string]string{"payment": "proxy", "worker": "worker", "client": "client", "broke": "client"}[name]))
		return c
	}
	pp, err := proxyMeter(ctx, &set, withKey("payment", 0), log)
	require.NoError(err)
	defer pp.Close()
	p, err := BuildProxy(withKey("payment", 0), "test", log, pp, nil)
	require.NoError(err)
	done := make(chan error, 8)
	go func() { done <- pp.Run(ctx) }()
	go func() { done <- p.Run(ctx) }()
	paddr := p.Addr(ctx).String()

	wcfg := withKey("worker", 1) // submit as soon as anything is earned
	wcfg.Worker.Proxies = []string{paddr}
	wp, err := party(ctx, &set, wcfg, "worker", settle.KindWorkerEarned, log)
	require.NoError(err)
	w, err := BuildWorker(wcfg, "test", log, wp, nil)
	require.NoError(err)
	go func() { done <- w.Run(ctx) }()
	go func() { done <- wp.Submitter.Run(ctx) }()

	ccfg := withKey("client", 0)
	ccfg.Client.Proxies = []string{paddr}
	cp, err := party(ctx, &set, ccfg, "client", settle.KindClientCharged, log)
	require.NoError(err)
	cl, err := BuildClient(ccfg, "test", log, cp, nil)
	require.NoError(err)
	go func() { done <- cl.Run(ctx) }()
	// A second client whose wallet never deposited with this proxy.
	bcfg := withKey("broke", 0)
	bcfg.Client.Proxies = []string{paddr}
	bp, err := party(ctx, &set, bcfg, "client", settle.KindClientCharged, log)
	require.NoError(err)
	broke, err := BuildClient(bcfg, "test", log, bp, nil)
	require.NoError(err)
	go func() { done <- broke.Run(ctx) }()
	defer func() {
		cancel()
		for range 6 {
			<-done
		}
	}()

	nodetest.WaitFor(t, "deposit and worker", func() bool {
		c, _ := pp.Ledger().Client(cp.Account)
		return p.WorkerCount() == 1 && c.Available() > 0
	})
	resp := nodetest.Post(t, ctx, "http://"+cl.Addr().String()+"/v1/chat/completions", nodetest.ChatBody("cocoon-builtin", false, ""))
	defer resp.Body.Close()
	require.Equal(200, resp.StatusCode)
	var got struct {
		Usage struct {
			TotalCost uint64 `json:"total_cost"`
		} `json:"usage"`
	}
	require.NoError(json.NewDecoder(resp.Body).Decode(&got))
	require.Positive(got.Usage.TotalCost)

	// No deposit: the app gets 402 in OpenAI's error shape, and nothing is charged or reserved.
	resp402 := nodetest.Post(t, ctx, "http://"+broke.Addr().String()+"/v1/chat/completions", nodetest.ChatBody("cocoon-builtin", false, ""))
	defer resp402.Body.Close()
	require.Equal(402, resp402.StatusCode)
	var e402 struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	require.NoError(json.NewDecoder(resp402.Body).Decode(&e402))
	assert.Contains(t, e402.Error.Message, "insufficient funds")
	bc, err := pp.Ledger().Client(bp.Account)
	require.NoError(err)
	assert.Zero(t, bc.Charged)
	assert.Zero(t, bc.Reserved)

	// The worker's threshold submission pays it on chain.
	nodetest.WaitFor(t, "the worker's payout", func() bool {
		ps, err := chain.Proxy(ctx, ch, contract)
		return err == nil && ps.Workers[wp.Account].Paid > 0
	})
	c, err := pp.Ledger().Client(cp.Account)
	require.NoError(err)
	assert.Equal(t, got.Usage.TotalCost, c.Charged)
	held, ok := cp.States.Latest(keys["payment"].Public().(ed25519.PublicKey))
	require.True(ok, "the client holds its charged state")
	assert.Equal(t, c.Charged, held.State.Total)

	// /jsonstats: the client shows per proxy its charged total, latest state and deposit left;
	// the worker its earned total and what was paid on chain.
	var cs struct {
		Payments map[string]struct {
			Charged     uint64  `json:"charged"`
			LatestState string  `json:"latest_state"`
			Balance     *uint64 `json:"balance"`
		} `json:"payments"`
	}
	require.NoError(nodetest.GetJSON("http://"+cl.Addr().String()+"/jsonstats", &cs))
	require.Len(cs.Payments, 1)
	for _, p := range cs.Payments {
		assert.Equal(t, c.Charged, p.Charged)
		assert.NotEmpty(t, p.LatestState)
		require.NotNil(p.Balance)
		assert.Positive(t, *p.Balance)
	}
	var ws struct {
		Payments map[string]struct {
			Earned uint64 `json:"earned"`
			Paid   uint64 `json:"paid"`
		} `json:"payments"`
	}
	require.NoError(nodetest.GetJSON("http://"+w.StatsAddr(ctx).String()+"/jsonstats", &ws))
	require.Len(ws.Payments, 1)
	for _, p := range ws.Payments {
		assert.Positive(t, p.Earned)
		assert.Equal(t, p.Earned, p.Paid, "the threshold submission paid everything earned")
	}
}
