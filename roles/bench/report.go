package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"
)

// report is what a run found, the JSON object of --json. Figures in milliseconds, megabytes (MiB) and KiB.
type report struct {
	Scenario string `json:"scenario"`
	// Part names this run within `--scenario all`.
	Part        string       `json:"part,omitempty"`
	Payments    bool         `json:"payments"`
	Plaintext   bool         `json:"plaintext_dev,omitempty"`
	Machine     machineInfo  `json:"machine"`
	DurationS   float64      `json:"duration_s"`
	WarmupS     float64      `json:"warmup_s"`
	Concurrency int          `json:"concurrency"`
	Engine      *engineShape `json:"engine,omitempty"`

	Direct    *targetStats `json:"direct,omitempty"`
	Path      *targetStats `json:"path,omitempty"`
	ProxyPath *targetStats `json:"proxy_path,omitempty"`
	// Ratio is path rps / direct rps; RatioProxyPath the same for proxy_path.
	Ratio          float64 `json:"ratio,omitempty"`
	RatioProxyPath float64 `json:"ratio_proxy_path,omitempty"`
	// AddedTTFCP50Ms is path TTFC p50 minus direct TTFC p50 under the load above.
	AddedTTFCP50Ms float64 `json:"added_ttfc_p50_ms,omitempty"`
	// DirectOne and PathOne are one stream at a time: latency without queueing.
	// AddedTTFCP50MsOne is their TTFC p50 difference, what the path adds to an answer by itself.
	DirectOne         *targetStats `json:"direct_one_stream,omitempty"`
	PathOne           *targetStats `json:"path_one_stream,omitempty"`
	ProxyPathOne      *targetStats `json:"proxy_path_one_stream,omitempty"`
	AddedTTFCP50MsOne float64      `json:"added_ttfc_p50_ms_one_stream,omitempty"`
	// DirectFresh and PathFresh open a new TCP connection for every request, as `hey
	// -disable-keepalive` does; RatioFresh is their rps ratio.
	DirectFresh *targetStats `json:"direct_fresh_conns,omitempty"`
	PathFresh   *targetStats `json:"path_fresh_conns,omitempty"`
	RatioFresh  float64      `json:"ratio_fresh_conns,omitempty"`

	// Roles are the role processes, with CPU per request of the path target.
	Roles map[string]*roleStats `json:"roles,omitempty"`

	Streams    *streamsStats   `json:"streams,omitempty"`
	Workers    *workersStats   `json:"workers,omitempty"`
	Handshakes *handshakeStats `json:"handshakes,omitempty"`
	Tokens     *tokensStats    `json:"tokens,omitempty"`

	// Parts are the runs of `--scenario all`; Summary is the table from them.
	Parts   []*report    `json:"parts,omitempty"`
	Summary []summaryRow `json:"summary,omitempty"`

	Targets []targetCheck `json:"targets"`
	Notes   []string      `json:"notes,omitempty"`
	// Runs is how many runs the figures are the medians of (--repeat); 0 for one run.
	Runs int `json:"runs,omitempty"`
}

type machineInfo struct {
	CPUs       int     `json:"cpus"`
	GoVersion  string  `json:"go_version"`
	LoadBefore float64 `json:"load1_before"`
	LoadAfter  float64 `json:"load1_after"`
}

type engineShape struct {
	Chunks     int     `json:"chunks"`
	ChunkBytes int     `json:"chunk_bytes"`
	DelayMs    float64 `json:"delay_ms"`
	UsageLine  bool    `json:"usage_line"`
}

type targetStats struct {
	Requests     int     `json:"requests"`
	Errors       int     `json:"errors"`
	WarmupErrors int     `json:"warmup_errors"`
	ErrorRate    float64 `json:"error_rate"`
	FirstError   string  `json:"first_error,omitempty"`
	RPS          float64 `json:"rps"`
	TTFCP50Ms    float64 `json:"ttfc_p50_ms"`
	TTFCP99Ms    float64 `json:"ttfc_p99_ms"`
	LatencyP50Ms float64 `json:"latency_p50_ms"`
	LatencyP99Ms float64 `json:"latency_p99_ms"`
	ChunksPerS   float64 `json:"chunks_per_s"`
	WindowS      float64 `json:"window_s"`
	// BenchCPUMsPerReq is the bench process's own CPU (load generator and engine) per request.
	BenchCPUMsPerReq float64 `json:"bench_cpu_ms_per_req"`
}

