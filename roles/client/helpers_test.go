package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
	"github.com/cocoon-network/cocoon/roles/internal/redial"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// script answers one request stream of a stub proxy.
type script func(p *stubProxy, s *transport.Stream, req *wire.Request)

// stubProxy is a proxy that answers the request protocol as its script says, over real attested QUIC.
type stubProxy struct {
	t      testing.TB
	script script
	models []*wire.ModelInfo

	mu       sync.Mutex
	addr     string
	l        *transport.Listener
	conns    []*transport.Conn
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	requests []*wire.Request
	accepted int
	// modelsErr, when set, answers model list requests instead of the models.
	modelsErr *wire.Error
	// paymentKey is the payment key the stub presents in its claims; nil: none.
	paymentKey ed25519.PublicKey
	// maxStreams and maxConns, when set, are its request streams per connection and connections
	// per address.
	maxStreams int64
	maxConns   int
}

func (p *stubProxy) failModels(e *wire.Error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.modelsErr = e
}

// workerImage is the image hash stubs report for their worker.
const workerImage = "1f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a7988"

func proxyConfig(t testing.TB, paymentKey ed25519.PublicKey) transport.Config {
	t.Helper()
	claims := attesttest.Claims(attest.RoleProxy)
	claims.PaymentKey = paymentKey
	id, err := transport.NewIdentity(transport.IdentityConfig{
		Claims: claims,
		Quoter: attesttest.Quoter(t, attesttest.Measurements(attest.RoleProxy)),
	})
	require.NoError(t, err)
	return transport.Config{Identity: id, Verifier: attesttest.Verifier(t, attesttest.OpenPolicy()),
		Log: zerolog.New(zerolog.NewTestWriter(t))}
}

// newStub starts a stub proxy on a free port; it stops at the end of the test.
func newStub(t testing.TB, sc script, models ...*wire.ModelInfo) *stubProxy {
	t.Helper()
	return newKeyedStub(t, nil, sc, models...)
}

// newKeyedStub is newStub for a proxy that presents paymentKey.
func newKeyedStub(t testing.TB, paymentKey ed25519.PublicKey, sc script, models ...*wire.ModelInfo) *stubProxy {
	t.Helper()
	p := &stubProxy{t: t, script: sc, models: models, paymentKey: paymentKey}
	p.start("127.0.0.1:0")
	t.Cleanup(p.stop)
	return p
}

func (p *stubProxy) start(addr string) {
	p.t.Helper()
	cfg := proxyConfig(p.t, p.paymentKey)
	cfg.MaxStreams, cfg.MaxConnsPerSource = p.maxStreams, p.maxConns
	// quic-go releases a closed listener's UDP port once its last connection is retired, a little
	// after Close: a restart on the same port polls until the port is free.
	var l *transport.Listener
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		l, err = transport.Listen(addr, cfg)
		if err == nil {
			break
		}
		require.ErrorIs(p.t, err, syscall.EADDRINUSE)
		require.True(p.t, time.Now().Before(deadline), "port %s never freed", addr)
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.mu.Lock()
	p.l, p.addr, p.cancel = l, l.Addr().String(), cancel
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := l.Accept(ctx)
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.accepted++
			p.mu.Unlock()
			p.wg.Go(func() { p.serveConn(ctx, c) })
		}
	})
}

// stop closes the listener and every connection, as a proxy going down does.
func (p *stubProxy) stop() {
	p.mu.Lock()
	l, cancel, conns := p.l, p.cancel, p.conns
	p.l, p.conns = nil, nil
	p.mu.Unlock()
	if l == nil {
		return
	}
	cancel()
	for _, c := range conns {
		_ = c.Close(wire.CodeShutdown, "stub stopping")
		<-c.Done()
	}
	_ = l.Close()
	p.wg.Wait()
	// quic-go keeps the socket, and its goroutines, until the closed connections are retired; wait
	// for that so that no test ends with the stub's goroutines still running.
	addr := l.Addr().String()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pc, err := net.ListenPacket("udp", addr)
		if err == nil {
			_ = pc.Close()
			return
		}
		if time.Now().After(deadline) {
			p.t.Errorf("stub proxy %s: port not released: %v", addr, err)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dropConns closes the live connections but keeps listening.
func (p *stubProxy) dropConns() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close(wire.CodeInternal, "stub dropped the connection")
	}
}

