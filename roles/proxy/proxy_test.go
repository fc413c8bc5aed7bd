package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func tconfig(t *testing.T, role attest.Role, model string) transport.Config {
	t.Helper()
	var q attest.Quoter
	if role != attest.RoleClient {
		q = attesttest.Quoter(t, attesttest.Measurements(role))
	}
	claims := attesttest.Claims(role)
	if model != "" {
		claims.Model = model
	}
	id, err := transport.NewIdentity(transport.IdentityConfig{Claims: claims, Quoter: q})
	require.NoError(t, err)
	return transport.Config{Identity: id, Verifier: attesttest.Verifier(t, attesttest.OpenPolicy()),
		Log: zerolog.New(zerolog.NewTestWriter(t)), PingInterval: 200 * time.Millisecond, PingTimeout: 10 * time.Second}
}

func startProxy(t *testing.T) (*Proxy, string) {
	t.Helper()
	return startProxyWith(t, Config{Listen: "127.0.0.1:0", RequestTimeout: 5 * time.Second}, tconfig(t, attest.RoleProxy, ""))
}

// startProxyWith runs a proxy made with cfg and tc until the test ends, and returns it and its address.
func startProxyWith(t *testing.T, cfg Config, tc transport.Config) (*Proxy, string) {
	t.Helper()
	p, err := New(cfg, tc, zerolog.New(zerolog.NewTestWriter(t)))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return p, p.Addr(ctx).String()
}

// behaviour scripts a fake worker's answer to one request stream.
type behaviour func(s *transport.Stream, req *wire.Request)

func answerOK(chunks int) behaviour {
	return func(s *transport.Stream, req *wire.Request) {
		_ = s.Send(&wire.ResponseHead{HttpStatus: 200, Model: req.GetModel()})
		for i := range chunks {
			_ = s.SendFrame(wire.TypeChunk, fmt.Appendf(nil, `{"i":%d}`, i))
		}
		_ = s.Send(&wire.Done{Usage: &wire.Usage{PromptTokens: 3, CompletionTokens: uint64(chunks)}})
		_ = s.CloseSend()
	}
}

func resetBeforeHead(s *transport.Stream, _ *wire.Request) { s.Cancel(wire.CodeInternal) }

// endEarly starts an answer and ends the stream without Done. (A reset would discard the unread
// head, so it would look like a failure before the first byte; the end-to-end test kills a worker.)
func endEarly(s *transport.Stream, req *wire.Request) {
	_ = s.Send(&wire.ResponseHead{HttpStatus: 200, Model: req.GetModel()})
	_ = s.SendFrame(wire.TypeChunk, []byte(`{"i":0}`))
	_ = s.CloseSend()
}

// fakeWorker registers model with the proxy and answers streams with b. It returns a counter of streams served.
func fakeWorker(t *testing.T, addr, model string, b behaviour) *atomic.Int64 {
	t.Helper()
	return fakeWorkerWith(t, addr, model, b, tconfig(t, attest.RoleWorker, model))
}

func fakeWorkerWith(t *testing.T, addr, model string, b behaviour, cfg transport.Config) *atomic.Int64 {
	t.Helper()
	return fakeWorkerRaw(t, addr, model, func(s *transport.Stream, payload []byte) {
		m, err := wire.Unmarshal(wire.TypeRequest, payload)
		if err != nil {
			return
		}
		b(s, m.(*wire.Request))
	}, cfg)
}

// fakeWorkerRaw is fakeWorkerWith for a behaviour that reads the request frame's payload itself.
func fakeWorkerRaw(t *testing.T, addr, model string, b func(s *transport.Stream, payload []byte), cfg transport.Config) *atomic.Int64 {
	t.Helper()
	reg := &wire.Register{Model: model, WeightsDigest: attesttest.Claims(attest.RoleWorker).WeightsDigest, Coefficient: 1000, MaxActive: 8}
	return serveFake(t, addr, reg, func(_ *transport.Conn, s *transport.Stream, payload []byte) { b(s, payload) }, cfg)
}

// serveFake dials the proxy as a worker with cfg, registers with reg, waits to be registered and
// answers every request stream with b, which also gets the connection (to kill it).
func serveFake(t *testing.T, addr string, reg *wire.Register, b func(c *transport.Conn, s *transport.Stream, payload []byte), cfg transport.Config) *atomic.Int64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := transport.Dial(ctx, addr, cfg)
	require.NoError(t, err)
	require.NoError(t, c.SendControl(reg))
	select {
	case m := <-c.Control():
		_, ok := m.(*wire.Registered)
		require.True(t, ok, "registration answered with %T", m)
	case <-time.After(5 * time.Second):
		t.Fatal("no registration answer")
	}
	var n atomic.Int64
	done := make(chan struct{})
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for range c.Control() { // payment states
		}
	}()
	go func() {
		defer close(done)
		for {
			s, err := c.AcceptStream(ctx)
			if err != nil {
				return
			}
			n.Add(1)
			go func() {
				typ, payload, err := s.RecvFrame()
				if err != nil || typ != wire.TypeRequest {
					return
				}
				b(c, s, payload)
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = c.Close(0, "")
		<-done
		<-drained
	})
	return &n
}