type roleStats struct {
	PID int `json:"pid"`
	// CPUSPerReq is the role's utime+stime over the path window ÷ path requests.
	CPUSPerReq float64 `json:"cpu_s_per_req"`
	// CPUSPerReqProxyPath is the same over the proxy_path window (proxy and worker only).
	CPUSPerReqProxyPath float64 `json:"cpu_s_per_req_proxy_path,omitempty"`
	// CPUSPerReqFresh is the same over the path window with a new connection per request.
	CPUSPerReqFresh float64 `json:"cpu_s_per_req_fresh_conns,omitempty"`
	// CPUUsPerChunk is CPU per relayed event (chunks and usage line) over the path window, in µs.
	CPUUsPerChunk float64 `json:"cpu_us_per_chunk,omitempty"`
	// CPUCores is the role's average CPU use during the path window, in cores.
	CPUCores float64 `json:"cpu_cores"`
	// PeakRSSMB is VmHWM: the highest RSS over the process's life, start-up included.
	PeakRSSMB float64 `json:"peak_rss_mb"`
	// StartRSSMB is RSS once the role is up, before load; LoadRSSMB the highest RSS sampled (every
	// 100 ms) while the path target ran, warm-up included.
	StartRSSMB float64 `json:"start_rss_mb,omitempty"`
	LoadRSSMB  float64 `json:"load_rss_mb,omitempty"`
	// LoadAnonMB is the highest RssAnon sampled under load: heap and stacks, without the pages of
	// the executable and libraries (shared, file-backed), which VmRSS counts too.
	LoadAnonMB float64 `json:"load_rss_anon_mb,omitempty"`
	// Set by long-streams: RSS idle, with the streams open, and the difference per stream.
	IdleRSSMB    float64 `json:"idle_rss_mb,omitempty"`
	OpenRSSMB    float64 `json:"open_rss_mb,omitempty"`
	KiBPerStream float64 `json:"kib_per_stream,omitempty"`
	// KiBPerStreamRaw is KiBPerStream from samples that also count garbage not yet collected.
	KiBPerStreamRaw float64 `json:"kib_per_stream_before_gc,omitempty"`
	// StackKiBPerStream and HeapKiBPerStream split KiBPerStream by the runtime's memory classes:
	// goroutine stacks, and live heap objects.
	StackKiBPerStream float64 `json:"stack_kib_per_stream,omitempty"`
	HeapKiBPerStream  float64 `json:"heap_kib_per_stream,omitempty"`
}

type streamsStats struct {
	Wanted        int     `json:"wanted"`
	Opened        int     `json:"opened"`
	Errors        int     `json:"errors"`
	FirstError    string  `json:"first_error,omitempty"`
	OpenS         float64 `json:"open_s"`
	TTFCP50Ms     float64 `json:"ttfc_p50_ms"`
	TTFCP99Ms     float64 `json:"ttfc_p99_ms"`
	HeldS         float64 `json:"held_s"`
	KiBPerStream  float64 `json:"kib_per_stream_all_roles"`
	ReleasedS     float64 `json:"released_s"`
	ProxyActiveAt float64 `json:"proxy_active_after_release"`
}

type workersStats struct {
	Wanted        int     `json:"wanted"`
	Registered    int     `json:"registered"`
	Errors        int     `json:"errors"`
	FirstError    string  `json:"first_error,omitempty"`
	IdentitiesS   float64 `json:"identities_s"`
	ConnectS      float64 `json:"connect_s"`
	DialP50Ms     float64 `json:"dial_p50_ms"`
	DialP99Ms     float64 `json:"dial_p99_ms"`
	RegisterP50Ms float64 `json:"register_p50_ms"`
	RegisterP99Ms float64 `json:"register_p99_ms"`
	ProxyIdleMB   float64 `json:"proxy_idle_rss_mb"`
	ProxyRSSMB    float64 `json:"proxy_rss_mb"`
	ProxyPeakMB   float64 `json:"proxy_peak_rss_mb"`
	KiBPerWorker  float64 `json:"kib_per_worker"`
	ProxyCPUCores float64 `json:"proxy_cpu_cores_held"`
	GoneS         float64 `json:"deregistered_s"`
}

type handshakeStats struct {
	Handshakes    int     `json:"handshakes"`
	Errors        int     `json:"errors"`
	FirstError    string  `json:"first_error,omitempty"`
	PerS          float64 `json:"per_s"`
	P50Ms         float64 `json:"p50_ms"`
	P99Ms         float64 `json:"p99_ms"`
	ProxyCPUMsPer float64 `json:"proxy_cpu_ms_per_handshake"`
	// ProxyCapacity is 1 / proxy CPU per handshake: handshakes per second per core of the proxy.
	ProxyCapacity float64 `json:"proxy_capacity_per_core_s"`
	IdentityMs    float64 `json:"bench_identity_ms"`
	ProxyPeakMB   float64 `json:"proxy_peak_rss_mb,omitempty"`
	// Clients are the same figures for dialers in the client role (no quote).
	Clients *handshakeStats `json:"clients,omitempty"`
}

