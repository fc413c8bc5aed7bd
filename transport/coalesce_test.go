package transport

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// recvWithin reads s's next frame, failing the test if none arrives within d (a deadline for a
// test that would otherwise hang, not a measure of speed).
func recvWithin(t *testing.T, s *Stream, d time.Duration) (wire.Type, []byte) {
	t.Helper()
	type frame struct {
		t   wire.Type
		p   []byte
		err error
	}
	got := make(chan frame, 1)
	go func() {
		ft, p, err := s.RecvFrame()
		got <- frame{ft, bytes.Clone(p), err}
	}()
	select {
	case f := <-got:
		require.NoError(t, f.err)
		return f.t, f.p
	case <-time.After(d):
		t.Fatalf("no frame within %s", d)
		return 0, nil
	}
}

// TestLoneStreamWritesAtOnce: a stream alone on its connection never waits for a window, however
// long the window is.
func TestLoneStreamWritesAtOnce(t *testing.T) {
	require := require.New(t)
	server, client := newNode(t, attest.RoleWorker), newNode(t, attest.RoleProxy)
	ccfg := client.config(t)
	ccfg.CoalesceWindow = time.Hour
	sc, cc := pairConfigs(t, server.config(t), ccfg)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cs, err := cc.OpenStream(ctx)
	require.NoError(err)
	require.NoError(cs.SendFrame(wire.TypeChunk, []byte("token")))
	ss, err := sc.AcceptStream(ctx)
	require.NoError(err)
	ft, p := recvWithin(t, ss, 10*time.Second)
	require.Equal(wire.TypeChunk, ft)
	require.Equal("token", string(p))
	require.NoError(cs.CloseSend())
}

// TestLoneChunkLeavesWhenTheWindowCloses: with other streams under way, a chunk that no other
// stream's frames join still leaves when its window closes: the coalescer opens the window (of
// Config.CoalesceWindow) at the chunk's flush and writes it when the window closes, without
// waiting for anything else.
func TestLoneChunkLeavesWhenTheWindowCloses(t *testing.T) {
	require := require.New(t)
	assert := assert.New(t)
	server, client := newNode(t, attest.RoleWorker), newNode(t, attest.RoleProxy)
	ccfg := client.config(t)
	ccfg.CoalesceWindow = 3 * time.Millisecond
	var (
		mu    sync.Mutex
		asked []time.Duration
	)
	ccfg.coalesceOpen = func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, d)
	}
	sc, cc := pairConfigs(t, server.config(t), ccfg)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// Three requests under way; only the first sends anything.
	var streams []*Stream
	for range 3 {
		s, err := cc.OpenStream(ctx)
		require.NoError(err)
		streams = append(streams, s)
	}
	require.NoError(streams[0].SendFrame(wire.TypeChunk, []byte("lone token")))
	streams[0].wmu.Lock()
	waiting := string(streams[0].pend)
	streams[0].wmu.Unlock()
	assert.Contains(waiting, "lone token", "the chunk waits for the window")

	// The window closes: the chunk leaves, though no other stream wrote.
	cc.co.flush()
	ss, err := sc.AcceptStream(ctx)
	require.NoError(err)
	ft, p := recvWithin(t, ss, 10*time.Second)
	require.Equal(wire.TypeChunk, ft)
	require.Equal("lone token", string(p))
	mu.Lock()
	assert.Equal([]time.Duration{3 * time.Millisecond}, asked, "one window, of the configured bound, opened by the chunk")
	mu.Unlock()
	for _, s := range streams {
		s.Cancel(wire.CodeCancelled)
	}
}

// TestCoalescedStreamsKeepOrder: many streams flushing chunks at once, through the coalescer,
// each deliver every frame in order, and CloseSend writes what still waits before the end.
func TestCoalescedStreamsKeepOrder(t *testing.T) {
	require := require.New(t)
	sc, cc := pair(t, newNode(t, attest.RoleWorker), newNode(t, attest.RoleProxy))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const streams, chunks = 20, 50
	errs := make(chan error, 2*streams)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, err := range onStreams(ctx, cc, streams, func(i int, s *Stream) error {
			for j := range chunks {
				if err := s.SendFrame(wire.TypeChunk, fmt.Appendf(nil, "%d/%d", i, j)); err != nil {
					return err
				}
			}
			return s.CloseSend()
		}) {
			errs <- err
		}
	}()
	for range streams {
		ss, err := sc.AcceptStream(ctx)
		require.NoError(err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var prefix string
			for j := 0; ; j++ {
				_, p, err := ss.RecvFrame()
				if err != nil {
					if j != chunks {
						errs <- fmt.Errorf("stream ended after %d of %d chunks: %w", j, chunks, err)
					}
					return
				}
				var i, k int
				if _, err := fmt.Sscanf(string(p), "%d/%d", &i, &k); err != nil || k != j || (prefix != "" && prefix != fmt.Sprint(i)) {
					errs <- fmt.Errorf("frame %d: got %q", j, p)
					return
				}
				prefix = fmt.Sprint(i)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(err)
	}
}

// TestBlockedStreamDoesNotHoldOthers: a stream whose peer does not read, so that QUIC flow control
// holds its writes back, waits alone: the coalescer hands its frames to a write of their own, and
// the chunks of the connection's other streams still leave.
func TestBlockedStreamDoesNotHoldOthers(t *testing.T) {
	require := require.New(t)
	server, client := newNode(t, attest.RoleWorker), newNode(t, attest.RoleProxy)
	ccfg := client.config(t)
	ccfg.coalesceOpen = func(time.Duration) {}
	sc, cc := pairConfigs(t, server.config(t), ccfg)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	blocked, err := cc.OpenStream(ctx)
	require.NoError(err)
	other, err := cc.OpenStream(ctx)
	require.NoError(err)
	// Close to the peer's initial stream window (512 KiB), in frames too large to wait for a
	// window (written at once)...
	for _, n := range []int{64 << 10, 64 << 10, 64 << 10, 64 << 10, 64 << 10, 64 << 10, 64 << 10, 48 << 10} {
		require.NoError(blocked.SendFrame(wire.TypeChunk, make([]byte, n)))
	}
	// ...then one that waits for the window and goes 40 bytes beyond it.
	require.NoError(blocked.SendFrame(wire.TypeChunk, make([]byte, maxCoalesced-wire.HeaderSize)))
	cc.co.flush()

	require.NoError(other.SendFrame(wire.TypeChunk, []byte("still moving")))
	cc.co.flush()
	var first, second *Stream
	for range 2 {
		ss, err := sc.AcceptStream(ctx)
		require.NoError(err)
		if ss.ID() == other.ID() {
			second = ss
		} else {
			first = ss
		}
	}
	require.NotNil(second)
	_, p := recvWithin(t, second, 10*time.Second)
	require.Equal("still moving", string(p))

	// Reading the blocked stream lets its write finish.
	done := make(chan error, 1)
	go func() { done <- blocked.CloseSend() }()
	for {
		if _, _, err := first.RecvFrame(); err != nil {
			break
		}
	}
	require.NoError(<-done)
	require.NoError(other.CloseSend())
}
