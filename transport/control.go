package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/quic-go/quic-go"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-network/cocoon/attest/ratls"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// SendControl sends a message on the control stream.
func (c *Conn) SendControl(m proto.Message) error {
	c.ctrlMu.Lock()
	defer c.ctrlMu.Unlock()
	return c.ctrl.Send(m)
}

// Control delivers the control messages that transport does not handle itself (everything but
// Hello, Ping and Pong). It is closed when the connection ends.
func (c *Conn) Control() <-chan proto.Message { return c.control }

// readControl serves the control stream until it ends; its end ends the connection.
func (c *Conn) readControl() {
	for {
		m, err := c.ctrl.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) && c.qc.Context().Err() == nil {
				c.log.Debug().Err(err).Msg("control stream ended")
			}
			_ = c.qc.CloseWithError(wire.CodeProtocol, "control stream ended")
			return
		}
		switch m := m.(type) {
		case *wire.Ping:
			if err := c.SendControl(&wire.Pong{Nonce: m.GetNonce()}); err != nil {
				return
			}
		case *wire.Pong:
			c.pingMu.Lock()
			if ch, ok := c.pings[m.GetNonce()]; ok {
				close(ch)
				delete(c.pings, m.GetNonce())
			}
			c.pingMu.Unlock()
		case *wire.Hello:
			_ = c.qc.CloseWithError(wire.CodeProtocol, "second hello")
			return
		default:
			c.queueMu.Lock()
			n := len(c.queue)
			c.queue = append(c.queue, m)
			c.queueMu.Unlock()
			if n >= maxQueuedControl {
				_ = c.qc.CloseWithError(wire.CodeOverloaded, "control messages not consumed")
				return
			}
			select {
			case c.queued <- struct{}{}:
			default:
			}
		}
	}
}

// maxQueuedControl bounds control messages waiting for the application; a peer that floods
// them, or an application that stopped reading, ends the connection instead of memory.
const maxQueuedControl = 4096

// pump hands queued control messages to the application in order until the connection ends.
func (c *Conn) pump() {
	defer close(c.control)
	for {
		c.queueMu.Lock()
		var m proto.Message
		if len(c.queue) > 0 {
			m = c.queue[0]
			c.queue[0] = nil
			c.queue = c.queue[1:]
		}
		c.queueMu.Unlock()
		if m == nil {
			select {
			case <-c.queued:
				continue
			case <-c.qc.Context().Done():
				return
			}
		}
		select {
		case c.control <- m:
		case <-c.qc.Context().Done():
			return
		}
	}
}

// peerDrain is the drain window the peer announced in its Hello.
func peerDrain(h *wire.Hello) time.Duration {
	return time.Duration(min(h.GetDrainBeforeMs(), uint64(ratls.MaxValidity/time.Millisecond))) * time.Millisecond
}

// hello exchanges Hello messages on the control stream, the dialer's first, within the handshake
// timeout, and returns the peer's.
func hello(ctx context.Context, ctrl *Stream, cfg *Config, first bool) (*wire.Hello, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.HandshakeTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ctrl.s.CancelRead(quic.StreamErrorCode(wire.CodeTimeout)) })
	defer stop()
	send := func() error {
		return ctrl.Send(&wire.Hello{ProtocolVersion: wire.ProtocolVersion, SoftwareVersion: cfg.SoftwareVersion,
			DrainBeforeMs: uint64(cfg.DrainBefore / time.Millisecond)})
	}
	if first {
		if err := send(); err != nil {
			return nil, fmt.Errorf("send hello: %w", err)
		}
	}
	m, err := ctrl.Recv()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("hello: %w", ctx.Err())
		}
		return nil, fmt.Errorf("read hello: %w", err)
	}
	h, ok := m.(*wire.Hello)
	if !ok {
		return nil, fmt.Errorf("%w: expected hello, got %T", wire.ErrMalformedFrame, m)
	}
	if h.GetProtocolVersion() != wire.ProtocolVersion {
		return nil, fmt.Errorf("peer speaks protocol version %d, we speak %d", h.GetProtocolVersion(), wire.ProtocolVersion)
	}
	if !first {
		if err := send(); err != nil {
			return nil, fmt.Errorf("send hello: %w", err)
		}
	}
	return h, nil
}
