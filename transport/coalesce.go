package transport

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// DefaultCoalesceWindow is Config.CoalesceWindow's default: what a frame may wait, at one hop,
// for the frames of the connection's other streams to leave with it in one packet.
const DefaultCoalesceWindow = 500 * time.Microsecond

// coalescer gathers the frames that a connection's request streams flush within a short window
// and hands them to QUIC together, so that chunks of many answers leave in one packet (with one
// encryption, one syscall and one acknowledgement) instead of a packet each. A stream alone on its
// connection writes at once: batching never delays a lone answer, and a frame that does wait
// leaves when the window closes, whatever the other streams do.
type coalescer struct {
	window time.Duration
	// active counts the connection's request streams under way (Conn.begin, Conn.end).
	active atomic.Int32

	mu    sync.Mutex
	queue []*Stream // streams with frames waiting, each once
	spare []*Stream
	// timer closes a window (flush, on a goroutine of its own): the connection keeps no
	// goroutine for batching.
	timer *time.Timer
	// openWindow starts timer; tests replace it, to close windows themselves.
	openWindow func(d time.Duration)
}

func newCoalescer(window time.Duration) *coalescer {
	co := &coalescer{window: window}
	co.timer = time.AfterFunc(time.Hour, co.flush)
	co.timer.Stop()
	co.openWindow = func(d time.Duration) { co.timer.Reset(d) }
	return co
}

// batching reports whether a flush now should wait for the window: when other streams of the
// connection are under way too.
func (co *coalescer) batching() bool {
	return co != nil && co.active.Load() > 1
}

// add queues s, whose frames wait in s.pend, for the current window; the first stream queued
// opens the window.
func (co *coalescer) add(s *Stream) {
	co.mu.Lock()
	co.queue = append(co.queue, s)
	first := len(co.queue) == 1
	co.mu.Unlock()
	if first {
		co.openWindow(co.window)
	}
}

// stop ends batching with the connection: no window opens any more.
func (co *coalescer) stop() { co.timer.Stop() }

// flush closes the window: it writes every stream queued so far.
func (co *coalescer) flush() {
	co.mu.Lock()
	q := co.queue
	co.queue, co.spare = co.spare, nil
	co.mu.Unlock()
	var again []*Stream
	for i, s := range q {
		if !s.writeQueued() {
			again = append(again, s)
		}
		q[i] = nil
	}
	co.mu.Lock()
	co.spare = q[:0]
	co.mu.Unlock()
	for _, s := range again {
		co.add(s)
	}
}

// writeQueued hands s's waiting frames to QUIC without blocking. It returns false when s's owner
// is appending to them right now: s must be written in the next window. A stream whose peer's
// flow control holds it back is written by a goroutine of its own, which blocks the stream's next
// flush (its owner then waits, as it would have in a write) and never the connection's other
// streams.
func (s *Stream) writeQueued() bool {
	if !s.wmu.TryLock() {
		// A write of the owner's (writeNow, CloseSend) takes what waits with it.
		return s.writing.Load()
	}
	if len(s.pend) == 0 {
		s.queued = false
		s.wmu.Unlock()
		return true
	}
	err := s.s.TryWriteAll(s.pend)
	if errors.Is(err, quic.ErrWouldBlock) {
		s.writing.Store(true)
		go func() {
			defer s.wmu.Unlock()
			defer s.writing.Store(false)
			_, err := s.s.Write(s.pend)
			s.wrote(err)
		}()
		return true
	}
	s.wrote(err)
	s.wmu.Unlock()
	return true
}

// wrote records the result of writing s.pend; s.wmu is held.
func (s *Stream) wrote(err error) {
	s.queued = false
	if s.pendBox != nil {
		// QUIC copied the frames: the buffer goes back for another stream. After a failed
		// write QUIC may still hold it, so it is left to the collector.
		if err == nil && cap(s.pend) <= maxCoalesced+maxCoalesced/2 {
			*s.pendBox = s.pend[:0]
			pendPool.Put(s.pendBox)
		}
		s.pendBox = nil
	}
	s.pend = nil
	if err != nil && s.werr == nil {
		s.werr = err
	}
}
