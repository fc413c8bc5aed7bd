package main

// End-to-end test of `cocoon bench`: run the command as a process, as a person would, for each
// scenario briefly, and check the JSON report holds sane figures and no errors. It asserts nothing
// about performance.

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// benchTarget and benchJSON are the parts of the --json report the test reads.
type benchTarget struct {
	Requests     int     `json:"requests"`
	Errors       int     `json:"errors"`
	WarmupErrors int     `json:"warmup_errors"`
	FirstError   string  `json:"first_error"`
	RPS          float64 `json:"rps"`
	TTFCP50Ms    float64 `json:"ttfc_p50_ms"`
	TTFCP99Ms    float64 `json:"ttfc_p99_ms"`
	LatencyP50Ms float64 `json:"latency_p50_ms"`
	LatencyP99Ms float64 `json:"latency_p99_ms"`
	ChunksPerS   float64 `json:"chunks_per_s"`
}

type benchJSON struct {
	Direct       *benchTarget `json:"direct"`
	Path         *benchTarget `json:"path"`
	ProxyPath    *benchTarget `json:"proxy_path"`
	DirectOne    *benchTarget `json:"direct_one_stream"`
	PathOne      *benchTarget `json:"path_one_stream"`
	ProxyPathOne *benchTarget `json:"proxy_path_one_stream"`
	Ratio        float64      `json:"ratio"`
	Roles        map[string]*struct {
		PeakRSSMB  float64 `json:"peak_rss_mb"`
		CPUSPerReq float64 `json:"cpu_s_per_req"`
	} `json:"roles"`
	Streams *struct {
		Opened     int     `json:"opened"`
		Errors     int     `json:"errors"`
		FirstError string  `json:"first_error"`
		TTFCP50Ms  float64 `json:"ttfc_p50_ms"`
	} `json:"streams"`
	Workers *struct {
		Registered int     `json:"registered"`
		Errors     int     `json:"errors"`
		FirstError string  `json:"first_error"`
		ProxyRSSMB float64 `json:"proxy_rss_mb"`
	} `json:"workers"`
	Handshakes *struct {
		PerS       float64 `json:"per_s"`
		Errors     int     `json:"errors"`
		FirstError string  `json:"first_error"`
		P50Ms      float64 `json:"p50_ms"`
		P99Ms      float64 `json:"p99_ms"`
		Clients    *struct {
			PerS   float64 `json:"per_s"`
			Errors int     `json:"errors"`
		} `json:"clients"`
	} `json:"handshakes"`
	Targets []json.RawMessage `json:"targets"`
	Runs    int               `json:"runs"`
}

