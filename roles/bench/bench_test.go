package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/gpu/scripted"
	"github.com/cocoon-network/cocoon/transport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseProcStat(t *testing.T) {
	testCases := map[string]struct {
		stat    string
		want    time.Duration
		wantErr bool
	}{
		// The command name may hold spaces and parentheses.
		"name with parentheses": {stat: "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 1000 0 0", want: 3 * time.Second},
		"too few fields":        {stat: "42 (x) S 1", wantErr: true},
		"no name":               {stat: "42 x S 1", wantErr: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			d, err := parseProcStat([]byte(tc.stat))
			if tc.wantErr {
				assert.Error(err)
				return
			}
			assert.NoError(err)
			assert.Equal(tc.want, d)
		})
	}
}

func TestParseProcStatus(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	rss, hwm, err := parseProcStatus([]byte("Name:\tcocoon\nVmHWM:\t   2048 kB\nVmRSS:\t   1024 kB\n"))
	require.NoError(err)
	assert.Equal(int64(1<<20), rss)
	assert.Equal(int64(2<<20), hwm)
	_, _, err = parseProcStatus([]byte("Name:\tcocoon\n"))
	assert.Error(err)
}

func TestReadStream(t *testing.T) {
	testCases := map[string]struct {
		stream string
		chunks int
		err    string
	}{
		"complete":         {stream: "data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n", chunks: 2},
		"no done":          {stream: "data: {\"a\":1}\n\n", chunks: 1, err: "without [DONE]"},
		"error event":      {stream: "data: {\"a\":1}\n\ndata: {\"error\":{\"message\":\"x\"}}\n\n", chunks: 1, err: "error event"},
		"comments ignored": {stream: ": keep-alive\n\ndata: {\"a\":1}\n\ndata: [DONE]\n\n", chunks: 1},
		"long line":        {stream: "data: {\"a\":\"" + strings.Repeat("x", 40000) + "data: \"}\n\ndata: [DONE]\n\n", chunks: 1},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			ttfc, chunks, err := readStream(gpu.NewSSEReader(strings.NewReader(tc.stream), 0), time.Now())
			assert.Equal(tc.chunks, chunks)
			assert.Positive(ttfc)
			if tc.err == "" {
				assert.NoError(err)
			} else {
				assert.ErrorContains(err, tc.err)
			}
		})
	}
}

