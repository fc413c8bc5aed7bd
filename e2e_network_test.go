package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/chains"
	"github.com/cocoon-network/cocoon/settle/chaincmd"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

// openNetwork is a network of separate processes on one `cocoon chain serve`, laid out by the
// test as a registry owner and proxy operators would.
type openNetwork struct {
	t        *testing.T
	ctx      context.Context
	ch       chain.Chain
	dir, sim string
	url      string
	owner    ed25519.PrivateKey
	registry ton.AccountID
}

// key makes a wallet key file in the test's directory and funds its wallet.
func (n *openNetwork) key(name string, fund bool) (ed25519.PrivateKey, string) {
	path := filepath.Join(n.dir, name+".key")
	k, err := chain.GenerateKey(path)
	require.NoError(n.t, err)
	if fund {
		require.NoError(n.t, chaincmd.Fund(n.ctx, n.ch, io.Discard, k.Public().(ed25519.PublicKey), 100_000_000_000))
	}
	return k, path
}

// common are the flags every node shares: simulated TDX, payments on the shared chain, the registry.
func (n *openNetwork) common(name string) []string {
	// The nodes make neither their data directory nor its keys/ (where a worker's wallet key is
	// made on first use).
	require.NoError(n.t, os.MkdirAll(filepath.Join(n.dir, name, "keys"), 0o700))
	return []string{"--allow-simulated", "--sim-dir", n.sim, "--data", filepath.Join(n.dir, name),
		"--chain", "toncenter", "--chain-url", n.url, "--registry", n.registry.ToRaw(), "--registry-interval", "2s"}
}

// image is what `cocoon ROLE … --print-image` prints for the node that args start.
func (n *openNetwork) image(args ...string) [32]byte {
	out, err := exec.CommandContext(n.ctx, cocoonBinary(n.t), append(args, "--print-image")...).CombinedOutput()
	require.NoError(n.t, err, string(out))
	b, err := hex.DecodeString(strings.Fields(string(out))[0])
	require.NoError(n.t, err, string(out))
	require.Len(n.t, b, 32)
	return [32]byte(b)
}

// owner sends the registry owner's changes in one wallet message.
func (n *openNetwork) ownerSends(bodies ...func() (*boc.Cell, error)) {
	var msgs []chain.Message
	for _, b := range bodies {
		c, err := b()
		require.NoError(n.t, err)
		msgs = append(msgs, chain.Message{To: n.registry, Amount: chain.GasAmount, Body: c, Bounce: true})
	}
	require.NoError(n.t, n.ch.Send(n.ctx, n.owner, msgs...))
}

func allow(list contracts.List, h [32]byte, allowed bool) func() (*boc.Cell, error) {
	return func() (*boc.Cell, error) { return contracts.SetAllowedBody(0, list, h, allowed) }
}

func listProxy(key ed25519.PublicKey, contract ton.AccountID, endpoint string) func() (*boc.Cell, error) {
	return func() (*boc.Cell, error) {
		return contracts.SetProxyBody(0, key, &contracts.ProxyEntry{Key: key, Contract: contract, WorkerEndpoint: endpoint, ClientEndpoint: endpoint})
	}
}

// builtinModel is the weights digest the built-in engine names for model.
func builtinModel(model string) [32]byte {
	return sha256.Sum256([]byte("cocoon built-in engine/" + model))
}

// proxyStats and workerStats are the parts of /jsonstats the test reads.
type netProxyStats struct {
	Workers []struct {
		Model  string `json:"model"`
		Active int    `json:"active"`
	} `json:"workers"`
}

type netPeerStats struct {
	Proxies []struct {
		Address   string `json:"address"`
		Connected bool   `json:"connected"`
		Refused   string `json:"refused"`
	} `json:"proxies"`
	Payments map[string]struct {
		Charged        uint64  `json:"charged"`
		ChargedOnChain *uint64 `json:"charged_on_chain"`
	} `json:"payments"`
}

