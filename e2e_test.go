package main

// End-to-end tests: build the cocoon binary once, run proxy, worker and client as separate
// processes on loopback with simulated TDX, and drive them through the client's OpenAI API, as an
// app would. Engines are the built-in one (inside the worker process) or scripted, a vLLM look-alike
// served from this test process. Waits are on conditions, never fixed sleeps; COCOON_TIMESCALE
// stretches every deadline on slow machines.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cocoon-network/cocoon/gpu/scripted"
	"github.com/cocoon-network/cocoon/roles/node/demo"
	"github.com/cocoon-network/cocoon/roles/node/nodetest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

// TestMain removes the built binary after the package's tests, and fails them if a goroutine
// outlived its test (idle keep-alive connections are closed first: they are the HTTP client's).
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	http.DefaultClient.CloseIdleConnections()
	if err := goleak.Find(); code == 0 && err != nil {
		fmt.Fprintln(os.Stderr, "goroutines leaked:", err)
		code = 1
	}
	os.Exit(code)
}

// cocoonBinary builds ./cocoon once per test run, as the README and the Dockerfile build it.
func cocoonBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end tests build and run the binary; skipped with -short")
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "cocoon-e2e-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "cocoon")
		out, err := exec.Command("go", append(append([]string{"build"}, reproducible...), "-o", binPath, ".")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

// proc is one cocoon process.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startBinary(t, cocoonBinary(t), name, args...)
}

// startBinary is start with another build of cocoon.
func startBinary(t *testing.T, bin, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = append(os.Environ(), "COCOON_LOG_LEVEL=debug")
	require.NoError(t, p.cmd.Start())
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("---- %s output ----\n%s", name, p.out.String())
		}
	})
	return p
}

func (p *proc) kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// freePort finds a free UDP (QUIC) or TCP port on loopback.
func freePort(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		defer c.Close()
		return c.LocalAddr().String()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// network is a running proxy plus the addresses the other roles need.
type network struct {
	t        *testing.T
	bin      string // the cocoon binary the roles run
	sim      string
	proxy    string // QUIC address
	proxyWeb string
	proxyP   *proc
}

func newNetwork(t *testing.T, extra ...string) *network {
	return newNetworkOf(t, cocoonBinary(t), extra...)
}

// newNetworkOf is newNetwork with another build of cocoon.
func newNetworkOf(t *testing.T, bin string, extra ...string) *network {
	n := &network{t: t, bin: bin, sim: t.TempDir(), proxy: freePort(t, "udp"), proxyWeb: freePort(t, "tcp")}
	n.startProxy(extra...)
	return n
}

func (n *network) common(dataName string) []string {
	return []string{"--sim", "--allow-simulated", "--sim-dir", n.sim, "--data", filepath.Join(n.t.TempDir(), dataName)}
}

func (n *network) startProxy(extra ...string) {
	args := append([]string{"proxy", "--listen", n.proxy, "--stats-listen", n.proxyWeb}, n.common("proxy")...)
	n.proxyP = startBinary(n.t, n.bin, "proxy", append(args, extra...)...)
	waitHTTP(n.t, "http://"+n.proxyWeb+"/healthz", 200)
}

// worker starts a worker; engineURL "" is the built-in engine.
func (n *network) worker(name, engineURL, model string, extra ...string) (*proc, string) {
	web := freePort(n.t, "tcp")
	args := append([]string{"worker", "--proxies", n.proxy, "--stats-listen", web, "--model", model}, n.common(name)...)
	if engineURL != "" {
		args = append(args, "--engine-url", engineURL, "--weights-digest", "sha256:"+strings.Repeat("ab", 32))
	}
	return startBinary(n.t, n.bin, name, append(args, extra...)...), web
}

func (n *network) client(extra ...string) (*proc, string) {
	api := freePort(n.t, "tcp")
	args := append([]string{"client", "--proxies", n.proxy, "--listen", api, "--allow-simulated", "--sim-dir", n.sim,
		"--data", filepath.Join(n.t.TempDir(), "client")}, extra...)
	p := startBinary(n.t, n.bin, "client", args...)
	waitHTTP(n.t, "http://"+api+"/healthz", 200)
	return p, "http://" + api
}

// workers waits until the proxy lists exactly count registered workers.
func (n *network) workers(count int) {
	n.t.Helper()
	waitFor(n.t, fmt.Sprintf("%d registered worker(s)", count), func() bool {
		var st struct {
			Workers []json.RawMessage `json:"workers"`
		}
		return getJSON("http://"+n.proxyWeb+"/jsonstats", &st) == nil && len(st.Workers) == count
	})
}

func waitHTTP(t *testing.T, url string, status int) {
	t.Helper()
	waitFor(t, url+" → "+strconv.Itoa(status), func() bool {
		resp, err := http.Get(url) //nolint:noctx // polling loop
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == status
	})
}

// sseEvent is one `data:` line of a streamed answer and when it arrived.
type sseEvent struct {
	data string
	at   time.Time
}

func readSSE(t *testing.T, r io.Reader) []sseEvent {
	t.Helper()
	var out []sseEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, sseEvent{data: d, at: time.Now()})
		}
	}
	return out
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// The helpers the node tests share.
var (
	timescale = nodetest.Timescale
	waitFor   = nodetest.WaitFor
	getJSON   = nodetest.GetJSON
	post      = nodetest.Post
	chatBody  = nodetest.ChatBody
)

