package client

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cocoon-network/cocoon/roles/internal/proxyset"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// Tuning of the choice among more proxies than Config.MaxProxies.
const (
	probeTimeout  = 5 * time.Second // one probe: dial, payment key check, pings
	probePings    = 3               // the probe's RTT is the best of these
	probeParallel = 8               // probes at once
	// keepBias favours the proxies already connected: a standby replaces one only when its RTT is
	// below this fraction of the connected one's, so that jitter does not make the set churn.
	keepBias = 0.8
)

// SetProxies replaces the set of proxies the client may use, while it runs or before: proxies
// added are connected without a restart, proxies no longer listed take no new requests and their
// connections close once the requests under way finish. The configured Config.Proxies are only
// the first set: a caller that wants to keep them lists them too. With Config.MaxProxies, the
// client connects to at most that many of them, those with the lowest round-trip time.
func (c *Client) SetProxies(ts []ProxyTarget) error {
	if err := proxyset.Validate("proxies", ts); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	c.targetsMu.Lock()
	c.targets = slices.Clone(ts)
	for ep := range c.probes {
		if !slices.ContainsFunc(ts, func(t ProxyTarget) bool { return t.Endpoint == ep }) {
			delete(c.probes, ep)
		}
	}
	c.targetsMu.Unlock()
	if c.cfg.MaxProxies == 0 || len(ts) <= c.cfg.MaxProxies {
		c.set.Update(ts)
		c.notify()
		return nil
	}
	c.reselectSoon()
	return nil
}

// probe is what one probe of a proxy that is not connected found.
type probe struct {
	rtt time.Duration // 0: not measured
	err error
}

// reselectSoon asks the selection loop for a new choice of proxies.
func (c *Client) reselectSoon() {
	select {
	case c.reselectCh <- struct{}{}:
	default:
	}
}

// selectLoop keeps the connected proxies the best Config.MaxProxies of the targets: on every
// change of the targets, when a chosen proxy is lost or refused, and every reselectEvery, with at
// least reselectGap between two choices (each probes the proxies not connected).
func (c *Client) selectLoop(ctx context.Context) {
	if c.cfg.MaxProxies == 0 {
		return
	}
	t := time.NewTicker(c.reselectEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.reselectCh:
		case <-t.C:
		}
		c.reselect(ctx)
		gap := time.NewTimer(c.reselectGap)
		select {
		case <-ctx.Done():
			gap.Stop()
			return
		case <-gap.C:
		}
	}
}

// reselect chooses the proxies to connect to and makes them the set.
func (c *Client) reselect(ctx context.Context) {
	c.targetsMu.Lock()
	targets := slices.Clone(c.targets)
	c.targetsMu.Unlock()
	n := c.cfg.MaxProxies
	if len(targets) <= n {
		c.set.Update(targets)
		c.notify()
		return
	}
	live := map[string]time.Duration{}
	for _, m := range c.set.Members() {
		m.Value.mu.Lock()
		if m.Value.conn != nil && m.Value.rtt > 0 && m.Refusal() == "" {
			live[m.Target.Endpoint] = m.Value.rtt
		}
		m.Value.mu.Unlock()
	}
	var toProbe []ProxyTarget
	for _, t := range targets {
		if _, ok := live[t.Endpoint]; !ok {
			toProbe = append(toProbe, t)
		}
	}
	probes := c.probeAll(ctx, toProbe)
	if ctx.Err() != nil {
		return
	}
	c.targetsMu.Lock()
	for ep, p := range probes {
		c.probes[ep] = p
	}
	c.targetsMu.Unlock()
	chosen := choose(targets, live, probes, n)
	if _, left := c.set.Update(chosen); len(left) > 0 {
		for _, m := range left {
			c.log.Info().Str("proxy", m.Target.Label()).Msg("proxy moved to standby: others answer faster")
		}
	}
	c.notify()
}

// choose picks at most n targets: the measured ones by round-trip time (connected ones, live,
// with the keepBias in their favour), then the unmeasured ones in the order given, so that a
// client which reached fewer than n proxies still keeps trying the others.
func choose(targets []ProxyTarget, live map[string]time.Duration, probes map[string]probe, n int) []ProxyTarget {
	type scored struct {
		t     ProxyTarget
		score float64 // 0: not measured
		order int
	}
	ss := make([]scored, 0, len(targets))
	for i, t := range targets {
		s := scored{t: t, order: i}
		if rtt, ok := live[t.Endpoint]; ok {
			s.score = float64(rtt) * keepBias
		} else if p, ok := probes[t.Endpoint]; ok && p.err == nil {
			s.score = float64(p.rtt)
		}
		ss = append(ss, s)
	}
	slices.SortStableFunc(ss, func(a, b scored) int {
		switch {
		case a.score == 0 && b.score == 0:
			return cmp.Compare(a.order, b.order)
		case a.score == 0:
			return 1
		case b.score == 0:
			return -1
		}
		return cmp.Compare(a.score, b.score)
	})
	out := make([]ProxyTarget, 0, n)
	for _, s := range ss[:min(n, len(ss))] {
		out = append(out, s.t)
	}
	return out
}

// probeAll probes targets, probeParallel at a time.
func (c *Client) probeAll(ctx context.Context, targets []ProxyTarget) map[string]probe {
	out := make(map[string]probe, len(targets))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, probeParallel)
	for _, t := range targets {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			rtt, err := c.probe(ctx, t)
			if err != nil {
				c.log.Debug().Str("proxy", t.Label()).Err(err).Msg("probe failed")
			}
			mu.Lock()
			out[t.Endpoint] = probe{rtt: rtt, err: err}
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// probe measures the round-trip time to a proxy that is not connected: an attested dial, the
// payment key check, the best of a few pings; then the connection is closed. Nothing else is sent.
func (c *Client) probe(ctx context.Context, t ProxyTarget) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := transport.Dial(ctx, t.Endpoint, c.tc)
	if err != nil {
		return 0, err
	}
	defer func() {
		_ = conn.Close(wire.CodeOK, "probe done")
		<-conn.Done()
	}()
	if err := proxyset.CheckPaymentKey(t, conn.Peer()); err != nil {
		return 0, err
	}
	var best time.Duration
	for range probePings {
		rtt, err := conn.Ping(ctx)
		if err != nil {
			return 0, fmt.Errorf("ping %s: %w", t.Endpoint, err)
		}
		if best == 0 || rtt < best {
			best = rtt
		}
	}
	return max(best, time.Nanosecond), nil
}
