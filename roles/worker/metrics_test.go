package worker

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/gpu/scripted"
	"github.com/cocoon-network/cocoon/roles/internal/metrics/metricstest"
	"github.com/cocoon-network/cocoon/roles/internal/statsweb"
	"github.com/cocoon-network/cocoon/transport/wire"
)

func TestMetrics(t *testing.T) {
	assert := assert.New(t)
	eng := scripted.New(scripted.Config{Chunks: 4, Model: "test-model"})
	t.Cleanup(eng.Close)
	e, err := gpu.NewHTTP(gpu.HTTPConfig{BaseURL: eng.URL})
	require.NoError(t, err)
	w, c := startWorkerWith(t, newStubProxy(t), e, 4, tconfig(t, attest.RoleWorker))
	expectRegister(t, c, 4)
	_, read := send(t, c, bounded(&wire.Request{Id: "r", Kind: wire.Kind_KIND_CHAT, Model: "test-model", Stream: true, Body: []byte(chat)}))
	require.Nil(t, read().err)

	mux := http.NewServeMux()
	statsweb.Register(mux, "worker", w)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	fams := metricstest.Get(t, srv.URL+"/metrics")
	assert.InDelta(1, metricstest.Value(t, fams, "cocoon_worker_requests_total", "outcome", "served"), 0)
	assert.InDelta(0, metricstest.Value(t, fams, "cocoon_worker_requests_total", "outcome", "refused"), 0)
	assert.InDelta(4, metricstest.Value(t, fams, "cocoon_worker_tokens_total", "class", "completion"), 0)
	assert.InDelta(scripted.DefaultPromptTokens, metricstest.Value(t, fams, "cocoon_worker_tokens_total", "class", "prompt"), 0)
	assert.InDelta(1, metricstest.Value(t, fams, "cocoon_worker_request_duration_seconds"), 0)
	assert.InDelta(1, metricstest.Value(t, fams, "cocoon_worker_handshake_duration_seconds"), 0, "its connection to the proxy")
	assert.InDelta(1, metricstest.Value(t, fams, "cocoon_worker_time_to_first_token_seconds"), 0)
	assert.InDelta(0, metricstest.Value(t, fams, "cocoon_worker_active_requests"), 0)
	assert.Contains(fams, "cocoon_worker_proxy_connections")
	require.Eventually(t, func() bool {
		held, ok := metricstest.Gauge(metricstest.Get(t, srv.URL+"/metrics"), "cocoon_worker_quic_streams_held")
		return ok && held == 0
	}, 5*time.Second, 5*time.Millisecond, "the worker lets go of the stream of a served request")
}