// answer is what a client reads from one request stream.
type answer struct {
	head   *wire.ResponseHead
	chunks [][]byte
	done   *wire.Done
	err    *wire.Error
	reset  error
}

func ask(t *testing.T, c *transport.Conn, model string) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.OpenStream(ctx)
	require.NoError(t, err)
	require.NoError(t, s.Send(bounded(&wire.Request{Id: "r1", Kind: wire.Kind_KIND_CHAT, Model: model, Stream: true, Body: []byte(`{}`)})))
	require.NoError(t, s.CloseSend())
	var a answer
	for {
		typ, payload, err := s.RecvFrame()
		if errors.Is(err, io.EOF) {
			return a
		}
		if err != nil {
			a.reset = err
			return a
		}
		if typ.Raw() {
			a.chunks = append(a.chunks, append([]byte(nil), payload...))
			continue
		}
		m, err := wire.Unmarshal(typ, payload)
		require.NoError(t, err)
		switch m := m.(type) {
		case *wire.ResponseHead:
			a.head = m
		case *wire.Done:
			a.done = m
		case *wire.Error:
			a.err = m
		default:
			t.Fatalf("unexpected %T", m)
		}
	}
}

func dialClient(t *testing.T, addr string) *transport.Conn {
	t.Helper()
	c, err := transport.Dial(context.Background(), addr, tconfig(t, attest.RoleClient, ""))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(0, "") })
	return c
}

func TestRelay(t *testing.T) {
	testCases := map[string]struct {
		workers   []behaviour
		model     string
		wantCode  quic.ApplicationErrorCode
		wantParts int
	}{
		"answer relayed":                     {workers: []behaviour{answerOK(5)}, model: "m", wantParts: 5},
		"unknown model":                      {workers: []behaviour{answerOK(1)}, model: "other", wantCode: wire.CodeNotFound},
		"failover before first byte":         {workers: []behaviour{resetBeforeHead, answerOK(2)}, model: "m", wantParts: 2},
		"all workers fail before first byte": {workers: []behaviour{resetBeforeHead, resetBeforeHead}, model: "m", wantCode: wire.CodeUpstream},
		"worker fails mid-answer":            {workers: []behaviour{endEarly}, model: "m", wantCode: wire.CodeUpstream, wantParts: 1},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			p, addr := startProxy(t)
			for _, b := range tc.workers {
				fakeWorker(t, addr, "m", b)
			}
			require.Eventually(t, func() bool { return len(p.reg.all()) == len(tc.workers) }, 5*time.Second, 5*time.Millisecond)
			c := dialClient(t, addr)
			// Repeat so that random worker choice meets every order.
			for range 4 {
				start := time.Now()
				a := ask(t, c, tc.model)
				assert.Less(time.Since(start), 2*time.Second, "answers and errors arrive promptly")
				assert.Len(a.chunks, tc.wantParts)
				if tc.wantCode != 0 {
					require.NotNil(t, a.err, "want error code %d", tc.wantCode)
					assert.Equal(uint32(tc.wantCode), a.err.GetCode(), a.err.GetMessage())
					continue
				}
				require.Nil(t, a.err)
				require.NotNil(t, a.head)
				assert.Equal("simulated", a.head.GetWorker().GetAttestation())
				require.NotNil(t, a.done)
				assert.Equal(uint64(tc.wantParts), a.done.GetUsage().GetCompletionTokens())
			}
		})
	}
}

func TestModelsList(t *testing.T) {
	p, addr := startProxy(t)
	fakeWorker(t, addr, "a", answerOK(1))
	fakeWorker(t, addr, "a", answerOK(1))
	fakeWorker(t, addr, "b", answerOK(1))
	require.Eventually(t, func() bool { return len(p.reg.all()) == 3 }, 5*time.Second, 5*time.Millisecond)
	c := dialClient(t, addr)
	s, err := c.OpenStream(context.Background())
	require.NoError(t, err)
	require.NoError(t, s.Send(&wire.ModelsRequest{}))
	m, err := s.Recv()
	require.NoError(t, err)
	list := m.(*wire.ModelsList)
	require.Len(t, list.GetModels(), 2)
	assert.Equal(t, "a", list.GetModels()[0].GetName())
	assert.Equal(t, uint32(2), list.GetModels()[0].GetWorkers())
}

func TestRegistrationMustMatchClaims(t *testing.T) {
	_, addr := startProxy(t)
	c, err := transport.Dial(context.Background(), addr, tconfig(t, attest.RoleWorker, "attested-model"))
	require.NoError(t, err)
	defer c.Close(0, "")
	require.NoError(t, c.SendControl(&wire.Register{Model: "another-model", MaxActive: 1}))
	refused(t, c, "does not match the attested claims")
}

// refused waits for the proxy to close the worker connection c as a bad request saying why.
func refused(t *testing.T, c *transport.Conn, why string) {
	t.Helper()
	select {
	case <-c.Done():
		code, ok := transport.ErrorCode(c.Err())
		require.True(t, ok, "closed with %v", c.Err())
		assert.Equal(t, wire.CodeBadRequest, code)
		assert.Contains(t, c.Err().Error(), why)
	case <-time.After(5 * time.Second):
		t.Fatal("registration not refused")
	}
}

