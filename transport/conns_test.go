package transport

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// TestConnsHeldStreams: a node's Conns sums the streams held on its live connections, and a
// connection that ends leaves the set with its streams.
func TestConnsHeldStreams(t *testing.T) {
	require := require.New(t)
	dialer := newNode(t, attest.RoleProxy)
	cfg := dialer.config(t)
	cfg.Conns = new(Conns)
	_, first := pairConfigs(t, newNode(t, attest.RoleWorker).config(t), cfg)
	_, second := pairConfigs(t, newNode(t, attest.RoleWorker).config(t), cfg)
	require.Equal(2, cfg.Conns.count())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []*Conn{first, first, second} {
		s, err := c.OpenStream(ctx)
		require.NoError(err)
		require.NoError(s.SendFrame(wire.TypeChunk, []byte("request")))
	}
	require.EqualValues(3, cfg.Conns.HeldStreams())

	require.NoError(first.Close(wire.CodeShutdown, "test"))
	<-first.Done()
	require.Eventually(func() bool { return cfg.Conns.count() == 1 }, 5*time.Second, time.Millisecond)
	require.EqualValues(1, cfg.Conns.HeldStreams(), "the streams of a connection that ended are gone with it")
}
