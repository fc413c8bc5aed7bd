package transport

import (
	"errors"
	"time"

	"github.com/rs/zerolog"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/ratls"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// DefaultDrainBefore is Config.DrainBefore's default: longer than the default request timeout.
const DefaultDrainBefore = 15 * time.Minute

// Limits on what a peer may make a node hold. Clients need no quote, so anyone can connect to a
// proxy: these bound what an unauthenticated peer can pin (README.md §9).
const (
	// FrameOverhead is what a Request frame adds to its body: the type byte and the protobuf
	// fields around the body (id, model, limits), with room to spare.
	FrameOverhead = 64 << 10
	// DefaultMaxClientFrameSize is Config.MaxClientFrameSize's default: a client's request body at
	// its default limit (client.max_body_bytes, 4 MiB) and the frame around it.
	DefaultMaxClientFrameSize = 4<<20 + FrameOverhead
	// DefaultFirstFrameTimeout is Config.FirstFrameTimeout's default. The first frame of a request
	// stream carries the whole request body: 4 MiB in 10 s needs a 3.4 Mbit/s uplink.
	DefaultFirstFrameTimeout = 10 * time.Second
	// DefaultMaxStreams is Config.MaxStreams' default for a listener, whose peers open a stream
	// per request: a proxy's clients (anyone) and workers (which open none). 128 requests under
	// way at once is far more than one app sends through its client; a client with more waits in
	// OpenStream until one ends, while a hostile peer holds at most 128 streams (and goroutines).
	DefaultMaxStreams = 128
	// DefaultDialMaxStreams is Config.MaxStreams' default for Dial: the peer is an attested proxy
	// that opens a stream per request it routes to this worker. It is above any sensible
	// worker.max_active, so the worker answers extra requests with CodeOverloaded at once instead
	// of the proxy waiting for a stream.
	DefaultDialMaxStreams = 1024
	// DefaultMaxConnsPerSource is Config.MaxConnsPerSource's default: a client holds one connection
	// per proxy, and a NAT may put a few dozen clients behind one address.
	DefaultMaxConnsPerSource = 64
)

// Config configures both ends of attested connections.
type Config struct {
	Identity *Identity
	Verifier *attest.Verifier
	// PeerRoles, when set, are the only roles accepted on the other end (a worker dials proxies only),
	// on top of what the verifier's policy allows.
	PeerRoles []attest.Role
	// MaxCertValidity is the longest validity accepted on a peer certificate; zero: ratls.MaxValidity.
	MaxCertValidity time.Duration
	// MaxFrameSize bounds one frame from a peer that presented a quote (a worker or a proxy, whose
	// non-streaming answers travel as one frame); zero: wire.DefaultMaxFrameSize.
	MaxFrameSize int
	// MaxClientFrameSize bounds one frame from a peer without a quote (a client: anyone may be
	// one); zero: DefaultMaxClientFrameSize. Never more than MaxFrameSize.
	MaxClientFrameSize int
	// FirstFrameTimeout is how long a stream the peer opened may take to deliver its first whole
	// frame; a later one is reset with CodeTimeout. Zero: DefaultFirstFrameTimeout.
	FirstFrameTimeout time.Duration
	// MaxConnsPerSource is how many connections a listener keeps at once from one IP address,
	// handshakes included; zero: DefaultMaxConnsPerSource. Not used by Dial.
	MaxConnsPerSource int
	// KeepAlive is the QUIC keep-alive period; zero: 10s.
	KeepAlive time.Duration
	// IdleTimeout closes a connection that has heard nothing for this long; zero: 30s.
	IdleTimeout time.Duration
	// HandshakeTimeout bounds the TLS handshake and the Hello exchange; zero: 10s.
	HandshakeTimeout time.Duration
	// MaxStreams is how many request streams the peer may have open at once (QUIC's stream limit:
	// its next OpenStream waits until one ends); zero: DefaultMaxStreams for a listener,
	// DefaultDialMaxStreams for Dial.
	MaxStreams int64
	// PingInterval is how often a connection pings its peer on the control stream; zero:
	// DefaultPingInterval; negative: never. A peer that does not answer within PingTimeout (zero:
	// DefaultPingTimeout) is taken for dead and the connection is closed, failing its streams at
	// once: a killed process sends no close, and QUIC alone would notice only at the idle timeout.
	PingInterval time.Duration
	PingTimeout  time.Duration
	// DrainBefore is how long before a connection ends (when the earlier of the two certificates
	// expires: each side closes when its peer's does) the connection starts draining: requests
	// already under way finish on it, new ones should go over a replacement. Zero: DefaultDrainBefore.
	// It is never more than a quarter of the connection's life at setup. It should exceed the
	// longest request.
	DrainBefore time.Duration
	// CoalesceWindow is how long a frame flushed on a request stream may wait for those of the
	// connection's other streams, to leave in the same packets; a stream alone on its connection
	// never waits. Zero: DefaultCoalesceWindow; negative: every flush writes at once.
	CoalesceWindow time.Duration
	// SoftwareVersion is sent in Hello, for logs.
	SoftwareVersion string
	Log             zerolog.Logger
	// Now is the clock for certificate validity; nil: time.Now.
	Now func() time.Time
	// OnHandshake, when set, is told how long each attested connection took to set up: for a
	// dialer from the dial to the peer's Hello (QUIC, TLS, the quote's verification), for a
	// listener from the peer's certificate check to its Hello.
	OnHandshake func(took time.Duration)
	// Conns, when set, holds every connection made with this configuration while it lasts, for
	// figures over all of them (Conns.HeldStreams).
	Conns *Conns
	// Tap, when set, sees every frame this end sends or receives on any stream of any of its
	// connections, after TLS: all that the node's own code handles. For tests that show what a
	// node can learn (a blind proxy sees no prompt); never set in a serving node.
	Tap func(sent bool, t wire.Type, payload []byte)

	refusals *rateLog // warnings that a limit refused something, shared by the connections
	// coalesceOpen replaces the coalescer's timer in tests, which close windows themselves.
	coalesceOpen func(d time.Duration)
}

func (c *Config) withDefaults() (Config, error) {
	out := *c
	if out.Identity == nil {
		return out, errors.New("transport: config has no identity")
	}
	if out.Verifier == nil {
		return out, errors.New("transport: config has no verifier")
	}
	if out.MaxCertValidity <= 0 {
		out.MaxCertValidity = ratls.MaxValidity
	}
	if out.KeepAlive <= 0 {
		out.KeepAlive = 10 * time.Second
	}
	if out.IdleTimeout <= 0 {
		out.IdleTimeout = 30 * time.Second
	}
	if out.HandshakeTimeout <= 0 {
		out.HandshakeTimeout = 10 * time.Second
	}
	if out.MaxFrameSize <= 0 {
		out.MaxFrameSize = wire.DefaultMaxFrameSize
	}
	if out.MaxClientFrameSize <= 0 {
		out.MaxClientFrameSize = DefaultMaxClientFrameSize
	}
	if out.FirstFrameTimeout <= 0 {
		out.FirstFrameTimeout = DefaultFirstFrameTimeout
	}
	if out.MaxConnsPerSource <= 0 {
		out.MaxConnsPerSource = DefaultMaxConnsPerSource
	}
	if out.refusals == nil {
		out.refusals = newRateLog()
	}
	if out.PingInterval == 0 {
		out.PingInterval = DefaultPingInterval
	}
	if out.PingTimeout <= 0 {
		out.PingTimeout = DefaultPingTimeout
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	if out.CoalesceWindow == 0 {
		out.CoalesceWindow = DefaultCoalesceWindow
	}
	if out.DrainBefore <= 0 {
		out.DrainBefore = DefaultDrainBefore
	}
	return out, nil
}
