package transport

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/cocoon-network/cocoon/transport/wire"
)

// Dial connects to a listener, verifying it during the handshake. It returns once the listener has
// verified this node too (its Hello arrived), so a returned Conn is attested in both directions.
func Dial(ctx context.Context, addr string, cfg Config) (*Conn, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	pv := newPeerVerifier(&c)
	var rejected atomic.Pointer[error] // set from quic-go's handshake goroutine
	var served atomic.Pointer[tls.Certificate]
	tlsConf := clientTLS(&c, pv, &served, func(err error) { rejected.Store(&err) })
	qc, err := quic.DialAddr(ctx, addr, tlsConf, c.quicConfig(false))
	if err != nil {
		if rejected := rejected.Load(); rejected != nil {
			return nil, fmt.Errorf("dial %s: %w: %w", addr, ErrPeerRefused, *rejected)
		}
		if re := peerRefusal(err); re != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, re)
		}
		if te := (*quic.TransportError)(nil); errors.As(err, &te) && te.ErrorCode == quic.ConnectionRefused && te.Remote {
			return nil, fmt.Errorf("dial %s: the listener refused the connection (too many from this address, or it is closing): %w", addr, err)
		}
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	peer, _, _, err := pv.pickUp(qc.ConnectionState().TLS)
	if re := (*RefusedError)(nil); errors.As(err, &re) {
		// Our policy refused the listener after its evidence verified: it is told why, and
		// nothing else is sent to it.
		awaitConfirmed(ctx, qc, min(c.HandshakeTimeout, time.Second))
		closeRefusing(qc, re)
		return nil, fmt.Errorf("dial %s: %w", addr, re)
	}
	if err != nil {
		_ = qc.CloseWithError(wire.CodeProtocol, "peer not verified")
		return nil, fmt.Errorf("dial %s: %w: %w", addr, ErrPeerRefused, err)
	}
	s, err := qc.OpenStreamSync(ctx)
	if err != nil {
		if re := cmp.Or(peerRefusal(err), peerRefusal(context.Cause(qc.Context()))); re != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, re)
		}
		_ = qc.CloseWithError(wire.CodeInternal, "")
		return nil, fmt.Errorf("dial %s: open control stream: %w", addr, err)
	}
	ctrl := newStream(s, c.streamLimits(qc, peer))
	h, err := hello(ctx, ctrl, &c, true)
	if err != nil {
		if re := cmp.Or(peerRefusal(err), peerRefusal(context.Cause(qc.Context()))); re != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, re)
		}
		_ = qc.CloseWithError(wire.CodeProtocol, "hello failed")
		if cause := context.Cause(qc.Context()); cause != nil {
			return nil, fmt.Errorf("dial %s: %w (connection: %v)", addr, err, cause)
		}
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	if c.OnHandshake != nil {
		c.OnHandshake(time.Since(start))
	}
	// The listener always asks for our certificate, so served is set.
	return newConn(qc, peer, ctrl, &c, served.Load(), peerDrain(h)), nil
}

// awaitConfirmed waits, at most for limit, until the listener has most likely confirmed the
// handshake (HANDSHAKE_DONE): before that, QUIC sends an application close in Handshake packets
// without its reason phrase (RFC 9000 §10.2.3), so the listener would not learn why it was
// refused. quic-go offers no event for it, so the packets received are polled: it waits for the
// first packet after our handshake completed and then for a pause of a few round trips, since
// acknowledgements of our certificate's packets may come before the listener has verified it.
func awaitConfirmed(ctx context.Context, qc *quic.Conn, limit time.Duration) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	start := qc.ConnectionStats().PacketsReceived
	last, quietSince := start, time.Now()
	for {
		st := qc.ConnectionStats()
		if st.PacketsReceived != last {
			last, quietSince = st.PacketsReceived, time.Now()
		}
		if last != start && time.Since(quietSince) >= max(4*st.SmoothedRTT, 25*time.Millisecond) {
			return
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		case <-qc.Context().Done():
			return
		}
	}
}