func (p *stubProxy) serveConn(ctx context.Context, c *transport.Conn) {
	p.wg.Go(func() {
		for range c.Control() {
		}
	})
	for {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return
		}
		p.wg.Go(func() {
			m, err := s.Recv()
			if err != nil {
				return
			}
			switch m := m.(type) {
			case *wire.ModelsRequest:
				p.mu.Lock()
				e := p.modelsErr
				p.mu.Unlock()
				if e != nil {
					_ = s.Send(e)
					break
				}
				_ = s.Send(&wire.ModelsList{Models: p.models})
			case *wire.Request:
				p.mu.Lock()
				p.requests = append(p.requests, m)
				p.mu.Unlock()
				if p.script != nil {
					p.script(p, s, m)
				}
			}
			_ = s.CloseSend()
		})
	}
}

func (p *stubProxy) seen() []*wire.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*wire.Request(nil), p.requests...)
}

func (p *stubProxy) acceptedConns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Script steps.

func sendHead(s *transport.Stream, req *wire.Request) {
	_ = s.Send(&wire.ResponseHead{HttpStatus: 200, Model: req.GetModel(),
		Worker: &wire.WorkerInfo{ImageHash: workerImage, Attestation: "simulated", Coefficient: 1000}})
}

func sendChunk(s *transport.Stream, data string) { _ = s.SendFrame(wire.TypeChunk, []byte(data)) }

func sendDone(s *transport.Stream, cost uint64) {
	_ = s.Send(&wire.Done{Usage: &wire.Usage{PromptTokens: 7, CachedTokens: 2, CompletionTokens: 3, ReasoningTokens: 1},
		TotalCost: cost})
}

// Chunks in OpenAI's chat.completion.chunk shape.
const (
	chunkRole  = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"test-model","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`
	chunkHello = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"test-model","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]}`
	chunkWorld = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"test-model","choices":[{"index":0,"delta":{"content":", world"},"logprobs":null,"finish_reason":null}]}`
	chunkStop  = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"test-model","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}`
	chunkUsage = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"test-model","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10,"prompt_tokens_details":{"cached_tokens":2},"completion_tokens_details":{"reasoning_tokens":1}}}`
)

// answerStream answers like a worker behind a proxy: head, chunks, the usage chunk (only when the
// app asked for it: Request.IncludeUsage), done.
func answerStream(_ *stubProxy, s *transport.Stream, req *wire.Request) {
	sendHead(s, req)
	if !req.GetStream() {
		sendChunk(s, `{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"test-model",`)
		sendChunk(s, `"choices":[{"index":0,"message":{"role":"assistant","content":"Hello, world"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}`)
		sendDone(s, 1234)
		return
	}
	for _, c := range []string{chunkRole, chunkHello, chunkWorld, chunkStop} {
		sendChunk(s, c)
	}
	if req.GetIncludeUsage() {
		_ = s.SendFrame(wire.TypeUsageChunk, []byte(chunkUsage))
	}
	sendDone(s, 1234)
}

