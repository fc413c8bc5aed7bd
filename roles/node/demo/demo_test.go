package demo

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/roles/node"
	"github.com/cocoon-network/cocoon/roles/node/networkcmd"
	"github.com/cocoon-network/cocoon/roles/node/nodetest"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chaincmd"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

// TestRegistryPriceChange: the registry owner doubles the price on chain while the network runs;
// the proxy picks it up, the client is charged the new price and the worker earns the new fee.
func TestRegistryPriceChange(t *testing.T) {
	require := require.New(t)
	ctx, dn, _ := startNetwork(t, Size{Proxies: 1, Workers: 1})
	data := dn.data
	api := "http://" + dn.Client.Addr().String()

	cost := func() uint64 {
		resp := nodetest.Post(t, ctx, api+"/v1/chat/completions", nodetest.ChatBody("cocoon-builtin", false, ""))
		defer resp.Body.Close()
		require.Equal(200, resp.StatusCode)
		var got struct {
			Usage struct {
				TotalCost uint64 `json:"total_cost"`
			} `json:"usage"`
		}
		require.NoError(json.NewDecoder(resp.Body).Decode(&got))
		return got.Usage.TotalCost
	}
	before := cost()
	require.Positive(before)

	owner, err := node.KeyIn(filepath.Join(data, "keys"), "registry-owner")
	require.NoError(err)
	params := contracts.DefaultParams()
	params.PricePerToken *= 2
	params.WorkerFeePerToken *= 2
	require.NoError(chaincmd.SetParams(ctx, dn.Money.Chain, io.Discard, owner, dn.Money.Net.Registry, params))
	nodetest.WaitFor(t, "the proxy to see the new price", func() bool {
		return dn.Money.Meter.Prices().PricePerToken == params.PricePerToken
	})
	assert.Equal(t, 2*before, cost(), "the same request costs twice as much")

	var stats struct {
		Payments struct {
			Prices struct {
				PricePerToken uint64 `json:"price_per_token"`
			} `json:"prices"`
		} `json:"payments"`
	}
	resp, err := http.Get("http://" + dn.Proxy.StatsAddr(ctx).String() + "/jsonstats") //nolint:noctx // test
	require.NoError(err)
	defer resp.Body.Close()
	require.NoError(json.NewDecoder(resp.Body).Decode(&stats))
	assert.Equal(t, params.PricePerToken, stats.Payments.Prices.PricePerToken)
}

// TestSettleReportsTheContractsTotal: the demo's settlement is checked against what the proxy
// contract says it paid, and reports that; the worker's wallet is no evidence, since it also
// receives the submitter's leftover gas.
func TestSettleReportsTheContractsTotal(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	ctx, dn, _ := startNetwork(t, Size{Proxies: 1, Workers: 1})
	resp := nodetest.Post(t, ctx, "http://"+dn.Client.Addr().String()+"/v1/chat/completions", nodetest.ChatBody("cocoon-builtin", false, ""))
	require.Equal(200, resp.StatusCode)
	require.NoError(resp.Body.Close())
	nodetest.WaitFor(t, "client and worker to hold their states", func() bool { return dn.Money.held() == nil })

	var out strings.Builder
	require.NoError(dn.Money.settleOnChain(ctx, &out))
	earned, ok := dn.Money.workers[0].States.Latest(dn.Money.Meter.PaymentKey())
	require.True(ok)
	ps, err := chain.Proxy(ctx, dn.Money.Chain, dn.Money.Net.Proxy)
	require.NoError(err)
	paid := ps.Workers[dn.Money.workers[0].Account].Paid
	assert.Equal(earned.State.Total, paid, "the contract paid what the state says")
	assert.Regexp(`worker paid\s+`+regexp.QuoteMeta(settle.FormatTON(paid))+` TON by the proxy contract`, out.String())
	assert.Regexp(`worker wallet\s+\+[0-9.]+ TON: the `+regexp.QuoteMeta(settle.FormatTON(paid))+` TON pay and [0-9.]+ TON of the 0.05 TON gas`, out.String())

	// Settling again pays nothing more, and says so from the contract's numbers.
	out.Reset()
	require.NoError(dn.Money.settleOnChain(ctx, &out))
	assert.Regexp(`worker paid\s+0 TON by the proxy contract`, out.String())
	assert.Regexp(`worker wallet\s+unchanged: nothing new to pay`, out.String())
}

