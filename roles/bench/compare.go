package bench

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
)

// comparison is what --against reports: the scenario run with the roles of two binaries, one
// run after the other, and each figure of the one beside the other's.
type comparison struct {
	Bins    [2]string    `json:"bins"`
	Reports [2]*report   `json:"reports"`
	Rows    []compareRow `json:"rows"`
}

type compareRow struct {
	Figure string    `json:"figure"`
	Goal   string    `json:"goal"`
	Got    [2]string `json:"got"`
}

// runCompared runs the scenario with the roles of o.Bin and of o.Against in turn, o.Repeat times
// each (once if unset), and takes each binary's medians. Alternating spreads a drift of the
// machine's speed over both.
func runCompared(ctx context.Context, o Options) (*comparison, error) {
	n := max(o.Repeat, 1)
	bins := [2]string{o.Bin, o.Against}
	var runs [2][]any
	for i := range n {
		for _, b := range runOrder(i) {
			bin := bins[b]
			o.logf("run %d of %d with the roles of %s", i+1, n, bin)
			ob := o
			ob.Bin = bin
			rep, err := run(ctx, ob)
			if err != nil {
				return nil, fmt.Errorf("bench: with the roles of %s: %w", bin, err)
			}
			var generic any
			if err := roundTrip(rep, &generic); err != nil {
				return nil, err
			}
			runs[b] = append(runs[b], generic)
		}
	}
	c := &comparison{Bins: bins}
	for b := range bins {
		var rep report
		if err := roundTrip(median(runs[b]), &rep); err != nil {
			return nil, err
		}
		if n > 1 {
			rep.Runs = n
		}
		rep.refresh()
		c.Reports[b] = &rep
	}
	c.Rows = compareRows(c.Reports[0], c.Reports[1])
	return c, nil
}

// runOrder is which binary runs first in round i: each in turn, so that what a run leaves behind
// for the next (a warm page cache, a machine still busy with the last network's exit) favours
// neither. Measured on one binary against its copy, the first of a pair was 3–7% slower.
func runOrder(i int) [2]int {
	if i%2 == 1 {
		return [2]int{1, 0}
	}
	return [2]int{0, 1}
}

// compareRows pairs the two reports' figures: the targets of a scenario, the summary of all.
func compareRows(a, b *report) []compareRow {
	var rows []compareRow
	if a.Parts != nil {
		other := map[string]string{}
		for _, s := range b.Summary {
			other[s.Figure] = s.Got
		}
		for _, s := range a.Summary {
			rows = append(rows, compareRow{Figure: s.Figure, Goal: s.Goal, Got: [2]string{s.Got, other[s.Figure]}})
		}
		return rows
	}
	other := map[string]string{}
	for _, t := range b.Targets {
		other[t.Name] = t.Value
	}
	for _, t := range a.Targets {
		rows = append(rows, compareRow{Figure: t.Name, Goal: t.Target, Got: [2]string{t.Value, other[t.Name]}})
	}
	return append(rows, figureRows(a, b)...)
}

// figureRows are the figures of both reports that are not targets: CPU and memory per role, and
// what handshakes cost the proxy.
func figureRows(a, b *report) []compareRow {
	var rows []compareRow
	add := func(figure, format string, get func(r *report) float64) {
		va, vb := get(a), get(b)
		if va != 0 || vb != 0 {
			rows = append(rows, compareRow{Figure: figure, Got: [2]string{fmt.Sprintf(format, va), fmt.Sprintf(format, vb)}})
		}
	}
	for _, name := range summaryRoles {
		role := func(r *report) roleStats {
			if rs := r.Roles[name]; rs != nil {
				return *rs
			}
			return roleStats{}
		}
		add("CPU per request: "+name, "%.3f ms", func(r *report) float64 { return role(r).CPUSPerReq * 1000 })
		add("CPU per chunk: "+name, "%.1f µs", func(r *report) float64 { return role(r).CPUUsPerChunk })
		add("RSS under load: "+name, "%.1f MB", func(r *report) float64 { return role(r).LoadRSSMB })
		add("memory per open stream: "+name, "%.1f KiB", func(r *report) float64 { return role(r).KiBPerStream })
		add("stacks per open stream: "+name, "%.1f KiB", func(r *report) float64 { return role(r).StackKiBPerStream })
		add("heap objects per open stream: "+name, "%.1f KiB", func(r *report) float64 { return role(r).HeapKiBPerStream })
	}
	handshakes := func(r *report, clients bool) handshakeStats {
		h := r.Handshakes
		if h != nil && clients {
			h = h.Clients
		}
		if h == nil {
			return handshakeStats{}
		}
		return *h
	}
	add("proxy CPU per attested handshake", "%.2f ms", func(r *report) float64 { return handshakes(r, false).ProxyCPUMsPer })
	add("client handshakes per second", "%.0f/s", func(r *report) float64 { return handshakes(r, true).PerS })
	add("proxy CPU per client handshake", "%.2f ms", func(r *report) float64 { return handshakes(r, true).ProxyCPUMsPer })
	return rows
}

func (c *comparison) write(w io.Writer, asJSON bool) error {
	if asJSON {
		return writeJSON(w, c)
	}
	for b, rep := range c.Reports {
		fmt.Fprintf(w, "== with the roles of %s\n\n", c.Bins[b])
		rep.print(w)
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "== side by side")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "figure\tgoal\t%s\t%s\t\n", c.Bins[0], c.Bins[1])
	for _, r := range c.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", r.Figure, r.Goal, r.Got[0], r.Got[1])
	}
	return tw.Flush()
}
