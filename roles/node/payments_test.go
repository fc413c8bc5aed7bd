package node

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/roles/node/nodetest"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

// TestStandalonePayments wires `cocoon proxy`, `worker` and `client` to a chain through the
// payments configuration (the local chain here; TON differs only in how the chain is opened):
// the operator deploys registry and proxy contract with `cocoon chain` functions, the client
// deposits, a request is charged, and the worker's threshold submission gets it paid.
func TestStandalonePayments(t *testing.T) {
	n := newTestNet(t, 60*time.Second, "owner", "operator", "client", "worker", "payment", "broke")
	require := require.New(t)
	old := submitEvery
	submitEvery = 100 * time.Millisecond
	t.Cleanup(func() { submitEvery = old })
	ctx, ch, keys, log := n.ctx, n.ch, n.keys, n.log
	registry := n.registry(contracts.DefaultParams())
	contract := n.proxyContract(registry, "operator", "payment")
	require.NoError(chain.TopUp(ctx, ch, keys["client"], contract, 3_000_000_000))

	withKey := func(name string, threshold uint64) config.Config {
		c := n.withKey(name, registry)
		c.Payments.SubmitThreshold = threshold
		c.Payments.ProxyContract = config.Address{AccountID: contract, Set: true}
		require.NoError(c.Validate(map[string]string{"payment": "proxy", "worker": "worker", "client": "client", "broke": "client"}[name]))
		return c
	}
	pp, err := proxyMeter(ctx, n.set, withKey("payment", 0), log)
	require.NoError(err)
	n.closeAfter(pp.Close)
	p, err := BuildProxy(withKey("payment", 0), "test", log, pp, nil)
	require.NoError(err)
	n.run(pp.Run)
	n.run(p.Run)
	paddr := p.Addr(ctx).String()

	w, wp := n.paidWorker(withKey("worker", 1), paddr) // submits as soon as anything is earned

	ccfg := withKey("client", 0)
	ccfg.Client.Proxies = []string{paddr}
	cp, err := party(ctx, n.set, ccfg, "client", settle.KindClientCharged, log)
	require.NoError(err)
	cl, err := BuildClient(ccfg, "test", log, cp, nil)
	require.NoError(err)
	n.run(cl.Run)
	// A second client whose wallet never deposited with this proxy.
	bcfg := withKey("broke", 0)
	bcfg.Client.Proxies = []string{paddr}
	bp, err := party(ctx, n.set, bcfg, "client", settle.KindClientCharged, log)
	require.NoError(err)
	broke, err := BuildClient(bcfg, "test", log, bp, nil)
	require.NoError(err)
	n.run(broke.Run)

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
	// The proxy learns the payout from its contract: its ledger, which its stats show, has the
	// worker's same earned and paid totals.
	nodetest.WaitFor(t, "the proxy to see the payout", func() bool {
		pw, err := pp.Ledger().Worker(wp.Account)
		for _, w := range ws.Payments {
			return err == nil && pw.Earned == w.Earned && pw.Paid == w.Paid
		}
		return false
	})
}
