package worker

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/gpu/scripted"
	"github.com/cocoon-network/cocoon/roles/internal/redial"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func tconfig(t *testing.T, role attest.Role) transport.Config {
	t.Helper()
	var q attest.Quoter
	if role != attest.RoleClient {
		q = attesttest.Quoter(t, attesttest.Measurements(role))
	}
	id, err := transport.NewIdentity(transport.IdentityConfig{Claims: attesttest.Claims(role), Quoter: q})
	require.NoError(t, err)
	return transport.Config{Identity: id, Verifier: attesttest.Verifier(t, attesttest.OpenPolicy()),
		Log: zerolog.New(zerolog.NewTestWriter(t))}
}

// stubProxy accepts the worker's connection and hands it to the test.
type stubProxy struct {
	l     *transport.Listener
	conns chan *transport.Conn
}

func newStubProxy(t *testing.T) *stubProxy {
	return newKeyedStubProxy(t, nil)
}

// newKeyedStubProxy is a stub proxy that presents paymentKey in its claims (nil: none).
func newKeyedStubProxy(t *testing.T, paymentKey ed25519.PublicKey) *stubProxy {
	tc := tconfig(t, attest.RoleProxy)
	if paymentKey != nil {
		claims := attesttest.Claims(attest.RoleProxy)
		claims.PaymentKey = paymentKey
		id, err := transport.NewIdentity(transport.IdentityConfig{Claims: claims,
			Quoter: attesttest.Quoter(t, attesttest.Measurements(attest.RoleProxy))})
		require.NoError(t, err)
		tc.Identity = id
	}
	l, err := transport.Listen("127.0.0.1:0", tc)
	require.NoError(t, err)
	sp := &stubProxy{l: l, conns: make(chan *transport.Conn, 4)}
	go func() {
		for {
			c, err := l.Accept(context.Background())
			if err != nil {
				return
			}
			sp.conns <- c
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		close(sp.conns)
		for c := range sp.conns {
			_ = c.Close(0, "")
		}
	})
	return sp
}

// startWorker runs a worker against the stub proxy and returns the proxy's end of its connection.
func startWorker(t *testing.T, sp *stubProxy, engine gpu.Engine, maxActive int) *transport.Conn {
	t.Helper()
	_, c := startWorkerWith(t, sp, engine, maxActive, tconfig(t, attest.RoleWorker))
	return c
}

func startWorkerWith(t *testing.T, sp *stubProxy, engine gpu.Engine, maxActive int, tc transport.Config) (*Worker, *transport.Conn) {
	t.Helper()
	claims := attesttest.Claims(attest.RoleWorker)
	w, err := New(Config{Proxies: []string{sp.l.Addr().String()}, Model: claims.Model, WeightsDigest: claims.WeightsDigest,
		MaxActive: maxActive, HealthInterval: 20 * time.Millisecond,
		Backoff: redial.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}},
		engine, tc, zerolog.New(zerolog.NewTestWriter(t)))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	var c *transport.Conn
	select {
	case c = <-sp.conns:
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not connect")
	}
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		_ = c.Close(0, "")
	})
	return w, c
}

func nextControl(t *testing.T, c *transport.Conn) proto.Message {
	t.Helper()
	select {
	case m := <-c.Control():
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no control message")
		return nil
	}
}

func expectRegister(t *testing.T, c *transport.Conn, maxActive int) {
	t.Helper()
	m := nextControl(t, c)
	reg, ok := m.(*wire.Register)
	require.True(t, ok, "got %T", m)
	assert.Equal(t, "test-model", reg.GetModel())
	assert.Equal(t, uint32(maxActive), reg.GetMaxActive())
	assert.Equal(t, uint32(1000), reg.GetCoefficient())
	require.NoError(t, c.SendControl(&wire.Registered{WorkerId: "w1"}))
}

type reply struct {
	head   *wire.ResponseHead
	chunks int
	usage  int
	done   *wire.Done
	err    *wire.Error
}

func request(t *testing.T, c *transport.Conn, body string, stream bool) (*transport.Stream, func() reply) {
	t.Helper()
	return send(t, c, bounded(&wire.Request{Id: "r", Kind: wire.Kind_KIND_CHAT, Model: "test-model", Stream: stream, Body: []byte(body)}))
}