// TestNetworkFromRegistry: a demo of two proxies and two workers lists each proxy in the registry
// at the port it listens on, allows exactly the images and model its nodes present (each listed
// proxy answers an attested dial with an allowed image and the payment key listed for it), and
// the client, which knows the proxies only from the registry, is served and charged.
func TestNetworkFromRegistry(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	ctx, dn, cfg := startNetwork(t, Size{Proxies: 2, Workers: 2})
	log := zerolog.New(zerolog.NewTestWriter(t))
	require.Len(dn.Proxies, 2)
	require.Len(dn.Workers, 2)

	reg, err := chain.Registry(ctx, dn.Money.Chain, dn.Money.Net.Registry)
	require.NoError(err)
	require.Len(reg.Proxies, 2)
	for i, addr := range dn.ProxyAddrs {
		entry, ok := reg.ProxyByEndpoint(addr.String())
		require.True(ok, "proxy %d is listed at %s", i+1, addr)
		assert.Equal(dn.Money.Net.Proxies[i], entry.Contract)
		assert.Equal([]byte(dn.Money.Meters[i].PaymentKey()), []byte(entry.Key))
	}
	assert.Len(reg.ProxyImages, 1, "one proxy image: the one every demo proxy presents")
	assert.Len(reg.WorkerImages, 1)
	assert.Len(reg.Models, 1)
	net, err := networkcmd.Survey(ctx, dn.Money.Chain, dn.Money.Net.Registry, networkcmd.Options{
		AllowSimulated: true, SimDir: cfg.SimRoot(), Timeout: nodetest.Timescale(10 * time.Second), Log: log})
	require.NoError(err)
	require.Len(net.Proxies, 2)
	for _, p := range net.Proxies {
		assert.True(p.Answered, "%s: %s", p.ClientEndpoint, p.Error)
		assert.True(p.ImageAllowed, "%s presents an allowed image", p.ClientEndpoint)
		assert.True(p.PaymentKeyMatches, "%s attests its listed payment key", p.ClientEndpoint)
	}

	resp := nodetest.Post(t, ctx, "http://"+dn.Client.Addr().String()+"/v1/chat/completions", nodetest.ChatBody("cocoon-builtin", false, ""))
	require.Equal(200, resp.StatusCode)
	require.NoError(resp.Body.Close())
	nodetest.WaitFor(t, "client and a worker to hold their states", func() bool { return dn.Money.held() == nil })
	var out strings.Builder
	require.NoError(dn.Money.settleOnChain(ctx, &out))
	assert.Contains(out.String(), "workers paid")
}

// startNetwork runs a demo network of size for the test, in a new data directory.
func startNetwork(t *testing.T, size Size) (context.Context, *testNetwork, config.Config) {
	if testing.Short() {
		t.Skip("runs the demo network; skipped with -short")
	}
	data := t.TempDir()
	cfg := node.LoopbackConfig(data, "warn")
	ctx, cancel := context.WithTimeout(context.Background(), nodetest.Timescale(60*time.Second))
	t.Cleanup(cancel)
	dn, err := StartNetwork(ctx, cfg, size, data, "test", zerolog.New(zerolog.NewTestWriter(t)), io.Discard)
	require.NoError(t, err)
	t.Cleanup(dn.stop)
	return ctx, &testNetwork{Network: dn, data: data}, cfg
}

type testNetwork struct {
	*Network
	data string
}
