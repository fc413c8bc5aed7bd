package statsweb

import (
	"math"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/cocoon-network/cocoon/roles/internal/metrics"
)

// Bounds are the upper bounds, in seconds, of every duration histogram on /metrics: from a few
// milliseconds (a handshake on loopback) to minutes (a long generation).
var Bounds = [...]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// Hist counts every duration observed since start into Bounds, for a Prometheus histogram. The
// zero value is ready.
type Hist struct {
	mu     sync.Mutex
	counts [len(Bounds)]uint64 // per bucket, not cumulative
	n      uint64
	sum    float64
}

// Observe adds one duration.
func (h *Hist) Observe(d time.Duration) {
	s := d.Seconds()
	i := sort.SearchFloat64s(Bounds[:], s) // the first bound ≥ s
	h.mu.Lock()
	defer h.mu.Unlock()
	if i < len(Bounds) {
		h.counts[i]++
	}
	h.n++
	h.sum += s
}

// Distribution is everything observed so far, cumulative per bound.
func (h *Hist) Distribution() metrics.Distribution {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := metrics.Distribution{Count: h.n, Sum: h.sum, Buckets: make(map[float64]uint64, len(Bounds))}
	var run uint64
	for i, b := range Bounds {
		run += h.counts[i]
		d.Buckets[b] = run
	}
	return d
}

// Window keeps the most recent durations for percentiles, and all of them in a Hist.
type Window struct {
	Hist
	mu   sync.Mutex
	buf  [1024]time.Duration
	n, i int
}

// Observe adds one duration.
func (w *Window) Observe(d time.Duration) {
	w.Hist.Observe(d)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf[w.i] = d
	w.i = (w.i + 1) % len(w.buf)
	w.n = min(w.n+1, len(w.buf))
}

// Percentiles returns the 50th and 99th percentiles in milliseconds.
func (w *Window) Percentiles() (p50, p99 float64) {
	w.mu.Lock()
	s := append([]time.Duration(nil), w.buf[:w.n]...)
	w.mu.Unlock()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return ms(Percentile(s, 0.50)), ms(Percentile(s, 0.99))
}

// Percentile is the nearest-rank percentile q (0..1) of ds: the smallest value at least q of
// them do not exceed; 0 for none. It sorts ds in place, so a second call on the same slice costs
// little. Every figure the project reports (role stats pages, the benchmark) uses this one
// definition, so that their p50 and p99 can be compared.
func Percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// Runtime is the process's goroutine count and Go heap, shown in every role's stats so that growth
// across runs (a leak) is visible from outside.
type Runtime struct {
	Goroutines int    `json:"goroutines"`
	HeapBytes  uint64 `json:"heap_bytes"`
}

// ReadRuntime samples the current process.
func ReadRuntime() Runtime {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Runtime{Goroutines: runtime.NumGoroutine(), HeapBytes: ms.HeapAlloc}
}

// Also returns f that, when called, calls before (when set) and then w.Observe: for hooks such as
// transport.Config.OnHandshake that a role observes besides whoever set them.
func (w *Window) Also(before func(time.Duration)) func(time.Duration) {
	if before == nil {
		return w.Observe
	}
	return func(d time.Duration) {
		before(d)
		w.Observe(d)
	}
}
