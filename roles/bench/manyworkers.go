package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/gpu/scripted"
	"github.com/cocoon-network/cocoon/roles/internal/poll"
	"github.com/cocoon-network/cocoon/roles/internal/statsweb"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// runManyWorkers connects N workers to one proxy from this process — each with its own RA-TLS
// certificate and simulated quote, registering a model as a worker does — and measures the proxy.
func runManyWorkers(ctx context.Context, o *Options, n *network, rep *report) error {
	if err := n.startProxy(ctx); err != nil {
		return err
	}
	proxy := n.procs[0]
	rep.Roles = map[string]*roleStats{"proxy": {PID: proxy.pid()}}
	st := &workersStats{Wanted: o.Concurrency}
	rep.Workers = st
	ids, err := newIdentities(n.sim, o.Version, attest.RoleWorker)
	if err != nil {
		return err
	}
	o.logf("many-workers: making %d worker certificates", o.Concurrency)
	t0 := time.Now()
	tcs := make([]transport.Config, o.Concurrency)
	for i := range tcs {
		if tcs[i], err = ids.config(); err != nil {
			return err
		}
	}
	st.IdentitiesS = time.Since(t0).Seconds()
	idleRSS, _, _ := procMem(proxy.pid())
	st.ProxyIdleMB = mib(idleRSS)

	o.logf("many-workers: connecting %d workers to the proxy", o.Concurrency)
	var (
		mu                sync.Mutex
		conns             []*transport.Conn
		dials, registers  []time.Duration
		failures          int
		firstErr          error
		wg                sync.WaitGroup
		sem               = make(chan struct{}, 16) // dials at once, as workers restarting together would
		registerDeadlines = setupTimeout
	)
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close(wire.CodeShutdown, "bench done")
		}
	}()
	t0 = time.Now()
	for i := range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			c, dial, reg, err := registerWorker(ctx, n.proxyAddr, tcs[i], ids.digest, registerDeadlines)
			mu.Lock()
			defer mu.Unlock()
			if c != nil {
				conns = append(conns, c)
			}
			if err != nil {
				failures++
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			dials, registers = append(dials, dial), append(registers, reg)
		}()
	}
	if !waitGroupTimeout(&wg, setupTimeout+time.Duration(o.Concurrency)*20*time.Millisecond) {
		return errors.New("bench: many-workers: connecting the workers did not finish in time")
	}
	st.ConnectS = time.Since(t0).Seconds()
	st.Registered, st.Errors, st.FirstError = len(dials), failures, errString(firstErr)
	st.DialP50Ms, st.DialP99Ms = ms(statsweb.Percentile(dials, 0.5)), ms(statsweb.Percentile(dials, 0.99))
	st.RegisterP50Ms, st.RegisterP99Ms = ms(statsweb.Percentile(registers, 0.5)), ms(statsweb.Percentile(registers, 0.99))
	if err := poll.Until(ctx, setupTimeout, nil, func() error {
		got, err := n.proxyWorkers()
		if err == nil && got != st.Registered {
			err = fmt.Errorf("proxy lists %d workers, want %d", got, st.Registered)
		}
		return err
	}); err != nil {
		return fmt.Errorf("bench: many-workers: %w", err)
	}

	o.logf("many-workers: %d registered in %.1fs; holding them for %s", st.Registered, st.ConnectS, o.Duration)
	cpu0, _ := procCPU(proxy.pid())
	held := time.Now()
	var top int64
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	holdEnd := time.NewTimer(o.Duration)
	defer holdEnd.Stop()
	for done := false; !done; {
		if rss, _, err := procMem(proxy.pid()); err == nil {
			top = max(top, rss)
		}
		select {
		case <-holdEnd.C:
			done = true
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	cpu1, _ := procCPU(proxy.pid())
	st.ProxyCPUCores = (cpu1 - cpu0).Seconds() / time.Since(held).Seconds()
	st.ProxyRSSMB = mib(top)
	if st.Registered > 0 {
		st.KiBPerWorker = float64(top-idleRSS) / 1024 / float64(st.Registered)
	}
	_, hwm, _ := procMem(proxy.pid())
	st.ProxyPeakMB = mib(hwm)

	mu.Lock()
	for _, c := range conns {
		_ = c.Close(wire.CodeShutdown, "bench done")
	}
	conns = nil
	mu.Unlock()
	gone := time.Now()
	err = poll.Until(ctx, setupTimeout, nil, func() error {
		got, err := n.proxyWorkers()
		if err == nil && got != 0 {
			err = fmt.Errorf("proxy still lists %d workers", got)
		}
		return err
	})
	st.GoneS = time.Since(gone).Seconds()
	rep.check(fmt.Sprintf("proxy RSS with %d workers", st.Registered), fmt.Sprintf("≤ %g MiB (500 workers)", targetManyWorkersMiB),
		st.ProxyPeakMB, " MiB", st.ProxyPeakMB <= targetManyWorkersMiB)
	rep.Notes = append(rep.Notes, "the workers are connections from the bench process, each with its own certificate and simulated quote, "+
		"pinging every second as worker processes do; they register a model but serve no requests")
	if err != nil {
		return fmt.Errorf("bench: many-workers: after closing: %w", err)
	}
	if st.Errors > 0 && float64(st.Errors) > 0.01*float64(st.Wanted) {
		return fmt.Errorf("bench: many-workers: %d of %d workers failed to register, first: %s", st.Errors, st.Wanted, st.FirstError)
	}
	return nil
}

// registerWorker dials the proxy as a worker and registers the bench model.
func registerWorker(ctx context.Context, addr string, tc transport.Config, digest string, timeout time.Duration) (*transport.Conn, time.Duration, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	c, err := transport.Dial(ctx, addr, tc)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("dial proxy: %w", err)
	}
	dial := time.Since(start)
	if err := c.SendControl(&wire.Register{Model: scripted.DefaultModel, WeightsDigest: digest, Coefficient: 1000, MaxActive: 64}); err != nil {
		return c, dial, 0, fmt.Errorf("register: %w", err)
	}
	for {
		select {
		case m, ok := <-c.Control():
			if !ok {
				return c, dial, 0, fmt.Errorf("register: connection ended: %v", c.Err())
			}
			if r, ok := m.(*wire.Registered); ok && r.GetWorkerId() != "" {
				reg := time.Since(start)
				// Keep reading control messages, as a worker does, so the connection never stalls.
				go func() {
					for range c.Control() {
					}
				}()
				return c, dial, reg, nil
			}
			if e, ok := m.(*wire.Error); ok {
				return c, dial, 0, fmt.Errorf("register: proxy refused (code %d): %s", e.GetCode(), e.GetMessage())
			}
		case <-ctx.Done():
			return c, dial, 0, fmt.Errorf("register: %w", ctx.Err())
		}
	}
}
