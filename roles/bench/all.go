package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
)

// allPart is one run of `--scenario all`.
type allPart struct {
	name        string // in the report
	tag         string // of its CPU profiles
	scenario    string
	opt         netOptions
	noProxyPath bool
}

// allParts are the runs whose figures make the table, each on a network of its own.
var allParts = []allPart{
	{name: "default", tag: "default", scenario: scenarioDefault},
	{name: "default, payments on", tag: "payments", scenario: scenarioDefault, opt: netOptions{payments: true}, noProxyPath: true},
	{name: "default, plaintext (client.plaintext_dev)", tag: "plaintext", scenario: scenarioDefault, opt: netOptions{plaintext: true}, noProxyPath: true},
	{name: "tokens", tag: "tokens", scenario: scenarioTokens},
	{name: "long-streams", tag: "long-streams", scenario: scenarioLongStreams},
	{name: "handshake-storm", tag: "handshake-storm", scenario: scenarioHandshakeStorm},
}

// Part names the summary reads.
const (
	partDefault   = "default"
	partPayments  = "default, payments on"
	partPlaintext = "default, plaintext (client.plaintext_dev)"
	partTokens    = "tokens"
	partStreams   = "long-streams"
	partHandshake = "handshake-storm"
)

// runAll runs every part in turn and sums them up in the table. A part that fails is
// reported with its error and the others still run.
func runAll(ctx context.Context, o *Options, dir string) (*report, error) {
	all := &report{Scenario: scenarioAll, DurationS: o.Duration.Seconds(), WarmupS: o.Warmup.Seconds(),
		Machine: machineInfo{LoadBefore: loadAvg()}}
	var errs []error
	for _, p := range allParts {
		po := *o
		po.Scenario, po.Concurrency, po.ChunkDelay, po.noProxyPath = p.scenario, 0, 0, p.noProxyPath
		po.Payments, po.PlaintextDev = p.opt.payments, p.opt.plaintext
		if err := po.defaults(); err != nil {
			return all, err
		}
		o.logf("all: part %q", p.name)
		opt := p.opt
		opt.tag = p.tag
		rep, err := runPart(ctx, &po, dir, opt)
		if rep == nil {
			rep = &report{Scenario: p.scenario}
		}
		rep.Part = p.name
		if err != nil {
			rep.Notes = append(rep.Notes, "part failed: "+err.Error())
			errs = append(errs, fmt.Errorf("part %s: %w", p.name, err))
		}
		all.Parts = append(all.Parts, rep)
		all.Machine.CPUs, all.Machine.GoVersion = rep.Machine.CPUs, rep.Machine.GoVersion
		if ctx.Err() != nil {
			break
		}
	}
	all.Machine.LoadAfter = loadAvg()
	all.Summary = summarize(all.Parts)
	return all, errors.Join(errs...)
}

// summaryRow is one line of the table: what a run measured, beside direct where that
// applies, the figure the issue started from and its goal.
type summaryRow struct {
	Figure string `json:"figure"`
	Direct string `json:"direct,omitempty"`
	Got    string `json:"got"`
	Before string `json:"issue_today"`
	Goal   string `json:"goal"`
	Met    *bool  `json:"met,omitempty"`
}

// roles in the order of the table.
var summaryRoles = []string{"proxy", "client", "worker"}