type tokensStats struct {
	DelayMs float64 `json:"delay_ms"`
	// Chunks is how many events the path delivered in its window.
	Chunks int `json:"chunks"`
	// Gaps: the time between consecutive events of one answer, and how many were measured.
	DirectGapP50Ms float64 `json:"direct_gap_p50_ms"`
	DirectGapP99Ms float64 `json:"direct_gap_p99_ms"`
	DirectGaps     int     `json:"direct_gaps"`
	PathGapP50Ms   float64 `json:"path_gap_p50_ms"`
	PathGapP99Ms   float64 `json:"path_gap_p99_ms"`
	PathGaps       int     `json:"path_gaps"`
	AddedGapP50Ms  float64 `json:"added_gap_p50_ms"`
	AddedGapP99Ms  float64 `json:"added_gap_p99_ms"`
}

type targetCheck struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	// Value is Got in Unit, as printed.
	Value string  `json:"value"`
	Got   float64 `json:"got"`
	Unit  string  `json:"unit"`
	Met   bool    `json:"met"`
}

func (r *report) check(name, target string, value float64, unit string, met bool) {
	r.Targets = append(r.Targets, targetCheck{Name: name, Target: target, Value: formatTarget(value, unit), Got: value, Unit: unit, Met: met})
}

func formatTarget(value float64, unit string) string { return fmt.Sprintf("%.3g%s", value, unit) }

// errorBudget fails a run whose targets lost more than 1% of their requests.
func errorBudget(targets map[string]*targetStats) error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(targets)) {
		t := targets[name]
		if t != nil && t.ErrorRate > 0.01 {
			errs = append(errs, fmt.Errorf("bench: %s: %d of %d requests failed (%.1f%%), first: %s",
				name, t.Errors+t.WarmupErrors, t.Requests+t.Errors+t.WarmupErrors, 100*t.ErrorRate, t.FirstError))
		}
	}
	return errors.Join(errs...)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// write prints the report as tables, or as one indented JSON object.
func (r *report) write(w io.Writer, asJSON bool) error {
	if asJSON {
		return writeJSON(w, r)
	}
	r.print(w)
	return nil
}

// writeJSON writes v as one indented JSON object: what --json prints.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("bench: write report: %w", err)
	}
	return nil
}

