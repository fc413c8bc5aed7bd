package bench

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMedian(t *testing.T) {
	runs := []any{
		map[string]any{"n": 3.0, "ok": true, "s": "first", "a": []any{1.0, 9.0}, "only": 1.0},
		map[string]any{"n": 1.0, "ok": false, "s": "second", "a": []any{2.0, 8.0}},
		map[string]any{"n": 2.0, "ok": true, "s": "third", "a": []any{3.0, 7.0, 0.0}},
	}
	got := median(runs).(map[string]any)
	assert.Equal(t, 2.0, got["n"], "the middle number")
	assert.Equal(t, true, got["ok"], "the answer of most runs")
	assert.Equal(t, "first", got["s"])
	assert.Equal(t, []any{1.0, 9.0}, got["a"], "arrays of other lengths: the first run's")
	assert.Equal(t, 1.0, got["only"], "missing from a run: the first run's")

	runs[2].(map[string]any)["a"] = []any{3.0, 7.0}
	assert.Equal(t, []any{2.0, 8.0}, median(runs).(map[string]any)["a"], "element by element")
}

// The median report says each target's median value in its unit, met when most runs met it, and
// --scenario all's summary is made again from the median parts.
func TestMedianReport(t *testing.T) {
	var runs []any
	for _, rps := range []float64{300, 100, 200} {
		r := &report{Scenario: scenarioAll, Parts: []*report{{Part: partHandshake, Handshakes: &handshakeStats{PerS: rps}}}}
		r.check("handshakes", "≥ 150/s", rps, "/s", rps >= 150)
		var g any
		require.NoError(t, roundTrip(r, &g))
		runs = append(runs, g)
	}
	var rep report
	require.NoError(t, roundTrip(median(runs), &rep))
	rep.refresh()
	require.Len(t, rep.Targets, 1)
	assert.Equal(t, "200/s", rep.Targets[0].Value)
	assert.True(t, rep.Targets[0].Met)
	require.NotEmpty(t, rep.Summary)
	assert.Equal(t, "200/s (0.00 ms proxy CPU each)", rep.Summary[0].Got)
}