// TestEndToEnd runs the answer paths with the built-in engine and with a vLLM look-alike.
func TestEndToEnd(t *testing.T) {
	vllm := scripted.New(scripted.Config{Chunks: 12, ChunkBytes: 32, Delay: 2 * time.Millisecond})
	t.Cleanup(vllm.Close)
	testCases := map[string]struct {
		engineURL, model string
	}{
		"built-in engine":  {model: "cocoon-builtin"},
		"vLLM-like engine": {engineURL: vllm.URL, model: scripted.DefaultModel},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			n := newNetwork(t)
			n.worker("worker", tc.engineURL, tc.model, "--builtin-token-delay", "2ms")
			n.workers(1)
			_, api := n.client()
			ctx, cancel := context.WithTimeout(context.Background(), timescale(30*time.Second))
			defer cancel()

			t.Run("streamed chat completion", func(t *testing.T) {
				assert := assert.New(t)
				resp := post(t, ctx, api+"/v1/chat/completions", chatBody(tc.model, true, `,"stream_options":{"include_usage":true}`))
				defer resp.Body.Close()
				require.Equal(t, 200, resp.StatusCode)
				assert.Equal("text/event-stream", strings.Split(resp.Header.Get("Content-Type"), ";")[0])
				assert.Equal("simulated", resp.Header.Get("X-Cocoon-Attestation"))
				assert.Len(resp.Header.Get("X-Cocoon-Worker-Image"), 64)
				events := readSSE(t, resp.Body)
				require.GreaterOrEqual(t, len(events), 4)
				assert.Equal("[DONE]", events[len(events)-1].data)
				assert.True(events[len(events)-2].at.After(events[0].at), "chunks arrive over time, not at once")
				var last struct {
					Usage *usage `json:"usage"`
				}
				require.NoError(t, json.Unmarshal([]byte(events[len(events)-2].data), &last))
				require.NotNil(t, last.Usage, "final chunk carries usage")
				assert.Positive(last.Usage.CompletionTokens)
				assert.Positive(last.Usage.PromptTokens)
			})

			t.Run("plain chat completion", func(t *testing.T) {
				resp := post(t, ctx, api+"/v1/chat/completions", chatBody(tc.model, false, ""))
				defer resp.Body.Close()
				require.Equal(t, 200, resp.StatusCode)
				var got struct {
					Object  string `json:"object"`
					Choices []struct {
						Message struct {
							Content string `json:"content"`
						} `json:"message"`
					} `json:"choices"`
					Usage usage `json:"usage"`
				}
				require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
				assert.Equal(t, "chat.completion", got.Object)
				require.Len(t, got.Choices, 1)
				assert.NotEmpty(t, got.Choices[0].Message.Content)
				assert.Positive(t, got.Usage.CompletionTokens)
			})

			t.Run("models", func(t *testing.T) {
				var list struct {
					Data []struct {
						ID string `json:"id"`
					} `json:"data"`
				}
				require.NoError(t, getJSON(api+"/v1/models", &list))
				require.Len(t, list.Data, 1)
				assert.Equal(t, tc.model, list.Data[0].ID)
			})

			t.Run("cocoon ask", func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				cmd := exec.CommandContext(ctx, cocoonBinary(t), "ask", "--client", api, "--model", tc.model, "say hello")
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				require.NoError(t, cmd.Run(), stderr.String())
				assert.NotEmpty(t, strings.TrimSpace(stdout.String()))
				assert.Contains(t, stderr.String(), "simulated")
				assert.Contains(t, stderr.String(), tc.model)
			})
		})
	}
}

