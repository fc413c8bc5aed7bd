package client

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// TestClientCancelReachesProxy: an app that disconnects mid-stream makes the client reset the
// request stream with CodeCancelled, so proxy, worker and engine stop.
func TestClientCancelReachesProxy(t *testing.T) {
	require := require.New(t)
	cancelled := make(chan error, 1)
	stub := newStub(t, func(_ *stubProxy, s *transport.Stream, req *wire.Request) {
		sendHead(s, req)
		sendChunk(s, chunkHello)
		select {
		case <-s.Context().Done():
			cancelled <- context.Cause(s.Context())
		case <-time.After(10 * time.Second):
			cancelled <- nil
		}
	})
	h := startClient(t, []*stubProxy{stub})
	h.waitConnected(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := h.do(t, ctx, http.MethodPost, "/v1/chat/completions", chatBody)
	require.Equal(http.StatusOK, resp.StatusCode)
	first, err := newSSEReader(resp.Body).nextWithin(t, 5*time.Second)
	require.NoError(err)
	require.Equal(chunkHello, first)
	cancel()

	select {
	case cause := <-cancelled:
		code, ok := transport.ErrorCode(cause)
		require.True(ok, "stream ended without a code: %v", cause)
		require.Equal(wire.CodeCancelled, code)
	case <-time.After(5 * time.Second):
		t.Fatal("the proxy never saw the cancellation")
	}
	require.Eventually(func() bool {
		return h.c.snapshot().Requests.ByOutcome["cancelled"] == 1
	}, 5*time.Second, 5*time.Millisecond)
}

// TestRequestTimeout: the whole-request timeout answers 504 and tells the proxy with CodeTimeout.
func TestRequestTimeout(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	cancelled := make(chan error, 1)
	stub := newStub(t, func(_ *stubProxy, s *transport.Stream, req *wire.Request) {
		sendHead(s, req)
		<-s.Context().Done()
		cancelled <- context.Cause(s.Context())
	})
	h := startClient(t, []*stubProxy{stub}, withConfig(func(c *Config) { c.RequestTimeout = 300 * time.Millisecond }))
	h.waitConnected(t, 1)
	start := time.Now()
	resp := h.post(t, "/v1/chat/completions", chatBody)
	body := readAll(t, resp.Body)
	assert.Equal(http.StatusGatewayTimeout, resp.StatusCode, body)
	assert.Less(time.Since(start), 5*time.Second)
	var e openAIError
	require.NoError(json.Unmarshal([]byte(body), &e))
	assert.Equal("timeout", *e.Error.Code)
	code, ok := transport.ErrorCode(<-cancelled)
	require.True(ok)
	assert.Equal(wire.CodeTimeout, code)
	assert.LessOrEqual(stub.seen()[0].GetTimeoutMs(), uint64(300))
}

// TestFailoverBeforeFirstChunk: a proxy that refuses before the first chunk is skipped and the next
// one answers; the app never notices.
func TestFailoverBeforeFirstChunk(t *testing.T) {
	testCases := map[string]script{
		"overloaded": func(_ *stubProxy, s *transport.Stream, _ *wire.Request) {
			_ = s.Send(&wire.Error{Code: uint32(wire.CodeOverloaded), Message: "no capacity"})
		},
		"stream reset": func(_ *stubProxy, s *transport.Stream, _ *wire.Request) { s.Cancel(wire.CodeInternal) },
		"unknown model here": func(_ *stubProxy, s *transport.Stream, _ *wire.Request) {
			_ = s.Send(&wire.Error{Code: uint32(wire.CodeNotFound), Message: "not here"})
		},
		"failure after head": func(_ *stubProxy, s *transport.Stream, req *wire.Request) {
			sendHead(s, req)
			_ = s.Send(&wire.Error{Code: uint32(wire.CodeUpstream), Message: "worker died"})
		},
		"connection dropped": func(p *stubProxy, _ *transport.Stream, _ *wire.Request) { p.dropConns() },
	}
	for name, refuse := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			bad, good := newStub(t, refuse), newStub(t, answerStream)
			h := startClient(t, []*stubProxy{bad, good})
			h.waitConnected(t, 2)
			// Round-robin starts at either proxy; enough requests make sure the bad one is tried first.
			for i := range 4 {
				h.waitConnected(t, 2)
				resp := h.post(t, "/v1/chat/completions", chatBody)
				require.Equal(http.StatusOK, resp.StatusCode, "request %d", i)
				assert.Equal(good.addr, resp.Header.Get("X-Cocoon-Proxy"))
				events := newSSEReader(resp.Body).all(t)
				assert.Equal("[DONE]", events[len(events)-1])
			}
			assert.NotEmpty(bad.seen(), "the refusing proxy was tried")
			assert.Len(good.seen(), 4)
		})
	}
}