// TestOpenNetwork: `cocoon chain serve`, two proxies, three workers and a client as separate
// processes; workers and client know only the chain and the registry. Requests are served and
// paid on the shared chain. A proxy killed with -9 is left within 2 s; a worker image taken off
// the registry gets no new requests within 10 s (the nodes read the registry every 2 s here) while
// its request under way finishes, and the worker says why; a proxy registered later is found
// without a restart; a proxy that attests another payment key than the registry lists for its
// endpoint is refused.
func TestOpenNetwork(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	cocoonBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), timescale(120*time.Second))
	defer cancel()
	n := &openNetwork{t: t, ctx: ctx, dir: t.TempDir(), sim: t.TempDir()}
	listen := freePort(t, "tcp")
	n.url = "http://" + listen
	start(t, "chain serve", "chain", "serve", "--data", filepath.Join(n.dir, "chain"), "--listen", listen)
	waitHTTP(t, n.url+"/api/v2/getAddressInformation?address=0:"+zeros, http.StatusOK)
	ch, closeChain, err := chains.Open(ctx, chains.Where{URL: n.url})
	require.NoError(err)
	defer func() { _ = closeChain() }()
	n.ch = ch

	n.owner, _ = n.key("owner", true)
	n.registry, err = chaincmd.DeployRegistry(ctx, ch, io.Discard, n.owner, contracts.DefaultParams(), 1_000_000_000)
	require.NoError(err)
	clientKey, clientKeyFile := n.key("client", true)

	// Four proxies (c joins later, d attests another key than the one listed for it), each with
	// its operator's contract bound to its payment key; deployed side by side.
	type proxyNode struct {
		pay         ed25519.PrivateKey
		keyFile     string
		contract    ton.AccountID
		quic, stats string
		proc        *proc
		listedPay   ed25519.PublicKey
	}
	proxies := map[string]*proxyNode{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, name := range []string{"a", "b", "c", "d"} {
		op, _ := n.key("operator-"+name, true)
		pay, file := n.key("payment-"+name, true)
		p := &proxyNode{pay: pay, keyFile: file, quic: freePort(t, "udp"), stats: freePort(t, "tcp")}
		p.listedPay = pay.Public().(ed25519.PublicKey)
		wg.Go(func() {
			contract, err := chaincmd.DeployProxy(ctx, ch, io.Discard, op, n.registry, pay.Public().(ed25519.PublicKey), 10_100_000_000)
			assert.NoError(err, "deploy proxy %s", name)
			mu.Lock()
			p.contract, proxies[name] = contract, p
			mu.Unlock()
		})
	}
	wg.Wait()
	require.Len(proxies, 4)
	other, _ := n.key("other-payment", false)
	proxies["d"].listedPay = other.Public().(ed25519.PublicKey)

	proxyArgs := func(name string) []string {
		p := proxies[name]
		return append([]string{"proxy", "--sim", "--listen", p.quic, "--stats-listen", p.stats, "--key", p.keyFile,
			"--proxy-contract", p.contract.ToRaw()}, n.common("proxy-"+name)...)
	}
	workerArgs := func(name, model string, extra ...string) ([]string, string) {
		stats := freePort(t, "tcp")
		return append(append([]string{"worker", "--sim", "--stats-listen", stats, "--model", model}, n.common(name)...), extra...), stats
	}
	// The registry allows what the nodes present, as they print it themselves.
	w1Args, w1Stats := workerArgs("worker-1", "cocoon-builtin", "--builtin-token-delay", "1ms")
	w2Args, w2Stats := workerArgs("worker-2", "cocoon-builtin", "--builtin-token-delay", "1ms")
	w3Args, w3Stats := workerArgs("worker-3", "other-model", "--builtin-token-delay", "400ms")
	proxyImage, mainImage, otherImage := n.image(proxyArgs("a")...), n.image(w1Args...), n.image(w3Args...)
	require.NotEqual(mainImage, otherImage, "another model, another image")
	n.ownerSends(
		allow(contracts.ListProxyImages, proxyImage, true),
		allow(contracts.ListWorkerImages, mainImage, true), allow(contracts.ListWorkerImages, otherImage, true),
		allow(contracts.ListModels, builtinModel("cocoon-builtin"), true), allow(contracts.ListModels, builtinModel("other-model"), true),
		listProxy(proxies["a"].listedPay, proxies["a"].contract, proxies["a"].quic),
		listProxy(proxies["b"].listedPay, proxies["b"].contract, proxies["b"].quic),
	)
	// The client's deposits, c's too before it is listed.
	var deposits []chain.Message
	for _, name := range []string{"a", "b", "c"} {
		deposits = append(deposits, chain.Message{To: proxies[name].contract, Amount: 3_000_000_000, Body: contracts.TopUpBody(0), Bounce: true})
	}
	require.NoError(ch.Send(ctx, clientKey, deposits...))

	for _, name := range []string{"a", "b"} {
		proxies[name].proc = start(t, "proxy "+name, proxyArgs(name)...)
		waitHTTP(t, "http://"+proxies[name].stats+"/healthz", 200)
	}
	start(t, "worker 1", w1Args...)
	start(t, "worker 2", w2Args...)
	w3 := start(t, "worker 3", w3Args...)
	api := freePort(t, "tcp")
	client := start(t, "client", append([]string{"client", "--listen", api, "--key", clientKeyFile, "--submit-threshold", "1"},
		n.common("client")...)...)
	clientURL := "http://" + api
	waitHTTP(t, clientURL+"/healthz", 200)
	workersAt := func(name string, count int) func() bool {
		return func() bool {
			var st netProxyStats
			return getJSON("http://"+proxies[name].stats+"/jsonstats", &st) == nil && len(st.Workers) == count
		}
	}
	for _, name := range []string{"a", "b"} {
		waitFor(t, "three workers at proxy "+name, workersAt(name, 3))
	}
	// ask sends a short request (one token: worker 3 takes 400 ms a token) and returns its status.
	ask := func(model string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, clientURL+"/v1/chat/completions",
			strings.NewReader(chatBody(model, false, `,"max_tokens":1`)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	clientStats := func() netPeerStats {
		var st netPeerStats
		_ = getJSON(clientURL+"/jsonstats", &st)
		return st
	}
	waitFor(t, "answers through the proxies the registry lists", func() bool { return ask("cocoon-builtin") == 200 })
	for range 6 {
		require.Equal(200, ask("cocoon-builtin"))
	}
	charged := func() (total uint64) {
		for _, p := range clientStats().Payments {
			total += p.Charged
		}
		return total
	}
	assert.Positive(charged(), "the client holds charged states")

	// kill -9 proxy a: the next requests go through b within 2 s; the workers keep serving.
	proxies["a"].proc.kill()
	killed := time.Now()
	// Several at once, so that some are sent to the dead proxy first.
	var answers sync.WaitGroup
	for range 4 {
		answers.Go(func() { assert.Equal(200, ask("cocoon-builtin"), "answered through proxy b") })
	}
	answers.Wait()
	// A proxy killed with -9 sends nothing more: the client takes it for dead once a ping goes
	// unanswered (within 1.5 s) and fails the requests waiting on it over to proxy b.
	assert.Less(time.Since(killed), timescale(2*time.Second), "failover to proxy b")
	t.Logf("four answers %s after proxy a was killed", time.Since(killed))
	for range 4 {
		assert.Equal(200, ask("cocoon-builtin"), "served through b after a died")
	}
	assert.True(workersAt("b", 3)(), "the workers stay with proxy b")

	// A request of worker 3's model under way (400 ms a token: longer than the registry watch).
	long := make(chan int, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, clientURL+"/v1/chat/completions",
			strings.NewReader(chatBody("other-model", true, "")))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			long <- 0
			return
		}
		defer resp.Body.Close()
		events := readSSE(t, resp.Body)
		if len(events) == 0 || events[len(events)-1].data != "[DONE]" {
			long <- -resp.StatusCode
			return
		}
		long <- resp.StatusCode
	}()
	waitFor(t, "worker 3's request under way", func() bool {
		var st netProxyStats
		if getJSON("http://"+proxies["b"].stats+"/jsonstats", &st) != nil {
			return false
		}
		for _, w := range st.Workers {
			if w.Model == "other-model" && w.Active > 0 {
				return true
			}
		}
		return false
	})

	// Worker 3's image off the list; then proxies c and d start (reading the registry as it is
	// now) and are listed, d under a payment key it does not attest.
	n.ownerSends(allow(contracts.ListWorkerImages, otherImage, false))
	changed := time.Now()
	for _, name := range []string{"c", "d"} {
		proxies[name].proc = start(t, "proxy "+name, proxyArgs(name)...)
		waitHTTP(t, "http://"+proxies[name].stats+"/healthz", 200)
	}
	n.ownerSends(
		listProxy(proxies["c"].listedPay, proxies["c"].contract, proxies["c"].quic),
		listProxy(proxies["d"].listedPay, proxies["d"].contract, proxies["d"].quic),
	)
	waitFor(t, "worker 3 to get no new requests", func() bool { return ask("other-model") != 200 })
	assert.Less(time.Since(changed), timescale(10*time.Second), "within 10 s of the registry change")
	for range 3 {
		assert.NotEqual(200, ask("other-model"), "worker 3 gets no new requests")
	}
	assert.Equal(200, <-long, "worker 3's request under way finished")
	waitFor(t, "worker 3 to say why", func() bool {
		var st netPeerStats
		if getJSON("http://"+w3Stats+"/jsonstats", &st) != nil {
			return false
		}
		for _, p := range st.Proxies {
			if strings.Contains(p.Refused, "worker list") {
				return true
			}
		}
		return false
	})
	assert.Contains(w3.out.String(), "worker list", "worker 3's log says why")

	// Proxy c: the client and workers 1 and 2 connect without a restart.
	waitFor(t, "workers 1 and 2 at proxy c", workersAt("c", 2))
	waitFor(t, "the client at proxy c", func() bool {
		for _, p := range clientStats().Proxies {
			if p.Address == proxies["c"].quic && p.Connected {
				return true
			}
		}
		return false
	})
	// Proxy d is refused: it attests another payment key than the registry lists for it.
	waitFor(t, "the client to refuse proxy d", func() bool {
		for _, p := range clientStats().Proxies {
			if p.Address == proxies["d"].quic && !p.Connected && strings.Contains(p.Refused, "payment key") {
				return true
			}
		}
		return false
	})
	for _, stats := range []string{w1Stats, w2Stats} {
		assert.True(workersAt("d", 0)(), "no worker serves proxy d (%s)", stats)
	}
	waitFor(t, "the client's charges on chain", func() bool {
		for _, p := range clientStats().Payments {
			if p.ChargedOnChain != nil && *p.ChargedOnChain > 0 {
				return true
			}
		}
		return false
	})
	select {
	case <-client.done:
		t.Fatal(fmt.Sprintf("the client exited:\n%s", client.out.String()))
	default:
	}
}
