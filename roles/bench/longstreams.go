package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/gpu/scripted"
	"github.com/cocoon-network/cocoon/roles/internal/poll"
	"github.com/cocoon-network/cocoon/roles/internal/statsweb"
)

// runLongStreams opens many streams that stay open mid-answer (the engine holds each after its
// first event) and compares each role's RSS with the streams open against its RSS idle.
func runLongStreams(ctx context.Context, o *Options, n *network, rep *report) error {
	eng := startEngine(o, rep)
	defer eng.Close()
	if err := n.start(ctx, eng.URL, o.Concurrency); err != nil {
		return err
	}
	body := chatRequestBody()
	hc := newLoadClient(o.Concurrency)
	defer hc.CloseIdleConnections()
	url := n.clientURL + "/v1/chat/completions"
	if o.Warmup > 0 {
		o.logf("long-streams: warm-up with complete answers for %s", o.Warmup)
		res := runLoad(ctx, min(o.Concurrency, 30), o.Warmup, 0, httpRequester(hc, url, body), nil)
		if res.errors > 0 {
			return fmt.Errorf("bench: warm-up: %d requests failed, first: %v", res.errors, res.firstErr)
		}
	}
	rep.Roles = map[string]*roleStats{}
	// Each state is sampled twice: as it is, and after every role collected its garbage, which is
	// what a role keeps (the first figure also counts garbage that the next collection frees).
	idleRaw, idle := map[string]int64{}, map[string]int64{}
	for _, p := range n.procs {
		idleRaw[p.name], _, _ = procMem(p.pid())
	}
	if err := n.collectGarbage(ctx); err != nil {
		return err
	}
	idleMem := map[string]map[string]uint64{}
	for _, p := range n.procs {
		rss, _, _ := procMem(p.pid())
		idle[p.name], idleMem[p.name] = rss, p.mem
		rep.Roles[p.name] = &roleStats{PID: p.pid(), IdleRSSMB: mib(rss)}
	}
	eng.Configure(func(c *scripted.Config) { c.Stall, c.StallAfter = true, 1 })

	st := &streamsStats{Wanted: o.Concurrency}
	rep.Streams = st
	o.logf("long-streams: opening %d streams held open after their first event, %d at a time", o.Concurrency, o.OpenAtOnce)
	holdCtx, release := context.WithCancel(ctx)
	defer release()
	var (
		opened   atomic.Int64
		allOpen  = make(chan struct{})
		mu       sync.Mutex
		ttfcs    []time.Duration
		failures int
		firstErr error
		wg       sync.WaitGroup
	)
	// Streams open at most openAtOnce at a time: this measures streams held open, not a burst of
	// thousands of request set-ups at the same instant (--open-at-once 5000 measures that).
	opening := make(chan struct{}, o.OpenAtOnce)
	start := time.Now()
	for range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case opening <- struct{}{}:
			case <-holdCtx.Done():
				return
			}
			var once sync.Once
			done := func() { once.Do(func() { <-opening }) }
			defer done()
			err := holdStream(holdCtx, hc, url, body, func(ttfc time.Duration) {
				done()
				mu.Lock()
				defer mu.Unlock()
				ttfcs = append(ttfcs, ttfc)
				if opened.Add(1) == int64(o.Concurrency) {
					close(allOpen)
				}
			})
			if err != nil {
				mu.Lock()
				defer mu.Unlock()
				failures++
				if firstErr == nil {
					firstErr = err
				}
			}
		}()
	}
	// Opening is bounded: a minute plus 10 ms per stream on a slow machine.
	openDeadline := time.NewTimer(setupTimeout + time.Duration(o.Concurrency)*10*time.Millisecond)
	defer openDeadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-allOpen:
			break wait
		case <-openDeadline.C:
			break wait
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			mu.Lock()
			bad := failures
			mu.Unlock()
			// Streams that failed will not open: stop waiting when the rest are open.
			if bad > 0 && int(opened.Load())+bad >= o.Concurrency {
				break wait
			}
		}
	}
	st.OpenS = time.Since(start).Seconds()
	st.Opened = int(opened.Load())
	o.logf("long-streams: %d open after %.1fs; holding them for %s", st.Opened, st.OpenS, o.Duration)

	// Hold the streams and keep each role's highest RSS over the hold.
	open := map[string]int64{}
	held := time.Now()
	sample := func() {
		for _, p := range n.procs {
			if rss, _, err := procMem(p.pid()); err == nil {
				open[p.name] = max(open[p.name], rss)
			}
		}
	}
	sample()
	holdEnd := time.NewTimer(o.Duration)
	defer holdEnd.Stop()
	for done := false; !done; {
		select {
		case <-holdEnd.C:
			done = true
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			sample()
		}
	}
	if err := n.collectGarbage(ctx); err != nil {
		return err
	}
	kept, keptMem := map[string]int64{}, map[string]map[string]uint64{}
	for _, p := range n.procs {
		kept[p.name], _, _ = procMem(p.pid())
		keptMem[p.name] = p.mem
	}
	st.HeldS = time.Since(held).Seconds()
	stillOpen := int(opened.Load())
	mu.Lock()
	st.Errors, st.FirstError = failures, errString(firstErr)
	mu.Unlock()

	o.logf("long-streams: releasing the streams")
	released := time.Now()
	release()
	if !waitGroupTimeout(&wg, requestTimeout) {
		return errors.New("bench: long-streams: streams did not end within a minute of being released")
	}
	// Cancellation must reach the proxy's accounting: wait until it sees no active requests.
	err := poll.Until(ctx, setupTimeout, nil, func() error {
		a, err := n.proxyActive()
		st.ProxyActiveAt = float64(a)
		if err == nil && a != 0 {
			err = fmt.Errorf("proxy still counts %d active requests", a)
		}
		return err
	})
	st.ReleasedS = time.Since(released).Seconds()
	mu.Lock()
	st.TTFCP50Ms, st.TTFCP99Ms = ms(statsweb.Percentile(ttfcs, 0.50)), ms(statsweb.Percentile(ttfcs, 0.99))
	mu.Unlock()
	var total float64
	for _, name := range []string{"client", "proxy", "worker"} {
		rs := rep.Roles[name]
		rs.OpenRSSMB = mib(kept[name])
		if stillOpen > 0 {
			rs.KiBPerStream = float64(kept[name]-idle[name]) / 1024 / float64(stillOpen)
			rs.KiBPerStreamRaw = float64(open[name]-idleRaw[name]) / 1024 / float64(stillOpen)
			perStream := func(class string) float64 {
				return (float64(keptMem[name][class]) - float64(idleMem[name][class])) / 1024 / float64(stillOpen)
			}
			rs.StackKiBPerStream, rs.HeapKiBPerStream = perStream(classStacks), perStream(classObjects)
		}
		total += rs.KiBPerStream
		rep.check(name+" memory per open stream", fmt.Sprintf("≤ %g KiB", targetStreamKiB), rs.KiBPerStream, " KiB", rs.KiBPerStream <= targetStreamKiB)
	}
	st.KiBPerStream = total
	rep.Path = &targetStats{Requests: st.Opened, Errors: st.Errors, FirstError: st.FirstError,
		TTFCP50Ms: st.TTFCP50Ms, TTFCP99Ms: st.TTFCP99Ms}
	if st.OpenS > 0 {
		rep.Path.RPS = float64(st.Opened) / st.OpenS
	}
	if st.Wanted > 0 {
		rep.Path.ErrorRate = float64(st.Errors) / float64(st.Wanted)
	}
	rep.Notes = append(rep.Notes, "memory per stream = (RSS with the streams open − RSS idle) ÷ streams, both taken after each role collected its garbage and returned the freed pages; before collection: (highest RSS while held − RSS idle) ÷ streams; of which stacks and heap objects: the same difference of the runtime's /memory/classes/heap/stacks and /memory/classes/heap/objects")
	if err != nil {
		return fmt.Errorf("bench: long-streams: after release: %w", err)
	}
	if st.Opened < st.Wanted && st.Errors == 0 {
		return fmt.Errorf("bench: long-streams: only %d of %d streams opened in %.0fs", st.Opened, st.Wanted, st.OpenS)
	}
	return errorBudget(map[string]*targetStats{"long-streams": rep.Path})
}

// holdStream sends one streamed request, waits for its first event, passes the time to it to
// opened and then holds the stream until ctx ends; it returns why the stream did not open.
func holdStream(ctx context.Context, hc *http.Client, url string, body []byte, opened func(ttfc time.Duration)) error {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	data, err := gpu.NewSSEReader(resp.Body, 0).Next()
	if err != nil {
		return fmt.Errorf("read first event: %w", err)
	}
	if bytes.HasPrefix(data, []byte(`{"error"`)) {
		return fmt.Errorf("error event: %.200s", bytes.TrimSpace(data))
	}
	opened(time.Since(start))
	// Held: the engine sends nothing more until we go away.
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}
