// Package paysync is the payment-state exchange that clients and workers hold with each proxy:
// right after connecting they show the proxy the latest state it signed for them, so that a proxy
// whose ledger was rolled back notices before it signs again, and they keep the newest state the
// proxy sends on the control stream. Only roles/client and roles/worker import it.
package paysync

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"errors"
	"slices"
	"sync"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/paystate"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// conn is the part of a proxy connection the exchange uses.
type conn interface {
	SendControl(m proto.Message) error
}

// Sync is the exchange on one proxy connection. A nil *Sync (payments off, or a proxy without a
// payment key) takes no state.
//
// A proxy sends a state after the requests it charges (under load, the newest of every 10 ms), each
// one cumulative: it supersedes every state before it. Verifying and saving one (a signature check and an fsync) costs more than the
// request's relay, so states are taken in the background, newest first: while one is being saved,
// the newest of those that arrive wait (at most maxPending), and once one of them is kept, those
// it supersedes are dropped unsaved. Nothing is lost by that: the newest state holds their
// totals. One that is refused (a bad signature) does not hide the older ones behind it.
type Sync struct {
	states   *paystate.Store
	proxyKey ed25519.PublicKey
	log      zerolog.Logger

	mu       sync.Mutex
	pending  []pendingState // the newest states received and not yet taken
	draining bool           // a goroutine is taking states
}

// maxPending bounds the states waiting to be taken: the newest are kept.
const maxPending = 8

type pendingState struct {
	raw   []byte
	seqno uint64
}

// Start begins the exchange on c with the proxy whose payment key is proxyKey: it sends the
// latest state held for that key, if any. It returns nil when states is nil or proxyKey is.
func Start(states *paystate.Store, proxyKey ed25519.PublicKey, c conn, log zerolog.Logger) *Sync {
	if states == nil || proxyKey == nil {
		return nil
	}
	if st, ok := states.Latest(proxyKey); ok {
		if b, err := st.MarshalBinary(); err == nil {
			_ = c.SendControl(&wire.PaymentState{Signed: b})
		}
	}
	return &Sync{states: states, proxyKey: proxyKey, log: log}
}

// Handle takes m if it is a payment state, and reports whether it was one (callers handle the
// other control messages). The state is kept, once it verifies and if it is newer than the one
// held, by the time Idle reports true.
func (s *Sync) Handle(m proto.Message) bool {
	ps, ok := m.(*wire.PaymentState)
	if !ok {
		return false
	}
	if s == nil {
		return true
	}
	st, err := settle.ParseSignedState(ps.GetSigned())
	if err != nil {
		s.log.Warn().Err(err).Msg("payment state refused")
		return true
	}
	s.mu.Lock()
	s.pending = append(s.pending, pendingState{raw: bytes.Clone(ps.GetSigned()), seqno: st.State.Seqno})
	if len(s.pending) > maxPending {
		oldest := 0
		for i, p := range s.pending {
			if p.seqno < s.pending[oldest].seqno {
				oldest = i
			}
		}
		s.pending = slices.Delete(s.pending, oldest, oldest+1)
	}
	start := !s.draining
	s.draining = true
	s.mu.Unlock()
	if start {
		go s.drain()
	}
	return true
}

// Idle reports whether every state received has been taken (kept or refused).
func (s *Sync) Idle() bool {
	if s == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.draining
}

func byState(a, b pendingState) int { return cmp.Compare(a.seqno, b.seqno) }

// drain takes the pending states, newest first, until none is left.
func (s *Sync) drain() {
	for {
		s.mu.Lock()
		batch := s.pending
		s.pending = nil
		if len(batch) == 0 {
			s.draining = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		slices.SortFunc(batch, byState)
		for i := len(batch) - 1; i >= 0; i-- {
			if s.accept(batch[i].raw) {
				break // kept, or older than the one held: the rest are older still
			}
		}
	}
}

// accept takes one state, and reports whether the states older than it need no taking: it was
// kept, or the one held is newer.
func (s *Sync) accept(raw []byte) bool {
	_, err := s.states.Accept(s.proxyKey, raw)
	switch {
	case err == nil:
		return true
	case errors.Is(err, paystate.ErrReplay):
		// Requests end concurrently, so their states may arrive out of order: an older one is
		// stale, and the newer one kept is what counts.
		s.log.Debug().Err(err).Msg("stale payment state ignored")
		return true
	}
	s.log.Warn().Err(err).Msg("payment state refused")
	return false
}