// TestAllProxiesFail: when every proxy refuses, the app hears the most telling refusal.
func TestAllProxiesFail(t *testing.T) {
	assert := assert.New(t)
	notFound := newStub(t, func(_ *stubProxy, s *transport.Stream, _ *wire.Request) {
		_ = s.Send(&wire.Error{Code: uint32(wire.CodeNotFound), Message: "not here"})
	})
	busy := newStub(t, func(_ *stubProxy, s *transport.Stream, _ *wire.Request) {
		_ = s.Send(&wire.Error{Code: uint32(wire.CodeOverloaded), Message: "busy"})
	})
	h := startClient(t, []*stubProxy{notFound, busy})
	h.waitConnected(t, 2)
	resp := h.post(t, "/v1/chat/completions", chatBody)
	assert.Equal(http.StatusServiceUnavailable, resp.StatusCode)
	assert.Len(notFound.seen(), 1)
	assert.Len(busy.seen(), 1)
	assert.EqualValues(1, h.c.snapshot().Requests.Failovers)
}

// TestNoRetryAfterFirstChunk: with two proxies, a failure after the first chunk is final.
func TestNoRetryAfterFirstChunk(t *testing.T) {
	assert := assert.New(t)
	failing := func(_ *stubProxy, s *transport.Stream, req *wire.Request) {
		sendHead(s, req)
		sendChunk(s, chunkHello)
		_ = s.Send(&wire.Error{Code: uint32(wire.CodeUpstream), Message: "worker died"})
	}
	a, b := newStub(t, failing), newStub(t, failing)
	h := startClient(t, []*stubProxy{a, b})
	h.waitConnected(t, 2)
	for range 2 {
		resp := h.post(t, "/v1/chat/completions", `{"model":"m","messages":[]}`)
		assert.Equal(http.StatusBadGateway, resp.StatusCode, "non-stream: the error is still an HTTP status")
	}
	assert.Len(append(a.seen(), b.seen()...), 2, "one attempt per request")
}

// TestReconnectAfterProxyRestart: the client notices the proxy going away and reconnects by itself
// once it listens again on the same address.
func TestReconnectAfterProxyRestart(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	stub := newStub(t, answerStream)
	h := startClient(t, []*stubProxy{stub})
	h.waitConnected(t, 1)
	resp := h.post(t, "/v1/chat/completions", chatBody)
	require.Equal(http.StatusOK, resp.StatusCode)

	stub.stop()
	h.waitConnected(t, 0)
	health := h.do(t, context.Background(), http.MethodGet, "/healthz", "")
	assert.Equal(http.StatusServiceUnavailable, health.StatusCode)
	assert.Contains(readAll(t, health.Body), "no proxy connected")

	stub.start(stub.addr)
	h.waitConnected(t, 1)
	resp = h.post(t, "/v1/chat/completions", chatBody)
	require.Equal(http.StatusOK, resp.StatusCode)
	assert.Equal("[DONE]", newSSEReader(resp.Body).all(t)[4])
	assert.EqualValues(2, h.c.snapshot().Proxies[0].Connects)
	assert.Contains(h.logs.String(), "proxy connection lost")
}

// TestRequestWaitsForConnection: a request that arrives while the only proxy is restarting waits
// for the reconnection instead of failing at once.
func TestRequestWaitsForConnection(t *testing.T) {
	require := require.New(t)
	stub := newStub(t, answerStream)
	h := startClient(t, []*stubProxy{stub})
	h.waitConnected(t, 1)
	stub.stop()
	h.waitConnected(t, 0)
	done := make(chan *http.Response, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, h.url+"/v1/chat/completions", strings.NewReader(chatBody))
		resp, err := h.http.Do(req)
		if err != nil {
			done <- nil
			return
		}
		done <- resp
	}()
	stub.start(stub.addr)
	select {
	case resp := <-done:
		require.NotNil(resp)
		defer resp.Body.Close()
		require.Equal(http.StatusOK, resp.StatusCode)
	case <-time.After(10 * time.Second):
		t.Fatal("request never answered")
	}
}

