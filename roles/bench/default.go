package bench

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/cocoon-network/cocoon/transport/wire"
)

// runDefault: the same closed-loop load against the engine, the full path and proxy → worker.
func runDefault(ctx context.Context, o *Options, n *network, rep *report) error {
	eng := startEngine(o, rep)
	defer eng.Close()
	body := chatRequestBody()

	o.logf("direct: %d streams for %s against the engine", o.Concurrency, o.Duration)
	direct := newLoadClient(o.Concurrency)
	defer direct.CloseIdleConnections()
	var self0 time.Duration
	selfStart := func() { self0, _ = procCPU(os.Getpid()) }
	res := runLoad(ctx, o.Concurrency, o.Warmup, o.Duration, httpRequester(direct, eng.URL+"/v1/chat/completions", body), selfStart)
	rep.Direct = res.stats()
	rep.Direct.setBenchCPU(self0)
	oneStream := min(o.Duration, 3*time.Second)
	o.logf("direct: one stream for %s", oneStream)
	rep.DirectOne = runLoad(ctx, 1, min(o.Warmup, time.Second), oneStream, httpRequester(direct, eng.URL+"/v1/chat/completions", body), nil).stats()
	direct.CloseIdleConnections()
	// As `hey -disable-keepalive -c 30` measures: a new TCP connection for every request.
	fresh := newFreshClient()
	o.logf("direct: %d streams for %s, a new connection per request", o.Concurrency, o.Duration)
	res = runLoad(ctx, o.Concurrency, o.Warmup, o.Duration, httpRequester(fresh, eng.URL+"/v1/chat/completions", body), selfStart)
	rep.DirectFresh = res.stats()
	rep.DirectFresh.setBenchCPU(self0)

	if err := n.startRoles(ctx, eng.URL, o.Concurrency, rep); err != nil {
		return err
	}
	o.logf("path: %d streams for %s through client → proxy → worker → engine", o.Concurrency, o.Duration)
	path := newLoadClient(o.Concurrency)
	defer path.CloseIdleConnections()
	var before map[string]time.Duration
	stopSampling := n.sampleRSS()
	res = runLoad(ctx, o.Concurrency, o.Warmup, o.Duration, httpRequester(path, n.clientURL+"/v1/chat/completions", body),
		func() { before = n.cpu(); selfStart() })
	after := n.cpu()
	rss, anon := stopSampling()
	for name, rs := range rep.Roles {
		rs.LoadRSSMB, rs.LoadAnonMB = mib(rss[name]), mib(anon[name])
	}
	rep.Path = res.stats()
	rep.Path.setBenchCPU(self0)
	o.logf("path: one stream for %s", oneStream)
	rep.PathOne = runLoad(ctx, 1, min(o.Warmup, time.Second), oneStream, httpRequester(path, n.clientURL+"/v1/chat/completions", body), nil).stats()
	for name, rs := range rep.Roles {
		d := after[name] - before[name]
		if rep.Path.Requests > 0 {
			rs.CPUSPerReq = d.Seconds() / float64(rep.Path.Requests)
		}
		if rep.Path.WindowS > 0 {
			rs.CPUCores = d.Seconds() / rep.Path.WindowS
		}
	}
	path.CloseIdleConnections()
	if err := n.died(); err != nil {
		return err
	}

	o.logf("path: %d streams for %s, a new connection to the client per request", o.Concurrency, o.Duration)
	res = runLoad(ctx, o.Concurrency, o.Warmup, o.Duration, httpRequester(fresh, n.clientURL+"/v1/chat/completions", body),
		func() { before = n.cpu(); selfStart() })
	after = n.cpu()
	rep.PathFresh = res.stats()
	rep.PathFresh.setBenchCPU(self0)
	for name, rs := range rep.Roles {
		if rep.PathFresh.Requests > 0 {
			rs.CPUSPerReqFresh = (after[name] - before[name]).Seconds() / float64(rep.PathFresh.Requests)
		}
	}
	if err := n.died(); err != nil {
		return err
	}
	rep.Ratio, rep.RatioFresh = ratio(rep.Path, rep.Direct), ratio(rep.PathFresh, rep.DirectFresh)
	for _, rs := range rep.Roles {
		rs.CPUUsPerChunk = perChunkUs(rs.CPUSPerReq, o.Chunks)
	}
	rep.AddedTTFCP50MsOne = rep.PathOne.TTFCP50Ms - rep.DirectOne.TTFCP50Ms
	if o.noProxyPath {
		return finishDefault(o, rep)
	}

	o.logf("proxy_path: %d streams for %s from this process as a client through proxy → worker → engine", o.Concurrency, o.Duration)
	conn, err := n.dialAsClient(ctx)
	if err != nil {
		return err
	}
	res = runLoad(ctx, o.Concurrency, o.Warmup, o.Duration, quicRequester(conn, body), func() { before = n.cpu(); selfStart() })
	after = n.cpu()
	rep.ProxyPath = res.stats()
	rep.ProxyPath.setBenchCPU(self0)
	o.logf("proxy_path: one stream for %s", oneStream)
	rep.ProxyPathOne = runLoad(ctx, 1, min(o.Warmup, time.Second), oneStream, quicRequester(conn, body), nil).stats()
	_ = conn.Close(wire.CodeOK, "bench done")
	for _, name := range []string{"proxy", "worker"} {
		if rs := rep.Roles[name]; rs != nil && rep.ProxyPath.Requests > 0 {
			rs.CPUSPerReqProxyPath = (after[name] - before[name]).Seconds() / float64(rep.ProxyPath.Requests)
		}
	}

	if rep.Direct.RPS > 0 {
		rep.RatioProxyPath = rep.ProxyPath.RPS / rep.Direct.RPS
	}
	return finishDefault(o, rep)
}

