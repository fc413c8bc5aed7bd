package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// header is a frame header declaring size bytes (type byte included) of type t.
func header(t wire.Type, size uint32) []byte {
	return append(binary.BigEndian.AppendUint32(nil, size), byte(t))
}

// readSignal passes reads through and reports, once, the first read asked for after the frame
// header came through: the frame reader has decided how to hold the payload and waits for it.
type readSignal struct {
	r       io.Reader
	n       int
	once    sync.Once
	waiting chan<- struct{}
}

func (r *readSignal) Read(p []byte) (int, error) {
	if r.n >= wire.HeaderSize {
		r.once.Do(func() { r.waiting <- struct{}{} })
	}
	n, err := r.r.Read(p)
	r.n += n
	return n, err
}

// TestHeaderOnlyStreamsHoldLittleMemory: streams that declare the largest frame and send nothing
// more cost the receiver about what arrived, not what was declared.
func TestHeaderOnlyStreamsHoldLittleMemory(t *testing.T) {
	require := require.New(t)
	const streams = 400
	scfg := newNode(t, attest.RoleProxy).config(t)
	scfg.MaxFrameSize, scfg.MaxClientFrameSize = wire.DefaultMaxFrameSize, wire.DefaultMaxFrameSize
	scfg.MaxStreams = streams
	sc, cc := pairConfigs(t, scfg, newNode(t, attest.RoleClient).config(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	for range streams {
		cs, err := cc.OpenStream(ctx)
		require.NoError(err)
		_, err = cs.s.Write(header(wire.TypeRequest, wire.DefaultMaxFrameSize))
		require.NoError(err)
	}
	waiting := make(chan struct{}, streams)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cc.Close(0, "")
	for range streams {
		ss, err := sc.AcceptStream(ctx)
		require.NoError(err)
		ss.br.Reset(&readSignal{r: ss.s, waiting: waiting})
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, _ = ss.RecvFrame()
		}()
	}
	for i := range streams {
		select {
		case <-waiting:
		case <-ctx.Done():
			t.Fatalf("only %d of %d streams read their header", i, streams)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("%d header-only streams: heap in use grew by %.1f MiB", streams, float64(grown)/(1<<20))
	assert.Less(t, grown, int64(64<<20), "header-only streams pin memory")
}

// TestFirstFrameDeadline: a stream whose first frame is not whole in time is reset with
// CodeTimeout, and the goroutine reading it ends.
func TestFirstFrameDeadline(t *testing.T) {
	testCases := map[string]struct {
		// open opens the stream that stalls and writes its start.
		open func(ctx context.Context, t *testing.T, cc *Conn) *Stream
	}{
		"half a header": {open: func(ctx context.Context, t *testing.T, cc *Conn) *Stream {
			return openWith(ctx, t, cc, []byte{0, 0})
		}},
		"header without payload": {open: func(ctx context.Context, t *testing.T, cc *Conn) *Stream {
			return openWith(ctx, t, cc, header(wire.TypeRequest, 100))
		}},
		"header and part of the payload": {open: func(ctx context.Context, t *testing.T, cc *Conn) *Stream {
			return openWith(ctx, t, cc, append(header(wire.TypeRequest, 100), make([]byte, 10)...))
		}},
		"opened by a later stream, never written": {open: func(ctx context.Context, t *testing.T, cc *Conn) *Stream {
			idle, err := cc.OpenStream(ctx)
			require.NoError(t, err)
			later := openWith(ctx, t, cc, nil)
			require.NoError(t, later.Send(&wire.ModelsRequest{}))
			return idle
		}},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			require := require.New(t)
			sc, cc := clientPair(t, 200*time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			baseline := runtime.NumGoroutine()

			cs := tc.open(ctx, t, cc)
			ss, err := sc.AcceptStream(ctx)
			require.NoError(err)
			served := make(chan error, 1)
			go func() {
				_, _, err := ss.RecvFrame()
				served <- err
			}()
			select {
			case err := <-served:
				require.ErrorIs(err, ErrFirstFrameTimeout)
			case <-ctx.Done():
				t.Fatal("stalled stream not reset")
			}
			requireReset(t, cs, wire.CodeTimeout)
			// Polled here, not with require.Eventually, whose checks run in goroutines of their own.
			for runtime.NumGoroutine() > baseline {
				select {
				case <-ctx.Done():
					t.Fatalf("%d goroutines left behind", runtime.NumGoroutine()-baseline)
				case <-time.After(10 * time.Millisecond):
				}
			}
		})
	}
}

// requireReset checks that the peer reset s with code.
func requireReset(t *testing.T, s *Stream, code quic.ApplicationErrorCode) {
	t.Helper()
	_, err := s.Recv()
	got, ok := ErrorCode(err)
	require.True(t, ok, "read ended with %v, not a reset", err)
	require.Equal(t, code, got)
}

// clientPair connects a client to a proxy whose first-frame deadline is firstFrame.
func clientPair(t *testing.T, firstFrame time.Duration) (*Conn, *Conn) {
	scfg := newNode(t, attest.RoleProxy).config(t)
	scfg.FirstFrameTimeout = firstFrame
	return pairConfigs(t, scfg, newNode(t, attest.RoleClient).config(t))
}

// openWith opens a stream and writes raw bytes on it.
func openWith(ctx context.Context, t *testing.T, c *Conn, raw []byte) *Stream {
	s, err := c.OpenStream(ctx)
	require.NoError(t, err)
	if len(raw) > 0 {
		_, err = s.s.Write(raw)
		require.NoError(t, err)
	}
	return s
}

// TestIncomingStreamLimit: a peer has at most MaxStreams request streams open at once; the next
// waits in OpenStream until one ends.
func TestIncomingStreamLimit(t *testing.T) {
	testCases := map[string]struct {
		maxStreams  int64
		want        int
		listenerOut bool // the listener opens the streams, to the dialer
	}{
		"listener default":   {want: DefaultMaxStreams},
		"listener, set to 8": {maxStreams: 8, want: 8},
		"dialer default":     {want: DefaultDialMaxStreams, listenerOut: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			require := require.New(t)
			scfg, ccfg := newNode(t, attest.RoleProxy).config(t), newNode(t, attest.RoleWorker).config(t)
			scfg.MaxStreams, ccfg.MaxStreams = tc.maxStreams, tc.maxStreams
			sc, cc := pairConfigs(t, scfg, ccfg)
			opener, acceptor := cc, sc
			if tc.listenerOut {
				opener, acceptor = sc, cc
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var open []*Stream
			for range tc.want {
				s, err := opener.OpenStream(ctx)
				require.NoError(err)
				open = append(open, s)
			}
			short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancelShort()
			_, err := opener.OpenStream(short)
			require.ErrorIs(err, context.DeadlineExceeded, "a stream over the limit opened")

			// One request ends: a stream may open again.
			require.NoError(open[0].Send(&wire.Ping{Nonce: 1}))
			require.NoError(open[0].CloseSend())
			as, err := acceptor.AcceptStream(ctx)
			require.NoError(err)
			_, err = as.Recv()
			require.NoError(err)
			_, err = as.Recv()
			require.ErrorIs(err, io.EOF)
			require.NoError(as.CloseSend())
			_, err = open[0].Recv()
			require.ErrorIs(err, io.EOF)
			_, err = opener.OpenStream(ctx)
			require.NoError(err, "a stream freed by an ended one")
		})
	}
}

// TestClientFrameCap: frames from clients are capped near their request body limit, and refused
// from the header alone; attested peers may send more.
func TestClientFrameCap(t *testing.T) {
	testCases := map[string]struct {
		peer     attest.Role
		size     int // declared frame size, type byte included
		complete bool
		wantCode quic.ApplicationErrorCode
	}{
		"client frame over the cap, header only": {peer: attest.RoleClient, size: DefaultMaxClientFrameSize + 1, wantCode: wire.CodeFrameTooLarge},
		"client frame at the cap":                {peer: attest.RoleClient, size: DefaultMaxClientFrameSize, complete: true},
		"worker frame over the client cap":       {peer: attest.RoleWorker, size: DefaultMaxClientFrameSize + 1, complete: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			require := require.New(t)
			sc, cc := pair(t, newNode(t, attest.RoleProxy), newNode(t, tc.peer))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			raw := header(wire.TypeChunk, uint32(tc.size))
			if tc.complete {
				raw = append(raw, make([]byte, tc.size-1)...)
			}
			cs, err := cc.OpenStream(ctx)
			require.NoError(err)
			wrote := make(chan error, 1)
			go func() { // a whole frame is more than flow control lets through before it is read
				_, err := cs.s.Write(raw)
				wrote <- err
			}()
			ss, err := sc.AcceptStream(ctx)
			require.NoError(err)
			got := make(chan error, 1)
			go func() {
				_, p, err := ss.RecvFrame()
				if err == nil && len(p) != tc.size-1 {
					err = errors.New("short payload")
				}
				got <- err
			}()
			select {
			case err := <-got:
				if tc.wantCode == 0 {
					require.NoError(err)
					require.NoError(<-wrote)
					return
				}
				require.ErrorIs(err, wire.ErrFrameTooLarge)
			case <-ctx.Done():
				t.Fatal("frame neither read nor refused")
			}
			requireReset(t, cs, tc.wantCode)
		})
	}

	t.Run("a request with a body at the client's default limit fits", func(t *testing.T) {
		req := &wire.Request{Id: strings.Repeat("i", 64), Model: strings.Repeat("m", 1024), Stream: true,
			Body: make([]byte, 4<<20), MaxCoefficient: math.MaxUint32, TimeoutMs: math.MaxUint32}
		frame, err := wire.Marshal(nil, req)
		require.NoError(t, err)
		assert.LessOrEqual(t, len(frame)-4, DefaultMaxClientFrameSize)
	})
}

// TestConnectionsPerSource: a listener keeps at most MaxConnsPerSource connections from one
// address; the next is refused with CodeOverloaded, and one may connect again once one closes.
func TestConnectionsPerSource(t *testing.T) {
	require := require.New(t)
	scfg := newNode(t, attest.RoleProxy).config(t)
	scfg.MaxConnsPerSource = 2
	l, err := Listen("127.0.0.1:0", scfg)
	require.NoError(err)
	t.Cleanup(func() { _ = l.Close() })
	client := newNode(t, attest.RoleClient)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var conns []*Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close(0, "")
			<-c.Done()
		}
	}()
	dial := func() error {
		c, err := Dial(ctx, l.Addr().String(), client.config(t))
		if err == nil {
			conns = append(conns, c)
		}
		return err
	}
	require.NoError(dial())
	require.NoError(dial())
	err = dial()
	require.Error(err, "a third connection from one address")
	code, ok := ErrorCode(err)
	require.True(ok, "refusal carries no code: %v", err)
	require.Equal(wire.CodeOverloaded, code)
	require.Contains(err.Error(), "connections")

	_ = conns[0].Close(0, "")
	<-conns[0].Done()
	conns = conns[1:]
	require.Eventually(func() bool { return dial() == nil }, 5*time.Second, 20*time.Millisecond,
		"a closed connection still counts")
}