func TestE2EBench(t *testing.T) {
	bin := cocoonBinary(t)
	traces := t.TempDir()
	testCases := map[string]struct {
		args  []string
		check func(t *testing.T, r *benchJSON)
	}{
		"default": {
			args: []string{"--scenario", "default", "--duration", "600ms", "--warmup", "200ms", "--concurrency", "4", "--chunks", "10"},
			check: func(t *testing.T, r *benchJSON) {
				assert := assert.New(t)
				for name, ts := range map[string]*benchTarget{"direct": r.Direct, "path": r.Path, "proxy_path": r.ProxyPath,
					"direct_one_stream": r.DirectOne, "path_one_stream": r.PathOne, "proxy_path_one_stream": r.ProxyPathOne} {
					require.NotNil(t, ts, name)
					assert.Positive(ts.RPS, name)
					assert.Zero(ts.Errors+ts.WarmupErrors, "%s: %s", name, ts.FirstError)
					assert.Positive(ts.TTFCP50Ms, name)
					assert.LessOrEqual(ts.TTFCP50Ms, ts.TTFCP99Ms, name)
					assert.LessOrEqual(ts.TTFCP50Ms, ts.LatencyP50Ms, name)
					assert.LessOrEqual(ts.LatencyP50Ms, ts.LatencyP99Ms, name)
					// Every answer: role chunk, 10 content chunks and the usage line.
					assert.InDelta(12*ts.RPS, ts.ChunksPerS, 0.01*ts.ChunksPerS+1, name)
				}
				assert.Positive(r.Ratio)
				for _, role := range []string{"client", "proxy", "worker"} {
					rs := r.Roles[role]
					require.NotNil(t, rs, role)
					assert.Positive(rs.PeakRSSMB, role)
					assert.Positive(rs.CPUSPerReq, role)
				}
				assert.NotEmpty(r.Targets)
			},
		},
		"long-streams": {
			args: []string{"--scenario", "long-streams", "--duration", "300ms", "--warmup", "200ms", "--concurrency", "20", "--trace", traces},
			check: func(t *testing.T, r *benchJSON) {
				assert := assert.New(t)
				require.NotNil(t, r.Streams)
				assert.Equal(20, r.Streams.Opened)
				assert.Zero(r.Streams.Errors, r.Streams.FirstError)
				assert.Positive(r.Streams.TTFCP50Ms)
				assert.Len(r.Roles, 3)
				// Every role wrote its execution trace when it stopped.
				for _, role := range []string{"client", "proxy", "worker"} {
					b, err := os.ReadFile(filepath.Join(traces, "long-streams-"+role+".trace"))
					if assert.NoError(err, role) {
						assert.True(bytes.HasPrefix(b, []byte("go 1.")), "%s: an execution trace begins with its Go version", role)
						assert.Greater(len(b), 1<<10, role)
					}
				}
			},
		},
		"many-workers": {
			args: []string{"--scenario", "many-workers", "--duration", "300ms", "--concurrency", "5"},
			check: func(t *testing.T, r *benchJSON) {
				assert := assert.New(t)
				require.NotNil(t, r.Workers)
				assert.Equal(5, r.Workers.Registered)
				assert.Zero(r.Workers.Errors, r.Workers.FirstError)
				assert.Positive(r.Workers.ProxyRSSMB)
			},
		},
		"handshake-storm": {
			// Three runs, with medians of their figures.
			args: []string{"--scenario", "handshake-storm", "--duration", "300ms", "--warmup", "100ms", "--concurrency", "2", "--repeat", "3"},
			check: func(t *testing.T, r *benchJSON) {
				assert := assert.New(t)
				require.NotNil(t, r.Handshakes)
				assert.Positive(r.Handshakes.PerS)
				assert.Zero(r.Handshakes.Errors, r.Handshakes.FirstError)
				assert.Positive(r.Handshakes.P50Ms)
				assert.LessOrEqual(r.Handshakes.P50Ms, r.Handshakes.P99Ms)
				require.NotNil(t, r.Handshakes.Clients, "client handshakes")
				assert.Positive(r.Handshakes.Clients.PerS)
				assert.Zero(r.Handshakes.Clients.Errors)
				assert.Equal(3, r.Runs)
			},
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			require := require.New(t)
			ctx, cancel := context.WithTimeout(t.Context(), timescale(90*time.Second))
			defer cancel()
			var stdout, stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, bin, append([]string{"bench", "--json"}, tc.args...)...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			t.Log("progress:\n" + stderr.String())
			require.NoError(err, "cocoon bench %v", tc.args)
			var r benchJSON
			require.NoError(json.Unmarshal(stdout.Bytes(), &r), stdout.String())
			tc.check(t, &r)
		})
	}
}

// TestE2EBenchAgainst: --against runs the scenario with the roles of a second binary (here the
// same one, copied) and reports both side by side.
func TestE2EBenchAgainst(t *testing.T) {
	require := require.New(t)
	bin := cocoonBinary(t)
	other := filepath.Join(t.TempDir(), "cocoon-other")
	b, err := os.ReadFile(bin)
	require.NoError(err)
	require.NoError(os.WriteFile(other, b, 0o755))
	ctx, cancel := context.WithTimeout(t.Context(), timescale(90*time.Second))
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "bench", "--json", "--scenario", "handshake-storm", "--duration", "300ms",
		"--warmup", "100ms", "--concurrency", "2", "--against", other)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	t.Log("progress:\n" + stderr.String())
	require.NoError(err)
	var c struct {
		Bins    []string    `json:"bins"`
		Reports []benchJSON `json:"reports"`
		Rows    []struct {
			Figure string   `json:"figure"`
			Got    []string `json:"got"`
		} `json:"rows"`
	}
	require.NoError(json.Unmarshal(stdout.Bytes(), &c), stdout.String())
	require.Equal([]string{bin, other}, c.Bins)
	require.Len(c.Reports, 2)
	for _, r := range c.Reports {
		require.NotNil(r.Handshakes)
		require.Positive(r.Handshakes.PerS)
	}
	figures := map[string][]string{}
	for _, r := range c.Rows {
		figures[r.Figure] = r.Got
	}
	require.Len(figures["proxy CPU per attested handshake"], 2)
	require.NotContains(figures["proxy CPU per attested handshake"], "")
	require.Contains(stderr.String(), "with the roles of "+other)
}
