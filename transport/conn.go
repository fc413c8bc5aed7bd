package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/ratls"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// ErrClosed is returned by operations on a closed connection or listener.
var ErrClosed = errors.New("connection closed")

// ErrPeerRefused wraps every refusal of the peer by our own verification during Dial, beside the
// attest or certificate error that says why: callers tell "not allowed" from "not reachable".
var ErrPeerRefused = errors.New("refused peer")

// Conn is an attested connection to one verified peer. Requests each get their own bidirectional
// stream; the first stream is the control stream, which carries Hello, pings and any control
// messages the roles exchange (registration, load).
type Conn struct {
	qc   *quic.Conn
	peer *attest.Peer
	cfg  *Config
	log  zerolog.Logger

	ctrl    *Stream
	ctrlMu  sync.Mutex // serialises writes on the control stream
	control chan proto.Message

	// queue decouples reading the control stream from the application consuming it, so a slow
	// consumer never delays a Pong (which would get the connection declared dead).
	queueMu sync.Mutex
	queue   []proto.Message
	queued  chan struct{} // signalled when queue grows

	pingMu sync.Mutex
	pings  map[uint64]chan struct{}
	nonce  atomic.Uint64

	wg   sync.WaitGroup // the connection's own goroutines
	done chan struct{}  // closed once the connection ended and wg is done

	pingEvery atomic.Int64 // nanoseconds; see SetPingInterval
	pingWake  chan struct{}

	ends     time.Time
	drainAt  time.Time
	draining chan struct{} // closed at drainAt
}

// Peer is the verified peer at the other end.
func (c *Conn) Peer() *attest.Peer { return c.peer }

// RemoteAddr is the peer's UDP address.
func (c *Conn) RemoteAddr() net.Addr { return c.qc.RemoteAddr() }

// Done is closed when the connection has ended and its goroutines have stopped.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Ends is when the connection will be closed: when the earlier of the two certificates expires.
func (c *Conn) Ends() time.Time { return c.ends }

// Draining is closed Config.DrainBefore ahead of Ends (or the peer's, if longer). From then on new requests should go over a
// replacement connection, while those under way finish on this one; the connection still carries
// whatever is sent on it.
func (c *Conn) Draining() <-chan struct{} { return c.draining }

// IsDraining reports whether the connection is draining.
func (c *Conn) IsDraining() bool {
	select {
	case <-c.draining:
		return true
	default:
		return false
	}
}

// Err is why the connection ended, once Done is closed.
func (c *Conn) Err() error { return context.Cause(c.qc.Context()) }

// Close closes the connection with an application code the peer sees.
func (c *Conn) Close(code quic.ApplicationErrorCode, msg string) error {
	return c.qc.CloseWithError(code, msg)
}

// OpenStream opens a request stream.
func (c *Conn) OpenStream(ctx context.Context) (*Stream, error) {
	s, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	return newStream(s, c.cfg.MaxFrameSize), nil
}

// AcceptStream waits for the peer's next request stream.
func (c *Conn) AcceptStream(ctx context.Context) (*Stream, error) {
	s, err := c.qc.AcceptStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("accept stream: %w", err)
	}
	return newStream(s, c.cfg.MaxFrameSize), nil
}

// SendControl sends a message on the control stream.
func (c *Conn) SendControl(m proto.Message) error {
	c.ctrlMu.Lock()
	defer c.ctrlMu.Unlock()
	return c.ctrl.Send(m)
}

// Control delivers the control messages that transport does not handle itself (everything but
// Hello, Ping and Pong). It is closed when the connection ends.
func (c *Conn) Control() <-chan proto.Message { return c.control }

// Ping measures the round trip over the control stream.
func (c *Conn) Ping(ctx context.Context) (time.Duration, error) {
	n := c.nonce.Add(1)
	ch := make(chan struct{})
	c.pingMu.Lock()
	c.pings[n] = ch
	c.pingMu.Unlock()
	defer func() {
		c.pingMu.Lock()
		delete(c.pings, n)
		c.pingMu.Unlock()
	}()
	start := time.Now()
	if err := c.SendControl(&wire.Ping{Nonce: n}); err != nil {
		return 0, err
	}
	select {
	case <-ch:
		return time.Since(start), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-c.qc.Context().Done():
		return 0, ErrClosed
	}
}

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

