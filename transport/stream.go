package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-network/cocoon/transport/wire"
)

// ErrFirstFrameTimeout is returned by the first read of a stream the peer opened when its first
// frame did not arrive whole within Config.FirstFrameTimeout; the stream is reset with CodeTimeout.
var ErrFirstFrameTimeout = errors.New("first frame not received in time")

// Stream is one request: a bidirectional QUIC stream carrying frames.
type Stream struct {
	s   *quic.Stream
	rd  *streamReader
	br  *bufio.Reader
	fr  *wire.FrameReader
	lim *streamLimits
	// wbuf holds frames queued and not yet flushed; its buffer comes from wbufPool and goes back
	// once flushed (wbox), so a stream waiting between two writes holds none.
	wbuf []byte
	wbox *[]byte
	// first tracks the first frame of a stream the peer opened, which must arrive whole within
	// lim.firstFrame; firstTimer resets the stream if it does not.
	first      atomic.Int32
	firstTimer *time.Timer

	// ended is called once when the request on the stream has ended (Conn counts those under
	// way); requester is true for a stream we opened.
	ended     func()
	endOnce   sync.Once
	requester bool

	// used has a bit for each direction this end is done with (usedSend, usedRecv); held, the
	// connection's count of streams not done with both, drops when the second bit is set.
	used atomic.Int32
	held *atomic.Int64

	// co batches this stream's flushes with those of the connection's other streams; nil (the
	// control stream) writes every flush at once. Frames waiting for the window are in pend,
	// which wmu guards with queued (s is in co's queue), werr (a write of them failed) and
	// writing (a write holds wmu while QUIC may block it).
	co      *coalescer
	wmu     sync.Mutex
	pend    []byte
	pendBox *[]byte // pend's buffer from pendPool, while frames wait in it
	queued  bool
	werr    error
	writing atomic.Bool
}

// pendPool holds the buffers frames wait in for a coalescing window.
var pendPool = sync.Pool{New: func() any { b := make([]byte, 0, 1<<10); return &b }}

// wbufPool holds the buffers frames are queued in until a flush. A relay queues a whole burst
// before it flushes (up to maxCoalesced), and a buffer grown to that once is reused instead of
// grown again by every answer.
var wbufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1<<10); return &b }}

// grab gives s a write buffer from wbufPool if it has none.
func (s *Stream) grab() {
	if s.wbox == nil {
		s.wbox = wbufPool.Get().(*[]byte)
		s.wbuf = (*s.wbox)[:0]
	}
}

// recycle gives back the write buffer once its frames were copied (into pend, or by QUIC).
func (s *Stream) recycle() {
	if s.wbox != nil && cap(s.wbuf) <= maxCoalesced+maxCoalesced/2 {
		*s.wbox = s.wbuf[:0]
		wbufPool.Put(s.wbox)
	}
	s.wbox, s.wbuf = nil, nil
}

// drop lets go of the write buffer after a failed write, which QUIC may still hold.
func (s *Stream) drop() { s.wbox, s.wbuf = nil, nil }

// readBuffer is a stream's read buffer (newStream).
const readBuffer = 1 << 10

// maxCoalesced bounds what a flush hands to the coalescer: a larger write (a whole non-streamed
// answer) fills packets of its own, and is not kept in a buffer per stream.
const maxCoalesced = 16 << 10

// States of Stream.first.
const (
	firstNone    = iota // a stream we opened: no deadline
	firstAwaited        // the deadline runs
	firstDone           // the first read ended in time, with a frame or an error
	firstLate           // the deadline passed: the stream was reset
)

func newStream(s *quic.Stream, lim *streamLimits) *Stream {
	// Reading through a buffer takes many small frames per read call, and lets a relay see that
	// more frames are already waiting (Buffered) and write them out together.
	// 1 KiB: one per open stream, and a chunk's frame is a few hundred bytes (a 128-byte token,
	// sealed, with its frame header); larger frames are read past the buffer. A burst beyond it
	// waits in rd's pooled buffer, which an idle stream does not hold.
	rd := &streamReader{s: s}
	br := bufio.NewReaderSize(rd, readBuffer)
	return &Stream{s: s, rd: rd, br: br, fr: wire.NewFrameReader(br, lim.maxFrame), lim: lim}
}

const (
	usedSend int32 = 1 << iota // closed for sending or cancelled
	usedRecv                   // read to its end or an error, closed for reading or cancelled
)

// doneWith records that this end is done with the directions in bits. QUIC keeps a stream until
// both are: one the application never finishes stays in the connection's memory while it lasts.
func (s *Stream) doneWith(bits int32) {
	if old := s.used.Or(bits); old != usedSend|usedRecv && old|bits == usedSend|usedRecv && s.held != nil {
		s.held.Add(-1)
	}
}

// track calls ended once the request on the stream has ended: for a stream we opened (requester),
// at the last frame of its answer (Done, Error, ModelsList), at its end or when we cancel it; for
// one the peer opened, when our side of it is closed or cancelled, or the peer stops reading.
func (s *Stream) track(ended func(), requester bool) {
	s.ended, s.requester = ended, requester
	if !requester {
		context.AfterFunc(s.s.Context(), s.finish)
	}
}