// TestEndToEndErrors: the documented errors for bad requests.
func TestEndToEndErrors(t *testing.T) {
	n := newNetwork(t)
	n.worker("worker", "", "cocoon-builtin")
	n.workers(1)
	_, api := n.client("--max-body-bytes", "2048")
	testCases := map[string]struct {
		body   string
		status int
	}{
		"malformed JSON": {body: `{"model":`, status: 400},
		"missing model":  {body: `{"messages":[{"role":"user","content":"x"}]}`, status: 400},
		"unknown model":  {body: chatBody("no-such-model", false, ""), status: 404},
		"body too large": {body: chatBody("cocoon-builtin", false, `,"user":"`+strings.Repeat("x", 4096)+`"`), status: 413},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			resp := post(t, context.Background(), api+"/v1/chat/completions", tc.body)
			defer resp.Body.Close()
			assert.Equal(t, tc.status, resp.StatusCode)
			var e struct {
				Error struct {
					Message string `json:"message"`
				} `json:"error"`
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
			assert.NotEmpty(t, e.Error.Message)
		})
	}
}

// TestWorkerKilled: a worker killed before its first token is replaced by another; one killed
// mid-answer ends the client's stream with an error promptly.
func TestWorkerKilled(t *testing.T) {
	t.Run("before the first token", func(t *testing.T) {
		stalled := scripted.New(scripted.Config{Stall: true, StallAfter: 0})
		t.Cleanup(stalled.Close)
		healthy := scripted.New(scripted.Config{Chunks: 5})
		t.Cleanup(healthy.Close)
		n := newNetwork(t)
		// The stalled worker is alone when the request comes, so it gets it; the survivor
		// registers while the request waits there.
		victim, _ := n.worker("victim", stalled.URL, scripted.DefaultModel)
		n.workers(1)
		_, api := n.client()
		ctx, cancel := context.WithTimeout(context.Background(), timescale(30*time.Second))
		defer cancel()
		type result struct {
			status int
			body   string
		}
		res := make(chan result, 1)
		go func() {
			resp := post(t, ctx, api+"/v1/chat/completions", chatBody(scripted.DefaultModel, false, ""))
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			res <- result{resp.StatusCode, string(b)}
		}()
		select {
		case <-waitRequest(ctx, stalled):
		case r := <-res:
			t.Fatalf("answered before the stalled worker got the request: %d %s", r.status, r.body)
		}
		n.worker("survivor", healthy.URL, scripted.DefaultModel)
		n.workers(2)
		victim.kill()
		r := <-res
		assert.Equal(t, 200, r.status, "request moved to the surviving worker: %s", r.body)
		assert.Contains(t, r.body, "chat.completion")
	})

	t.Run("mid-answer", func(t *testing.T) {
		eng := scripted.New(scripted.Config{Stall: true, StallAfter: 3})
		t.Cleanup(eng.Close)
		n := newNetwork(t)
		victim, _ := n.worker("victim", eng.URL, scripted.DefaultModel)
		n.workers(1)
		_, api := n.client()
		ctx, cancel := context.WithTimeout(context.Background(), timescale(30*time.Second))
		defer cancel()
		resp := post(t, ctx, api+"/v1/chat/completions", chatBody(scripted.DefaultModel, true, ""))
		defer resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode)
		sc := bufio.NewScanner(resp.Body)
		got := 0
		for got < 3 && sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data: ") {
				got++
			}
		}
		require.Equal(t, 3, got, "the first chunks arrived")
		killed := time.Now()
		victim.kill()
		var last string
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				last = d
			}
		}
		assert.Less(t, time.Since(killed), timescale(2*time.Second), "the client hears of the failure promptly")
		assert.Contains(t, last, `"error"`, "the stream ends with an error event")
		assert.NotEqual(t, "[DONE]", last)
	})
}

