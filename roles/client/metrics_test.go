package client

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/roles/internal/metrics/metricstest"
	"github.com/cocoon-network/cocoon/transport/wire"
)

func TestMetrics(t *testing.T) {
	assert, require := assert.New(t), require.New(t)
	stub := newStub(t, answerStream)
	h := startClient(t, []*stubProxy{stub})
	h.waitConnected(t, 1)
	resp := h.post(t, "/v1/chat/completions", chatBody)
	require.Equal(http.StatusOK, resp.StatusCode)
	readAll(t, resp.Body)

	var fams metricstest.Families
	require.Eventually(func() bool {
		resp := h.do(t, context.Background(), http.MethodGet, "/metrics", "")
		fams = metricstest.Parse(t, resp.Body)
		held, ok := metricstest.Gauge(fams, "cocoon_client_quic_streams_held")
		return metricstest.Value(t, fams, "cocoon_client_active_requests") == 0 && ok && held == 0
	}, 5*time.Second, 5*time.Millisecond, "no request under way, and the client let go of its stream")
	assert.InDelta(1, metricstest.Value(t, fams, "cocoon_client_requests_total", "outcome", "ok"), 0)
	assert.Positive(metricstest.Value(t, fams, "cocoon_client_tokens_total", "class", "prompt"))
	assert.Positive(metricstest.Value(t, fams, "cocoon_client_charged_nanoton_total"))
	assert.InDelta(1, metricstest.Value(t, fams, "cocoon_client_request_duration_seconds"), 0)
	assert.InDelta(1, metricstest.Value(t, fams, "cocoon_client_handshake_duration_seconds"), 0, "its connection to the proxy")
	assert.InDelta(1, metricstest.Value(t, fams, "cocoon_client_time_to_first_token_seconds"), 0)
	assert.InDelta(1, metricstest.Value(t, fams, "cocoon_client_proxy_connections"), 0)
	assert.Contains(fams, "go_goroutines", "the runtime collector is registered")
}

func TestMetricsNeedToken(t *testing.T) {
	stub := newStub(t, nil, &wire.ModelInfo{Name: "m", Workers: 1})
	h := startClient(t, []*stubProxy{stub}, withConfig(func(c *Config) { c.APIToken = "s3cret-token" }))
	h.waitConnected(t, 1)
	resp := h.do(t, t.Context(), http.MethodGet, "/metrics", "")
	readAll(t, resp.Body)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp = h.do(t, t.Context(), http.MethodGet, "/metrics", "", "Authorization", "Bearer s3cret-token")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	fams := metricstest.Parse(t, resp.Body)
	assert.Contains(t, fams, "cocoon_client_requests_total")
}
