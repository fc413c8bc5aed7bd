package proxy

import (
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/ledger"
	"github.com/cocoon-network/cocoon/transport"
)

// stateInterval is how often at most the proxy signs and sends one party's new total on one
// connection. Totals are cumulative, so the newest of an interval stands for those before it: a
// client with many requests ending at once gets one signature (and checks and stores one state)
// per interval instead of one per request, while a party's first new total after a quiet
// interval leaves at once.
const stateInterval = 10 * time.Millisecond

// stateSender hands each party its newest committed total (ledger.Committed), signed, at most once
// per interval per connection. It keeps no goroutine: a pending total leaves from a timer.
type stateSender struct {
	interval time.Duration
	// deliver signs st and sends it on conn; after runs f after d. Tests replace both.
	deliver func(conn *transport.Conn, st ledger.Committed)
	after   func(d time.Duration, f func())

	mu    sync.Mutex
	slots map[stateKey]*stateSlot // the parties sent a total within the last interval
}

type stateKey struct {
	conn  *transport.Conn
	party ton.AccountID
	kind  settle.Kind
}

// stateSlot is one party's interval: the highest sequence number sent in it, and the newest total
// committed since, if any, which leaves when the interval ends.
type stateSlot struct {
	sent    uint64
	pending *ledger.Committed
}

func newStateSender(log zerolog.Logger) *stateSender {
	return &stateSender{
		interval: stateInterval,
		deliver: func(conn *transport.Conn, st ledger.Committed) {
			signed, err := st.Sign()
			if err == nil {
				err = sendState(conn, signed)
			}
			if err != nil {
				log.Debug().Err(err).Stringer("kind", st.State().Kind).Msg("payment state not delivered")
			}
		},
		after: func(d time.Duration, f func()) { time.AfterFunc(d, f) },
		slots: map[stateKey]*stateSlot{},
	}
}

// send hands st to its party on conn: at once when the party was sent nothing within the interval,
// else when the interval ends, unless a newer total replaces it first.
func (s *stateSender) send(conn *transport.Conn, st ledger.Committed) {
	k := stateKey{conn, st.State().Party, st.State().Kind}
	seq := st.State().Seqno
	s.mu.Lock()
	if slot, ok := s.slots[k]; ok {
		// Totals of concurrent requests may arrive out of order: only a newer one is kept.
		if seq > slot.sent && (slot.pending == nil || seq > slot.pending.State().Seqno) {
			slot.pending = &st
		}
		s.mu.Unlock()
		return
	}
	s.slots[k] = &stateSlot{sent: seq}
	s.mu.Unlock()
	s.deliver(conn, st)
	s.after(s.interval, func() { s.endInterval(k) })
}

// endInterval sends the total that waited for k's interval to end, which starts another; without
// one, k is forgotten.
func (s *stateSender) endInterval(k stateKey) {
	s.mu.Lock()
	slot := s.slots[k]
	if slot.pending == nil {
		delete(s.slots, k)
		s.mu.Unlock()
		return
	}
	st := *slot.pending
	slot.sent, slot.pending = st.State().Seqno, nil
	s.mu.Unlock()
	s.deliver(k.conn, st)
	s.after(s.interval, func() { s.endInterval(k) })
}