func TestOptionsDefaults(t *testing.T) {
	testCases := map[string]struct {
		opts    Options
		want    Options
		wantErr string
	}{
		"default scenario": {
			opts: Options{Bin: "cocoon"},
			want: Options{Scenario: scenarioDefault, Duration: 10 * time.Second, Warmup: 2 * time.Second, Concurrency: 30,
				Chunks: DefaultChunks, ChunkBytes: DefaultChunkBytes, OpenAtOnce: DefaultOpenAtOnce, Bin: "cocoon"},
		},
		"many-workers has no warm-up": {
			opts: Options{Scenario: scenarioManyWorkers, Bin: "cocoon"},
			want: Options{Scenario: scenarioManyWorkers, Duration: 5 * time.Second, Concurrency: 500,
				Chunks: DefaultChunks, ChunkBytes: DefaultChunkBytes, OpenAtOnce: DefaultOpenAtOnce, Bin: "cocoon"},
		},
		"negative warm-up is none": {
			opts: Options{Warmup: -time.Second, Duration: time.Second, Concurrency: 1, Bin: "cocoon"},
			want: Options{Scenario: scenarioDefault, Duration: time.Second, Concurrency: 1,
				Chunks: DefaultChunks, ChunkBytes: DefaultChunkBytes, OpenAtOnce: DefaultOpenAtOnce, Bin: "cocoon"},
		},
		"long-streams holds what one client connection does": {
			opts: Options{Scenario: scenarioLongStreams, Bin: "cocoon"},
			want: Options{Scenario: scenarioLongStreams, Duration: 5 * time.Second, Warmup: time.Second, Concurrency: transport.DefaultMaxStreams,
				Chunks: DefaultChunks, ChunkBytes: DefaultChunkBytes, OpenAtOnce: DefaultOpenAtOnce, Bin: "cocoon"},
		},
		"tokens are paced": {
			opts: Options{Scenario: scenarioTokens, Bin: "cocoon"},
			want: Options{Scenario: scenarioTokens, Duration: 10 * time.Second, Warmup: 2 * time.Second, Concurrency: 300,
				Chunks: DefaultChunks, ChunkBytes: DefaultChunkBytes, ChunkDelay: DefaultTokenDelay, OpenAtOnce: DefaultOpenAtOnce, Bin: "cocoon"},
		},
		"all is shorter per part": {
			opts: Options{Scenario: scenarioAll, Bin: "cocoon"},
			want: Options{Scenario: scenarioAll, Duration: 5 * time.Second, Warmup: time.Second, Concurrency: 1,
				Chunks: DefaultChunks, ChunkBytes: DefaultChunkBytes, OpenAtOnce: DefaultOpenAtOnce, Bin: "cocoon"},
		},
		"unknown scenario":    {opts: Options{Scenario: "x", Bin: "cocoon"}, wantErr: "unknown scenario"},
		"too long":            {opts: Options{Duration: time.Hour, Bin: "cocoon"}, wantErr: "--duration"},
		"too many streams":    {opts: Options{Concurrency: 1001, Bin: "cocoon"}, wantErr: "--concurrency"},
		"answers too slow":    {opts: Options{ChunkDelay: time.Second, Bin: "cocoon"}, wantErr: "--chunk-delay"},
		"no binary for roles": {opts: Options{}, wantErr: "no cocoon binary"},
		"even repeat":         {opts: Options{Repeat: 2, Bin: "cocoon"}, wantErr: "--repeat 2: want an odd count"},
		"too many repeats":    {opts: Options{Repeat: 11, Bin: "cocoon"}, wantErr: "--repeat 11"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			err := tc.opts.defaults()
			if tc.wantErr != "" {
				assert.ErrorContains(err, tc.wantErr)
				return
			}
			assert.NoError(err)
			assert.Equal(tc.want, tc.opts)
		})
	}
}

// TestLoadDirect runs the direct target's load generator against the scripted engine in this
// process: every answer is the role chunk, the content chunks and the usage line.
func TestLoadDirect(t *testing.T) {
	assert := assert.New(t)
	o := &Options{Chunks: 10, ChunkBytes: 32}
	eng := scripted.New(engineConfig(o))
	defer eng.Close()
	hc := newLoadClient(2)
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	started := false
	res := runLoad(ctx, 2, 50*time.Millisecond, 200*time.Millisecond,
		httpRequester(hc, eng.URL+"/v1/chat/completions", chatRequestBody()), func() { started = true })
	st := res.stats()
	assert.True(started)
	assert.Zero(st.Errors+st.WarmupErrors, st.FirstError)
	assert.Positive(st.Requests)
	assert.Positive(st.RPS)
	assert.LessOrEqual(st.TTFCP50Ms, st.LatencyP50Ms)
	assert.InDelta(12*st.RPS, st.ChunksPerS, 0.01*st.ChunksPerS+1)
}

func TestReportWriteAll(t *testing.T) {
	assert := assert.New(t)
	met := false
	rep := &report{Scenario: scenarioAll, Parts: []*report{{Part: partDefault, Direct: &targetStats{RPS: 2}}},
		Summary: []summaryRow{{Figure: "default scenario: full path / direct", Got: "0.25", Goal: "≥ 0.5", Met: &met}}}
	var tables strings.Builder
	assert.NoError(rep.write(&tables, false))
	assert.Contains(tables.String(), "part default")
	assert.Contains(tables.String(), "summary (the issue's table)")
	assert.Contains(tables.String(), "MISSED")
}

func TestReportWrite(t *testing.T) {
	assert := assert.New(t)
	rep := &report{Scenario: scenarioDefault, Direct: &targetStats{Requests: 3, RPS: 1.5}}
	rep.check("path rps / direct rps", "≥ 0.5", 0.25, "", false)
	var tables, js strings.Builder
	assert.NoError(rep.write(&tables, false))
	assert.Contains(tables.String(), "direct (engine)")
	assert.Contains(tables.String(), "MISSED")
	assert.NoError(rep.write(&js, true))
	assert.Contains(js.String(), `"scenario": "default"`)
	assert.Contains(js.String(), `"rps": 1.5`)
}
