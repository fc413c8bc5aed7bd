package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/cocoon-network/cocoon/transport/wire"
)

// Listener accepts attested connections.
type Listener struct {
	tr       *quic.Transport
	ql       *quic.Listener
	cfg      Config
	pv       *peerVerifier
	accepted chan *Conn
	sources  *sources
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	conns    sync.WaitGroup // connContext's callbacks for connections not yet closed
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
	l := &Listener{cfg: c, accepted: make(chan *Conn, 64), sources: newSources(c.MaxConnsPerSource)}
	for _, o := range opts {
		o(l)
	}
	l.pv = newPeerVerifier(&l.cfg)
	reject := func(remote string, err error) {
		ev := l.cfg.Log.Warn().Str("peer", remote).Err(err)
		if re := refusalOf(err); re != nil {
			// Its evidence verified: the handshake completes and the peer is told why.
			ev = ev.Bool("told_peer", true)
			if re.Fix != "" {
				ev = ev.Str("fix", re.Fix)
			}
		}
		ev.Msg("refused peer at handshake")
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
	l.tr = &quic.Transport{Conn: udp, ConnContext: l.connContext,
		VerifySourceAddress: func(a net.Addr) bool { return l.sources.busy(sourceIP(a)) }}
	ql, err := l.tr.Listen(serverTLS(&l.cfg, l.pv, reject), l.cfg.quicConfig(true))
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
	l.conns.Wait()
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
		if overLimit(qc.Context()) {
			_ = qc.CloseWithError(wire.CodeOverloaded, fmt.Sprintf("too many connections from %s: at most %d per address",
				sourceIP(qc.RemoteAddr()), l.cfg.MaxConnsPerSource))
			continue
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
	peer, local, started, err := l.pv.pickUp(qc.ConnectionState().TLS)
	if re := (*RefusedError)(nil); errors.As(err, &re) {
		// Refused by policy after its evidence verified: closed with the reason, before any
		// stream is accepted or anything is sent to it.
		closeRefusing(qc, re)
		return nil, err
	}
	if err != nil {
		_ = qc.CloseWithError(wire.CodeProtocol, "peer not verified")
		return nil, err
	}
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.HandshakeTimeout)
	defer cancel()
	s, err := qc.AcceptStream(ctx)
	if err != nil {
		if re := peerRefusal(err); re != nil {
			return nil, re // logged by connContext
		}
		_ = qc.CloseWithError(wire.CodeProtocol, "no control stream")
		return nil, fmt.Errorf("accept control stream: %w", err)
	}
	ctrl := newStream(s, l.cfg.streamLimits(qc, peer))
	h, err := hello(ctx, ctrl, &l.cfg, false)
	if err != nil {
		_ = qc.CloseWithError(wire.CodeVersion, err.Error())
		return nil, err
	}
	if l.cfg.OnHandshake != nil {
		l.cfg.OnHandshake(time.Since(started))
	}
	// local is nil only if the handshake outlived its parked entry; the connection then ends,
	// on this side, with the peer's certificate, and the peer still closes it when ours expires.
	return newConn(qc, peer, ctrl, &l.cfg, local, peerDrain(h)), nil
}

// errTooManyConns refuses a connection at its first packet; the peer sees CONNECTION_REFUSED.
var errTooManyConns = errors.New("too many connections from this address")

// overLimitKey marks the context of a connection refused for its source address's limit.
type overLimitKey struct{}

func overLimit(ctx context.Context) bool { return ctx.Value(overLimitKey{}) != nil }

// connContext counts each new connection against its source address's limit, from the first
// packet until it closes (quic-go cancels ctx then, or when the handshake fails). Over the limit,
// the connection is marked to be closed with a reason after a handshake that verifies nothing, or,
// when even those pile up, refused outright.
func (l *Listener) connContext(ctx context.Context, info *quic.ClientInfo) (context.Context, error) {
	ip := sourceIP(info.RemoteAddr)
	a := l.sources.admit(ip)
	if a != admitted {
		l.cfg.refusals.warn(&l.cfg.Log, "max_conns_per_source").Str("source", ip.String()).
			Int("max", l.cfg.MaxConnsPerSource).Bool("at_first_packet", a == refusedEarly).
			Msg("refused a connection: too many from this address")
	}
	if a == refusedEarly {
		l.sources.release(ip, a)
		return nil, errTooManyConns
	}
	l.conns.Add(1)
	context.AfterFunc(ctx, func() {
		defer l.conns.Done()
		l.sources.release(ip, a)
		// A dialer that refused us by policy says why when it closes, during the handshake or
		// right after it.
		if re := peerRefusal(context.Cause(ctx)); re != nil {
			re.fields(l.cfg.Log.Warn().Str("peer", info.RemoteAddr.String())).Msg("refused by the dialing peer: its attestation policy does not allow this node")
		}
	})
	if a == refusedWithReason {
		ctx = context.WithValue(ctx, overLimitKey{}, true)
	}
	return ctx, nil
}