func (s *Stream) finish() {
	if s.ended != nil {
		s.endOnce.Do(s.ended)
	}
}

// lastFrame reports whether t ends an answer (README §6).
func lastFrame(t wire.Type) bool {
	return t == wire.TypeDone || t == wire.TypeError || t == wire.TypeModelsList
}

// awaitFirstFrame starts the first frame's deadline, for a stream the peer opened: a peer must
// not hold a stream, and the goroutine serving it, by opening it and sending nothing.
func (s *Stream) awaitFirstFrame() {
	d := s.lim.firstFrame
	s.first.Store(firstAwaited)
	s.firstTimer = time.AfterFunc(d, func() {
		if !s.first.CompareAndSwap(firstAwaited, firstLate) {
			return
		}
		s.lim.refused("first_frame_timeout").Int64("stream", s.ID()).Dur("timeout", d).
			Msg("reset a stream whose first frame did not arrive in time")
		s.Cancel(wire.CodeTimeout)
	})
}

// Buffered reports how many received bytes wait to be read.
func (s *Stream) Buffered() int {
	if s.br == nil {
		return 0
	}
	return s.br.Buffered() + s.rd.spill.Len()
}

// FrameBuffered reports whether a whole next frame has already arrived, so that reading it will not
// wait: a relay then holds what it has and sends both together.
func (s *Stream) FrameBuffered() bool {
	n := s.Buffered()
	if n < 4 {
		return false
	}
	hdr, err := s.br.Peek(4) // already received: does not wait
	if err != nil {
		return false
	}
	size := int(binary.BigEndian.Uint32(hdr))
	return n >= 4+size
}

// Send writes one message as a frame. Not safe for concurrent use with other Sends.
func (s *Stream) Send(m proto.Message) error {
	var err error
	s.grab()
	at := len(s.wbuf)
	s.wbuf, err = wire.Marshal(s.wbuf, m)
	if err != nil {
		return err
	}
	if s.lim.tap != nil {
		s.lim.tap(true, wire.Type(s.wbuf[at+4]), s.wbuf[at+5:])
	}
	if err := s.Flush(); err != nil {
		return fmt.Errorf("send %T: %w", m, err)
	}
	return nil
}

// SendFrame writes a pre-encoded payload of type t (after any queued frames), for hot paths that
// encode without proto.
func (s *Stream) SendFrame(t wire.Type, payload []byte) error {
	if s.lim.tap != nil {
		s.lim.tap(true, t, payload)
	}
	s.grab()
	s.wbuf = wire.AppendFrame(s.wbuf, t, payload)
	return s.Flush()
}

// QueueFrame appends a frame to be written by the next Flush or SendFrame: a relay that sees more
// frames waiting (Buffered) sends them in one write.
func (s *Stream) QueueFrame(t wire.Type, payload []byte) {
	if s.lim.tap != nil {
		s.lim.tap(true, t, payload)
	}
	s.grab()
	s.wbuf = wire.AppendFrame(s.wbuf, t, payload)
}

// Flush writes the queued frames. While other streams of the connection are under way, they may
// wait up to Config.CoalesceWindow to leave with theirs; a failure to write them is then returned
// by a later Flush, Send or CloseSend.
func (s *Stream) Flush() error {
	if len(s.wbuf) == 0 {
		return nil
	}
	if !s.co.batching() || len(s.wbuf) > maxCoalesced {
		return s.writeNow()
	}
	s.wmu.Lock()
	if len(s.pend)+len(s.wbuf) > maxCoalesced {
		s.wmu.Unlock()
		return s.writeNow()
	}
	err, queued := s.werr, s.queued
	switch {
	case err != nil:
		s.recycle()
	default:
		if s.pendBox == nil {
			// Streams live for one request: a buffer that waiting frames already grew is
			// reused from one stream to the next instead of growing again on each.
			s.pendBox = pendPool.Get().(*[]byte)
			s.pend = (*s.pendBox)[:0]
		}
		s.pend, s.queued = append(s.pend, s.wbuf...), true
		s.recycle()
	}
	s.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("send frame: %w", err)
	}
	if !queued {
		s.co.add(s)
	}
	return nil
}

// writeNow writes the frames waiting for the coalescer's window, if any, and the queued ones.
func (s *Stream) writeNow() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.writing.Store(true)
	defer s.writing.Store(false)
	err := s.werr
	direct := false // QUIC was handed wbuf itself
	if b := s.wbuf; err == nil && len(b)+len(s.pend) > 0 {
		if len(s.pend) > 0 {
			s.pend = append(s.pend, s.wbuf...)
			b = s.pend
		} else {
			direct = true
		}
		_, err = s.s.Write(b)
		s.wrote(err)
	}
	if direct && err != nil {
		s.drop()
	} else {
		s.recycle()
	}
	if err != nil {
		return fmt.Errorf("send frame: %w", err)
	}
	return nil
}

