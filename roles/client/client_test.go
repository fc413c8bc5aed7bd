package client

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest/attesttest"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

func TestNewValidates(t *testing.T) {
	tc := clientTransport(t, attesttest.OpenPolicy())
	valid := func() Config { return Config{Proxies: []string{"127.0.0.1:7000"}, Listen: "127.0.0.1:0"} }
	testCases := map[string]struct {
		cfg     func() Config
		tc      func() transport.Config
		wantErr string
	}{
		"valid":              {cfg: valid},
		"no proxies":         {cfg: func() Config { c := valid(); c.Proxies = nil; return c }, wantErr: "proxies"},
		"proxy without port": {cfg: func() Config { c := valid(); c.Proxies = []string{"localhost"}; return c }, wantErr: "proxies[0]"},
		"duplicate proxy": {cfg: func() Config { c := valid(); c.Proxies = append(c.Proxies, c.Proxies[0]); return c },
			wantErr: "proxies[1]"},
		"bad listen":       {cfg: func() Config { c := valid(); c.Listen = "8080"; return c }, wantErr: "listen"},
		"negative body":    {cfg: func() Config { c := valid(); c.MaxBodyBytes = -1; return c }, wantErr: "max_body_bytes"},
		"negative timeout": {cfg: func() Config { c := valid(); c.RequestTimeout = -time.Second; return c }, wantErr: "request_timeout"},
		"no identity":      {cfg: valid, tc: func() transport.Config { c := tc; c.Identity = nil; return c }, wantErr: "identity"},
		"no verifier":      {cfg: valid, tc: func() transport.Config { c := tc; c.Verifier = nil; return c }, wantErr: "verifier"},
	}
	for name, c := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			tcfg := tc
			if c.tc != nil {
				tcfg = c.tc()
			}
			cl, err := New(c.cfg(), tcfg, zerolog.Nop())
			if c.wantErr != "" {
				assert.ErrorContains(err, c.wantErr)
				return
			}
			assert.NoError(err)
			assert.Equal(int64(DefaultMaxBodyBytes), cl.cfg.MaxBodyBytes)
			assert.Equal(DefaultRequestTimeout, cl.cfg.RequestTimeout)
		})
	}
}

func TestRunFailsOnBusyAddress(t *testing.T) {
	stub := newStub(t, nil)
	h := startClient(t, []*stubProxy{stub})
	c, err := New(Config{Proxies: []string{stub.addr}, Listen: strings.TrimPrefix(h.url, "http://"), PlaintextDev: true},
		clientTransport(t, attesttest.OpenPolicy()), zerolog.New(zerolog.NewTestWriter(t)))
	require.NoError(t, err)
	err = c.Run(context.Background())
	assert.ErrorContains(t, err, "listen")
	assert.Nil(t, c.Addr())
}

// TestRunStopsWithStreamInFlight: cancelling Run ends an open stream (the proxy sees it cancelled)
// and returns nil; goleak in TestMain checks that nothing is left behind.
func TestRunStopsWithStreamInFlight(t *testing.T) {
	require := require.New(t)
	cancelled := make(chan struct{})
	stub := newStub(t, func(_ *stubProxy, s *transport.Stream, req *wire.Request) {
		sendHead(s, req)
		sendChunk(s, chunkHello)
		<-s.Context().Done()
		close(cancelled)
	})
	c, err := New(Config{Proxies: []string{stub.addr}, Listen: "127.0.0.1:0", PlaintextDev: true},
		clientTransport(t, attesttest.OpenPolicy()), zerolog.New(zerolog.NewTestWriter(t)))
	require.NoError(err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodPost, "http://"+c.Addr().String()+"/v1/chat/completions", strings.NewReader(chatBody))
	require.NoError(err)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(err)
	defer resp.Body.Close()
	_, err = newSSEReader(resp.Body).nextWithin(t, 5*time.Second)
	require.NoError(err)

	cancel()
	select {
	case err := <-done:
		require.NoError(err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the proxy never saw the stream end")
	}
}

func TestStatsAndHealth(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	stub := newStub(t, func(p *stubProxy, s *transport.Stream, req *wire.Request) {
		if req.GetModel() == "busy" {
			errorScript(p, s, req)
			return
		}
		answerStream(p, s, req)
	})
	down := "127.0.0.1:1" // nothing listens there
	h := startClient(t, []*stubProxy{stub}, withConfig(func(c *Config) { c.Proxies = append(c.Proxies, down) }))
	h.waitConnected(t, 1)

	health := h.do(t, context.Background(), http.MethodGet, "/healthz", "")
	assert.Equal(http.StatusOK, health.StatusCode)
	assert.Contains(readAll(t, health.Body), "1 of 2")

	for _, body := range []string{chatBody, `{"model":"test-model","messages":[{"role":"user","content":"secret prompt 4711"}]}`} {
		resp := h.post(t, "/v1/chat/completions", body)
		require.Equal(http.StatusOK, resp.StatusCode)
		readAll(t, resp.Body)
	}
	h.post(t, "/v1/chat/completions", `{"model":"busy","messages":[]}`)
	h.post(t, "/v1/chat/completions", `{"model":`)

	// Counters are updated when a handler returns, just after the app read the answer.
	var st statsJSON
	require.Eventually(func() bool {
		resp := h.do(t, context.Background(), http.MethodGet, "/jsonstats", "")
		st = statsJSON{}
		return json.NewDecoder(resp.Body).Decode(&st) == nil && st.Requests.InFlight == 0 && st.Requests.Total == 4
	}, 5*time.Second, 5*time.Millisecond)
	assert.True(st.Healthy)
	require.Len(st.Proxies, 2)
	assert.Equal(stub.addr, st.Proxies[0].Address)
	assert.True(st.Proxies[0].Connected)
	assert.Equal("simulated", st.Proxies[0].Attestation)
	assert.Len(st.Proxies[0].ImageHash, 64)
	assert.False(st.Proxies[1].Connected)
	assert.Equal(map[string]uint64{"ok": 2, "unavailable": 1, "bad_request": 1}, st.Requests.ByOutcome)
	assert.Equal(2, st.Latency.Count)
	assert.Positive(st.Latency.P50)
	assert.GreaterOrEqual(st.Latency.P99, st.Latency.P50)
	assert.EqualValues(14, st.Tokens.Prompt)
	assert.EqualValues(2468, st.Cost)

	page := h.do(t, context.Background(), http.MethodGet, "/stats", "")
	assert.Equal("text/html; charset=utf-8", page.Header.Get("Content-Type"))
	html := readAll(t, page.Body)
	assert.Contains(html, stub.addr)
	assert.Contains(html, "simulated")

	jsonPage := h.do(t, context.Background(), http.MethodGet, "/jsonstats", "")
	for name, text := range map[string]string{"logs": h.logs.String(), "stats page": html, "jsonstats": readAll(t, jsonPage.Body)} {
		assert.NotContains(text, "secret prompt 4711", "%s must never show a prompt", name)
		assert.NotContains(text, "Hello, world", "%s must never show a completion", name)
		assert.NotContains(text, "world", "%s must never show a completion", name)
	}
	assert.Contains(h.logs.String(), `"request_id"`)
	assert.Contains(h.logs.String(), `"component":"client"`)
}
