// Package proxyset is the set of proxies a client or a worker keeps connections to, which may
// change while the node runs (the registry lists proxies as they come and go). Each member runs
// its own loop; a member taken out of the set is retired: its sessions finish the requests they
// run and end, and only then does its loop stop. The package also checks that a proxy presents
// the payment key the registry lists for its endpoint and tells why a proxy refused the node.
// Only roles/client and roles/worker import it.
package proxyset

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/roles/internal/redial"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// Target is a proxy to connect to.
type Target struct {
	Endpoint string // host:port to dial
	// PaymentKey is the key the registry lists for the endpoint: the proxy must present it in its
	// attested claims. Nil for a proxy configured by hand, whose key is not checked.
	PaymentKey ed25519.PublicKey
	Name       string // for logs; empty: the endpoint
}

// Label names the target in logs and stats.
func (t Target) Label() string {
	if t.Name != "" {
		return t.Name
	}
	return t.Endpoint
}

// Static makes targets of endpoints configured by hand.
func Static(endpoints []string) []Target {
	ts := make([]Target, 0, len(endpoints))
	for _, e := range endpoints {
		ts = append(ts, Target{Endpoint: e})
	}
	return ts
}

// Validate checks that every target has a host:port endpoint, listed once, and a payment key of
// the right size when it has one. what names the list in messages ("proxies").
func Validate(what string, ts []Target) error {
	seen := map[string]bool{}
	for i, t := range ts {
		if _, port, err := net.SplitHostPort(t.Endpoint); err != nil || port == "" {
			return fmt.Errorf("%s[%d]: %q is not host:port", what, i, t.Endpoint)
		}
		if seen[t.Endpoint] {
			return fmt.Errorf("%s[%d]: %q listed twice", what, i, t.Endpoint)
		}
		if t.PaymentKey != nil && len(t.PaymentKey) != ed25519.PublicKeySize {
			return fmt.Errorf("%s[%d]: payment key of %q has %d bytes, want %d", what, i, t.Endpoint,
				len(t.PaymentKey), ed25519.PublicKeySize)
		}
		seen[t.Endpoint] = true
	}
	return nil
}

// ErrPaymentKeyMismatch is a proxy whose attested payment key is not the one the registry lists
// for its endpoint: another proxy answers there, and nothing is sent to it.
var ErrPaymentKeyMismatch = errors.New("payment key mismatch")

// CheckPaymentKey refuses a peer whose attested payment key differs from t's (when t has one).
func CheckPaymentKey(t Target, peer *attest.Peer) error {
	if t.PaymentKey == nil || bytes.Equal(peer.Claims.PaymentKey, t.PaymentKey) {
		return nil
	}
	got := "none"
	if peer.Claims.PaymentKey != nil {
		got = hex.EncodeToString(peer.Claims.PaymentKey)
	}
	return fmt.Errorf("%w: proxy at %s presents payment key %s, the registry lists %s for that endpoint",
		ErrPaymentKeyMismatch, t.Endpoint, got, hex.EncodeToString(t.PaymentKey))
}

// Refusal is why a dial failed if it is a refusal (by our policy, by the proxy, or a payment key
// mismatch), or "" when it is not (the proxy is down, unreachable or stopping).
func Refusal(err error) string {
	if err == nil {
		return ""
	}
	var ae *quic.ApplicationError
	var te *quic.TransportError
	switch {
	case errors.Is(err, transport.ErrPeerRefused), errors.Is(err, ErrPaymentKeyMismatch):
		return err.Error()
	case errors.As(err, &ae) && ae.Remote && ae.ErrorCode != wire.CodeOK && ae.ErrorCode != wire.CodeShutdown &&
		ae.ErrorCode != wire.CodeInternal:
		// During the dial, the listener closes with a reason when it does not verify us (our
		// attestation, our version) or has too many connections from our address.
		return "proxy refused this node: " + ae.ErrorMessage
	case errors.As(err, &te) && te.Remote && (te.ErrorCode.IsCryptoError() || te.ErrorCode == quic.ConnectionRefused):
		return "proxy refused this node: " + te.Error()
	}
	return ""
}

// SlowBackoff is the wait after a refusal that this package decides (a payment key mismatch):
// the proxy will not change its mind in seconds, and the registry may be updated meanwhile.
var SlowBackoff = redial.Backoff{Min: 10 * time.Second, Max: 5 * time.Minute}

// Member is one target in a Set, with the value the role keeps for it.
type Member[V any] struct {
	// Target is the proxy as it joined; its Name may change while it stays (Name), so that field
	// is not read from here.
	Target Target
	Value  V
	name   atomic.Pointer[string] // the latest Target.Name

	retired chan struct{} // closed when the member leaves the set

	mu       sync.Mutex
	cancel   context.CancelFunc // ends the member's loop; nil until it starts
	live     int                // sessions under way
	isOut    bool
	refusals int    // refusals in a row, for the slow backoff
	refused  string // the last refusal's reason; "" once a connection is accepted
}