// finishDefault checks the default scenario's figures against their targets.
func finishDefault(o *Options, rep *report) error {
	rep.AddedTTFCP50Ms = rep.Path.TTFCP50Ms - rep.Direct.TTFCP50Ms
	rep.check("path rps / direct rps", fmt.Sprintf("≥ %g", targetRatio), rep.Ratio, "", rep.Ratio >= targetRatio)
	rep.check("path / direct, a new connection per request (hey -disable-keepalive)", fmt.Sprintf("≥ %g", targetRatioHey),
		rep.RatioFresh, "", rep.RatioFresh >= targetRatioHey)
	for _, name := range []string{"proxy", "client", "worker"} {
		if rs := rep.Roles[name]; rs != nil {
			want := targetCPUMsPerReq[name]
			got := rs.CPUSPerReq * 1000
			rep.check(name+" CPU per request", fmt.Sprintf("≤ %g ms", want), got, " ms", got <= want)
		}
	}
	rep.check("added TTFC p50, one stream", fmt.Sprintf("≤ %g ms", targetAddedTTFCMs), rep.AddedTTFCP50MsOne, " ms", rep.AddedTTFCP50MsOne <= targetAddedTTFCMs)
	rep.check(fmt.Sprintf("added TTFC p50, %d streams", o.Concurrency), fmt.Sprintf("≤ %g ms", targetAddedTTFCMs), rep.AddedTTFCP50Ms, " ms", rep.AddedTTFCP50Ms <= targetAddedTTFCMs)
	rep.Notes = append(rep.Notes, "the engine and the load generator run in the bench process, on the same CPUs as the roles")
	return errorBudget(map[string]*targetStats{"direct": rep.Direct, "path": rep.Path, "proxy_path": rep.ProxyPath,
		"direct_one_stream": rep.DirectOne, "path_one_stream": rep.PathOne, "proxy_path_one_stream": rep.ProxyPathOne,
		"direct_fresh_conns": rep.DirectFresh, "path_fresh_conns": rep.PathFresh})
}

// ratio is a target's requests per second over another's; 0 when either measured nothing.
func ratio(t, base *targetStats) float64 {
	if t == nil || base == nil || base.RPS <= 0 {
		return 0
	}
	return t.RPS / base.RPS
}

// perChunkUs spreads CPU seconds per request over its events in µs: the role chunk, the content
// chunks and the usage line.
func perChunkUs(cpuSPerReq float64, chunks int) float64 {
	return cpuSPerReq * 1e6 / float64(chunks+2)
}

// setBenchCPU sets the bench process's CPU per request since self0, read at the window's start.
func (t *targetStats) setBenchCPU(self0 time.Duration) {
	if self1, err := procCPU(os.Getpid()); err == nil && t.Requests > 0 && self0 > 0 {
		t.BenchCPUMsPerReq = ms(self1-self0) / float64(t.Requests)
	}
}
