package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/cocoon-network/cocoon/gpu/scripted"
	"github.com/cocoon-network/cocoon/transport"
)

// Scenarios.
const (
	scenarioDefault        = "default"
	scenarioLongStreams    = "long-streams"
	scenarioManyWorkers    = "many-workers"
	scenarioHandshakeStorm = "handshake-storm"
	scenarioTokens         = "tokens"
	scenarioAll            = "all"
)

var scenarios = []string{scenarioDefault, scenarioTokens, scenarioLongStreams, scenarioManyWorkers, scenarioHandshakeStorm, scenarioAll}

// Defaults of Options, for flags and their help.
const (
	DefaultScenario   = scenarioDefault
	DefaultChunks     = scripted.DefaultChunks
	DefaultChunkBytes = scripted.DefaultChunkBytes
	// DefaultOpenAtOnce bounds the long-streams requests being set up at the same time.
	DefaultOpenAtOnce = 200
	// DefaultTokenDelay is the tokens scenario's pause before each event: an engine's pace per token.
	DefaultTokenDelay = 20 * time.Millisecond
)

// Scenarios returns the names of the scenarios, the default first.
func Scenarios() []string { return slices.Clone(scenarios) }

// Targets the issues set; reported, never asserted by tests.
const (
	targetRatio          = 0.5
	targetRatioHey       = 0.46
	targetAddedTTFCMs    = 1.0
	targetStreamKiB      = 16.0
	targetManyWorkersMiB = 200.0
	targetHandshakesPerS = 500.0
	targetChunkCPUUs     = 8.0
	targetAddedGapP99Ms  = 2.0
	targetLoadRSSMB      = 24.0
)

var (
	targetPeakRSSMB = map[string]float64{"proxy": 32, "worker": 26, "client": 25}
	// targetCPUMsPerReq is CPU per request under the default load, per role.
	targetCPUMsPerReq = map[string]float64{"proxy": 0.10, "client": 0.25, "worker": 0.30}
)

// Bounds that keep every run finite whatever the flags say.
const (
	maxDuration        = 10 * time.Minute
	maxRequestsPerLoop = 10_000_000
	requestTimeout     = 60 * time.Second
	setupTimeout       = 60 * time.Second
)

// Options is one run. Zero values take the scenario's defaults.
type Options struct {
	Scenario    string        // one of Scenarios(); "": DefaultScenario
	Duration    time.Duration // measured window per target; 0: scenario default
	Warmup      time.Duration // unmeasured time before each target; 0: scenario default; negative: none
	Concurrency int           // streams, open streams, worker connections or dialers; 0: scenario default
	Chunks      int           // engine: content chunks per answer; 0: DefaultChunks
	ChunkBytes  int           // engine: bytes of text per chunk; 0: DefaultChunkBytes
	ChunkDelay  time.Duration // engine: pause before each event
	OpenAtOnce  int           // long-streams: requests set up at once; 0: DefaultOpenAtOnce
	JSON        bool          // report as one JSON object instead of tables
	Payments    bool          // default and tokens: payments on, on a local chain served by `cocoon chain serve`
	// PlaintextDev makes the client send request bodies in clear (client.plaintext_dev).
	PlaintextDev bool
	// CPUProfileDir, when set, makes every role write its CPU profile there, as
	// <part>-<role>.pprof, when it stops.
	CPUProfileDir string
	// MemProfileDir, when set, makes every role write its heap and goroutine profiles there, as
	// <part>-<role>-<n>.heap.pprof and .goroutine.pprof, after the n-th collection the bench asks
	// for before a memory sample.
	MemProfileDir string
	// TraceDir, when set, makes every role write its execution trace there, as
	// <part>-<role>.trace, when it stops.
	TraceDir string

	// noProxyPath skips the default scenario's proxy_path targets (parts of "all" that need only
	// the full path).
	noProxyPath bool

	// Repeat is how many times the scenario runs (odd; 0 means once): the report gives the median
	// of each figure.
	Repeat int

	// Against, when set, is another cocoon binary: the scenario also runs with its roles, the runs
	// alternating, and the report shows each figure of both.
	Against string

	// Bin is the cocoon binary the roles run as (the caller's own, so that the roles are the
	// code being measured).
	Bin string
	// Version is the software version the bench's own connections announce, that of Bin.
	Version string
	// Progress receives progress lines; nil: none.
	Progress io.Writer
}