// waitRequest fires when eng has received a request.
func waitRequest(ctx context.Context, eng *scripted.Server) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		if _, err := eng.Await(ctx, 1); err == nil {
			close(ch)
		}
	}()
	return ch
}

// TestEngineDownAndBack: a worker leaves the registry while its engine is down and returns after.
func TestEngineDownAndBack(t *testing.T) {
	eng := scripted.New(scripted.Config{Chunks: 3})
	t.Cleanup(eng.Close)
	n := newNetwork(t)
	n.worker("worker", eng.URL, scripted.DefaultModel)
	n.workers(1)
	eng.Configure(func(c *scripted.Config) { c.Down = true })
	n.workers(0)
	eng.Configure(func(c *scripted.Config) { c.Down = false })
	n.workers(1)
}

// TestProxyRestart: worker and client reconnect by themselves.
func TestProxyRestart(t *testing.T) {
	n := newNetwork(t)
	n.worker("worker", "", "cocoon-builtin")
	n.workers(1)
	_, api := n.client()
	ask := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), timescale(10*time.Second))
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, api+"/v1/chat/completions",
			strings.NewReader(chatBody("cocoon-builtin", false, "")))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, 200, ask())
	n.proxyP.kill()
	n.startProxy()
	n.workers(1)
	waitFor(t, "a request to succeed after the proxy restart", func() bool { return ask() == 200 })
}

// TestClientCancel: an app that hangs up cancels the engine's request.
func TestClientCancel(t *testing.T) {
	eng := scripted.New(scripted.Config{Stall: true, StallAfter: 2})
	t.Cleanup(eng.Close)
	n := newNetwork(t)
	n.worker("worker", eng.URL, scripted.DefaultModel)
	n.workers(1)
	_, api := n.client()
	ctx, cancel := context.WithCancel(context.Background())
	resp := post(t, ctx, api+"/v1/chat/completions", chatBody(scripted.DefaultModel, true, ""))
	require.Equal(t, 200, resp.StatusCode)
	reqs, err := eng.Await(context.Background(), 1)
	require.NoError(t, err)
	cancel()
	resp.Body.Close()
	select {
	case <-reqs[0].Cancelled():
	case <-time.After(timescale(5 * time.Second)):
		t.Fatal("the engine did not see the request cancelled")
	}
}

// TestPolicyRefusals: a proxy refuses a worker whose image its policy does not list, and a client
// refuses a proxy its policy does not allow; each says so in its log.
func TestPolicyRefusals(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	bogus := strings.Repeat("0f", 32)
	t.Run("proxy refuses worker image", func(t *testing.T) {
		policy := write("proxy-policy.json", `{"allow_simulated":true,"roles":{"worker":{"image_hashes":["`+bogus+`"]},"client":{"without_quote":true}}}`)
		n := newNetwork(t, "--policy", policy)
		w, _ := n.worker("worker", "", "cocoon-builtin")
		waitFor(t, "the proxy to log the refusal", func() bool {
			return strings.Contains(n.proxyP.out.String(), "image hash not allowed by policy")
		})
		assert.Contains(t, n.proxyP.out.String(), "refused peer at handshake")
		assert.NotContains(t, w.out.String(), `"registered"`)
	})
	t.Run("client refuses proxy image", func(t *testing.T) {
		policy := write("client-policy.json", `{"allow_simulated":true,"roles":{"proxy":{"image_hashes":["`+bogus+`"]}}}`)
		n := newNetwork(t)
		api := freePort(t, "tcp")
		c := start(t, "client", "client", "--proxies", n.proxy, "--listen", api, "--sim-dir", n.sim,
			"--data", filepath.Join(t.TempDir(), "client"), "--policy", policy)
		waitFor(t, "the client to log the refusal", func() bool {
			return strings.Contains(c.out.String(), "image hash not allowed by policy")
		})
	})
}

