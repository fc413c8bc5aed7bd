package statsweb

import (
	"slices"
	"sync"
	"time"
)

// processStart stands for the start of the counters a role keeps from zero.
var processStart = time.Now()

// RateWindow is the span a Rates averages over once it has been read for that long.
const RateWindow = time.Minute

// rateMinSpan is the shortest span a rate is measured over, so that two page views a second
// apart do not show a rate of a second.
const rateMinSpan = 10 * time.Second

// Rates turns counters that only grow into rates per second over the last RateWindow. It samples
// when read (every page view), at most once a second. In the process's first RateWindow, and
// until a sample is rateMinSpan old, the rate is the average since the process started. The zero
// value is ready.
type Rates struct {
	mu      sync.Mutex
	samples []rateSample // oldest first
}

type rateSample struct {
	at time.Time
	v  []float64
}

// Per returns the rate per second of each counter in v and the span it was measured over.
func (r *Rates) Per(now time.Time, v ...float64) (perSecond []float64, over time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Keep one sample at or before the window's start as the base.
	for len(r.samples) > 1 && now.Sub(r.samples[1].at) >= RateWindow {
		r.samples = slices.Delete(r.samples, 0, 1)
	}
	base := rateSample{at: processStart, v: make([]float64, len(v))}
	if len(r.samples) > 0 && now.Sub(processStart) > RateWindow && now.Sub(r.samples[0].at) >= rateMinSpan && len(r.samples[0].v) == len(v) {
		base = r.samples[0]
	}
	if n := len(r.samples); n == 0 || now.Sub(r.samples[n-1].at) >= time.Second {
		r.samples = append(r.samples, rateSample{at: now, v: slices.Clone(v)})
	}
	over = now.Sub(base.at)
	perSecond = make([]float64, len(v))
	if over <= 0 {
		return perSecond, 0
	}
	for i := range v {
		perSecond[i] = max(v[i]-base.v[i], 0) / over.Seconds()
	}
	return perSecond, over
}
