// Package paysync is the payment-state exchange that clients and workers hold with each proxy:
// right after connecting they show the proxy the latest state it signed for them, so that a proxy
// whose ledger was rolled back notices before it signs again, and they keep every newer state the
// proxy sends on the control stream. Only roles/client and roles/worker import it.
package paysync

import (
	"crypto/ed25519"
	"errors"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-network/cocoon/settle/paystate"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// conn is the part of a proxy connection the exchange uses.
type conn interface {
	SendControl(m proto.Message) error
}

// Sync is the exchange on one proxy connection. A nil *Sync (payments off, or a proxy without a
// payment key) takes no state.
type Sync struct {
	states   *paystate.Store
	proxyKey ed25519.PublicKey
	log      zerolog.Logger
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

// Handle takes m if it is a payment state, keeping it when it verifies and is newer, and reports
// whether it was one (callers handle the other control messages).
func (s *Sync) Handle(m proto.Message) bool {
	ps, ok := m.(*wire.PaymentState)
	if !ok {
		return false
	}
	if s == nil {
		return true
	}
	if _, err := s.states.Accept(s.proxyKey, ps.GetSigned()); err != nil {
		if errors.Is(err, paystate.ErrReplay) {
			// Requests end concurrently, so their states may arrive out of order: an older one
			// is stale, and the newer one kept is what counts.
			s.log.Debug().Err(err).Msg("stale payment state ignored")
		} else {
			s.log.Warn().Err(err).Msg("payment state refused")
		}
	}
	return true
}