func TestClientCancelReachesWorker(t *testing.T) {
	p, addr := startProxy(t)
	cancelled := make(chan struct{})
	fakeWorker(t, addr, "m", func(s *transport.Stream, req *wire.Request) {
		_ = s.Send(&wire.ResponseHead{HttpStatus: 200})
		<-s.Context().Done()
		close(cancelled)
	})
	require.Eventually(t, func() bool { return len(p.reg.all()) == 1 }, 5*time.Second, 5*time.Millisecond)
	c := dialClient(t, addr)
	s, err := c.OpenStream(context.Background())
	require.NoError(t, err)
	require.NoError(t, s.Send(bounded(&wire.Request{Id: "r", Model: "m"})))
	m, err := s.Recv()
	require.NoError(t, err)
	require.IsType(t, &wire.ResponseHead{}, m)
	s.Cancel(wire.CodeCancelled)
	select {
	case <-cancelled:
	case <-time.After(2 * time.Second):
		t.Fatal("worker did not see the cancellation")
	}
}

// A worker whose connection drains (its certificate expires soon; it is connecting a replacement)
// gets new requests only when no other worker can take them.
func TestDrainingWorkerAvoided(t *testing.T) {
	require := require.New(t)
	p, addr := startProxy(t)
	cfg := tconfig(t, attest.RoleWorker, "m")
	claims := attesttest.Claims(attest.RoleWorker)
	claims.Model = "m"
	id, err := transport.NewIdentity(transport.IdentityConfig{Claims: claims,
		Quoter: attesttest.Quoter(t, attesttest.Measurements(attest.RoleWorker)), Validity: 8 * time.Second})
	require.NoError(err)
	cfg.Identity = id
	expiring := fakeWorkerWith(t, addr, "m", answerOK(1), cfg)
	require.Eventually(func() bool { return len(p.reg.all()) == 1 }, 5*time.Second, 5*time.Millisecond)
	select {
	case <-p.reg.all()[0].conn.Draining():
	case <-time.After(10 * time.Second):
		t.Fatal("the worker's connection did not drain")
	}
	c := dialClient(t, addr)
	require.NotNil(ask(t, c, "m").done, "the only worker serves while it drains")
	require.EqualValues(1, expiring.Load())
	require.EqualValues(1, p.reg.models()[0].GetWorkers(), "a draining worker alone still counts")

	fresh := fakeWorker(t, addr, "m", answerOK(1))
	require.Eventually(func() bool { return len(p.reg.all()) == 2 }, 5*time.Second, 5*time.Millisecond)
	for range 4 {
		require.NotNil(ask(t, c, "m").done)
	}
	require.EqualValues(4, fresh.Load())
	require.EqualValues(1, expiring.Load())
	// Read as a replacement of the draining worker, the pair counts once.
	require.EqualValues(1, p.reg.models()[0].GetWorkers())
	drained := 0
	for _, w := range p.Stats().(map[string]any)["workers"].([]workerStats) {
		if w.Draining {
			drained++
		}
	}
	require.Equal(1, drained)
}

// The worker receives the request frame exactly as the client sent it: the proxy decodes it to
// route, never re-encodes it (field order, repeated fields and fields it does not know survive).
func TestRequestForwardedAsSent(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	p, addr := startProxy(t)
	seen := make(chan []byte, 1)
	fakeWorkerRaw(t, addr, "m", func(s *transport.Stream, payload []byte) {
		seen <- append([]byte(nil), payload...)
		answerOK(1)(s, bounded(&wire.Request{Model: "m"}))
	}, tconfig(t, attest.RoleWorker, "m"))
	require.Eventually(func() bool { return len(p.reg.all()) == 1 }, 5*time.Second, 5*time.Millisecond)

	// Fields out of order, model twice (the last wins), and a field from a newer protocol.
	var sent []byte
	sent = protowire.AppendTag(sent, 5, protowire.BytesType)
	sent = protowire.AppendBytes(sent, []byte(`{"model":"m"}`))
	sent = protowire.AppendTag(sent, 3, protowire.BytesType)
	sent = protowire.AppendString(sent, "other")
	sent = protowire.AppendTag(sent, 3, protowire.BytesType)
	sent = protowire.AppendString(sent, "m")
	sent = protowire.AppendTag(sent, 99, protowire.VarintType)
	sent = protowire.AppendVarint(sent, 7)
	sent = protowire.AppendTag(sent, 1, protowire.BytesType)
	sent = protowire.AppendString(sent, "r")
	c := dialClient(t, addr)
	s, err := c.OpenStream(context.Background())
	require.NoError(err)
	require.NoError(s.SendFrame(wire.TypeRequest, sent))
	require.NoError(s.CloseSend())
	select {
	case got := <-seen:
		assert.Equal(sent, got)
	case <-time.After(5 * time.Second):
		t.Fatal("the request did not reach the worker")
	}
	for {
		if _, _, err := s.RecvFrame(); err != nil {
			break
		}
	}
}
