package transport

import (
	"context"
	"crypto/hpke"
	"crypto/tls"
	"errors"
	"fmt"
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
	lim  *streamLimits
	log  zerolog.Logger

	held atomic.Int64 // request streams this end is not done with (HeldStreams)

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

	ends      time.Time
	drainAt   time.Time
	draining  chan struct{} // closed at drainAt, or when the policy no longer allows the peer
	drainOnce sync.Once

	drainMu     sync.Mutex
	drainReason string
	refusal     *RefusedError // set when the policy no longer allows the peer (refuse.go)
	active      int           // request streams under way
	co          *coalescer    // batches the request streams' writes; nil: none

	hpkePub []byte           // the HPKE public key this end's claims name on this connection (workers)
	local   *tls.Certificate // the certificate this end presented (nil if not known)
}

// Peer is the verified peer at the other end.
func (c *Conn) Peer() *attest.Peer { return c.peer }

// HPKEKey returns the private HPKE key whose public half the claims of the certificate this end
// presented on c name: the key requests sealed on this connection open with. It stays available
// while the connection lives, even after the identity replaced that certificate. ok is false on
// connections of other roles than a worker's. The key is for use inside this process only.
func (c *Conn) HPKEKey() (key hpke.PrivateKey, ok bool) {
	if c.hpkePub == nil {
		return nil, false
	}
	return c.cfg.Identity.HPKEKey(c.hpkePub)
}

// LocalCertificate returns the certificate this end presented on c, nil if that is not known: a
// worker signs usage records and receipts with its key and names its quote in seal bindings. The
// private key is for use inside this process only.
func (c *Conn) LocalCertificate() *tls.Certificate { return c.local }

// PeerCertificate returns the DER certificate the peer presented on c, which the handshake
// verified: a proxy hands a worker's to clients, which verify it themselves.
func (c *Conn) PeerCertificate() []byte {
	certs := c.qc.ConnectionState().TLS.PeerCertificates
	if len(certs) != 1 {
		return nil
	}
	return certs[0].Raw
}

// PeerEvidence returns the evidence (quote, claims, key) of the certificate the peer presented on
// c, which the handshake verified: a proxy shows a worker's to clients, which verify it
// themselves and seal requests to the HPKE key its claims name.
func (c *Conn) PeerEvidence() (attest.Evidence, error) {
	certs := c.qc.ConnectionState().TLS.PeerCertificates
	if len(certs) != 1 {
		return attest.Evidence{}, fmt.Errorf("peer evidence: %d certificates", len(certs))
	}
	// Verified at the handshake; parsed again here only to extract it, at a time it was valid.
	rc, err := ratls.ParseCertificate([][]byte{certs[0].Raw}, certs[0].NotBefore, 0)
	if err != nil {
		return attest.Evidence{}, fmt.Errorf("peer evidence: %w", err)
	}
	return rc.Evidence(), nil
}

// RemoteAddr is the peer's UDP address.
func (c *Conn) RemoteAddr() net.Addr { return c.qc.RemoteAddr() }

// Done is closed when the connection has ended and its goroutines have stopped.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Ends is when the connection will be closed: when the earlier of the two certificates expires.
func (c *Conn) Ends() time.Time { return c.ends }

// Draining is closed Config.DrainBefore ahead of Ends (or the peer's, if longer). From then on new
// requests should go over a replacement connection, while those under way finish on this one; the
// connection still carries whatever is sent on it.
//
// It is also closed when a new policy (attest.Verifier.SetPolicy) no longer allows the peer. Then
// the connection takes no new requests: OpenStream fails with a *RefusedError and streams the peer
// opens are reset with CodePolicyRefused; once the requests under way have ended (a stream we
// opened at the last frame of its answer, Done, Error or ModelsList, or its end; one the peer
// opened when our side of it is closed), or at the latest Config.DrainBefore later, it is closed
// with CodePolicyRefused and the reason. DrainReason says which.
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

// Err is why the connection ended, once Done is closed. A refusal by policy, ours (the policy no
// longer allows the peer) or the peer's, is a *RefusedError.
func (c *Conn) Err() error {
	err := context.Cause(c.qc.Context())
	if re := peerRefusal(err); re != nil {
		return re
	}
	var ae *quic.ApplicationError
	if errors.As(err, &ae) && !ae.Remote && ae.ErrorCode == wire.CodePolicyRefused {
		c.drainMu.Lock()
		re := c.refusal
		c.drainMu.Unlock()
		if re != nil {
			return &RefusedError{Reason: re.Reason, Fix: re.Fix, err: errors.Join(re.err, err)}
		}
	}
	return err
}