func send(t *testing.T, c *transport.Conn, req *wire.Request) (*transport.Stream, func() reply) {
	t.Helper()
	s, err := c.OpenStream(context.Background())
	require.NoError(t, err)
	require.NoError(t, s.Send(req))
	_ = s.CloseSend() // as a proxy does: the worker may have stopped reading once it had the request
	return s, func() reply {
		var r reply
		for {
			typ, payload, err := s.RecvFrame()
			if errors.Is(err, io.EOF) {
				return r
			}
			require.NoError(t, err)
			switch typ {
			case wire.TypeChunk:
				r.chunks++
			case wire.TypeUsageChunk:
				r.usage++
			default:
				m, err := wire.Unmarshal(typ, payload)
				require.NoError(t, err)
				switch m := m.(type) {
				case *wire.ResponseHead:
					r.head = m
				case *wire.Done:
					r.done = m
				case *wire.Error:
					r.err = m
				}
			}
		}
	}
}

const chat = `{"model":"test-model","stream":true,"messages":[{"role":"user","content":"hi"}]}`

func TestServeStream(t *testing.T) {
	testCases := map[string]struct {
		includeUsage bool
		wantUsage    int
	}{
		"app asked for usage": {includeUsage: true, wantUsage: 1},
		"app did not ask":     {wantUsage: 0},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			eng := scripted.New(scripted.Config{Chunks: 4, Model: "test-model"})
			t.Cleanup(eng.Close)
			e, err := gpu.NewHTTP(gpu.HTTPConfig{BaseURL: eng.URL})
			require.NoError(t, err)
			c := startWorker(t, newStubProxy(t), e, 4)
			expectRegister(t, c, 4)

			_, read := send(t, c, bounded(&wire.Request{Id: "r", Kind: wire.Kind_KIND_CHAT, Model: "test-model", Stream: true,
				IncludeUsage: tc.includeUsage, Body: []byte(chat)}))
			r := read()
			require.Nil(t, r.err)
			require.NotNil(t, r.head)
			assert.Equal(t, 5, r.chunks, "role chunk and four content chunks")
			assert.Equal(t, tc.wantUsage, r.usage, "the usage the worker asked for travels as a usage chunk, when the app asked too")
			require.NotNil(t, r.done)
			assert.Equal(t, uint64(4), r.done.GetUsage().GetCompletionTokens())
			assert.Equal(t, uint64(scripted.DefaultPromptTokens), r.done.GetUsage().GetPromptTokens())
			reqs := eng.Requests()
			require.Len(t, reqs, 1)
			assert.True(t, reqs[0].IncludeUsage(), "the worker asks the engine for usage")
		})
	}
}

func TestRefusals(t *testing.T) {
	testCases := map[string]struct {
		engine   scripted.Config
		model    string
		wantCode uint32
		status   uint32
	}{
		"unknown model": {model: "other", wantCode: uint32(wire.CodeNotFound)},
		"engine error":  {engine: scripted.Config{Status: 400}, model: "test-model", wantCode: uint32(wire.CodeBadRequest), status: 400},
		"engine 500":    {engine: scripted.Config{Status: 500}, model: "test-model", wantCode: uint32(wire.CodeUpstream), status: 500},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			eng := scripted.New(tc.engine)
			t.Cleanup(eng.Close)
			e, err := gpu.NewHTTP(gpu.HTTPConfig{BaseURL: eng.URL})
			require.NoError(t, err)
			c := startWorker(t, newStubProxy(t), e, 2)
			expectRegister(t, c, 2)
			s, err := c.OpenStream(context.Background())
			require.NoError(t, err)
			require.NoError(t, s.Send(bounded(&wire.Request{Model: tc.model, Stream: true, Body: []byte(chat)})))
			m, err := s.Recv()
			require.NoError(t, err)
			e2, ok := m.(*wire.Error)
			require.True(t, ok, "got %T", m)
			assert.Equal(t, tc.wantCode, e2.GetCode(), e2.GetMessage())
			assert.Equal(t, tc.status, e2.GetHttpStatus())
		})
	}
}

func TestBeyondMaxActive(t *testing.T) {
	step := make(chan struct{})
	eng := scripted.New(scripted.Config{Step: step})
	t.Cleanup(eng.Close)
	t.Cleanup(func() { close(step) })
	e, err := gpu.NewHTTP(gpu.HTTPConfig{BaseURL: eng.URL})
	require.NoError(t, err)
	c := startWorker(t, newStubProxy(t), e, 1)
	expectRegister(t, c, 1)

	first, _ := request(t, c, chat, true)
	_, err = eng.Await(context.Background(), 1)
	require.NoError(t, err)
	_, read := request(t, c, chat, true)
	r := read()
	require.NotNil(t, r.err)
	assert.Equal(t, uint32(wire.CodeOverloaded), r.err.GetCode())
	assert.Contains(t, r.err.GetMessage(), "capacity")
	first.Cancel(wire.CodeCancelled)
}

