package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// runHandshakeStorm dials one proxy in closed loops, each time with a new certificate and quote,
// so that the proxy verifies every quote in full (its verification cache never hits). Then it does
// the same as clients, with a new certificate and no quote each time: most of a proxy's handshakes
// in a network are its clients'.
func runHandshakeStorm(ctx context.Context, o *Options, n *network, rep *report) error {
	if err := n.startProxy(ctx); err != nil {
		return err
	}
	proxy := n.procs[0]
	rep.Roles = map[string]*roleStats{"proxy": {PID: proxy.pid()}}
	o.logf("handshake-storm: %d dialers for %s, a new certificate and quote per handshake", o.Concurrency, o.Duration)
	st, ts, err := storm(ctx, o, n, proxy, attest.RoleWorker)
	if err != nil {
		return err
	}
	rep.Handshakes = st
	o.logf("handshake-storm: %d client dialers for %s, a new certificate per handshake", o.Concurrency, o.Duration)
	if st.Clients, _, err = storm(ctx, o, n, proxy, attest.RoleClient); err != nil {
		return err
	}
	_, hwm, _ := procMem(proxy.pid())
	st.ProxyPeakMB = mib(hwm)
	rep.Roles["proxy"].CPUSPerReq = st.ProxyCPUMsPer / 1000
	rep.check("full attested handshakes per second, one proxy", fmt.Sprintf("≥ %g/s", targetHandshakesPerS), st.PerS, "/s", st.PerS >= targetHandshakesPerS)
	rep.Notes = append(rep.Notes, "the dialers (and the certificate each makes per handshake) share the CPUs with the proxy; "+
		"proxy_capacity_per_core_s is what one core of proxy CPU sustains",
		"the bench verifies the proxy's certificate once and then from its cache; the proxy verifies every dialer's quote in full",
		"client handshakes: dialers in the client role, which present a certificate without a quote")
	return errorBudget(map[string]*targetStats{"handshake-storm": ts})
}

// storm dials the proxy in closed loops for o.Duration as role, with a new identity each time.
func storm(ctx context.Context, o *Options, n *network, proxy *roleProc, role attest.Role) (*handshakeStats, *targetStats, error) {
	ids, err := newIdentities(n.sim, o.Version, role)
	if err != nil {
		return nil, nil, err
	}
	var idTime atomic.Int64
	var idCount atomic.Int64
	dial := func(ctx context.Context) (time.Duration, int, error) {
		t0 := time.Now()
		tc, err := ids.config()
		if err != nil {
			return 0, 0, err
		}
		idTime.Add(int64(time.Since(t0)))
		idCount.Add(1)
		// Connections live for one handshake: no liveness pings.
		tc.PingInterval = -1
		start := time.Now()
		c, err := transport.Dial(ctx, n.proxyAddr, tc)
		if err != nil {
			return 0, 0, err
		}
		d := time.Since(start)
		_ = c.Close(wire.CodeOK, "")
		return d, 1, nil
	}
	var before time.Duration
	res := runLoad(ctx, o.Concurrency, o.Warmup, o.Duration, dial, func() { before, _ = procCPU(proxy.pid()) })
	after, _ := procCPU(proxy.pid())
	ts := res.stats()
	st := &handshakeStats{}
	st.Handshakes, st.Errors, st.FirstError, st.PerS = ts.Requests, ts.Errors+ts.WarmupErrors, ts.FirstError, ts.RPS
	// For a dial, time to first chunk and latency are the same: the handshake.
	st.P50Ms, st.P99Ms = ts.LatencyP50Ms, ts.LatencyP99Ms
	if st.Handshakes > 0 {
		st.ProxyCPUMsPer = ms(after-before) / float64(st.Handshakes)
	}
	if st.ProxyCPUMsPer > 0 {
		st.ProxyCapacity = 1000 / st.ProxyCPUMsPer
	}
	if c := idCount.Load(); c > 0 {
		st.IdentityMs = ms(time.Duration(idTime.Load() / c))
	}
	return st, ts, nil
}
