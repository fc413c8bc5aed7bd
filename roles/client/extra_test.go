package client

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newLimitedStub is newStub for a proxy that accepts maxStreams request streams per connection
// and maxConns connections per address (zero: the default).
func newLimitedStub(t *testing.T, maxStreams int64, maxConns int, sc script) *stubProxy {
	t.Helper()
	p := &stubProxy{t: t, script: sc, maxStreams: maxStreams, maxConns: maxConns}
	p.start("127.0.0.1:0")
	t.Cleanup(p.stop)
	return p
}

// withStreamsPerConn makes n requests fill a proxy connection, and an extra one close after idle.
func withStreamsPerConn(n int, idle time.Duration) harnessOption {
	return withClient(func(c *Client) { c.streamsPerConn, c.extraIdle = n, idle })
}

func (h *harness) proxyConns() int { return h.c.set.Members()[0].Value.connCount() }

func waitArrivals(t *testing.T, arrived <-chan struct{}, n int) {
	t.Helper()
	for i := range n {
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d requests reached the proxy", i, n)
		}
	}
}

// TestExtraConnectionsWhenFull: requests beyond what one connection to a proxy carries go on
// extra connections at once instead of waiting for a stream, and those close once idle.
func TestExtraConnectionsWhenFull(t *testing.T) {
	arrived, release := make(chan struct{}, 8), make(chan struct{})
	stub := newLimitedStub(t, 2, 0, held(arrived, release))
	h := startClient(t, []*stubProxy{stub}, withStreamsPerConn(2, 50*time.Millisecond))
	h.waitConnected(t, 1)

	var answers []<-chan int
	for range 5 {
		answers = append(answers, h.asyncPost(t))
	}
	// Five requests under way at once need three connections of two streams.
	waitArrivals(t, arrived, 5)
	assert.Equal(t, 3, stub.acceptedConns())
	assert.Equal(t, 3, h.proxyConns())
	assert.Equal(t, 3, h.c.proxyStats()[0].Connections, "/jsonstats shows them")

	close(release)
	for _, a := range answers {
		assert.Equal(t, http.StatusOK, within(t, a, 10*time.Second))
	}
	require.Eventually(t, func() bool { return h.proxyConns() == 1 }, 10*time.Second, 5*time.Millisecond,
		"the extra connections close once idle")
	// The first connection stays and serves on.
	assert.Equal(t, http.StatusOK, within(t, h.asyncPost(t), 10*time.Second))
	assert.Equal(t, 3, stub.acceptedConns())
}

// TestExtraConnectionRefused: a proxy that takes no more connections from this address leaves
// requests waiting for a stream on the full one; they are answered when it frees, none is lost.
func TestExtraConnectionRefused(t *testing.T) {
	arrived, release := make(chan struct{}, 8), make(chan struct{})
	stub := newLimitedStub(t, 2, 1, held(arrived, release))
	h := startClient(t, []*stubProxy{stub}, withStreamsPerConn(2, time.Minute))
	h.waitConnected(t, 1)

	var answers []<-chan int
	for range 3 {
		answers = append(answers, h.asyncPost(t))
	}
	waitArrivals(t, arrived, 2)
	require.Eventually(t, func() bool {
		return strings.Contains(h.logs.String(), "another could not be opened")
	}, 10*time.Second, 5*time.Millisecond, "the refused extra connection is logged")
	assert.Equal(t, 1, h.proxyConns())

	close(release)
	waitArrivals(t, arrived, 1)
	for _, a := range answers {
		assert.Equal(t, http.StatusOK, within(t, a, 10*time.Second))
	}
}
