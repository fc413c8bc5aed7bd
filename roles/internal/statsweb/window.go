package statsweb

import (
	"runtime"
	"sort"
	"sync"
	"time"
)

// Window keeps the most recent durations for percentiles.
type Window struct {
	mu   sync.Mutex
	buf  [1024]time.Duration
	n, i int
}

// Observe adds one duration.
func (w *Window) Observe(d time.Duration) {
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
	if len(s) == 0 {
		return 0, 0
	}
	sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return ms(s[len(s)*50/100]), ms(s[min(len(s)-1, len(s)*99/100)])
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
