package transport

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/rs/zerolog"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// RefusedError is a refusal by attestation policy of a peer whose evidence verified: its image,
// model, platform or TCB status is not allowed (attest.PolicyError). Either we refused the peer
// (ByPeer false; it also matches ErrPeerRefused and the attest sentinel), or the peer refused us
// and said why in its CONNECTION_CLOSE (ByPeer true). A refusal does not clear by itself: someone
// has to change a policy or an allow-list (Fix, when known, says who and how).
//
// Dial returns one (wrapped) when the handshake ends in a refusal, Conn.Err when a connection
// was closed because a new policy no longer allows its peer, and OpenStream on such a connection
// while it drains.
type RefusedError struct {
	// Reason says what was refused and why: the peer's image hash and the list it is missing from.
	Reason string
	// Fix says how to get admitted, when known: who adds what to which list.
	Fix string
	// ByPeer is true when the peer refused us.
	ByPeer bool

	err error // our attest error (ByPeer false), or the connection's close
}

func (e *RefusedError) Error() string {
	s := "refused by the peer: " + e.Reason
	if !e.ByPeer {
		s = ErrPeerRefused.Error() + ": " + e.Reason
	}
	if e.Fix != "" {
		s += " (fix: " + e.Fix + ")"
	}
	return s
}

// Unwrap gives ErrPeerRefused for our refusals, and the attest error or the QUIC close.
func (e *RefusedError) Unwrap() []error {
	var out []error
	if !e.ByPeer {
		out = append(out, ErrPeerRefused)
	}
	if e.err != nil {
		out = append(out, e.err)
	}
	return out
}

// fields adds the reason and fix to a log event.
func (e *RefusedError) fields(ev *zerolog.Event) *zerolog.Event {
	ev = ev.Str("reason", e.Reason)
	if e.Fix != "" {
		ev = ev.Str("fix", e.Fix)
	}
	return ev
}

// refusalOf is our refusal of the peer for err, nil when err is not a refusal by policy of
// evidence that verified (a cryptographic failure, which is never explained to the peer).
func refusalOf(err error) *RefusedError {
	var pe *attest.PolicyError
	if !errors.As(err, &pe) {
		return nil
	}
	return &RefusedError{Reason: err.Error(), Fix: pe.Fix, err: err}
}

// peerRefusal is the peer's refusal of us, if err is the peer closing the connection with
// CodePolicyRefused.
func peerRefusal(err error) *RefusedError {
	var ae *quic.ApplicationError
	if !errors.As(err, &ae) || !ae.Remote || ae.ErrorCode != wire.CodePolicyRefused {
		return nil
	}
	reason, fix, _ := strings.Cut(ae.ErrorMessage, fixSeparator)
	return &RefusedError{Reason: reason, Fix: fix, ByPeer: true, err: err}
}

// fixSeparator parts the reason from the fix in a CONNECTION_CLOSE reason phrase.
const fixSeparator = "; fix: "

// maxPhrase bounds the reason phrase, so that the CONNECTION_CLOSE fits in one packet.
const maxPhrase = 800

// phrase is the CONNECTION_CLOSE reason phrase that tells a refused peer why.
func (e *RefusedError) phrase() string {
	s := e.Reason
	if e.Fix != "" {
		s += fixSeparator + e.Fix
	}
	if len(s) > maxPhrase {
		s = strings.ToValidUTF8(s[:maxPhrase-3], "") + "..."
	}
	return s
}

// closeRefusing closes qc at once with CodePolicyRefused and the reason, for a peer whose
// evidence verified but which the policy does not allow.
func closeRefusing(qc *quic.Conn, re *RefusedError) {
	_ = qc.CloseWithError(wire.CodePolicyRefused, re.phrase())
}

// refusalLinger is how long a connection that drains because the policy no longer allows its
// peer stays open after its last request ended, so that what the end of a request sends on the
// control stream (the proxy's payment states) still arrives.
var refusalLinger = time.Second

// recheck judges the peer again by the verifier's current policy, after a change of it; a peer
// no longer allowed gets its connection drained.
func (c *Conn) recheck() {
	if c.qc.Context().Err() != nil {
		return
	}
	if err := c.cfg.Verifier.Recheck(c.peer); err != nil {
		c.refuse(err)
	}
}

// refuse drains the connection because the policy no longer allows its peer: no new request
// streams are opened or accepted on it, and it is closed with CodePolicyRefused and the reason
// once those under way have ended (refusalLinger later), or at the latest after
// Config.DrainBefore.
func (c *Conn) refuse(err error) {
	re := refusalOf(err)
	if re == nil {
		re = &RefusedError{Reason: err.Error(), err: err}
	}
	c.drainMu.Lock()
	if c.refusal != nil {
		c.drainMu.Unlock()
		return
	}
	c.refusal = re
	active := c.active
	c.drainMu.Unlock()
	c.startDrain("the attestation policy no longer allows the peer: " + re.Reason)
	re.fields(c.log.Warn().Str("peer", c.RemoteAddr().String()).Int("requests_under_way", active)).Msg("the attestation policy no longer allows this peer: draining the connection (no new requests; it closes once those under way end)")
	if active == 0 {
		c.closeRefusedAfter(refusalLinger)
		return
	}
	c.closeRefusedAfter(c.cfg.DrainBefore)
}

// closeRefusedAfter closes the refused connection after d, unless it ends first.
func (c *Conn) closeRefusedAfter(d time.Duration) {
	t := time.AfterFunc(d, func() {
		c.log.Info().Str("peer", c.RemoteAddr().String()).Msg("closing the connection of a peer the policy no longer allows")
		closeRefusing(c.qc, c.refusal)
	})
	context.AfterFunc(c.qc.Context(), func() { t.Stop() })
}

// begin counts a request stream as under way; a connection that drains because its peer is no
// longer allowed takes none.
func (c *Conn) begin() error {
	c.drainMu.Lock()
	defer c.drainMu.Unlock()
	if c.refusal != nil {
		return c.refusal
	}
	c.active++
	if c.co != nil {
		c.co.active.Add(1)
	}
	return nil
}

// end counts a request stream as ended.
func (c *Conn) end() {
	c.drainMu.Lock()
	c.active--
	if c.co != nil {
		c.co.active.Add(-1)
	}
	last := c.active == 0 && c.refusal != nil
	c.drainMu.Unlock()
	if last {
		c.closeRefusedAfter(refusalLinger)
	}
}

// startDrain makes the connection drain, once; reason is kept for DrainReason.
func (c *Conn) startDrain(reason string) {
	c.drainOnce.Do(func() {
		c.drainMu.Lock()
		c.drainReason = reason
		c.drainMu.Unlock()
		close(c.draining)
	})
}

// Refusal is our refusal of the peer when a new policy no longer allows it (the connection then
// drains and takes no new requests), nil otherwise.
func (c *Conn) Refusal() *RefusedError {
	c.drainMu.Lock()
	defer c.drainMu.Unlock()
	return c.refusal
}

// DrainReason says why the connection drains ("" while it does not): its certificates expire
// soon, or the attestation policy no longer allows the peer.
func (c *Conn) DrainReason() string {
	c.drainMu.Lock()
	defer c.drainMu.Unlock()
	return c.drainReason
}