// TestProxyRefusedByPolicy: a proxy whose image the client's policy does not allow is never used,
// and the log says why in one line.
func TestProxyRefusedByPolicy(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	stub := newStub(t, answerStream)
	p := attesttest.OpenPolicy()
	p.Roles[attest.RoleProxy] = attest.RolePolicy{ImageHashes: []string{strings.Repeat("11", 32)}}
	h := startClient(t, []*stubProxy{stub}, withPolicy(p), withConnectWait(50*time.Millisecond))

	require.Eventually(func() bool { return strings.Contains(h.logs.String(), "refused proxy") },
		10*time.Second, 5*time.Millisecond)
	var line string
	for _, l := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(l, "refused proxy") {
			line = l
		}
	}
	assert.Contains(line, attest.ErrImageNotAllowed.Error())
	assert.Contains(line, stub.addr)
	assert.Contains(line, `"level":"error"`)
	assert.Equal(1, strings.Count(h.logs.String(), "refused proxy"), "logged once, not at every retry")

	health := h.do(t, context.Background(), http.MethodGet, "/healthz", "")
	assert.Equal(http.StatusServiceUnavailable, health.StatusCode)
	assert.Contains(readAll(t, health.Body), attest.ErrImageNotAllowed.Error())
	resp := h.post(t, "/v1/chat/completions", chatBody)
	assert.Equal(http.StatusServiceUnavailable, resp.StatusCode)
	assert.Empty(stub.seen(), "not a byte of a request reaches a refused proxy")
	assert.Zero(stub.acceptedConns())
}

func TestCodeMapping(t *testing.T) {
	testCases := map[string]struct {
		code       quic.ApplicationErrorCode
		wantStatus int
		retry      bool
	}{
		"not found":       {code: wire.CodeNotFound, wantStatus: 404, retry: true},
		"overloaded":      {code: wire.CodeOverloaded, wantStatus: 503, retry: true},
		"payment":         {code: wire.CodePaymentRequired, wantStatus: 402, retry: true},
		"upstream":        {code: wire.CodeUpstream, wantStatus: 502, retry: true},
		"proxy cancelled": {code: wire.CodeCancelled, wantStatus: 502, retry: true},
		"bad request":     {code: wire.CodeBadRequest, wantStatus: 400},
		"timeout":         {code: wire.CodeTimeout, wantStatus: 504},
		"frame too large": {code: wire.CodeFrameTooLarge, wantStatus: 400},
		"unknown code":    {code: 0x99, wantStatus: 500, retry: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.wantStatus, errFromCode(tc.code, "").status)
			assert.Equal(t, tc.retry, retryable(tc.code))
		})
	}
}

// A proxy connection is replaced before the certificates it was made with expire: the client's
// certificate lives 6 s and is renewed at 4 s; the connection drains at 4.5 s, a replacement made
// with the renewed certificate takes new requests, and the client never goes without a connection.
func TestConnectionReplacedBeforeExpiry(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	stub := newStub(t, answerStream)
	h := startClient(t, []*stubProxy{stub}, func(t testing.TB, _ *Config, tc *transport.Config, _ *Client) {
		if tc == nil {
			return
		}
		id, err := transport.NewIdentity(transport.IdentityConfig{Claims: attesttest.Claims(attest.RoleClient), Validity: 6 * time.Second})
		require.NoError(err)
		tc.Identity = id
	})
	h.waitConnected(t, 1)
	first, _ := h.c.set.Members()[0].Value.current()
	select {
	case <-first.Draining():
	case <-time.After(10 * time.Second):
		t.Fatal("the connection did not drain")
	}
	require.Eventually(func() bool {
		conn, _ := h.c.set.Members()[0].Value.current()
		return conn != nil && conn != first
	}, 5*time.Second, 5*time.Millisecond, "no replacement")
	select {
	case <-first.Done():
		t.Fatal("the old connection ended before its replacement was up")
	default:
	}
	resp := h.post(t, "/v1/chat/completions", chatBody)
	require.Equal(http.StatusOK, resp.StatusCode)
	assert.Equal("[DONE]", newSSEReader(resp.Body).all(t)[4])

	select {
	case <-first.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the old connection outlived its certificate")
	}
	// The old session winds down after its connection ended; it must not take the replacement down.
	require.Never(func() bool { conn, _ := h.c.set.Members()[0].Value.current(); return conn == nil }, 500*time.Millisecond,
		5*time.Millisecond, "still connected after the old connection ended")
	assert.EqualValues(2, h.c.snapshot().Proxies[0].Connects)
	assert.Contains(h.logs.String(), "connecting a replacement")
	assert.NotContains(h.logs.String(), "proxy connection lost")
}
