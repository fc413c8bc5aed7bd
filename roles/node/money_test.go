package node

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/roles/client"
	"github.com/cocoon-network/cocoon/roles/node/nodetest"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/contracts"
	"github.com/cocoon-network/cocoon/settle/meter"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/seal"
)

// TestMoneyAddsUpSealed runs 1,000 sealed, paid requests: what the client was charged is, to the
// nanoTON, the sum of the worker's signed usage records (kept with the client's receipts) priced
// at the registry's prices, and what the worker was credited is what those records earn: no more.
func TestMoneyAddsUpSealed(t *testing.T) {
	const requests, parallel = 1000, 8
	m := startPaidNet(t, 240*time.Second, requests, nil)
	var wg sync.WaitGroup
	errs := make(chan error, requests)
	for g := range parallel {
		wg.Go(func() {
			for i := g; i < requests; i += parallel {
				errs <- m.ask(i, fmt.Sprintf(`,"max_tokens":%d`, 5+i%40))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	m.addsUp(requests)
}

// TestMoneyAddsUpOverSeveralConnections: more requests at once than one connection to the proxy
// carries (transport.DefaultMaxStreams) make the client open more connections beside it, and
// the money still adds up over all of them, to the nanoTON, with nothing left reserved.
func TestMoneyAddsUpOverSeveralConnections(t *testing.T) {
	const requests = transport.DefaultMaxStreams + 72
	m := startPaidNet(t, 240*time.Second, requests, func(worker, _ *config.Config) {
		worker.Worker.MaxActive = requests
		// Every answer takes at least 40 × 50 ms, so all of them are open at once.
		worker.Worker.TokenDelay = config.Duration(50 * time.Millisecond)
	})
	var wg sync.WaitGroup
	errs := make(chan error, requests)
	for i := range requests {
		wg.Go(func() { errs <- m.ask(i, `,"max_tokens":40`) })
	}
	nodetest.WaitFor(t, "a second connection to the proxy", func() bool { return m.connections() >= 2 })
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	m.addsUp(requests)
}

// paidNet is a registry, a proxy with its contract, a paid worker and a client with a deposit,
// on the local chain.
type paidNet struct {
	t      *testing.T
	n      *testNet
	params contracts.RegistryParams
	pp     *meter.Meter
	wp, cp *Party
	cl     *client.Client
	url    string
}

// startPaidNet starts the paid network and waits for the deposit and the worker; tune, when
// set, changes the worker's and the client's configuration first.
func startPaidNet(t *testing.T, timeout time.Duration, receipts int, tune func(worker, client *config.Config)) *paidNet {
	n := newTestNet(t, timeout, "owner", "operator", "client", "worker", "payment")
	require := require.New(t)
	ctx, log := n.ctx, n.log
	m := &paidNet{t: t, n: n, params: contracts.DefaultParams()}
	registry := n.registry(m.params)
	contract := n.proxyContract(registry, "operator", "payment")
	require.NoError(chain.TopUp(ctx, n.ch, n.keys["client"], contract, 30_000_000_000))
	withKey := func(name string) config.Config {
		c := n.withKey(name, registry)
		c.Payments.ProxyContract = config.Address{AccountID: contract, Set: true}
		return c
	}
	var err error
	m.pp, err = proxyMeter(ctx, n.set, withKey("payment"), log)
	require.NoError(err)
	n.closeAfter(m.pp.Close)
	p, err := BuildProxy(withKey("payment"), "test", log, m.pp, nil)
	require.NoError(err)
	n.run(m.pp.Run)
	n.run(p.Run)
	paddr := p.Addr(ctx).String()
	wcfg, ccfg := withKey("worker"), withKey("client")
	ccfg.Client.Proxies = []string{paddr}
	ccfg.Client.ReceiptsKept = 2 * receipts
	if tune != nil {
		tune(&wcfg, &ccfg)
	}
	_, m.wp = n.paidWorker(wcfg, paddr)
	m.cp, err = party(ctx, n.set, ccfg, "client", settle.KindClientCharged, log)
	require.NoError(err)
	m.cl, err = BuildClient(ccfg, "test", log, m.cp, nil)
	require.NoError(err)
	n.run(m.cl.Run)
	nodetest.WaitFor(t, "deposit and worker", func() bool {
		c, _ := m.pp.Ledger().Client(m.cp.Account)
		return p.WorkerCount() == 1 && c.Available() > 0
	})
	m.url = "http://" + m.cl.Addr().String()
	return m
}

// ask sends request i, streamed when i is even, and reads the whole answer: a stream ends with
// its receipt.
func (m *paidNet) ask(i int, extra string) error {
	body := nodetest.ChatBody("cocoon-builtin", i%2 == 0, extra)
	resp := nodetest.Post(m.t, m.n.ctx, m.url+"/v1/chat/completions", body)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("request %d: HTTP %d", i, resp.StatusCode)
	}
	return nil
}

// connections is how many connections the client has open to its proxy now (/jsonstats).
func (m *paidNet) connections() int {
	var st struct {
		Proxies []struct {
			Connections int `json:"connections"`
		} `json:"proxies"`
	}
	if nodetest.GetJSON(m.url+"/jsonstats", &st) != nil || len(st.Proxies) != 1 {
		return 0
	}
	return st.Proxies[0].Connections
}

// addsUp checks the client's receipts against the proxy's ledger: every charge is its signed
// usage at the registry's prices, the worker earned what those records earn, nothing is left
// reserved.
func (m *paidNet) addsUp(requests int) {
	t := m.t
	require := require.New(t)
	receipts := m.cl.Receipts()
	require.Len(receipts, requests, "every sealed answer left a receipt")
	var priced, earns, charged uint64
	for _, r := range receipts {
		rec, err := seal.ParseUsageRecord(r.UsageRecord)
		require.NoError(err)
		c, err := settle.Cost(rec.Usage, m.params.Prices, r.Coefficient)
		require.NoError(err)
		e, err := settle.WorkerEarning(rec.Usage, m.params.Prices, r.Coefficient)
		require.NoError(err)
		assert.Equal(t, c, r.ChargedNanoTON, "request %s: charged exactly what its signed usage prices to", r.RequestID)
		priced, earns, charged = priced+c, earns+e, charged+r.ChargedNanoTON
	}
	lc, err := m.pp.Ledger().Client(m.cp.Account)
	require.NoError(err)
	assert.Equal(t, priced, lc.Charged, "the client's charges are the signed usage at the registry's prices")
	assert.Equal(t, charged, lc.Charged)
	assert.Zero(t, lc.Reserved, "every reservation was settled")
	lw, err := m.pp.Ledger().Worker(m.wp.Account)
	require.NoError(err)
	assert.Equal(t, earns, lw.Earned, "the worker is credited what it signed, no more")
}
