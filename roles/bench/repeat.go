package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
)

// maxRepeat bounds --repeat.
const maxRepeat = 9

// runRepeated runs the scenario o.Repeat times, each on a network of its own, and returns the
// median report: every figure is its median over the runs, every yes-or-no (a target met) the
// answer of most runs, and the rest is the first run's. The count is odd, so each median is one
// run's figure, and a target met by the median figure is one most runs met. On a machine whose
// speed drifts, medians of alternated runs are what two builds can be compared by.
func runRepeated(ctx context.Context, o Options) (*report, error) {
	var runs []any
	for i := range o.Repeat {
		o.logf("run %d of %d", i+1, o.Repeat)
		rep, err := run(ctx, o)
		if err != nil {
			if rep != nil {
				rep.Notes = append(rep.Notes, fmt.Sprintf("run %d of %d, which failed; the runs before it are not shown", i+1, o.Repeat))
			}
			return rep, err
		}
		var generic any
		if err := roundTrip(rep, &generic); err != nil {
			return nil, err
		}
		runs = append(runs, generic)
	}
	var rep report
	if err := roundTrip(median(runs), &rep); err != nil {
		return nil, err
	}
	rep.Runs = o.Repeat
	rep.refresh()
	rep.Notes = append(rep.Notes, fmt.Sprintf("every figure is the median of %d runs; a target is met when it was in most of them", o.Repeat))
	return &rep, nil
}

// refresh writes again what is derived from the figures: the targets' values and --scenario all's
// summary.
func (r *report) refresh() {
	for i := range r.Targets {
		t := &r.Targets[i]
		t.Value = formatTarget(t.Got, t.Unit)
	}
	for _, p := range r.Parts {
		p.refresh()
	}
	if r.Parts != nil {
		r.Summary = summarize(r.Parts)
	}
}

func roundTrip(from, to any) error {
	b, err := json.Marshal(from)
	if err != nil {
		return fmt.Errorf("bench: repeat: %w", err)
	}
	if err := json.Unmarshal(b, to); err != nil {
		return fmt.Errorf("bench: repeat: %w", err)
	}
	return nil
}

// median merges the same JSON document from several runs: numbers by their median, booleans by
// majority, objects key by key, arrays of one length element by element; anything else, and
// anything missing from a run, is the first run's.
func median(vs []any) any {
	switch first := vs[0].(type) {
	case float64:
		nums := make([]float64, 0, len(vs))
		for _, v := range vs {
			n, ok := v.(float64)
			if !ok {
				return first
			}
			nums = append(nums, n)
		}
		slices.Sort(nums)
		return nums[len(nums)/2]
	case bool:
		yes := 0
		for _, v := range vs {
			if b, _ := v.(bool); b {
				yes++
			}
		}
		return 2*yes > len(vs)
	case map[string]any:
		out := make(map[string]any, len(first))
		for k := range first {
			var col []any
			for _, v := range vs {
				m, _ := v.(map[string]any)
				if x, ok := m[k]; ok {
					col = append(col, x)
				}
			}
			if len(col) < len(vs) {
				out[k] = first[k]
				continue
			}
			out[k] = median(col)
		}
		return out
	case []any:
		out := make([]any, len(first))
		for i := range first {
			var col []any
			for _, v := range vs {
				if a, ok := v.([]any); ok && len(a) == len(first) {
					col = append(col, a[i])
				}
			}
			if len(col) < len(vs) {
				return first
			}
			out[i] = median(col)
		}
		return out
	}
	return vs[0]
}
