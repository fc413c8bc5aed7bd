package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cocoon-network/cocoon/roles/internal/statsweb"
	"github.com/cocoon-network/cocoon/transport"
)

// gapRecorder keeps the time between consecutive events of the requests that end while it is
// on: the measured window.
type gapRecorder struct {
	on   atomic.Bool
	mu   sync.Mutex
	gaps []time.Duration
	pool sync.Pool
}

func (g *gapRecorder) start() { g.on.Store(true) }

// buffer is a slice for one request's gaps.
func (g *gapRecorder) buffer() []time.Duration {
	if b, ok := g.pool.Get().(*[]time.Duration); ok {
		return (*b)[:0]
	}
	return make([]time.Duration, 0, 64)
}

// add keeps one request's gaps, if the window is open, and recycles the slice.
func (g *gapRecorder) add(b []time.Duration) {
	if g.on.Load() {
		g.mu.Lock()
		g.gaps = append(g.gaps, b...)
		g.mu.Unlock()
	}
	g.pool.Put(&b)
}

// percentiles are the p50 and p99 gaps in milliseconds.
func (g *gapRecorder) percentiles() (p50, p99 float64, n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return gapPercentiles(g.gaps)
}

func gapPercentiles(gaps []time.Duration) (p50, p99 float64, n int) {
	s := slices.Clone(gaps)
	return ms(statsweb.Percentile(s, 0.5)), ms(statsweb.Percentile(s, 0.99)), len(s)
}

// runTokens streams answers paced like an engine's tokens (--chunk-delay, 20 ms by default) on
// many streams at once, directly and through the full path: CPU per relayed chunk per role, and
// what the path adds to the time between consecutive chunks.
func runTokens(ctx context.Context, o *Options, n *network, rep *report) error {
	eng := startEngine(o, rep)
	defer eng.Close()
	body := chatRequestBody()
	url := "/v1/chat/completions"

	o.logf("tokens: direct, %d streams for %s, %s per token", o.Concurrency, o.Duration, o.ChunkDelay)
	direct := newLoadClient(o.Concurrency)
	defer direct.CloseIdleConnections()
	var self0 time.Duration
	selfStart := func() { self0, _ = procCPU(os.Getpid()) }
	dg := &gapRecorder{}
	res := runLoad(ctx, o.Concurrency, o.Warmup, o.Duration, httpGapRequester(direct, eng.URL+url, body, dg),
		func() { dg.start(); selfStart() })
	rep.Direct = res.stats()
	rep.Direct.setBenchCPU(self0)
	direct.CloseIdleConnections()

	if err := n.startRoles(ctx, eng.URL, o.Concurrency, rep); err != nil {
		return err
	}
	o.logf("tokens: path, %d streams for %s through client → proxy → worker → engine", o.Concurrency, o.Duration)
	path := newLoadClient(o.Concurrency)
	defer path.CloseIdleConnections()
	pg := &gapRecorder{}
	var before map[string]time.Duration
	stopSampling := n.sampleRSS()
	res = runLoad(ctx, o.Concurrency, o.Warmup, o.Duration, httpGapRequester(path, n.clientURL+url, body, pg),
		func() { pg.start(); before = n.cpu(); selfStart() })
	after := n.cpu()
	rss, anon := stopSampling()
	rep.Path = res.stats()
	rep.Path.setBenchCPU(self0)
	chunks := 0
	for _, x := range res.samples {
		chunks += x.chunks
	}
	for name, rs := range rep.Roles {
		rs.LoadRSSMB, rs.LoadAnonMB = mib(rss[name]), mib(anon[name])
		d := after[name] - before[name]
		if rep.Path.Requests > 0 {
			rs.CPUSPerReq = d.Seconds() / float64(rep.Path.Requests)
		}
		if rep.Path.WindowS > 0 {
			rs.CPUCores = d.Seconds() / rep.Path.WindowS
		}
		if chunks > 0 {
			rs.CPUUsPerChunk = float64(d.Microseconds()) / float64(chunks)
		}
	}
	st := &tokensStats{DelayMs: ms(o.ChunkDelay), Chunks: chunks}
	st.DirectGapP50Ms, st.DirectGapP99Ms, st.DirectGaps = dg.percentiles()
	st.PathGapP50Ms, st.PathGapP99Ms, st.PathGaps = pg.percentiles()
	st.AddedGapP50Ms, st.AddedGapP99Ms = st.PathGapP50Ms-st.DirectGapP50Ms, st.PathGapP99Ms-st.DirectGapP99Ms
	rep.Tokens = st
	rep.Ratio = ratio(rep.Path, rep.Direct)
	for _, name := range []string{"proxy", "client", "worker"} {
		if rs := rep.Roles[name]; rs != nil {
			rep.check(name+" CPU per relayed chunk", fmt.Sprintf("≤ %g µs", targetChunkCPUUs), rs.CPUUsPerChunk, " µs", rs.CPUUsPerChunk <= targetChunkCPUUs)
		}
	}
	rep.check("added inter-chunk delay p99", fmt.Sprintf("≤ %g ms", targetAddedGapP99Ms), st.AddedGapP99Ms, " ms", st.AddedGapP99Ms <= targetAddedGapP99Ms)
	rep.Notes = append(rep.Notes, "added inter-chunk delay = percentile of the time between consecutive events through the path − the same percentile direct",
		fmt.Sprintf("a proxy accepts %d request streams per client connection at once (transport.DefaultMaxStreams): beyond that the client opens more connections to it", transport.DefaultMaxStreams))
	return errorBudget(map[string]*targetStats{"direct": rep.Direct, "path": rep.Path})
}