// TestDemoOnce is the README's first command: the demo answers and exits 0.
func TestDemoOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), timescale(60*time.Second))
	defer cancel()
	data := t.TempDir()
	cmd := exec.CommandContext(ctx, cocoonBinary(t), "demo", "--once", "--listen", "127.0.0.1:0", "--data", data, "--token-delay", "1ms")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "SIMULATED")
	assert.Contains(t, string(out), "OpenAI base URL")
	// Paid on the local chain: the cost is shown, and the worker's payout lands in its wallet
	// (runDemo fails when it does not).
	assert.Contains(t, string(out), "nanoTON")
	assert.Contains(t, string(out), "Settled on the local chain")
	var urls demo.URLs
	b, err := os.ReadFile(filepath.Join(data, "demo.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &urls))
	assert.True(t, strings.HasPrefix(urls.Client.API, "http://127.0.0.1:"))
	assert.NotEmpty(t, urls.Proxy.Stats)
	assert.NotEmpty(t, urls.Worker.Stats)
}

// TestDemoKilledUnderLoad: kill -9 the whole network (the demo runs every role and the ledger)
// while requests are in flight, start it again on the same data: the proxy's recovered ledger is at
// or above every payment state the client and worker hold (nothing lost), the charges add up to at
// least what the app was told (nothing doubled shows as a halt), and it serves again.
func TestDemoKilledUnderLoad(t *testing.T) {
	bin := cocoonBinary(t)
	data := t.TempDir()
	dp := start(t, "demo", "demo", "--listen", "127.0.0.1:0", "--data", data, "--token-delay", "1ms")
	var urls demo.URLs
	waitFor(t, "demo.json", func() bool {
		b, err := os.ReadFile(filepath.Join(data, "demo.json"))
		return err == nil && json.Unmarshal(b, &urls) == nil
	})
	api := strings.TrimSuffix(urls.Client.API, "/v1")
	waitFor(t, "the demo's sample request", func() bool { return strings.Contains(dp.out.String(), "Serving until interrupted") })

	var mu sync.Mutex
	var seen uint64 // Σ total_cost of the answers the app received
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, api+"/v1/chat/completions",
					strings.NewReader(chatBody("cocoon-builtin", false, "")))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				var got struct {
					Usage struct {
						TotalCost uint64 `json:"total_cost"`
					} `json:"usage"`
				}
				if json.NewDecoder(resp.Body).Decode(&got) == nil && resp.StatusCode == 200 {
					mu.Lock()
					seen += got.Usage.TotalCost
					mu.Unlock()
				}
				resp.Body.Close()
			}
		}()
	}
	waitFor(t, "answers under load", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen > 200_000
	})
	dp.kill() // kill -9, requests in flight
	stop()
	wg.Wait()

	// Start again: the client and worker show the proxy their latest states at once; a ledger that
	// lost commits would halt and the sample request would fail.
	out, err := exec.Command(bin, "demo", "--once", "--listen", "127.0.0.1:0", "--data", data, "--token-delay", "1ms").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "Settled on the local chain")

	pay, err := os.ReadDir(filepath.Join(data, "client-states"))
	require.NoError(t, err)
	require.NotEmpty(t, pay)
	lg, err := openDemoLedger(data)
	require.NoError(t, err)
	defer lg.close()
	clientHeld, workerHeld := heldStates(t, data)
	for _, st := range append(clientHeld, workerHeld...) {
		require.NoError(t, lg.Check(st.State), "every signed state is at or below the recovered ledger")
	}
	_, _, totals, err := lg.Snapshot()
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	assert.GreaterOrEqual(t, totals.Charged, seen, "every charge the app was told of is in the ledger")
}

