package main

import (
	"bufio"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBenchSmoke runs each scenario briefly against real role processes and checks that the report
// holds sane figures and no errors. It asserts nothing about performance.
func TestBenchSmoke(t *testing.T) {
	bin := cocoonBinary(t)
	testCases := map[string]struct {
		opts  benchOptions
		check func(t *testing.T, r *benchReport)
	}{
		"default": {
			opts: benchOptions{scenario: scenarioDefault, duration: 600 * time.Millisecond, warmup: 200 * time.Millisecond, concurrency: 4, chunks: 10},
			check: func(t *testing.T, r *benchReport) {
				for name, ts := range map[string]*targetStats{"direct": r.Direct, "path": r.Path, "proxy_path": r.ProxyPath,
					"direct_one_stream": r.DirectOne, "path_one_stream": r.PathOne, "proxy_path_one_stream": r.ProxyPathOne} {
					require.NotNil(t, ts, name)
					assert.Positive(t, ts.RPS, name)
					assert.Zero(t, ts.Errors+ts.WarmupErrors, "%s: %s", name, ts.FirstError)
					assert.Positive(t, ts.TTFCP50Ms, name)
					assert.LessOrEqual(t, ts.TTFCP50Ms, ts.TTFCP99Ms, name)
					assert.LessOrEqual(t, ts.TTFCP50Ms, ts.LatencyP50Ms, name)
					assert.LessOrEqual(t, ts.LatencyP50Ms, ts.LatencyP99Ms, name)
					// Every answer: role chunk, 10 content chunks and the usage line.
					assert.InDelta(t, 12*ts.RPS, ts.ChunksPerS, 0.01*ts.ChunksPerS+1, name)
				}
				assert.Positive(t, r.Ratio)
				for _, role := range []string{"client", "proxy", "worker"} {
					rs := r.Roles[role]
					require.NotNil(t, rs, role)
					assert.Positive(t, rs.PeakRSSMB, role)
					assert.Positive(t, rs.CPUSPerReq, role)
				}
				assert.NotEmpty(t, r.Targets)
			},
		},
		"long-streams": {
			opts: benchOptions{scenario: scenarioLongStreams, duration: 300 * time.Millisecond, warmup: 200 * time.Millisecond, concurrency: 20},
			check: func(t *testing.T, r *benchReport) {
				require.NotNil(t, r.Streams)
				assert.Equal(t, 20, r.Streams.Opened)
				assert.Zero(t, r.Streams.Errors, r.Streams.FirstError)
				assert.Positive(t, r.Streams.TTFCP50Ms)
				assert.Len(t, r.Roles, 3)
			},
		},
		"many-workers": {
			opts: benchOptions{scenario: scenarioManyWorkers, duration: 300 * time.Millisecond, concurrency: 5},
			check: func(t *testing.T, r *benchReport) {
				require.NotNil(t, r.Workers)
				assert.Equal(t, 5, r.Workers.Registered)
				assert.Zero(t, r.Workers.Errors, r.Workers.FirstError)
				assert.Positive(t, r.Workers.ProxyRSSMB)
			},
		},
		"handshake-storm": {
			opts: benchOptions{scenario: scenarioHandshakeStorm, duration: 500 * time.Millisecond, warmup: 100 * time.Millisecond, concurrency: 2},
			check: func(t *testing.T, r *benchReport) {
				require.NotNil(t, r.Handshakes)
				assert.Positive(t, r.Handshakes.PerS)
				assert.Zero(t, r.Handshakes.Errors, r.Handshakes.FirstError)
				assert.Positive(t, r.Handshakes.P50Ms)
				assert.LessOrEqual(t, r.Handshakes.P50Ms, r.Handshakes.P99Ms)
			},
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), timescale(60*time.Second))
			defer cancel()
			tc.opts.bin = bin
			tc.opts.progress = testWriter{t}
			r, err := runBench(ctx, tc.opts)
			require.NoError(t, err)
			require.NotNil(t, r)
			tc.check(t, r)
			var sb strings.Builder
			r.print(&sb)
			t.Log("\n" + sb.String())
		})
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestBenchHelpers(t *testing.T) {
	t.Run("percentile", func(t *testing.T) {
		ds := []time.Duration{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
		assert.Equal(t, time.Duration(5), percentile(ds, 0.5))
		assert.Equal(t, time.Duration(10), percentile(ds, 0.99))
		assert.Equal(t, time.Duration(1), percentile(ds, 0))
		assert.Zero(t, percentile(nil, 0.5))
	})
	t.Run("proc stat", func(t *testing.T) {
		// The command name may hold spaces and parentheses.
		stat := "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 1000 0 0"
		d, err := parseProcStat([]byte(stat))
		require.NoError(t, err)
		assert.Equal(t, 3*time.Second, d)
		_, err = parseProcStat([]byte("42 (x) S 1"))
		assert.Error(t, err)
	})
	t.Run("proc status", func(t *testing.T) {
		rss, hwm, err := parseProcStatus([]byte("Name:\tcocoon\nVmHWM:\t   2048 kB\nVmRSS:\t   1024 kB\n"))
		require.NoError(t, err)
		assert.Equal(t, int64(1<<20), rss)
		assert.Equal(t, int64(2<<20), hwm)
	})
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
		t.Run("sse "+name, func(t *testing.T) {
			_, chunks, err := readSSEStream(bufio.NewReaderSize(strings.NewReader(tc.stream), 16), time.Now())
			assert.Equal(t, tc.chunks, chunks)
			if tc.err == "" {
				assert.NoError(t, err)
			} else {
				assert.ErrorContains(t, err, tc.err)
			}
		})
	}
}
