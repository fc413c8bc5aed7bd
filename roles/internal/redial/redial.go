// Package redial keeps one attested connection to a proxy alive: it dials, hands the connection
// to the caller's session function, and dials again with exponential backoff and jitter when the
// connection ends, replacing a draining connection before it ends. Workers and clients both use
// it for each of their proxies.
package redial

import (
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
}

// DefaultBackoff starts at 100ms and doubles up to 5s.
var DefaultBackoff = Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}

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
	// DialFailed is called with the error of each failed dial.
	DialFailed func(err error)
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
func Loop(ctx context.Context, addr string, cfg transport.Config, b Backoff, log zerolog.Logger,
	session func(ctx context.Context, c *transport.Conn), hooks Hooks) {
	log = log.With().Str("proxy", addr).Logger()
	var sessions sync.WaitGroup
	defer sessions.Wait()
	attempt := 0
	var lastLogged string
	var lastEnds time.Time
	for {
		c, err := transport.Dial(ctx, addr, cfg)
		if ctx.Err() != nil {
			if c != nil {
				_ = c.Close(wire.CodeShutdown, "stopping")
				<-c.Done()
			}
			return
		}
		if err != nil {
			if hooks.DialFailed != nil {
				hooks.DialFailed(err)
			}
			lastLogged = logDialError(log, err, lastLogged)
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
				log.Info().Time("ends", c.Ends()).
					Msg("proxy connection drains before its certificates expire; connecting a replacement")
				attempt = 0
				continue
			case <-ended:
			}
			if ctx.Err() != nil {
				return
			}
			log.Warn().AnErr("cause", c.Err()).Dur("lasted", time.Since(start)).Msg("proxy connection lost; reconnecting")
			if time.Since(start) > b.Max {
				attempt = 0
			}
		}
		t := time.NewTimer(b.Delay(attempt))
		attempt++
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
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
