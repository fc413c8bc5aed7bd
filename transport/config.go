package transport

import (
	"errors"
	"time"

	"github.com/rs/zerolog"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/ratls"
)

// DefaultDrainBefore is Config.DrainBefore's default: longer than the default request timeout.
const DefaultDrainBefore = 15 * time.Minute

// Config configures both ends of attested connections.
type Config struct {
	Identity *Identity
	Verifier *attest.Verifier
	// PeerRoles, when set, are the only roles accepted on the other end (a worker dials proxies only),
	// on top of what the verifier's policy allows.
	PeerRoles []attest.Role
	// MaxCertValidity is the longest validity accepted on a peer certificate; zero: ratls.MaxValidity.
	MaxCertValidity time.Duration
	// MaxFrameSize bounds one frame; zero: wire.DefaultMaxFrameSize.
	MaxFrameSize int
	// KeepAlive is the QUIC keep-alive period; zero: 10s.
	KeepAlive time.Duration
	// IdleTimeout closes a connection that has heard nothing for this long; zero: 30s.
	IdleTimeout time.Duration
	// HandshakeTimeout bounds the TLS handshake and the Hello exchange; zero: 10s.
	HandshakeTimeout time.Duration
	// MaxStreams is how many request streams a peer may have open at once; zero: 10000.
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
	// SoftwareVersion is sent in Hello, for logs.
	SoftwareVersion string
	Log             zerolog.Logger
	// Now is the clock for certificate validity; nil: time.Now.
	Now func() time.Time
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
	if out.MaxStreams <= 0 {
		out.MaxStreams = 10000
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
	if out.DrainBefore <= 0 {
		out.DrainBefore = DefaultDrainBefore
	}
	return out, nil
}
