package proxy

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/rs/zerolog"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/ledger"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// Payments is what a metering proxy needs: the ledger, the current prices and how to find a
// client's paying account from the key it authenticates with.
type Payments struct {
	Ledger *ledger.Ledger
	Prices func() settle.Prices
	// Account maps a client's key (its certificate key, which is its wallet key) to the wallet
	// address whose deposits pay for its requests.
	Account func(pub ed25519.PublicKey) (ton.AccountID, error)
	// PaymentKey verifies states that clients and workers hand back (rollback detection).
	PaymentKey ed25519.PublicKey
	// MaxCompletionTokens is reserved for a request that names no max_tokens; zero: 4096.
	MaxCompletionTokens uint64
}

// promptMargin covers the chat template's tokens on top of the body's bytes.
const promptMargin = 64

// maxUsage bounds what a request can use, to reserve its cost before it runs: the prompt is at
// most one token per byte of the request body, the completion at most max_tokens (or
// max_completion_tokens, or the default).
func (pm *Payments) maxUsage(body []byte) settle.Usage {
	var limits struct {
		MaxTokens           *uint64 `json:"max_tokens"`
		MaxCompletionTokens *uint64 `json:"max_completion_tokens"`
	}
	_ = json.Unmarshal(body, &limits) // a malformed body is refused later by the engine
	completion := pm.MaxCompletionTokens
	if completion == 0 {
		completion = 4096
	}
	if limits.MaxCompletionTokens != nil && *limits.MaxCompletionTokens > 0 {
		completion = *limits.MaxCompletionTokens
	} else if limits.MaxTokens != nil && *limits.MaxTokens > 0 {
		completion = *limits.MaxTokens
	}
	return settle.Usage{PromptTokens: uint64(len(body)) + promptMargin, CompletionTokens: completion}
}

// halt records that the ledger is behind a state it signed. From then on the proxy serves no
// request: signing again could sign a lower total under a reused sequence number.
type halt struct {
	err atomic.Pointer[error]
}

func (h *halt) set(err error) bool { return h.err.CompareAndSwap(nil, &err) }

func (h *halt) get() error {
	if e := h.err.Load(); e != nil {
		return *e
	}
	return nil
}

// checkState verifies a state a client or worker holds and compares it with the ledger.
func (p *Proxy) checkState(m *wire.PaymentState) error {
	pm := p.cfg.Payments
	if pm == nil {
		return nil
	}
	st, err := settle.ParseSignedState(m.GetSigned())
	if err != nil {
		return err
	}
	if err := st.Verify(pm.PaymentKey); err != nil {
		return err
	}
	if err := pm.Ledger.Check(st.State); err != nil {
		if errors.Is(err, ledger.ErrRollback) && p.halted.set(err) {
			p.log.Error().Err(err).Msg("LEDGER ROLLBACK: a peer holds a state this ledger never reached; refusing all requests until the ledger is restored")
		}
		return err
	}
	return nil
}

// sendState hands a signed state to a peer on its control stream.
func sendState(c *transport.Conn, st settle.SignedState) error {
	b, err := st.MarshalBinary()
	if err != nil {
		return fmt.Errorf("encode payment state: %w", err)
	}
	return c.SendControl(&wire.PaymentState{Signed: b})
}

// sendCurrent answers a peer that asked for its latest signed total.
func (p *Proxy) sendCurrent(c *transport.Conn, party ton.AccountID, kind settle.Kind, log zerolog.Logger) {
	pm := p.cfg.Payments
	if pm == nil {
		return
	}
	st, err := pm.Ledger.Current(party, kind)
	if err == nil {
		err = sendState(c, st)
	}
	if err != nil {
		log.Debug().Err(err).Msg("latest payment state not sent")
	}
}