// harness is a running client with the stub proxies it talks to.
type harness struct {
	c    *Client
	url  string
	http *http.Client
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func clientTransport(t testing.TB, p attest.Policy) transport.Config {
	t.Helper()
	id, err := transport.NewIdentity(transport.IdentityConfig{Claims: attesttest.Claims(attest.RoleClient)})
	require.NoError(t, err)
	return transport.Config{Identity: id, Verifier: attesttest.Verifier(t, p), Log: zerolog.New(zerolog.NewTestWriter(t))}
}

// harnessOption adjusts the client: first config and transport (c is nil), then the built client.
type harnessOption func(t testing.TB, cfg *Config, tc *transport.Config, c *Client)

// startClient runs a client against the stubs and waits until it is connected to all of them
// (unless an option says not to wait).
func startClient(t testing.TB, stubs []*stubProxy, opts ...harnessOption) *harness {
	t.Helper()
	// The stubs script the proxy's side of the plaintext protocol; sealedStub (sealed_test.go)
	// plays proxy and worker of the sealed one.
	cfg := Config{Listen: "127.0.0.1:0", PlaintextDev: true}
	for _, s := range stubs {
		cfg.Proxies = append(cfg.Proxies, s.addr)
	}
	tc := clientTransport(t, attesttest.OpenPolicy())
	for _, o := range opts {
		o(t, &cfg, &tc, nil)
	}
	logs := &syncBuffer{}
	log := zerolog.New(io.MultiWriter(zerolog.NewTestWriter(t), logs))
	if _, ok := t.(*testing.B); ok {
		log = log.Level(zerolog.WarnLevel) // one access-log line per request would drown the results
	}
	c, err := New(cfg, tc, log)
	require.NoError(t, err)
	c.backoff = redial.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	for _, o := range opts {
		o(t, nil, nil, c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	addr := c.Addr()
	require.NotNil(t, addr)
	tr := &http.Transport{}
	h := &harness{c: c, url: "http://" + addr.String(), http: &http.Client{Transport: tr}, logs: logs}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err, "Run returns nil on cancellation")
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancellation")
		}
	})
	return h
}

// withConfig adjusts the client config.
func withConfig(f func(*Config)) harnessOption {
	return func(_ testing.TB, cfg *Config, _ *transport.Config, _ *Client) {
		if cfg != nil {
			f(cfg)
		}
	}
}

func withPolicy(p attest.Policy) harnessOption {
	return func(t testing.TB, _ *Config, tc *transport.Config, _ *Client) {
		if tc != nil {
			tc.Verifier = attesttest.Verifier(t, p)
		}
	}
}

func withConnectWait(d time.Duration) harnessOption {
	return func(_ testing.TB, _ *Config, _ *transport.Config, c *Client) {
		if c != nil {
			c.connectWait = d
		}
	}
}

// waitConnected polls the client's state until n proxies are connected.
func (h *harness) waitConnected(t testing.TB, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		up := 0
		for _, m := range h.c.set.Members() {
			if conn, _ := m.Value.current(); conn != nil {
				up++
			}
		}
		return up == n
	}, 10*time.Second, 5*time.Millisecond, "client did not connect to %d proxies", n)
}

func (h *harness) do(t testing.TB, ctx context.Context, method, path, body string, hdr ...string) *http.Response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.url+path, r)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := h.http.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

func (h *harness) post(t testing.TB, path, body string, hdr ...string) *http.Response {
	t.Helper()
	return h.do(t, context.Background(), http.MethodPost, path, body, hdr...)
}

func readAll(t testing.TB, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	return string(b)
}

// sseReader reads events the way SDKs do: "data: " lines, an empty line ends an event.
type sseReader struct{ br *bufio.Reader }

func newSSEReader(r io.Reader) *sseReader { return &sseReader{br: bufio.NewReader(r)} }

// next returns the next event's data, or io.EOF at the end of the body.
func (r *sseReader) next() (string, error) {
	var data []string
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			if err == io.EOF && line == "" && len(data) == 0 {
				return "", io.EOF
			}
			if err == io.EOF {
				return "", io.ErrUnexpectedEOF
			}
			return "", err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if len(data) == 0 {
				continue
			}
			return strings.Join(data, "\n"), nil
		}
		v, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			return "", io.ErrNoProgress // anything but data lines is a framing error here
		}
		data = append(data, v)
	}
}

// nextWithin reads the next event, failing the test if it does not come in time.
func (r *sseReader) nextWithin(t testing.TB, d time.Duration) (string, error) {
	t.Helper()
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := r.next()
		ch <- res{s, err}
	}()
	select {
	case v := <-ch:
		return v.s, v.err
	case <-time.After(d):
		t.Fatalf("no event within %s", d)
		return "", nil
	}
}

// all reads every remaining event.
func (r *sseReader) all(t testing.TB) []string {
	t.Helper()
	var out []string
	for {
		s, err := r.nextWithin(t, 10*time.Second)
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		out = append(out, s)
	}
}