// summarize turns the parts' reports into the table; a part that did not run leaves its
// rows out.
func summarize(parts []*report) []summaryRow {
	byName := map[string]*report{}
	for _, p := range parts {
		byName[p.Part] = p
	}
	var rows []summaryRow
	add := func(r summaryRow, met bool) {
		r.Met = &met
		rows = append(rows, r)
	}
	role := func(p *report, name string) *roleStats {
		if p == nil || p.Roles == nil || p.Roles[name] == nil {
			return &roleStats{}
		}
		return p.Roles[name]
	}
	today := map[string]string{"proxy": "0.58", "client": "0.59", "worker": "0.65"}
	if d := byName[partDefault]; d != nil && d.Path != nil && d.Direct != nil {
		add(summaryRow{Figure: "default scenario: full path / direct", Direct: fmt.Sprintf("%.1f req/s", d.Direct.RPS),
			Got: fmt.Sprintf("%.2f (%.1f req/s)", d.Ratio, d.Path.RPS), Before: "0.27–0.29", Goal: fmt.Sprintf("≥ %g", targetRatio)}, d.Ratio >= targetRatio)
		if d.DirectFresh != nil && d.PathFresh != nil {
			add(summaryRow{Figure: "new TCP connection per request, 30 at once (hey -disable-keepalive -c 30): full path / direct",
				Direct: fmt.Sprintf("%.1f req/s", d.DirectFresh.RPS), Got: fmt.Sprintf("%.2f (%.1f req/s)", d.RatioFresh, d.PathFresh.RPS),
				Before: "0.21–0.23", Goal: fmt.Sprintf("≥ %g", targetRatioHey)}, d.RatioFresh >= targetRatioHey)
		}
		for _, name := range summaryRoles {
			got := role(d, name).CPUSPerReq * 1000
			add(summaryRow{Figure: "CPU per request, default scenario: " + name, Got: fmt.Sprintf("%.3f ms", got),
				Before: today[name] + " ms", Goal: fmt.Sprintf("≤ %g ms", targetCPUMsPerReq[name])}, got <= targetCPUMsPerReq[name])
		}
		add(summaryRow{Figure: "added time to first chunk, one stream", Direct: fmt.Sprintf("%.2f ms", d.DirectOne.TTFCP50Ms),
			Got: fmt.Sprintf("%.2f ms", d.AddedTTFCP50MsOne), Before: "2.65 ms", Goal: fmt.Sprintf("≤ %g ms", targetAddedTTFCMs)},
			d.AddedTTFCP50MsOne <= targetAddedTTFCMs)
		for _, name := range summaryRoles {
			got := role(d, name).LoadRSSMB
			add(summaryRow{Figure: "RSS under the default load: " + name, Got: fmt.Sprintf("%.1f MB", got), Before: "33–38 MB",
				Goal: fmt.Sprintf("≤ %g MB", targetLoadRSSMB)}, got > 0 && got <= targetLoadRSSMB)
		}
	}
	if t := byName[partTokens]; t != nil && t.Tokens != nil {
		for _, name := range summaryRoles {
			got := role(t, name).CPUUsPerChunk
			add(summaryRow{Figure: fmt.Sprintf("CPU per relayed chunk, %d streams at %g ms per token: %s", t.Concurrency, t.Tokens.DelayMs, name),
				Got: fmt.Sprintf("%.1f µs", got), Before: "40–49 µs", Goal: fmt.Sprintf("≤ %g µs", targetChunkCPUUs)}, got > 0 && got <= targetChunkCPUUs)
		}
		tk := t.Tokens
		add(summaryRow{Figure: "added inter-chunk delay p50, tokens", Direct: fmt.Sprintf("%.2f ms", tk.DirectGapP50Ms),
			Got: fmt.Sprintf("%.2f ms", tk.AddedGapP50Ms), Before: "not measured", Goal: "—"}, true)
		add(summaryRow{Figure: "added inter-chunk delay p99, tokens", Direct: fmt.Sprintf("%.2f ms", tk.DirectGapP99Ms),
			Got: fmt.Sprintf("%.2f ms", tk.AddedGapP99Ms), Before: "not measured", Goal: fmt.Sprintf("≤ %g ms", targetAddedGapP99Ms)},
			tk.AddedGapP99Ms <= targetAddedGapP99Ms)
	}
	if s := byName[partStreams]; s != nil && s.Streams != nil {
		for _, name := range []string{"proxy", "client", "worker"} {
			rs := role(s, name)
			got := rs.KiBPerStream
			add(summaryRow{Figure: fmt.Sprintf("memory per open idle stream (%d streams): %s", s.Streams.Opened, name),
				Got: fmt.Sprintf("%.1f KiB (stacks %.1f, heap objects %.1f)", got, rs.StackKiBPerStream, rs.HeapKiBPerStream), Before: "24–46 KiB", Goal: fmt.Sprintf("≤ %g KiB", targetStreamKiB)}, got <= targetStreamKiB)
		}
	}
	if h := byName[partHandshake]; h != nil && h.Handshakes != nil {
		add(summaryRow{Figure: "full attested handshakes per second, one proxy", Got: fmt.Sprintf("%.0f/s (%.2f ms proxy CPU each)",
			h.Handshakes.PerS, h.Handshakes.ProxyCPUMsPer), Before: "305/s", Goal: fmt.Sprintf("≥ %g/s", targetHandshakesPerS)},
			h.Handshakes.PerS >= targetHandshakesPerS)
		if c := h.Handshakes.Clients; c != nil {
			rows = append(rows, summaryRow{Figure: "client handshakes per second, one proxy (no quote)", Got: fmt.Sprintf("%.0f/s (%.2f ms proxy CPU each)",
				c.PerS, c.ProxyCPUMsPer), Before: "not measured", Goal: "shown"})
		}
	}
	d := byName[partDefault]
	if p := byName[partPayments]; p != nil && d != nil && p.Path != nil && d.Path != nil {
		rows = append(rows, summaryRow{Figure: "payments on (local chain) vs off: full path / direct",
			Got: fmt.Sprintf("%.2f on, %.2f off", p.Ratio, d.Ratio), Before: "not measured", Goal: "shown"})
		for _, name := range summaryRoles {
			on, off := role(p, name).CPUSPerReq*1000, role(d, name).CPUSPerReq*1000
			rows = append(rows, summaryRow{Figure: "payments on vs off: CPU per request, " + name,
				Got: fmt.Sprintf("%.3f ms on, %.3f off (%+.3f)", on, off, on-off), Before: "not measured", Goal: "shown"})
		}
	}
	if p := byName[partPlaintext]; p != nil && d != nil && p.PathOne != nil && d.PathOne != nil {
		rows = append(rows, summaryRow{Figure: "sealing: added time to first chunk, one stream",
			Got: fmt.Sprintf("%.2f ms sealed, %.2f plaintext", d.AddedTTFCP50MsOne, p.AddedTTFCP50MsOne), Before: "not measured", Goal: "shown"})
		for _, name := range []string{"worker", "client"} {
			sealed, plain := role(d, name).CPUUsPerChunk, role(p, name).CPUUsPerChunk
			rows = append(rows, summaryRow{Figure: "sealing: CPU per chunk, default load, " + name,
				Got: fmt.Sprintf("%.1f µs sealed, %.1f plaintext (%+.1f)", sealed, plain, sealed-plain), Before: "not measured", Goal: "shown"})
		}
	}
	return rows
}

// printAll prints each part and then the summary.
func (r *report) printAll(w io.Writer) {
	fmt.Fprintf(w, "cocoon bench — scenario all: %d parts, %gs measured per target after %gs warm-up (load %.1f before, %.1f after)\n",
		len(r.Parts), r.DurationS, r.WarmupS, r.Machine.LoadBefore, r.Machine.LoadAfter)
	for _, p := range r.Parts {
		fmt.Fprintln(w)
		p.print(w)
	}
	fmt.Fprintln(w, "\nsummary (the issue's table)")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tdirect\tgot\tissue: today\tgoal\t\t")
	for _, s := range r.Summary {
		verdict := ""
		if s.Met != nil {
			verdict = "met"
			if !*s.Met {
				verdict = "MISSED"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", s.Figure, s.Direct, s.Got, s.Before, s.Goal, verdict)
	}
	_ = tw.Flush()
}
