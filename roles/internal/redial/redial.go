// Package redial keeps one attested connection to a proxy alive: it dials, hands the connection
// to the caller's session function, and dials again with exponential backoff and jitter when the
// connection ends, replacing a draining connection before it ends. Workers and clients both use
// it for each of their proxies.
package redial

import (
	"cmp"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// Backoff bounds the wait between attempts.
type Backoff struct {
	Min, Max time.Duration
	// RefusedMin and RefusedMax bound the wait after a refusal by attestation policy
	// (transport.RefusedError), ours or the proxy's, which does not clear by itself: someone has
	// to change a policy or an allow-list. Zero: DefaultRefusedMin, DefaultRefusedMax. A change
	// of our own policy (attest.Verifier.SetPolicy) ends the wait at once.
	RefusedMin, RefusedMax time.Duration
}

// DefaultBackoff starts at 100ms and doubles up to 5s.
var DefaultBackoff = Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}

// The default wait after a refusal: 1 min, doubling up to 10 min.
const (
	DefaultRefusedMin = time.Minute
	DefaultRefusedMax = 10 * time.Minute
)

// refused is the backoff after refusals.
func (b Backoff) refused() Backoff {
	return Backoff{Min: cmp.Or(b.RefusedMin, DefaultRefusedMin), Max: cmp.Or(b.RefusedMax, DefaultRefusedMax)}
}

