package proxy

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/roles/internal/metrics/metricstest"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

func TestMetrics(t *testing.T) {
	assert := assert.New(t)
	p, addr := startProxy(t)
	fakeWorker(t, addr, "m", answerOK(2))
	require.Eventually(t, func() bool { return len(p.reg.all()) == 1 }, 5*time.Second, 5*time.Millisecond)
	c := dialClient(t, addr)
	require.Nil(t, ask(t, c, "m").err)
	require.NotNil(t, ask(t, c, "other").err)

	srv := httptest.NewServer(p.statsHandler())
	t.Cleanup(srv.Close)
	var fams metricstest.Families
	require.Eventually(t, func() bool {
		fams = metricstest.Get(t, srv.URL+"/metrics")
		return metricstest.Value(t, fams, "cocoon_proxy_requests_total", "outcome", "served") == 1
	}, 5*time.Second, 5*time.Millisecond)
	assert.InDelta(1, metricstest.Value(t, fams, "cocoon_proxy_requests_total", "outcome", "unknown_model"), 0)
	assert.InDelta(3, metricstest.Value(t, fams, "cocoon_proxy_tokens_total", "class", "prompt"), 0)
	assert.InDelta(2, metricstest.Value(t, fams, "cocoon_proxy_tokens_total", "class", "completion"), 0)
	assert.InDelta(1, metricstest.Value(t, fams, "cocoon_proxy_request_duration_seconds"), 0)
	assert.InDelta(1, metricstest.Value(t, fams, "cocoon_proxy_time_to_first_token_seconds"), 0)
	assert.InDelta(2, metricstest.Value(t, fams, "cocoon_proxy_handshake_duration_seconds"), 0, "the worker's and the client's")
	assert.InDelta(1, metricstest.Value(t, fams, "cocoon_proxy_workers"), 0)
	assert.InDelta(1, metricstest.Value(t, fams, "cocoon_proxy_client_connections"), 0)
	assert.Contains(fams, "cocoon_proxy_active_requests")
	require.Eventually(t, func() bool {
		held, ok := metricstest.Gauge(metricstest.Get(t, srv.URL+"/metrics"), "cocoon_proxy_quic_streams_held")
		return ok && held == 0
	}, 5*time.Second, 5*time.Millisecond, "the proxy lets go of the streams of answered requests")
}

// TestCallersMistakeCounted: an engine's refusal of the request itself (a 4xx) is the caller's
// mistake, counted as bad_request, not as a failure of the network; the worker is not blamed.
func TestCallersMistakeCounted(t *testing.T) {
	assert := assert.New(t)
	p, addr := startProxy(t)
	fakeWorker(t, addr, "m", func(s *transport.Stream, _ *wire.Request) {
		_ = s.Send(&wire.Error{Code: uint32(wire.CodeBadRequest), Message: "engine answered 400", HttpStatus: 400,
			Body: []byte(`{"error":{"message":"max_tokens must be at least 1","param":"max_tokens"}}`)})
		_ = s.CloseSend()
	})
	require.Eventually(t, func() bool { return len(p.reg.all()) == 1 }, 5*time.Second, 5*time.Millisecond)
	c := dialClient(t, addr)
	require.NotNil(t, ask(t, c, "m").err)
	srv := httptest.NewServer(p.statsHandler())
	t.Cleanup(srv.Close)
	var fams metricstest.Families
	require.Eventually(t, func() bool {
		fams = metricstest.Get(t, srv.URL+"/metrics")
		return metricstest.Value(t, fams, "cocoon_proxy_requests_total", "outcome", "bad_request") == 1
	}, 5*time.Second, 5*time.Millisecond)
	assert.Zero(metricstest.Value(t, fams, "cocoon_proxy_requests_total", "outcome", "failed"))
	for _, w := range p.reg.all() {
		assert.Zero(w.failures.Load(), "the worker is not blamed for the caller's mistake")
	}
}