// Name is the proxy's name as the latest update gave it.
func (m *Member[V]) Name() string {
	if n := m.name.Load(); n != nil {
		return *n
	}
	return m.Target.Name
}

// Retired is closed when the member is taken out of its set: its sessions should stop taking
// new requests, finish those under way and end.
func (m *Member[V]) Retired() <-chan struct{} { return m.retired }

// Hold marks a session as under way; the member's loop is stopped only once every session ended.
// The returned function ends it.
func (m *Member[V]) Hold() (release func()) {
	m.mu.Lock()
	m.live++
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.live--
		if m.isOut && m.live == 0 && m.cancel != nil {
			m.cancel()
		}
	}
}

// Refused records reason (from Refusal) and reports whether it differs from the last one, which
// is when it is worth a log line. An empty reason clears the record: the proxy accepted us.
func (m *Member[V]) Refused(reason string) (changed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if reason == "" {
		m.refusals = 0
	} else {
		m.refusals++
	}
	changed = reason != m.refused
	m.refused = reason
	return changed
}

// Refusal is the reason the proxy was last refused, or "".
func (m *Member[V]) Refusal() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.refused
}

// Wait blocks for the slow backoff after the refusals in a row recorded so far, or until ctx ends
// or the member is retired.
func (m *Member[V]) Wait(ctx context.Context, b redial.Backoff) {
	m.mu.Lock()
	n := max(m.refusals-1, 0)
	m.mu.Unlock()
	t := time.NewTimer(b.Delay(n))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-m.retired:
	case <-t.C:
	}
}

// Set is the members a node keeps connections to. Update changes it at any time; Run runs a loop
// for each member until its context ends.
type Set[V any] struct {
	newValue func(Target) V
	run      func(ctx context.Context, m *Member[V])

	mu      sync.Mutex
	members []*Member[V] // in the order they joined
	ctx     context.Context
	stopped bool
	wg      sync.WaitGroup
}

// New makes an empty set. newValue makes the role's value for a member when it joins; run is the
// member's loop (redial.Loop, usually), which must return once its context ends.
func New[V any](newValue func(Target) V, run func(ctx context.Context, m *Member[V])) *Set[V] {
	return &Set[V]{newValue: newValue, run: run}
}

// Update makes ts the set: new endpoints join (and start, if the set runs), endpoints no longer
// listed are retired, and a target whose payment key changed is replaced by a new member (its
// connection was checked against the old key). It returns the members that joined and left.
func (s *Set[V]) Update(ts []Target) (joined, left []*Member[V]) {
	want := make(map[string]Target, len(ts))
	for _, t := range ts {
		want[t.Endpoint] = t
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.members[:0:0]
	have := map[string]bool{}
	for _, m := range s.members {
		t, ok := want[m.Target.Endpoint]
		if !ok || !bytes.Equal(t.PaymentKey, m.Target.PaymentKey) {
			left = append(left, m)
			continue
		}
		m.name.Store(&t.Name) // the member's loop reads Target unlocked: never written once it joined
		kept = append(kept, m)
		have[t.Endpoint] = true
	}
	for _, t := range ts {
		if have[t.Endpoint] {
			continue
		}
		have[t.Endpoint] = true
		m := &Member[V]{Target: t, Value: s.newValue(t), retired: make(chan struct{})}
		kept = append(kept, m)
		joined = append(joined, m)
		s.start(m)
	}
	s.members = kept
	for _, m := range left {
		m.retire()
	}
	return joined, left
}

// Members are the members in the set now, in the order they joined (retired ones are not).
func (s *Set[V]) Members() []*Member[V] {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Member[V](nil), s.members...)
}

// Run starts every member's loop and those of members that join later, until ctx ends; it
// returns once every loop it started has returned. A set runs once.
func (s *Set[V]) Run(ctx context.Context) {
	s.mu.Lock()
	if s.ctx != nil || s.stopped {
		s.mu.Unlock()
		return
	}
	s.ctx = ctx
	for _, m := range s.members {
		s.start(m)
	}
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.wg.Wait()
}

// start runs m's loop if the set runs; s.mu is held.
func (s *Set[V]) start(m *Member[V]) {
	if s.ctx == nil || s.stopped {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	m.mu.Lock()
	m.cancel = cancel
	m.mu.Unlock()
	s.wg.Go(func() {
		defer cancel()
		s.run(ctx, m)
	})
}

// retire closes m.retired and stops its loop at once when no session is under way.
func (m *Member[V]) retire() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.isOut {
		return
	}
	m.isOut = true
	close(m.retired)
	if m.live == 0 && m.cancel != nil {
		m.cancel()
	}
}
