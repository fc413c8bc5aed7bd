// Package redial keeps one attested connection to a peer alive: it dials, hands the connection to
// the caller's session function, and dials again with exponential backoff and jitter when the
// connection ends. Workers and clients use it for their proxies.
package redial

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/cocoon-network/cocoon/transport"
)

// Backoff bounds the wait between attempts.
type Backoff struct {
	Min, Max time.Duration
}

// DefaultBackoff starts at 100ms and doubles up to 5s.
var DefaultBackoff = Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}

// Loop dials addr until ctx ends. Each established connection is passed to session, which returns
// when it is done with it; the connection is then closed and, unless ctx ended, dialled again.
// Backoff resets after a connection that lasted longer than the maximum backoff.
//
// A connection that starts draining (its certificates expire soon) is replaced before it ends:
// the next one is dialled at once while session goes on with the old one until it closes, so that
// requests under way are not cut. A replacement that would end no later than the connection it
// replaces (the peer has not renewed its certificate) is not replaced again.
func Loop(ctx context.Context, addr string, cfg transport.Config, b Backoff, log zerolog.Logger,
	session func(ctx context.Context, c *transport.Conn)) {
	var sessions sync.WaitGroup
	defer sessions.Wait()
	wait := b.Min
	var lastEnds time.Time
	for ctx.Err() == nil {
		c, err := transport.Dial(ctx, addr, cfg)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn().Err(err).Str("proxy", addr).Dur("retry_in", wait).Msg("cannot connect")
		} else {
			start := time.Now()
			log.Info().Str("proxy", addr).Str("attestation", c.Peer().Label()).
				Str("image", c.Peer().ImageHash.String()).Msg("connected")
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
				log.Info().Str("proxy", addr).Time("ends", c.Ends()).
					Msg("connection draining before its certificates expire; connecting a replacement")
				wait = b.Min
				continue
			case <-ended:
			}
			if ctx.Err() != nil {
				return
			}
			log.Warn().Str("proxy", addr).AnErr("cause", c.Err()).Msg("connection lost")
			if time.Since(start) > b.Max {
				wait = b.Min
			}
		}
		// Full jitter keeps many nodes from reconnecting in lockstep after a proxy restart.
		d := time.Duration(rand.Int64N(int64(wait))) + b.Min/2
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		wait = min(wait*2, b.Max)
	}
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