func TestCancelReachesEngine(t *testing.T) {
	eng := scripted.New(scripted.Config{Stall: true, StallAfter: 1})
	t.Cleanup(eng.Close)
	e, err := gpu.NewHTTP(gpu.HTTPConfig{BaseURL: eng.URL})
	require.NoError(t, err)
	c := startWorker(t, newStubProxy(t), e, 2)
	expectRegister(t, c, 2)
	s, _ := request(t, c, chat, true)
	reqs, err := eng.Await(context.Background(), 1)
	require.NoError(t, err)
	_, err = s.Recv() // the head: the answer started
	require.NoError(t, err)
	s.Cancel(wire.CodeCancelled)
	select {
	case <-reqs[0].Cancelled():
	case <-time.After(5 * time.Second):
		t.Fatal("engine did not see the cancellation")
	}
}

func TestEngineHealthDrivesRegistration(t *testing.T) {
	eng := scripted.New(scripted.Config{})
	t.Cleanup(eng.Close)
	e, err := gpu.NewHTTP(gpu.HTTPConfig{BaseURL: eng.URL})
	require.NoError(t, err)
	c := startWorker(t, newStubProxy(t), e, 2)
	expectRegister(t, c, 2)
	eng.Configure(func(c *scripted.Config) { c.Down = true })
	m := nextControl(t, c)
	require.IsType(t, &wire.Unregister{}, m)
	eng.Configure(func(c *scripted.Config) { c.Down = false })
	expectRegister(t, c, 2)
}

func TestReconnectsAfterProxyLoss(t *testing.T) {
	sp := newStubProxy(t)
	c := startWorker(t, sp, gpuBuiltinFake{}, 2)
	expectRegister(t, c, 2)
	_ = c.Close(wire.CodeShutdown, "restart")
	select {
	case c2 := <-sp.conns:
		expectRegister(t, c2, 2)
		_ = c2.Close(0, "")
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not reconnect")
	}
}

// gpuBuiltinFake is an always-healthy engine that answers nothing.
type gpuBuiltinFake struct{}

func (gpuBuiltinFake) Do(context.Context, gpu.Request, gpu.Sink) (settle.Usage, error) {
	return settle.Usage{}, errors.New("not used")
}
func (gpuBuiltinFake) Health(context.Context) error { return nil }

// The worker replaces its proxy connection before the certificates expire and registers on the
// replacement; when the old connection ends, the worker is still connected and registered.
func TestProxyConnectionReplacedBeforeExpiry(t *testing.T) {
	require := require.New(t)
	sp := newStubProxy(t)
	tc := tconfig(t, attest.RoleWorker)
	id, err := transport.NewIdentity(transport.IdentityConfig{Claims: attesttest.Claims(attest.RoleWorker),
		Quoter: attesttest.Quoter(t, attesttest.Measurements(attest.RoleWorker)), Validity: 6 * time.Second})
	require.NoError(err)
	tc.Identity = id
	eng := scripted.New(scripted.Config{Chunks: 2, Model: "test-model"})
	t.Cleanup(eng.Close)
	e, err := gpu.NewHTTP(gpu.HTTPConfig{BaseURL: eng.URL})
	require.NoError(err)
	w, first := startWorkerWith(t, sp, e, 4, tc)
	expectRegister(t, first, 4)
	require.Eventually(func() bool { return w.Healthy() == nil }, 5*time.Second, 5*time.Millisecond)

	var second *transport.Conn
	select {
	case second = <-sp.conns:
	case <-time.After(10 * time.Second):
		t.Fatal("no replacement connection")
	}
	require.True(first.IsDraining(), "replaced while the old connection drains")
	expectRegister(t, second, 4)
	select {
	case <-first.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the old connection outlived its certificate")
	}
	// The old session winds down after its connection ended; it must not unregister the worker.
	require.Never(func() bool { return w.Healthy() != nil }, 500*time.Millisecond, 5*time.Millisecond,
		"still registered through the replacement after the old connection ended")
	_, read := request(t, second, chat, true)
	require.NotNil(read().done)
}