// Run runs one scenario and writes its report to out. The report is written even when Run also
// returns an error (too many failed requests, a role that died), so that the figures are never
// lost.
func Run(ctx context.Context, o Options, out io.Writer) error {
	if o.Against != "" {
		c, err := runCompared(ctx, o)
		if err != nil {
			return err
		}
		return c.write(out, o.JSON)
	}
	run := run
	if o.Repeat > 1 {
		run = runRepeated
	}
	rep, err := run(ctx, o)
	if rep != nil {
		if werr := rep.write(out, o.JSON); werr != nil {
			return errors.Join(err, werr)
		}
	}
	return err
}

func (o *Options) defaults() error {
	dur, warm, conc := 10*time.Second, 2*time.Second, 30
	switch o.Scenario {
	case "", scenarioDefault:
		o.Scenario = scenarioDefault
	case scenarioLongStreams:
		// What one client connection to a proxy holds at once: more would wait in the client,
		// and the run would end with only that many open.
		dur, warm, conc = 5*time.Second, time.Second, transport.DefaultMaxStreams
	case scenarioManyWorkers:
		dur, warm, conc = 5*time.Second, 0, 500
	case scenarioHandshakeStorm:
		dur, warm, conc = 10*time.Second, time.Second, 8
	case scenarioTokens:
		conc = 300
		if o.ChunkDelay == 0 {
			o.ChunkDelay = DefaultTokenDelay
		}
	case scenarioAll:
		// Every part at its scenario's concurrency, each measured for this long.
		dur, warm, conc = 5*time.Second, time.Second, 1
	default:
		return fmt.Errorf("bench: unknown scenario %q (want one of %s)", o.Scenario, strings.Join(scenarios, ", "))
	}
	if o.Duration == 0 {
		o.Duration = dur
	}
	if o.Warmup == 0 {
		o.Warmup = warm
	}
	o.Warmup = max(o.Warmup, 0)
	if o.Concurrency == 0 {
		o.Concurrency = conc
	}
	if o.Chunks <= 0 {
		o.Chunks = DefaultChunks
	}
	if o.ChunkBytes <= 0 {
		o.ChunkBytes = DefaultChunkBytes
	}
	if o.OpenAtOnce <= 0 {
		o.OpenAtOnce = DefaultOpenAtOnce
	}
	limit := map[string]int{scenarioDefault: 1000, scenarioTokens: 1000, scenarioLongStreams: 9000, scenarioManyWorkers: 5000,
		scenarioHandshakeStorm: 256, scenarioAll: 1}[o.Scenario]
	switch {
	case o.Duration < 0 || o.Duration > maxDuration:
		return fmt.Errorf("bench: --duration %s: want (0, %s]", o.Duration, maxDuration)
	case o.Warmup > maxDuration:
		return fmt.Errorf("bench: --warmup %s: at most %s", o.Warmup, maxDuration)
	case o.Concurrency < 1 || o.Concurrency > limit:
		return fmt.Errorf("bench: --concurrency %d: want 1..%d for %s", o.Concurrency, limit, o.Scenario)
	case o.ChunkDelay < 0 || time.Duration(o.Chunks)*o.ChunkDelay > requestTimeout/2:
		return fmt.Errorf("bench: --chunk-delay %s × %d chunks: an answer must take under %s", o.ChunkDelay, o.Chunks, requestTimeout/2)
	case o.Repeat < 0 || o.Repeat > maxRepeat || o.Repeat > 1 && o.Repeat%2 == 0:
		return fmt.Errorf("bench: --repeat %d: want an odd count up to %d, so that each median is one run's figure", o.Repeat, maxRepeat)
	case o.Bin == "":
		return errors.New("bench: no cocoon binary to run the roles with")
	}
	return nil
}

func (o *Options) logf(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "bench: "+format+"\n", args...)
	}
}