func (r *report) print(w io.Writer) {
	if r.Parts != nil {
		r.printAll(w)
		return
	}
	// A part's name says when payments are on.
	title := "scenario " + r.Scenario + ", payments " + onOff(r.Payments)
	if r.Part != "" {
		title = "part " + r.Part
	}
	fmt.Fprintf(w, "cocoon bench — %s, %d CPUs (load %.1f before, %.1f after), %s\n",
		title, r.Machine.CPUs, r.Machine.LoadBefore, r.Machine.LoadAfter, r.Machine.GoVersion)
	if e := r.Engine; e != nil {
		fmt.Fprintf(w, "engine: %d chunks of %d bytes + usage line, %.3g ms before each event; concurrency %d, %gs measured after %gs warm-up\n",
			e.Chunks, e.ChunkBytes, e.DelayMs, r.Concurrency, r.DurationS, r.WarmupS)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	if r.Direct != nil || (r.Path != nil && r.Streams == nil) {
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "target\treq/s\tTTFC p50 ms\tTTFC p99 ms\tlatency p50 ms\tlatency p99 ms\tchunks/s\trequests\terrors\tbench CPU ms/req\t")
		row := func(name string, t *targetStats) {
			if t != nil {
				fmt.Fprintf(tw, "%s\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%.0f\t%d\t%d\t%.3f\t\n", name, t.RPS, t.TTFCP50Ms, t.TTFCP99Ms,
					t.LatencyP50Ms, t.LatencyP99Ms, t.ChunksPerS, t.Requests, t.Errors+t.WarmupErrors, t.BenchCPUMsPerReq)
			}
		}
		row("direct (engine)", r.Direct)
		row("path (client→proxy→worker)", r.Path)
		row("proxy_path (proxy→worker)", r.ProxyPath)
		row("direct, one stream", r.DirectOne)
		row("path, one stream", r.PathOne)
		row("proxy_path, one stream", r.ProxyPathOne)
		row("direct, new conn per request", r.DirectFresh)
		row("path, new conn per request", r.PathFresh)
		_ = tw.Flush()
		if r.Ratio > 0 && r.Tokens == nil {
			fmt.Fprintf(w, "ratio path/direct %.2f, proxy_path/direct %.2f, new conn per request %.2f; added TTFC p50 %.2f ms (%.2f ms with one stream)\n",
				r.Ratio, r.RatioProxyPath, r.RatioFresh, r.AddedTTFCP50Ms, r.AddedTTFCP50MsOne)
		}
	}
	if t := r.Tokens; t != nil {
		fmt.Fprintf(w, "tokens every %.3g ms: time between chunks p50/p99 direct %.2f/%.2f ms, path %.2f/%.2f ms: added %.2f/%.2f ms (%d and %d gaps); %d chunks relayed\n",
			t.DelayMs, t.DirectGapP50Ms, t.DirectGapP99Ms, t.PathGapP50Ms, t.PathGapP99Ms, t.AddedGapP50Ms, t.AddedGapP99Ms, t.DirectGaps, t.PathGaps, t.Chunks)
	}
	if s := r.Streams; s != nil {
		fmt.Fprintf(w, "\nstreams: %d of %d opened in %.1fs (TTFC p50 %.1f ms, p99 %.1f ms), %d errors, held %.1fs, released in %.1fs; all roles %.1f KiB per open stream\n",
			s.Opened, s.Wanted, s.OpenS, s.TTFCP50Ms, s.TTFCP99Ms, s.Errors, s.HeldS, s.ReleasedS, s.KiBPerStream)
	}
	if s := r.Workers; s != nil {
		fmt.Fprintf(w, "\nworkers: %d of %d registered in %.1fs (dial p50 %.1f ms, p99 %.1f ms; registered p50 %.1f ms, p99 %.1f ms), %d errors\n",
			s.Registered, s.Wanted, s.ConnectS, s.DialP50Ms, s.DialP99Ms, s.RegisterP50Ms, s.RegisterP99Ms, s.Errors)
		fmt.Fprintf(w, "proxy RSS idle %.1f MiB, with the workers %.1f MiB (peak %.1f MiB): %.1f KiB per worker; %.2f cores held; all gone %.1fs after closing\n",
			s.ProxyIdleMB, s.ProxyRSSMB, s.ProxyPeakMB, s.KiBPerWorker, s.ProxyCPUCores, s.GoneS)
	}
	if h := r.Handshakes; h != nil {
		fmt.Fprintln(w)
		for i, h := range []*handshakeStats{h, h.Clients} {
			if name := [...]string{"handshakes", "client handshakes"}[i]; h != nil {
				fmt.Fprintf(w, "%s: %.1f/s (%d, %d errors), p50 %.2f ms, p99 %.2f ms; proxy CPU %.2f ms each = %.0f/s per proxy core; bench certificate %.2f ms each\n",
					name, h.PerS, h.Handshakes, h.Errors, h.P50Ms, h.P99Ms, h.ProxyCPUMsPer, h.ProxyCapacity, h.IdentityMs)
			}
		}
	}
	if len(r.Roles) > 0 {
		fmt.Fprintln(w)
		if r.Streams != nil {
			fmt.Fprintln(tw, "role\tpid\tidle RSS MB\tRSS with streams open MB\tKiB per open stream\tbefore GC\tof which stacks\theap objects\tpeak RSS MB\t")
		} else {
			fmt.Fprintln(tw, "role\tpid\tCPU ms/req\tCPU µs/chunk\tCPU ms/req proxy_path\tCPU ms/req new conns\tcores\tstart RSS MB\tRSS under load MB\tof which anon MB\tpeak RSS MB\t")
		}
		for _, name := range []string{"client", "proxy", "worker"} {
			rs := r.Roles[name]
			switch {
			case rs == nil:
			case r.Streams != nil:
				fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", name, rs.PID, rs.IdleRSSMB, rs.OpenRSSMB, rs.KiBPerStream, rs.KiBPerStreamRaw,
					rs.StackKiBPerStream, rs.HeapKiBPerStream, rs.PeakRSSMB)
			default:
				fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.1f\t%.3f\t%.3f\t%.2f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", name, rs.PID, rs.CPUSPerReq*1000, rs.CPUUsPerChunk,
					rs.CPUSPerReqProxyPath*1000, rs.CPUSPerReqFresh*1000, rs.CPUCores, rs.StartRSSMB, rs.LoadRSSMB, rs.LoadAnonMB, rs.PeakRSSMB)
			}
		}
		_ = tw.Flush()
	}
	if len(r.Targets) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "target\twant\tgot\t\t")
		for _, t := range r.Targets {
			verdict := "met"
			if !t.Met {
				verdict = "MISSED"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", t.Name, t.Target, t.Value, verdict)
		}
		_ = tw.Flush()
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}