// newConn starts serving an attested connection. localNotAfter is when the certificate this end
// presented expires; peerDrainBefore is the peer's Config.DrainBefore.
func newConn(qc *quic.Conn, peer *attest.Peer, ctrl *Stream, cfg *Config, localNotAfter time.Time, peerDrainBefore time.Duration) *Conn {
	c := &Conn{
		qc: qc, peer: peer, cfg: cfg, ctrl: ctrl,
		control:  make(chan proto.Message),
		queued:   make(chan struct{}, 1),
		done:     make(chan struct{}),
		pingWake: make(chan struct{}, 1),
		draining: make(chan struct{}),
		ends:     localNotAfter,
		pings:    map[uint64]chan struct{}{},
		log: cfg.Log.With().Str("peer", qc.RemoteAddr().String()).
			Str("peer_role", string(peer.Claims.Role)).Logger(),
	}
	c.pingEvery.Store(int64(cfg.PingInterval))
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.readControl() }()
	go func() { defer c.wg.Done(); c.pump() }()
	if cfg.PingInterval > 0 {
		c.wg.Add(1)
		go func() { defer c.wg.Done(); c.liveness() }()
	}
	// The peer's attestation is only as fresh as its certificate: when that expires the connection
	// ends, and the peer (or we) dial again and show current certificates. The peer closes it when
	// ours expires, so it ends at the earlier of the two; it drains before that, so that requests
	// under way need not be cut.
	if !peer.NotAfter.IsZero() {
		expiry := time.AfterFunc(time.Until(peer.NotAfter), func() {
			c.log.Info().Msg("peer certificate expired; closing the connection")
			_ = qc.CloseWithError(wire.CodeShutdown, "peer certificate expired")
		})
		context.AfterFunc(qc.Context(), func() { expiry.Stop() })
		if c.ends.IsZero() || peer.NotAfter.Before(c.ends) {
			c.ends = peer.NotAfter
		}
	}
	if !c.ends.IsZero() {
		// Both ends drain at the same moment: the longer window of the two, which each announced
		// in its Hello, within a quarter of what is left.
		left := time.Until(c.ends)
		c.drainAt = c.ends.Add(-min(max(cfg.DrainBefore, peerDrainBefore), left/4))
		drain := time.AfterFunc(time.Until(c.drainAt), func() { close(c.draining) })
		context.AfterFunc(qc.Context(), func() { drain.Stop() })
	}
	go func() {
		<-qc.Context().Done()
		c.wg.Wait()
		close(c.done)
	}()
	return c
}

// SetPingInterval changes how often a silent peer is pinged, from now on: a proxy checks a worker
// often while it serves requests (a vanished worker must fail its streams within seconds) and
// rarely while it is idle (hundreds of idle workers must not cost a core).
func (c *Conn) SetPingInterval(d time.Duration) {
	if d <= 0 || time.Duration(c.pingEvery.Swap(int64(d))) == d {
		return
	}
	select {
	case c.pingWake <- struct{}{}:
	default:
	}
}

func (c *Conn) pingInterval() time.Duration { return time.Duration(c.pingEvery.Load()) }

// liveness closes the connection when the peer stops answering. A connection that received
// packets since the last check is alive and costs nothing; a silent one is pinged, and it is
// dead only if the ping goes unanswered and still nothing at all arrived. So a peer too busy to
// answer a ping in time (thousands of streams opening at once) is not taken for dead, and idle
// connections whose peers ping us are never pinged back.
func (c *Conn) liveness() {
	t := time.NewTimer(c.pingInterval())
	defer t.Stop()
	received := c.qc.ConnectionStats().PacketsReceived
	for {
		select {
		case <-c.qc.Context().Done():
			return
		case <-c.pingWake:
			t.Reset(c.pingInterval())
			continue
		case <-t.C:
		}
		t.Reset(c.pingInterval())
		if now := c.qc.ConnectionStats().PacketsReceived; now != received {
			received = now
			continue
		}
		ctx, cancel := context.WithTimeout(c.qc.Context(), c.cfg.PingTimeout)
		_, err := c.Ping(ctx)
		cancel()
		now := c.qc.ConnectionStats().PacketsReceived
		if err != nil && now == received && c.qc.Context().Err() == nil {
			c.log.Warn().Dur("timeout", c.cfg.PingTimeout).Msg("peer unresponsive, closing connection")
			_ = c.qc.CloseWithError(wire.CodeTimeout, "peer unresponsive")
			return
		}
		received = now
	}
}

// hello exchanges Hello on the control stream within the handshake timeout.
// hello exchanges Hello messages, the dialer's first, and returns the peer's.
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