// run runs one scenario. It returns the report even when it also returns an error (too many
// failed requests, a role that died), so that the figures are never lost.
func run(ctx context.Context, o Options) (*report, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	parts := 1
	if o.Scenario == scenarioAll {
		parts = len(allParts)
	}
	// Nothing in a run may outlive this, whatever happens to a role.
	ctx, cancel := context.WithTimeout(ctx, time.Duration(parts)*(2*setupTimeout+o.Warmup*5+o.Duration*5+2*requestTimeout))
	defer cancel()
	dir, err := os.MkdirTemp("", "cocoon-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	if o.Bin, err = copyBinary(o.Bin, dir); err != nil {
		return nil, err
	}
	for flag, d := range map[string]string{"--cpuprofile": o.CPUProfileDir, "--memprofile": o.MemProfileDir, "--trace": o.TraceDir} {
		if d == "" {
			continue
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("bench: %s: %w", flag, err)
		}
	}
	if o.Scenario == scenarioAll {
		return runAll(ctx, &o, dir)
	}
	return runPart(ctx, &o, dir, netOptions{payments: o.Payments, plaintext: o.PlaintextDev})
}

// runPart runs one scenario on a network of its own.
func runPart(ctx context.Context, o *Options, dir string, opt netOptions) (*report, error) {
	rep := &report{
		Scenario: o.Scenario, DurationS: o.Duration.Seconds(), WarmupS: o.Warmup.Seconds(), Concurrency: o.Concurrency,
		Machine:  machineInfo{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), LoadBefore: loadAvg()},
		Payments: opt.payments, Plaintext: opt.plaintext,
	}
	n, err := newNetwork(o, dir, opt)
	if err != nil {
		return nil, err
	}
	defer n.stop()
	switch o.Scenario {
	case scenarioDefault:
		// The bench, as a client of its own, has no deposit with a paid proxy.
		o.noProxyPath = o.noProxyPath || opt.payments
		err = runDefault(ctx, o, n, rep)
	case scenarioTokens:
		err = runTokens(ctx, o, n, rep)
	case scenarioLongStreams:
		err = runLongStreams(ctx, o, n, rep)
	case scenarioManyWorkers:
		err = runManyWorkers(ctx, o, n, rep)
	case scenarioHandshakeStorm:
		err = runHandshakeStorm(ctx, o, n, rep)
	}
	for _, p := range n.procs {
		if rs := rep.Roles[p.name]; rs != nil {
			// The kernel updates VmHWM lazily: never report a peak below an RSS already sampled.
			if _, hwm, err := procMem(p.pid()); err == nil {
				rs.PeakRSSMB = max(mib(hwm), rs.LoadRSSMB, rs.OpenRSSMB)
			}
		}
	}
	if rep.Roles != nil && o.Scenario == scenarioDefault {
		for _, name := range []string{"proxy", "worker", "client"} {
			if rs := rep.Roles[name]; rs != nil && rs.PeakRSSMB > 0 {
				limit := targetPeakRSSMB[name]
				rep.check(name+" peak RSS (VmHWM)", fmt.Sprintf("< %g MB", limit), rs.PeakRSSMB, " MB", rs.PeakRSSMB < limit)
				rep.check(name+" highest RSS under load", fmt.Sprintf("≤ %g MB", targetLoadRSSMB), rs.LoadRSSMB, " MB", rs.LoadRSSMB <= targetLoadRSSMB)
			}
		}
	}
	rep.Machine.LoadAfter = loadAvg()
	if rep.Machine.LoadBefore > float64(rep.Machine.CPUs)/2 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the machine was busy before the run (load %.1f on %d CPUs): figures are pessimistic",
			rep.Machine.LoadBefore, rep.Machine.CPUs))
	}
	if err == nil {
		err = n.died()
	}
	return rep, err
}

// startEngine serves the scripted engine in the shape the options ask for, recorded in rep.
func startEngine(o *Options, rep *report) *scripted.Server {
	rep.Engine = &engineShape{Chunks: o.Chunks, ChunkBytes: o.ChunkBytes, DelayMs: ms(o.ChunkDelay), UsageLine: true}
	return scripted.New(engineConfig(o))
}

// engineConfig is the reference engine with the options' shape; it records no requests, since a
// run sends millions.
func engineConfig(o *Options) scripted.Config {
	cfg := scripted.Reference()
	cfg.Chunks, cfg.ChunkBytes, cfg.Delay, cfg.NoRecord = o.Chunks, o.ChunkBytes, o.ChunkDelay, true
	return cfg
}

// chatRequestBody is an OpenAI SDK's streamed chat request, asking for usage as vLLM needs.
func chatRequestBody() []byte {
	return fmt.Appendf(nil, `{"model":%q,"stream":true,"stream_options":{"include_usage":true},`+
		`"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What is remote attestation?"}]}`,
		scripted.DefaultModel)
}