// Delay is the wait before reconnection attempt n (0-based): Min doubled n times, at most Max,
// of which a random part of up to half is taken off, so that the nodes of a restarted proxy do
// not all reconnect in the same instant.
func (b Backoff) Delay(n int) time.Duration {
	d := b.Min
	for i := 0; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// Hooks let a caller follow what Loop does besides the sessions; nil fields are skipped.
type Hooks struct {
	// DialFailed is called with the error of each failed dial. A refusal by attestation policy
	// wraps a *transport.RefusedError (errors.As), whose Reason and Fix a caller can show.
	DialFailed func(err error)
	// Refused is called with each refusal by attestation policy, ours or the proxy's, at the dial
	// or closing a connection that a new policy no longer allows.
	Refused func(err *transport.RefusedError)
}

// Loop dials addr until ctx ends. Each established connection is passed to session, which returns
// when it is done with it; the connection is then closed and, unless ctx ended, dialled again.
// Backoff resets after a connection that lasted longer than the maximum backoff, so a peer that
// accepts and closes at once is not hammered.
//
// A connection that starts draining (its certificates expire soon) is replaced before it ends:
// the next one is dialled at once while session goes on with the old one until it closes, so that
// requests under way are not cut. A replacement that would end no later than the connection it
// replaces (the peer has not renewed its certificate) is not replaced again.
//
// Dial failures are logged once per distinct error, not at every retry; a peer refused by our
// attestation policy is logged as an error.
//
// A refusal by attestation policy (transport.RefusedError: the proxy refused us, or our policy
// refused it, at the dial or by closing a connection after a policy change) is logged as an error
// with its reason and fix, and retried only after the far longer refusal backoff, or at once when
// our own policy changes.
func Loop(ctx context.Context, addr string, cfg transport.Config, b Backoff, log zerolog.Logger,
	session func(ctx context.Context, c *transport.Conn), hooks Hooks) {
	log = log.With().Str("proxy", addr).Logger()
	var sessions sync.WaitGroup
	defer sessions.Wait()
	policyChanged := make(chan struct{}, 1)
	if cfg.Verifier != nil {
		stop := cfg.Verifier.OnPolicyChange(func() {
			select {
			case policyChanged <- struct{}{}:
			default:
			}
		})
		defer stop()
	}
	attempt, refusals := 0, 0
	var lastLogged string
	var lastEnds time.Time
	for {
		select {
		case <-policyChanged: // judged by the current policy from here on
		default:
		}
		c, err := transport.Dial(ctx, addr, cfg)
		if ctx.Err() != nil {
			if c != nil {
				_ = c.Close(wire.CodeShutdown, "stopping")
				<-c.Done()
			}
			return
		}
		var refusal *transport.RefusedError
		if err != nil {
			if hooks.DialFailed != nil {
				hooks.DialFailed(err)
			}
			if !errors.As(err, &refusal) {
				lastLogged = logDialError(log, err, lastLogged)
			}
		} else {
			lastLogged = ""
			start := time.Now()
			msg := "connected to proxy"
			if c.Peer().Simulated {
				// Allowed only because the policy says so; it must be visible wherever it shows.
				msg = "connected to proxy (SIMULATED attestation: development root of trust, not real TDX)"
			}
			log.Info().Str("attestation", c.Peer().Label()).Str("image_hash", c.Peer().ImageHash.String()).Msg(msg)
			ended := make(chan struct{})
			sessions.Go(func() {
				defer close(ended)
				session(ctx, c)
				_ = c.Close(0, "session ended")
			})
			draining := ReplaceWhen(c, &lastEnds)
			select {
			case <-ctx.Done():
				return
			case <-draining:
				log.Info().Time("ends", c.Ends()).Str("reason", c.DrainReason()).
					Msg("proxy connection drains; connecting a replacement")
				attempt = 0
				continue
			case <-ended:
			}
			if ctx.Err() != nil {
				return
			}
			if !errors.As(c.Err(), &refusal) {
				log.Warn().AnErr("cause", c.Err()).Dur("lasted", time.Since(start)).Msg("proxy connection lost; reconnecting")
			}
			if time.Since(start) > b.Max {
				attempt = 0
			}
		}
		delay := b.Delay(attempt)
		if refusal != nil {
			if hooks.Refused != nil {
				hooks.Refused(refusal)
			}
			delay = b.refused().Delay(refusals)
			refusals++
			lastLogged = logRefusal(log, refusal, delay, lastLogged)
		} else {
			attempt++
			if err == nil {
				refusals = 0
			}
		}
		// Only a refusal's wait ends at a change of our policy (since the dial began): the
		// change may admit the proxy, or come with the registry change that admits us.
		var wake <-chan struct{}
		if refusal != nil {
			wake = policyChanged
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-wake:
			t.Stop()
			log.Info().Msg("attestation policy changed; connecting to the proxy again")
		}
	}
}

// logRefusal logs a refusal by attestation policy and the wait before the next attempt, once per
// distinct refusal (last is the message logged before), and returns the message logged now.
func logRefusal(log zerolog.Logger, re *transport.RefusedError, delay time.Duration, last string) string {
	msg := re.Error()
	if msg == last {
		log.Debug().Err(re).Dur("retry_in", delay).Msg("still refused; retrying")
		return msg
	}
	fix := "a refusal will not clear by itself"
	if re.Fix != "" {
		fix += ": " + re.Fix
	}
	wait := delay.Round(time.Second).String()
	ev := log.Error().Err(re).Str("reason", re.Reason).Str("fix", re.Fix).Dur("retry_in", delay)
	if re.ByPeer {
		ev.Msg("refused by the proxy: " + re.Reason + "; retrying in " + wait + " (" + fix + ")")
	} else {
		ev.Msg("refused proxy: our attestation policy does not allow it, nothing will be sent to it: " + re.Reason +
			"; retrying in " + wait + " (" + fix + ")")
	}
	return msg
}

// logDialError logs a failed dial once per distinct error (last is the one logged before) and
// returns the error logged now: a proxy that stays down or stays refused must not flood the log.
func logDialError(log zerolog.Logger, err error, last string) string {
	msg := err.Error()
	switch {
	case msg == last:
		log.Debug().Err(err).Msg("cannot connect to proxy; retrying")
	case errors.Is(err, transport.ErrPeerRefused):
		log.Error().Err(err).Msg("refused proxy: its attestation is not allowed by our policy; nothing will be sent to it")
	default:
		log.Warn().Err(err).Msg("cannot connect to proxy; retrying")
	}
	return msg
}

// ReplaceWhen is when c should be replaced by a new connection: when it starts draining, unless it
// ends no later than the connection it replaced (ends, then updated), which means the peer has not
// renewed its certificate and another connection would end just as soon. Then it is nil: never.
func ReplaceWhen(c *transport.Conn, ends *time.Time) <-chan struct{} {
	later := c.Ends().After(*ends)
	*ends = c.Ends()
	if !later {
		return nil
	}
	return c.Draining()
}
