package main

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
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
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
	ctx, cancel := context.WithTimeout(context.Background(), timescale(60*time.Second))
	defer cancel()
	data := t.TempDir()
	pay := config.Payments{Chain: "local", ChainData: filepath.Join(data, "chain.db")}
	ch, err := roleChain(ctx, pay, data)
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

	cfg := loopbackConfig(data, "warn")
	log := zerolog.New(zerolog.NewTestWriter(t))
	withKey := func(name string, threshold uint64) config.Config {
		c := cfg
		c.Payments = pay
		c.Payments.Key, c.Payments.SubmitThreshold = filepath.Join(data, name+".key"), threshold
		c.Payments.Registry, c.Payments.ProxyContract = registry.ToRaw(), contract.ToRaw()
		require.NoError(c.Validate(map[string]string{"payment": "proxy", "worker": "worker", "client": "client", "broke": "client"}[name]))
		return c
	}
	pp, err := standaloneProxyPay(ctx, withKey("payment", 0), log)
	require.NoError(err)
	defer pp.ledger.Close()
	p, err := buildProxy(withKey("payment", 0), log, pp)
	require.NoError(err)
	done := make(chan error, 3)
	go func() { done <- p.Run(ctx) }()
	paddr := p.Addr(ctx).String()

	wcfg := withKey("worker", 1) // submit as soon as anything is earned
	wcfg.Worker.Proxies = []string{paddr}
	wp, err := standaloneParty(ctx, wcfg, "worker", settle.KindWorkerEarned, log)
	require.NoError(err)
	w, err := buildWorker(wcfg, log, wp)
	require.NoError(err)
	go func() { done <- w.Run(ctx) }()

	ccfg := withKey("client", 0)
	ccfg.Client.Proxies = []string{paddr}
	cp, err := standaloneParty(ctx, ccfg, "client", settle.KindClientCharged, log)
	require.NoError(err)
	cl, err := buildClient(ccfg, log, cp)
	require.NoError(err)
	go func() { done <- cl.Run(ctx) }()
	// A second client whose wallet never deposited with this proxy.
	bcfg := withKey("broke", 0)
	bcfg.Client.Proxies = []string{paddr}
	bp, err := standaloneParty(ctx, bcfg, "client", settle.KindClientCharged, log)
	require.NoError(err)
	broke, err := buildClient(bcfg, log, bp)
	require.NoError(err)
	go func() { done <- broke.Run(ctx) }()
	defer func() {
		cancel()
		for range 4 {
			<-done
		}
	}()

	waitFor(t, "deposit and worker", func() bool {
		c, _ := pp.ledger.Client(cp.account)
		return p.WorkerCount() == 1 && c.Available() > 0
	})
	resp := post(t, ctx, "http://"+cl.Addr().String()+"/v1/chat/completions", chatBody("cocoon-builtin", false, ""))
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
	resp402 := post(t, ctx, "http://"+broke.Addr().String()+"/v1/chat/completions", chatBody("cocoon-builtin", false, ""))
	defer resp402.Body.Close()
	require.Equal(402, resp402.StatusCode)
	var e402 struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	require.NoError(json.NewDecoder(resp402.Body).Decode(&e402))
	assert.Contains(t, e402.Error.Message, "insufficient funds")
	bc, err := pp.ledger.Client(bp.account)
	require.NoError(err)
	assert.Zero(t, bc.Charged)
	assert.Zero(t, bc.Reserved)

	// The worker's threshold submission pays it on chain.
	waitFor(t, "the worker's payout", func() bool {
		ps, err := chain.Proxy(ctx, ch, contract)
		return err == nil && ps.Workers[wp.account].Paid > 0
	})
	c, err := pp.ledger.Client(cp.account)
	require.NoError(err)
	assert.Equal(t, got.Usage.TotalCost, c.Charged)
	held, ok := cp.states.Latest(keys["payment"].Public().(ed25519.PublicKey))
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
	require.NoError(getJSON("http://"+cl.Addr().String()+"/jsonstats", &cs))
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
	require.NoError(getJSON("http://"+w.StatsAddr(ctx).String()+"/jsonstats", &ws))
	require.Len(ws.Payments, 1)
	for _, p := range ws.Payments {
		assert.Positive(t, p.Earned)
		assert.Equal(t, p.Earned, p.Paid, "the threshold submission paid everything earned")
	}
}