// Over its limit an address is first told why (the handshake completes, to carry the reason),
// then, with as many refusals under way, refused at the first packet; releases count down.
func TestSourceAdmission(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	testCases := map[string]struct {
		steps func(s *sources) []admission
		want  []admission
	}{
		"under, over, far over": {
			steps: func(s *sources) []admission {
				return []admission{s.admit(a), s.admit(a), s.admit(a), s.admit(a), s.admit(a)}
			},
			want: []admission{admitted, admitted, refusedWithReason, refusedWithReason, refusedEarly},
		},
		"addresses count apart": {
			steps: func(s *sources) []admission {
				return []admission{s.admit(a), s.admit(a), s.admit(b)}
			},
			want: []admission{admitted, admitted, admitted},
		},
		"a closed connection frees its place": {
			steps: func(s *sources) []admission {
				first := s.admit(a)
				second := s.admit(a)
				s.release(a, first)
				return []admission{first, second, s.admit(a), s.admit(a)}
			},
			want: []admission{admitted, admitted, admitted, refusedWithReason},
		},
		"a finished refusal frees its place": {
			steps: func(s *sources) []admission {
				got := []admission{s.admit(a), s.admit(a), s.admit(a), s.admit(a)}
				s.release(a, got[2])
				return append(got, s.admit(a), s.admit(a))
			},
			want: []admission{admitted, admitted, refusedWithReason, refusedWithReason, refusedWithReason, refusedEarly},
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			s := newSources(2)
			assert.Equal(t, tc.want, tc.steps(s))
		})
	}

	t.Run("released to nothing, an address is forgotten", func(t *testing.T) {
		s := newSources(2)
		s.release(a, s.admit(a))
		assert.Empty(t, s.n)
	})
	t.Run("busy from half the limit", func(t *testing.T) {
		s := newSources(4)
		s.admit(a)
		assert.False(t, s.busy(a))
		s.admit(a)
		assert.True(t, s.busy(a))
		assert.False(t, s.busy(b))
	})
}

// The deadline is for the first frame only: a stream may then wait for its next frame as long as
// the request lasts.
func TestFirstFrameDeadlineEndsWithTheFirstFrame(t *testing.T) {
	require := require.New(t)
	sc, cc := clientPair(t, 50*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cs, err := cc.OpenStream(ctx)
	require.NoError(err)
	require.NoError(cs.Send(&wire.ModelsRequest{}))
	ss, err := sc.AcceptStream(ctx)
	require.NoError(err)
	_, err = ss.Recv()
	require.NoError(err)
	require.EqualValues(firstDone, ss.first.Load())
	require.False(ss.firstTimer.Stop(), "the deadline still runs")
	require.NoError(cs.Send(&wire.ModelsRequest{}))
	_, err = ss.Recv()
	require.NoError(err)
}
