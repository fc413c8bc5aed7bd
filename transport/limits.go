package transport

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/rs/zerolog"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// streamLimits are what a connection's streams enforce, and where they say so.
type streamLimits struct {
	maxFrame   int
	frameLimit string // the name of the frame size limit that applies, for logs
	firstFrame time.Duration
	log        zerolog.Logger // names the peer
	refusals   *rateLog
	tap        func(sent bool, t wire.Type, payload []byte) // Config.Tap
}

// streamLimits are the limits on the streams of qc, whose verified peer is peer. A peer without a
// quote is a client, which anyone can be: its frames are capped near a request body's size.
func (c *Config) streamLimits(qc *quic.Conn, peer *attest.Peer) *streamLimits {
	l := &streamLimits{maxFrame: c.MaxFrameSize, frameLimit: "max_frame_size", firstFrame: c.FirstFrameTimeout,
		refusals: c.refusals, tap: c.Tap,
		log: c.Log.With().Str("peer", qc.RemoteAddr().String()).
			Str("peer_role", string(peer.Claims.Role)).Logger()}
	if !peer.Quoted {
		l.maxFrame, l.frameLimit = min(c.MaxClientFrameSize, c.MaxFrameSize), "max_client_frame_size"
	}
	return l
}

// refused starts the warning that a limit refused something, or returns nil (on which zerolog
// does nothing) if that limit already warned within the last second.
func (l *streamLimits) refused(limit string) *zerolog.Event {
	return l.refusals.warn(&l.log, limit)
}

// rateLog lets through one warning a second per limit and counts those it held back: a peer that
// runs into a limit on purpose must not flood the log.
type rateLog struct {
	mu   sync.Mutex
	next map[string]time.Time
	held map[string]int
}

func newRateLog() *rateLog {
	return &rateLog{next: map[string]time.Time{}, held: map[string]int{}}
}

// warn starts a warning that names limit, or returns nil while that limit is held back.
func (r *rateLog) warn(log *zerolog.Logger, limit string) *zerolog.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if now.Before(r.next[limit]) {
		r.held[limit]++
		return nil
	}
	held := r.held[limit]
	r.held[limit], r.next[limit] = 0, now.Add(time.Second)
	return log.Warn().Str("limit", limit).Int("held_back", held)
}

// admission is what a listener does with a new connection from a source address.
type admission int

const (
	// admitted: under the limit; the connection counts until it closes.
	admitted admission = iota
	// refusedWithReason: over the limit. The handshake completes, without verifying the peer,
	// only so that the connection can be closed with CodeOverloaded and a reason the peer reads.
	refusedWithReason
	// refusedEarly: over the limit and already told as often (max more handshakes in progress):
	// refused at the first packet with QUIC's CONNECTION_REFUSED, which costs nothing.
	refusedEarly
)

// sources counts a listener's connections per source IP address, handshakes included.
type sources struct {
	max int
	mu  sync.Mutex
	n   map[netip.Addr]*sourceCount
}

type sourceCount struct{ open, refusing int }

func newSources(max int) *sources {
	return &sources{max: max, n: map[netip.Addr]*sourceCount{}}
}

// admit decides on a new connection from ip and counts it; release undoes that when it closes.
func (s *sources) admit(ip netip.Addr) admission {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.n[ip]
	if c == nil {
		c = &sourceCount{}
		s.n[ip] = c
	}
	switch {
	case c.open < s.max:
		c.open++
		return admitted
	case c.refusing < s.max:
		c.refusing++
		return refusedWithReason
	}
	return refusedEarly
}

func (s *sources) release(ip netip.Addr, a admission) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.n[ip]
	if c == nil {
		return
	}
	switch a {
	case admitted:
		c.open--
	case refusedWithReason:
		c.refusing--
	}
	if c.open <= 0 && c.refusing <= 0 {
		delete(s.n, ip)
	}
}

// busy reports whether ip holds half its connections or more: its next ones must prove they come
// from it (a QUIC Retry), so that spoofed packets cannot use up a real address's allowance.
func (s *sources) busy(ip netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.n[ip]
	return c != nil && c.open >= (s.max+1)/2
}

// sourceIP is the IP address of a UDP peer, IPv4-mapped addresses as IPv4.
func sourceIP(a net.Addr) netip.Addr {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
