package statsweb

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestPercentile(t *testing.T) {
	ten := func() []time.Duration { return []time.Duration{5, 1, 4, 2, 3, 6, 7, 8, 9, 10} }
	testCases := map[string]struct {
		ds   []time.Duration
		q    float64
		want time.Duration
	}{
		"median of ten":      {ds: ten(), q: 0.5, want: 5},
		"p99 of ten":         {ds: ten(), q: 0.99, want: 10},
		"p0 is the smallest": {ds: ten(), q: 0, want: 1},
		"p100 is the top":    {ds: ten(), q: 1, want: 10},
		"one value":          {ds: []time.Duration{7}, q: 0.99, want: 7},
		"none":               {q: 0.5, want: 0},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, Percentile(tc.ds, tc.q))
		})
	}
}

func TestWindowPercentiles(t *testing.T) {
	assert := assert.New(t)
	var w Window
	p50, p99 := w.Percentiles()
	assert.Zero(p50)
	assert.Zero(p99)
	for i := range 100 {
		w.Observe(time.Duration(i+1) * time.Millisecond)
	}
	p50, p99 = w.Percentiles()
	assert.InDelta(50.0, p50, 1e-9)
	assert.InDelta(99.0, p99, 1e-9)
}

func TestHistDistribution(t *testing.T) {
	assert := assert.New(t)
	var h Hist
	assert.Zero(h.Distribution().Count)
	for _, d := range []time.Duration{time.Millisecond, 7 * time.Millisecond, time.Second, time.Hour} {
		h.Observe(d)
	}
	d := h.Distribution()
	assert.EqualValues(4, d.Count)
	assert.InDelta(3601.008, d.Sum, 1e-9)
	assert.EqualValues(1, d.Buckets[0.005])
	assert.EqualValues(2, d.Buckets[0.01], "cumulative")
	assert.EqualValues(3, d.Buckets[1], "a bound includes what equals it")
	assert.EqualValues(3, d.Buckets[300], "an hour is above every bound, counted in Count only")
}