// Close closes the connection with an application code the peer sees.
func (c *Conn) Close(code quic.ApplicationErrorCode, msg string) error {
	return c.qc.CloseWithError(code, msg)
}

// OpenStream opens a request stream. On a connection whose peer the policy no longer allows it
// fails with a *RefusedError.
func (c *Conn) OpenStream(ctx context.Context) (*Stream, error) {
	if err := c.begin(); err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	s, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		c.end()
		return nil, fmt.Errorf("open stream: %w", err)
	}
	st := newStream(s, c.lim)
	st.co = c.co
	c.hold(st)
	st.track(c.end, true)
	return st, nil
}

// hold counts st in HeldStreams until this end is done with it.
func (c *Conn) hold(st *Stream) {
	c.held.Add(1)
	st.held = &c.held
}

// HeldStreams is how many request streams opened or accepted on c this end is not done with: not
// yet closed for sending (CloseSend, Cancel), or not yet read to its end or an error (or
// CloseRead, Cancel). QUIC keeps a stream's state until this end is done with both directions,
// so a count that grows with the requests served is memory that grows with them.
func (c *Conn) HeldStreams() int64 { return c.held.Load() }

// AcceptStream waits for the peer's next request stream. Its first frame must arrive whole within
// Config.FirstFrameTimeout, or the stream is reset with CodeTimeout and reads fail with
// ErrFirstFrameTimeout. On a connection whose peer the policy no longer allows, the peer's new
// streams are reset with CodePolicyRefused instead of returned.
func (c *Conn) AcceptStream(ctx context.Context) (*Stream, error) {
	for {
		s, err := c.qc.AcceptStream(ctx)
		if err != nil {
			return nil, fmt.Errorf("accept stream: %w", err)
		}
		if err := c.begin(); err != nil {
			s.CancelRead(quic.StreamErrorCode(wire.CodePolicyRefused))
			s.CancelWrite(quic.StreamErrorCode(wire.CodePolicyRefused))
			continue
		}
		st := newStream(s, c.lim)
		st.co = c.co
		c.hold(st)
		st.track(c.end, false)
		st.awaitFirstFrame()
		return st, nil
	}
}

// newConn starts serving an attested connection. local is the certificate this end presented (nil
// if not known); peerDrainBefore is the peer's Config.DrainBefore.
func newConn(qc *quic.Conn, peer *attest.Peer, ctrl *Stream, cfg *Config, local *tls.Certificate, peerDrainBefore time.Duration) *Conn {
	var localNotAfter time.Time
	if local != nil && local.Leaf != nil {
		localNotAfter = local.Leaf.NotAfter
	}
	c := &Conn{
		qc: qc, peer: peer, cfg: cfg, ctrl: ctrl, lim: ctrl.lim, log: ctrl.lim.log,
		control:  make(chan proto.Message),
		queued:   make(chan struct{}, 1),
		done:     make(chan struct{}),
		pingWake: make(chan struct{}, 1),
		draining: make(chan struct{}),
		ends:     localNotAfter,
		pings:    map[uint64]chan struct{}{},
		local:    local,
	}
	// A worker's HPKE key for this certificate stays available while the connection lives.
	var release func()
	c.hpkePub, release = cfg.Identity.hold(local)
	context.AfterFunc(qc.Context(), release)
	c.pingEvery.Store(int64(cfg.PingInterval))
	if cfg.Conns != nil {
		cfg.Conns.add(c)
		context.AfterFunc(qc.Context(), func() { cfg.Conns.remove(c) })
	}
	if cfg.CoalesceWindow > 0 {
		c.co = newCoalescer(cfg.CoalesceWindow)
		if cfg.coalesceOpen != nil {
			c.co.openWindow = cfg.coalesceOpen
		}
		context.AfterFunc(qc.Context(), c.co.stop)
	}
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
		reason := fmt.Sprintf("the connection's certificates expire at %s", c.ends.UTC().Format(time.RFC3339))
		drain := time.AfterFunc(time.Until(c.drainAt), func() { c.startDrain(reason) })
		context.AfterFunc(qc.Context(), func() { drain.Stop() })
	}
	// A new policy judges the peer again; one it no longer allows gets the connection drained.
	// The policy may have changed since the handshake verified the peer: judge it once now.
	stopWatch := cfg.Verifier.OnPolicyChange(c.recheck)
	context.AfterFunc(qc.Context(), stopWatch)
	c.recheck()
	go func() {
		<-qc.Context().Done()
		c.wg.Wait()
		close(c.done)
	}()
	return c
}
