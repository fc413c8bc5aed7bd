package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRatio(t *testing.T) {
	testCases := map[string]struct {
		t, base *targetStats
		want    float64
	}{
		"half":            {t: &targetStats{RPS: 50}, base: &targetStats{RPS: 100}, want: 0.5},
		"base measured 0": {t: &targetStats{RPS: 50}, base: &targetStats{}, want: 0},
		"not run":         {t: nil, base: &targetStats{RPS: 100}, want: 0},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert.InDelta(t, tc.want, ratio(tc.t, tc.base), 1e-9)
		})
	}
}

func TestPerChunkUs(t *testing.T) {
	// 0.52 ms per request over 50 content chunks, the role chunk and the usage line: 10 µs each.
	assert.InDelta(t, 10.0, perChunkUs(0.52e-3, 50), 1e-9)
}

func TestGapRecorder(t *testing.T) {
	assert := assert.New(t)
	g := &gapRecorder{}
	// Before the window opens, nothing is kept.
	g.add([]time.Duration{time.Second})
	g.start()
	b := g.buffer()
	for i := range 100 {
		b = append(b, time.Duration(i+1)*time.Millisecond)
	}
	g.add(b)
	p50, p99, n := g.percentiles()
	assert.Equal(100, n)
	assert.InDelta(50, p50, 1)
	assert.InDelta(99, p99, 1)
}

func TestParseSetupPrint(t *testing.T) {
	require := require.New(t)
	out := "registry        EQA8jxRLr\nproxy contract  EQDL1usum  at 127.0.0.1:5555\nproxy contract  EQsecond  at 127.0.0.1:5556\n"
	reg, pc, err := parseSetupPrint([]byte(out))
	require.NoError(err)
	require.Equal("EQA8jxRLr", reg)
	require.Equal("EQDL1usum", pc)
	_, _, err = parseSetupPrint([]byte("nothing here\n"))
	require.ErrorContains(err, "no registry")
}

func TestSummarize(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	roles := func(cpuMs, chunkUs, rss, kib float64) map[string]*roleStats {
		m := map[string]*roleStats{}
		for _, n := range summaryRoles {
			m[n] = &roleStats{CPUSPerReq: cpuMs / 1000, CPUUsPerChunk: chunkUs, LoadRSSMB: rss, KiBPerStream: kib}
		}
		return m
	}
	parts := []*report{
		{Part: partDefault, Direct: &targetStats{RPS: 1000}, Path: &targetStats{RPS: 600}, Ratio: 0.6,
			DirectFresh: &targetStats{RPS: 500}, PathFresh: &targetStats{RPS: 200}, RatioFresh: 0.4,
			DirectOne: &targetStats{TTFCP50Ms: 0.1}, PathOne: &targetStats{TTFCP50Ms: 0.9}, AddedTTFCP50MsOne: 0.8,
			Roles: roles(0.2, 4, 20, 0)},
		{Part: partPayments, Path: &targetStats{RPS: 500}, Ratio: 0.5, Roles: roles(0.3, 0, 0, 0)},
		{Part: partPlaintext, PathOne: &targetStats{}, AddedTTFCP50MsOne: 0.5, Roles: roles(0.2, 3, 0, 0)},
		{Part: partTokens, Concurrency: 300, Tokens: &tokensStats{DelayMs: 20, AddedGapP50Ms: 0.1, AddedGapP99Ms: 3}, Roles: roles(0, 7, 0, 0)},
		{Part: partStreams, Streams: &streamsStats{Opened: 2000}, Roles: map[string]*roleStats{
			"client": {KiBPerStream: 30}, "proxy": {KiBPerStream: 12}, "worker": {KiBPerStream: 12, StackKiBPerStream: 8, HeapKiBPerStream: 3.5}}},
		{Part: partHandshake, Handshakes: &handshakeStats{PerS: 400, Clients: &handshakeStats{PerS: 700, ProxyCPUMsPer: 1.25}}},
	}
	rows := summarize(parts)
	byFigure := map[string]summaryRow{}
	for _, r := range rows {
		byFigure[r.Figure] = r
	}
	met := func(figure string) bool {
		r, ok := byFigure[figure]
		require.True(ok, figure)
		require.NotNil(r.Met, figure)
		return *r.Met
	}
	assert.True(met("default scenario: full path / direct"))
	assert.Equal("0.60 (600.0 req/s)", byFigure["default scenario: full path / direct"].Got)
	assert.False(met("new TCP connection per request, 30 at once (hey -disable-keepalive -c 30): full path / direct"))
	assert.False(met("CPU per request, default scenario: proxy"))
	assert.True(met("CPU per request, default scenario: worker"))
	assert.True(met("added time to first chunk, one stream"))
	assert.True(met("RSS under the default load: client"))
	assert.True(met("CPU per relayed chunk, 300 streams at 20 ms per token: proxy"))
	assert.False(met("added inter-chunk delay p99, tokens"))
	assert.True(met("memory per open idle stream (2000 streams): worker"))
	assert.False(met("memory per open idle stream (2000 streams): client"))
	assert.Equal("12.0 KiB (stacks 8.0, heap objects 3.5)", byFigure["memory per open idle stream (2000 streams): worker"].Got)
	assert.False(met("full attested handshakes per second, one proxy"))
	assert.Equal("700/s (1.25 ms proxy CPU each)", byFigure["client handshakes per second, one proxy (no quote)"].Got)
	assert.Equal("0.300 ms on, 0.200 off (+0.100)", byFigure["payments on vs off: CPU per request, proxy"].Got)
	assert.Equal("0.80 ms sealed, 0.50 plaintext", byFigure["sealing: added time to first chunk, one stream"].Got)
	assert.Equal("4.0 µs sealed, 3.0 plaintext (+1.0)", byFigure["sealing: CPU per chunk, default load, worker"].Got)

	// A part that did not run leaves its rows out.
	assert.Empty(summarize([]*report{{Part: partHandshake}}))
}
