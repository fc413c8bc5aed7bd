package node

import (
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/roles/node/nodetest"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/contracts"
	"github.com/cocoon-network/cocoon/transport/seal"
)

// TestMoneyAddsUpSealed runs 1,000 sealed, paid requests: what the client was charged is, to the
// nanoTON, the sum of the worker's signed usage records (kept with the client's receipts) priced
// at the registry's prices, and what the worker was credited is what those records earn: no more.
func TestMoneyAddsUpSealed(t *testing.T) {
	const requests, parallel = 1000, 8
	n := newTestNet(t, 240*time.Second, "owner", "operator", "client", "worker", "payment")
	require := require.New(t)
	ctx, log := n.ctx, n.log
	params := contracts.DefaultParams()
	registry := n.registry(params)
	contract := n.proxyContract(registry, "operator", "payment")
	require.NoError(chain.TopUp(ctx, n.ch, n.keys["client"], contract, 30_000_000_000))
	withKey := func(name string) config.Config {
		c := n.withKey(name, registry)
		c.Payments.ProxyContract = config.Address{AccountID: contract, Set: true}
		return c
	}
	pp, err := proxyMeter(ctx, n.set, withKey("payment"), log)
	require.NoError(err)
	n.closeAfter(pp.Close)
	p, err := BuildProxy(withKey("payment"), "test", log, pp, nil)
	require.NoError(err)
	n.run(pp.Run)
	n.run(p.Run)
	paddr := p.Addr(ctx).String()
	_, wp := n.paidWorker(withKey("worker"), paddr)
	ccfg := withKey("client")
	ccfg.Client.Proxies = []string{paddr}
	ccfg.Client.ReceiptsKept = 2 * requests
	cp, err := party(ctx, n.set, ccfg, "client", settle.KindClientCharged, log)
	require.NoError(err)
	cl, err := BuildClient(ccfg, "test", log, cp, nil)
	require.NoError(err)
	n.run(cl.Run)
	nodetest.WaitFor(t, "deposit and worker", func() bool {
		c, _ := pp.Ledger().Client(cp.Account)
		return p.WorkerCount() == 1 && c.Available() > 0
	})

	url := "http://" + cl.Addr().String() + "/v1/chat/completions"
	var wg sync.WaitGroup
	errs := make(chan error, requests)
	for g := range parallel {
		wg.Go(func() {
			for i := g; i < requests; i += parallel {
				body := nodetest.ChatBody("cocoon-builtin", i%2 == 0, fmt.Sprintf(`,"max_tokens":%d`, 5+i%40))
				resp := nodetest.Post(t, ctx, url, body)
				_, _ = io.Copy(io.Discard, resp.Body) // the whole answer: a stream ends with its receipt
				_ = resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("request %d: HTTP %d", i, resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(err)
	}

	receipts := cl.Receipts()
	require.Len(receipts, requests, "every sealed answer left a receipt")
	var priced, earns, charged uint64
	for _, r := range receipts {
		rec, err := seal.ParseUsageRecord(r.UsageRecord)
		require.NoError(err)
		c, err := settle.Cost(rec.Usage, params.Prices, r.Coefficient)
		require.NoError(err)
		e, err := settle.WorkerEarning(rec.Usage, params.Prices, r.Coefficient)
		require.NoError(err)
		assert.Equal(t, c, r.ChargedNanoTON, "request %s: charged exactly what its signed usage prices to", r.RequestID)
		priced, earns, charged = priced+c, earns+e, charged+r.ChargedNanoTON
	}
	lc, err := pp.Ledger().Client(cp.Account)
	require.NoError(err)
	assert.Equal(t, priced, lc.Charged, "the client's charges are the signed usage at the registry's prices")
	assert.Equal(t, charged, lc.Charged)
	lw, err := pp.Ledger().Worker(wp.Account)
	require.NoError(err)
	assert.Equal(t, earns, lw.Earned, "the worker is credited what it signed, no more")
}