// Dial connects to a listener, verifying it during the handshake. It returns once the listener has
// verified this node too (its Hello arrived), so a returned Conn is attested in both directions.
func Dial(ctx context.Context, addr string, cfg Config) (*Conn, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	pv := newPeerVerifier(&c)
	var rejected atomic.Pointer[error] // set from quic-go's handshake goroutine
	var served atomic.Pointer[tls.Certificate]
	tlsConf := clientTLS(&c, pv, &served, func(err error) { rejected.Store(&err) })
	qc, err := quic.DialAddr(ctx, addr, tlsConf, c.quicConfig())
	if err != nil {
		if rejected := rejected.Load(); rejected != nil {
			return nil, fmt.Errorf("dial %s: %w: %w", addr, ErrPeerRefused, *rejected)
		}
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	peer, _, err := pv.pickUp(qc.ConnectionState().TLS)
	if err != nil {
		_ = qc.CloseWithError(wire.CodeProtocol, "peer not verified")
		return nil, fmt.Errorf("dial %s: %w: %w", addr, ErrPeerRefused, err)
	}
	var local time.Time // the listener always asks for our certificate, so served is set
	if cert := served.Load(); cert != nil && cert.Leaf != nil {
		local = cert.Leaf.NotAfter
	}
	s, err := qc.OpenStreamSync(ctx)
	if err != nil {
		_ = qc.CloseWithError(wire.CodeInternal, "")
		return nil, fmt.Errorf("dial %s: open control stream: %w", addr, err)
	}
	ctrl := newStream(s, c.MaxFrameSize)
	h, err := hello(ctx, ctrl, &c, true)
	if err != nil {
		_ = qc.CloseWithError(wire.CodeProtocol, "hello failed")
		if cause := context.Cause(qc.Context()); cause != nil {
			return nil, fmt.Errorf("dial %s: %w (connection: %v)", addr, err, cause)
		}
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return newConn(qc, peer, ctrl, &c, local, peerDrain(h)), nil
}

// Listener accepts attested connections.
type Listener struct {
	tr       *quic.Transport
	ql       *quic.Listener
	cfg      Config
	pv       *peerVerifier
	accepted chan *Conn
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	// OnReject, when set before the first connection, sees every refused peer (for tests and metrics).
	onReject func(remote string, err error)
}

// ListenOption adjusts a Listener.
type ListenOption func(*Listener)

// WithRejectHook calls f for every peer refused during the handshake.
func WithRejectHook(f func(remote string, err error)) ListenOption {
	return func(l *Listener) { l.onReject = f }
}

// Listen listens for attested connections on a UDP address ("127.0.0.1:0" picks a port).
func Listen(addr string, cfg Config, opts ...ListenOption) (*Listener, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Listener{cfg: c, accepted: make(chan *Conn, 64)}
	for _, o := range opts {
		o(l)
	}
	l.pv = newPeerVerifier(&l.cfg)
	reject := func(remote string, err error) {
		l.cfg.Log.Warn().Str("peer", remote).Err(err).Msg("refused peer at handshake")
		if l.onReject != nil {
			l.onReject(remote, err)
		}
	}
	udpAddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	udp, err := net.ListenUDP("udp", udpAddr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	// Our own transport, so that Close ends every connection and goroutine the listener started.
	l.tr = &quic.Transport{Conn: udp}
	ql, err := l.tr.Listen(serverTLS(&l.cfg, l.pv, reject), l.cfg.quicConfig())
	if err != nil {
		_ = udp.Close()
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	l.ql = ql
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// Addr is the listening address.
func (l *Listener) Addr() net.Addr { return l.ql.Addr() }

// Accept returns the next connection that completed the handshake and the Hello exchange.
func (l *Listener) Accept(ctx context.Context) (*Conn, error) {
	select {
	case c, ok := <-l.accepted:
		if !ok {
			return nil, ErrClosed
		}
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops listening and closes every connection the listener accepted.
func (l *Listener) Close() error {
	l.cancel()
	err := l.ql.Close()
	l.wg.Wait()
	for c := range l.accepted {
		_ = c.Close(wire.CodeShutdown, "listener closed")
	}
	_ = l.tr.Close()
	_ = l.tr.Conn.Close()
	return err
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	defer close(l.accepted)
	var hs sync.WaitGroup
	defer hs.Wait()
	for {
		qc, err := l.ql.Accept(l.ctx)
		if err != nil {
			return
		}
		hs.Add(1)
		go func() {
			defer hs.Done()
			c, err := l.handshake(qc)
			if err != nil {
				l.cfg.Log.Debug().Str("peer", qc.RemoteAddr().String()).Err(err).Msg("connection setup failed")
				return
			}
			select {
			case l.accepted <- c:
			case <-l.ctx.Done():
				_ = qc.CloseWithError(wire.CodeShutdown, "listener closed")
			}
		}()
	}
}

func (l *Listener) handshake(qc *quic.Conn) (*Conn, error) {
	peer, local, err := l.pv.pickUp(qc.ConnectionState().TLS)
	if err != nil {
		_ = qc.CloseWithError(wire.CodeProtocol, "peer not verified")
		return nil, err
	}
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.HandshakeTimeout)
	defer cancel()
	s, err := qc.AcceptStream(ctx)
	if err != nil {
		_ = qc.CloseWithError(wire.CodeProtocol, "no control stream")
		return nil, fmt.Errorf("accept control stream: %w", err)
	}
	ctrl := newStream(s, l.cfg.MaxFrameSize)
	h, err := hello(ctx, ctrl, &l.cfg, false)
	if err != nil {
		_ = qc.CloseWithError(wire.CodeVersion, err.Error())
		return nil, err
	}
	// local is zero only if the handshake outlived its parked entry; the connection then ends,
	// on this side, with the peer's certificate, and the peer still closes it when ours expires.
	return newConn(qc, peer, ctrl, &l.cfg, local, peerDrain(h)), nil
}
