package transport

import (
	"context"
	"time"

	"github.com/cocoon-network/cocoon/transport/wire"
)

// Ping intervals. A connection pings a silent peer every DefaultPingInterval unless configured
// otherwise, and takes it for dead when an answer takes longer than DefaultPingTimeout.
// IdlePingInterval is for connections that carry no requests (a proxy's idle workers, and a
// worker's or client's connection to its proxy): hundreds of them must not cost a core, while a
// vanished peer is still noticed within seconds.
const (
	DefaultPingInterval = time.Second
	DefaultPingTimeout  = 3 * time.Second
	IdlePingInterval    = 5 * time.Second
)

// Ping measures the round trip over the control stream.
func (c *Conn) Ping(ctx context.Context) (time.Duration, error) {
	n := c.nonce.Add(1)
	ch := make(chan struct{})
	c.pingMu.Lock()
	c.pings[n] = ch
	c.pingMu.Unlock()
	defer func() {
		c.pingMu.Lock()
		delete(c.pings, n)
		c.pingMu.Unlock()
	}()
	start := time.Now()
	if err := c.SendControl(&wire.Ping{Nonce: n}); err != nil {
		return 0, err
	}
	select {
	case <-ch:
		return time.Since(start), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-c.qc.Context().Done():
		return 0, ErrClosed
	}
}

// SetPingInterval changes how often a silent peer is pinged, from now on: a proxy checks a worker
// often while it serves requests (a vanished worker must fail its streams within seconds) and
// rarely while it is idle (hundreds of idle workers must not cost a core).
func (c *Conn) SetPingInterval(d time.Duration) {
	if d <= 0 || time.Duration(c.pingEvery.Swap(int64(d))) == d {
		return
	}
	select {
	case c.pingWake <- struct{}{}:
	default:
	}
}

func (c *Conn) pingInterval() time.Duration { return time.Duration(c.pingEvery.Load()) }

// liveness closes the connection when the peer stops answering. A connection that received
// packets since the last check is alive and costs nothing; a silent one is pinged, and it is
// dead only if the ping goes unanswered and still nothing at all arrived. So a peer too busy to
// answer a ping in time (thousands of streams opening at once) is not taken for dead, and idle
// connections whose peers ping us are never pinged back.
func (c *Conn) liveness() {
	t := time.NewTimer(c.pingInterval())
	defer t.Stop()
	received := c.qc.ConnectionStats().PacketsReceived
	for {
		select {
		case <-c.qc.Context().Done():
			return
		case <-c.pingWake:
			t.Reset(c.pingInterval())
			continue
		case <-t.C:
		}
		t.Reset(c.pingInterval())
		if now := c.qc.ConnectionStats().PacketsReceived; now != received {
			received = now
			continue
		}
		ctx, cancel := context.WithTimeout(c.qc.Context(), c.cfg.PingTimeout)
		_, err := c.Ping(ctx)
		cancel()
		now := c.qc.ConnectionStats().PacketsReceived
		if err != nil && now == received && c.qc.Context().Err() == nil {
			c.log.Warn().Dur("timeout", c.cfg.PingTimeout).Msg("peer unresponsive, closing connection")
			_ = c.qc.CloseWithError(wire.CodeTimeout, "peer unresponsive")
			return
		}
		received = now
	}
}