// TestNoGrowthAcrossRuns: after two equal bursts of requests, no role holds more goroutines than
// after the first (a leak per request or per stream would show), and the heap stays in bounds.
func TestNoGrowthAcrossRuns(t *testing.T) {
	n := newNetwork(t)
	_, workerWeb := n.worker("worker", "", "cocoon-builtin", "--builtin-token-delay", "1ms")
	n.workers(1)
	_, api := n.client()
	type runtimeStats struct {
		Runtime struct {
			Goroutines int    `json:"goroutines"`
			HeapBytes  uint64 `json:"heap_bytes"`
		} `json:"runtime"`
	}
	sample := func() [3]runtimeStats {
		var out [3]runtimeStats
		for i, url := range []string{api + "/jsonstats", "http://" + n.proxyWeb + "/jsonstats", "http://" + workerWeb + "/jsonstats"} {
			require.NoError(t, getJSON(url, &out[i]))
		}
		return out
	}
	burst := func() {
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					resp := post(t, context.Background(), api+"/v1/chat/completions", chatBody("cocoon-builtin", true, ""))
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
		wg.Wait()
		// Requests end asynchronously in each role: wait until the proxy has none running.
		waitFor(t, "no request running", func() bool {
			var st struct {
				Workers []struct {
					Active int `json:"active"`
				} `json:"workers"`
			}
			return getJSON("http://"+n.proxyWeb+"/jsonstats", &st) == nil && len(st.Workers) == 1 && st.Workers[0].Active == 0
		})
	}
	burst()
	first := sample()
	burst()
	second := sample()
	for i, role := range []string{"client", "proxy", "worker"} {
		require.Positive(t, first[i].Runtime.Goroutines, "%s reports its goroutines", role)
		// Idle goroutines (timers, keep-alive) come and go; a leak of one per request would add 200.
		assert.LessOrEqual(t, second[i].Runtime.Goroutines, first[i].Runtime.Goroutines+10, "%s goroutines", role)
		assert.Less(t, second[i].Runtime.HeapBytes, uint64(64<<20), "%s heap", role)
	}
}

// TestCertificatesExpireUnderLoad: with 20 s certificates, the connections of the worker and the
// client reach their certificates' expiry while streams of a second and a half run back to back.
// Each is replaced while it drains, and no stream is cut.
func TestCertificatesExpireUnderLoad(t *testing.T) {
	eng := scripted.New(scripted.Config{Chunks: 15, Delay: 100 * time.Millisecond})
	t.Cleanup(eng.Close)
	cfg := filepath.Join(t.TempDir(), "cocoon.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("attestation:\n  cert_validity: 20s\n"), 0o600))
	n := newNetwork(t, "--config", cfg)
	worker, _ := n.worker("worker", eng.URL, scripted.DefaultModel, "--config", cfg)
	n.workers(1)
	client, api := n.client("--config", cfg)

	var (
		mu       sync.Mutex
		done     int
		failures []string
	)
	stream := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), timescale(20*time.Second))
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, api+"/v1/chat/completions",
			strings.NewReader(chatBody(scripted.DefaultModel, true, "")))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return resp.Status
		}
		events := readSSE(t, resp.Body)
		if len(events) == 0 || events[len(events)-1].data != "[DONE]" {
			return fmt.Sprintf("stream cut after %d events", len(events))
		}
		return ""
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				msg := stream()
				mu.Lock()
				done++
				if msg != "" {
					failures = append(failures, msg)
				}
				mu.Unlock()
			}
		})
	}
	// Both first connections end when the proxy's first certificate expires (it started first), or
	// the worker's or client's if made in the same second. Each is closed, after its replacement is
	// up, by the end that sees the other's certificate expire (or both). Streams still running on
	// it then would be cut, and counted below once they end.
	closed := func() int {
		count := 0
		for _, p := range []*proc{n.proxyP, worker, client} {
			count += strings.Count(p.out.String(), "peer certificate expired")
		}
		return count
	}
	waitFor(t, "the first connections to reach their certificates' expiry", func() bool { return closed() >= 2 })
	close(stop)
	wg.Wait()
	assert.Empty(t, failures, "streams cut or refused out of %d", done)
	assert.Greater(t, done, 20)
	assert.True(t, strings.Contains(worker.out.String(), "connecting a replacement"), "the worker replaced its connection")
	assert.True(t, strings.Contains(client.out.String(), "connecting a replacement"), "the client replaced its connection")
}
