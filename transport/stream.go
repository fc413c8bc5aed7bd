package transport

import (
	"context"
	"errors"
	"fmt"

	"github.com/quic-go/quic-go"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-network/cocoon/transport/wire"
)

// Stream is one request: a bidirectional QUIC stream carrying frames.
type Stream struct {
	s    *quic.Stream
	fr   *wire.FrameReader
	wbuf []byte
}

func newStream(s *quic.Stream, maxFrame int) *Stream {
	return &Stream{s: s, fr: wire.NewFrameReader(s, maxFrame)}
}

// Send writes one message as a frame. Not safe for concurrent use with other Sends.
func (s *Stream) Send(m proto.Message) error {
	var err error
	s.wbuf, err = wire.Marshal(s.wbuf[:0], m)
	if err != nil {
		return err
	}
	if _, err := s.s.Write(s.wbuf); err != nil {
		return fmt.Errorf("send %T: %w", m, err)
	}
	return nil
}

// SendFrame writes a pre-encoded payload of type t, for hot paths that encode without proto.
func (s *Stream) SendFrame(t wire.Type, payload []byte) error {
	s.wbuf = wire.AppendFrame(s.wbuf[:0], t, payload)
	if _, err := s.s.Write(s.wbuf); err != nil {
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

// RecvFrame reads the next raw frame; the payload is valid until the next call.
func (s *Stream) RecvFrame() (wire.Type, []byte, error) {
	t, payload, err := s.fr.Next()
	if err != nil {
		if errors.Is(err, wire.ErrFrameTooLarge) {
			s.Cancel(wire.CodeFrameTooLarge)
		} else if errors.Is(err, wire.ErrMalformedFrame) {
			s.Cancel(wire.CodeProtocol)
		}
		return 0, nil, err
	}
	return t, payload, nil
}

// CloseSend ends our side of the stream cleanly; the peer reads io.EOF after the last frame.
func (s *Stream) CloseSend() error { return s.s.Close() }

// Cancel aborts the stream in both directions; the peer's reads and writes fail with code.
func (s *Stream) Cancel(code quic.ApplicationErrorCode) {
	s.s.CancelRead(quic.StreamErrorCode(code))
	s.s.CancelWrite(quic.StreamErrorCode(code))
}

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