// Recv reads the next message. At the peer's clean end of the stream it returns io.EOF.
// A frame over the limit cancels the stream with CodeFrameTooLarge.
func (s *Stream) Recv() (proto.Message, error) {
	t, payload, err := s.RecvFrame()
	if err != nil {
		return nil, err
	}
	m, err := wire.Unmarshal(t, payload)
	if err != nil {
		s.Cancel(wire.CodeProtocol)
		return nil, err
	}
	return m, nil
}

// RecvFrame reads the next raw frame; the payload is valid until the next call. A frame over the
// size limit resets the stream with CodeFrameTooLarge, before its payload is read; a stream the
// peer opened whose first frame is late was reset with CodeTimeout (ErrFirstFrameTimeout).
func (s *Stream) RecvFrame() (wire.Type, []byte, error) {
	if s.fr == nil {
		return 0, nil, errReadClosed
	}
	t, payload, err := s.fr.Next()
	if err == nil && s.lim.tap != nil {
		s.lim.tap(false, t, payload)
	}
	if s.requester && (err != nil || lastFrame(t)) {
		s.finish()
	}
	if s.first.CompareAndSwap(firstAwaited, firstDone) {
		s.firstTimer.Stop()
	} else if s.first.Load() == firstLate {
		return 0, nil, s.lateFirstFrame()
	}
	if err != nil {
		return 0, nil, s.recvFailed(err)
	}
	return t, payload, nil
}

// lateFirstFrame and recvFailed are calls of their own, kept out of RecvFrame, which stays on the
// stack of every goroutine that waits for a frame: their temporaries would double its frame.
//
//go:noinline
func (s *Stream) lateFirstFrame() error {
	return fmt.Errorf("%w: not whole within %v", ErrFirstFrameTimeout, s.lim.firstFrame)
}

// recvFailed ends the stream's receiving side after the frame reader's error err, resetting the
// stream when the peer broke the framing, and returns err.
//
//go:noinline
func (s *Stream) recvFailed(err error) error {
	s.doneWith(usedRecv) // the end of the stream, or an error that ends it
	if errors.Is(err, wire.ErrFrameTooLarge) {
		s.lim.refused(s.lim.frameLimit).Int64("stream", s.ID()).Err(err).
			Msg("reset a stream whose frame is over the size limit")
		s.Cancel(wire.CodeFrameTooLarge)
	} else if errors.Is(err, wire.ErrMalformedFrame) {
		s.Cancel(wire.CodeProtocol)
	}
	return err
}

// CloseSend ends our side of the stream cleanly, after any frames still waiting to be written;
// the peer reads io.EOF after the last frame. A peer that stopped reading with CloseRead had
// all it wanted: closing after that is no error.
func (s *Stream) CloseSend() error {
	err := s.writeNow() // it gave the write buffer back
	s.doneWith(usedSend)
	if cerr := s.s.Close(); err == nil {
		err = cerr
	}
	if err != nil && s.peerHasAll() {
		return nil
	}
	return err
}

// peerHasAll reports whether the peer stopped reading the stream with CodeOK (its CloseRead): it
// read all it wanted, so what this end could not send after that is no failure.
func (s *Stream) peerHasAll() bool {
	var se *quic.StreamError
	return errors.As(context.Cause(s.s.Context()), &se) && se.Remote && se.ErrorCode == quic.StreamErrorCode(wire.CodeOK)
}

// Cancel aborts the stream in both directions; the peer's reads and writes fail with code.
func (s *Stream) Cancel(code quic.ApplicationErrorCode) {
	s.s.CancelRead(quic.StreamErrorCode(code))
	s.s.CancelWrite(quic.StreamErrorCode(code))
	s.doneWith(usedSend | usedRecv)
	s.finish()
}

// CloseRead tells the peer that this end reads no more of the stream: after the last frame the
// protocol expects from it, so that the stream ends, and frees its slot, without waiting for the
// peer's end of it. The stream's read buffers go with it, since a stream can stay open long after
// (an answer being generated); a later read fails. The stream's reader calls it, between reads.
func (s *Stream) CloseRead() {
	s.s.CancelRead(quic.StreamErrorCode(wire.CodeOK))
	s.rd.spill.Release()
	s.br, s.fr = nil, nil
	s.doneWith(usedRecv)
}

// errReadClosed is a read after CloseRead.
var errReadClosed = errors.New("read from a stream after CloseRead")

// Context is cancelled when the peer stops reading (it cancelled the stream) or our side is closed.
func (s *Stream) Context() context.Context { return s.s.Context() }

// ID is the QUIC stream ID, for logs.
func (s *Stream) ID() int64 { return int64(s.s.StreamID()) }

// ErrorCode extracts the application code of a stream or connection error, if it carries one.
func ErrorCode(err error) (quic.ApplicationErrorCode, bool) {
	var se *quic.StreamError
	if errors.As(err, &se) {
		return quic.ApplicationErrorCode(se.ErrorCode), true
	}
	var ae *quic.ApplicationError
	if errors.As(err, &ae) {
		return ae.ErrorCode, true
	}
	return 0, false
}
