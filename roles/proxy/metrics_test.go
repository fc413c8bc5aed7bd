package proxy

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/roles/internal/metrics/metricstest"
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
	assert.InDelta(1, metricstest.Value(t, fams, "cocoon_proxy_workers"), 0)
	assert.InDelta(1, metricstest.Value(t, fams, "cocoon_proxy_client_connections"), 0)
	assert.Contains(fams, "cocoon_proxy_active_requests")
}
