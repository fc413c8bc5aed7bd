package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/roles/node/demo"
	"github.com/cocoon-network/cocoon/settle"
)

// TestStatsPagesInChromium: the demo's client, proxy and worker serve /stats pages that headless
// Chromium renders with their key figures, the same as /jsonstats has; the proxy and the worker
// show the worker's earned and paid totals alike. A screenshot of each page is kept (the test
// logs where).
func TestStatsPagesInChromium(t *testing.T) {
	browser := chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), timescale(120*time.Second))
	defer cancel()
	data := t.TempDir()
	dp := start(t, "demo", "demo", "--listen", "127.0.0.1:0", "--data", data, "--token-delay", "1ms")
	var urls demo.URLs
	waitFor(t, "demo.json", func() bool {
		b, err := os.ReadFile(filepath.Join(data, "demo.json"))
		return err == nil && json.Unmarshal(b, &urls) == nil
	})
	waitFor(t, "the demo's sample request", func() bool { return strings.Contains(dp.out.String(), "Serving until interrupted") })
	api := strings.TrimSuffix(urls.Client.API, "/v1")
	for range 3 {
		resp := post(t, ctx, api+"/v1/chat/completions", chatBody("cocoon-builtin", false, ""))
		require.Equal(t, 200, resp.StatusCode)
		require.NoError(t, resp.Body.Close())
	}
	jsonURL := func(stats string) string { return strings.TrimSuffix(stats, "/stats") + "/jsonstats" }

	// The proxy reads the worker's payout from its contract; wait until it has.
	var ws pageWorkerStats
	var ps pageProxyStats
	waitFor(t, "the proxy and the worker to show the same payout", func() bool {
		ws, ps = pageWorkerStats{}, pageProxyStats{}
		if getJSON(jsonURL(urls.Worker.Stats), &ws) != nil || getJSON(jsonURL(urls.Proxy.Stats), &ps) != nil ||
			len(ws.Payments) != 1 || len(ps.Payments.Workers) != 1 {
			return false
		}
		for _, w := range ws.Payments {
			for _, p := range ps.Payments.Workers {
				return w.Paid > 0 && w.Paid == p.Paid && w.Earned == p.Earned
			}
		}
		return false
	})
	var cs pageClientStats
	require.NoError(t, getJSON(api+"/jsonstats", &cs))
	var earned, paid uint64
	for _, w := range ws.Payments {
		earned, paid = w.Earned, w.Paid
	}
	require.Len(t, ws.Proxies, 1)
	require.Len(t, ps.Workers, 1)
	require.Len(t, cs.Proxies, 1)
	require.Len(t, cs.Payments, 1)
	var deposit uint64
	for _, p := range cs.Payments {
		require.NotNil(t, p.Balance)
		deposit = *p.Balance
	}

	// /jsonstats: one naming style in every role.
	for _, url := range []string{api + "/jsonstats", jsonURL(urls.Proxy.Stats), jsonURL(urls.Worker.Stats)} {
		var doc any
		require.NoError(t, getJSON(url, &doc))
		for _, k := range badKeys(doc) {
			t.Errorf("%s: key %q is not snake_case", url, k)
		}
	}

	dir := screenshotDir(t)
	pages := []struct {
		role, url string
		want      []string
	}{
		{role: "worker", url: urls.Worker.Stats, want: []string{
			"cocoon worker", "healthy", ws.Model, ws.WeightsDigest, ws.ImageHash, ws.Attestation,
			ws.Proxies[0].Address, "connected", "time to first token",
			"earned", tonText(earned), nanoText(earned), "paid on chain", tonText(paid), nanoText(paid),
		}},
		{role: "proxy", url: urls.Proxy.Stats, want: []string{
			"cocoon proxy", "healthy", ps.Workers[0].Model, ps.Workers[0].ImageHash, "load 0 of " + strconv.Itoa(ps.Workers[0].MaxActive),
			"clients connected", "version " + strconv.Itoa(int(ps.Registry.Version)),
			tonText(ps.Payments.Charged), nanoText(ps.Payments.Charged), "paid to workers on chain", tonText(paid), nanoText(paid),
			nanoText(ps.Payments.Prices.PricePerToken),
		}},
		{role: "client", url: urls.Client.Stats, want: []string{
			"cocoon client", "healthy", cs.Proxies[0].Address, "connected", "latency", "time to first token",
			"spent", tonText(cs.Cost), nanoText(cs.Cost), "deposit left", tonText(deposit),
		}},
	}
	for _, pg := range pages {
		t.Run(pg.role, func(t *testing.T) {
			dom := browser.run(t, ctx, "--dump-dom", pg.url)
			for _, want := range pg.want {
				assert.Contains(t, dom, want, "the %s page shows it", pg.role)
			}
			assert.NotContains(t, dom, "http://", "the page links nowhere else and loads nothing")
			shot := filepath.Join(dir, pg.role+".png")
			browser.run(t, ctx, "--screenshot="+shot, "--window-size=1280,1400", "--hide-scrollbars", pg.url)
			b, err := os.ReadFile(shot)
			require.NoError(t, err)
			assert.True(t, bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")), "a PNG")
			t.Logf("%s page screenshot: %s", pg.role, shot)
		})
	}
}

// The parts of /jsonstats the pages test reads.
type pageWorkerStats struct {
	Model         string `json:"model"`
	WeightsDigest string `json:"weights_digest"`
	ImageHash     string `json:"image_hash"`
	Attestation   string `json:"attestation"`
	Proxies       []struct {
		Address string `json:"address"`
	} `json:"proxies"`
	Payments map[string]struct {
		Earned uint64 `json:"earned"`
		Paid   uint64 `json:"paid"`
	} `json:"payments"`
}

type pageProxyStats struct {
	Workers []struct {
		Model     string `json:"model"`
		ImageHash string `json:"image_hash"`
		MaxActive int    `json:"max_active"`
	} `json:"workers"`
	Registry struct {
		Version uint32 `json:"version"`
	} `json:"registry"`
	Payments struct {
		Charged uint64 `json:"charged"`
		Prices  struct {
			PricePerToken uint64 `json:"price_per_token"`
		} `json:"prices"`
		Workers map[string]struct {
			Earned uint64 `json:"earned"`
			Paid   uint64 `json:"paid"`
		} `json:"workers"`
	} `json:"payments"`
}

type pageClientStats struct {
	Proxies []struct {
		Address string `json:"address"`
	} `json:"proxies"`
	Cost     uint64 `json:"total_cost_nanoton"`
	Payments map[string]struct {
		Balance *uint64 `json:"balance"`
	} `json:"payments"`
}

// snakeCase is a /jsonstats key; keys that are identifiers (hex payment keys, raw TON addresses)
// are map keys, not names, and pass too.
var snakeCase = regexp.MustCompile(`^([a-z][a-z0-9]*(_[a-z0-9]+)*|[0-9a-f]+|-?[0-9]+:[0-9a-f]{64})$`)

// badKeys lists the keys of doc, at any depth, that are not snake_case, and "addr".
func badKeys(doc any) []string {
	var bad []string
	switch v := doc.(type) {
	case map[string]any:
		for k, e := range v {
			if !snakeCase.MatchString(k) || k == "addr" {
				bad = append(bad, k)
			}
			bad = append(bad, badKeys(e)...)
		}
	case []any:
		for _, e := range v {
			bad = append(bad, badKeys(e)...)
		}
	}
	return bad
}

// tonText and nanoText are how the pages write an amount.
func tonText(nano uint64) string { return settle.FormatTON(nano) + " TON" }

func nanoText(nano uint64) string {
	s := strconv.FormatUint(nano, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String() + " nanoTON"
}

// headless is a Chromium to render pages with.
type headless struct {
	path    string
	profile string
}

// chromium finds Chromium (COCOON_CHROMIUM, else chromium or chromium-browser on PATH), or skips
// the test saying how to install it.
func chromium(t *testing.T) headless {
	t.Helper()
	cocoonBinary(t) // skips with -short first
	path := os.Getenv("COCOON_CHROMIUM")
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path != "" {
			break
		}
		path, _ = exec.LookPath(name)
	}
	if path == "" {
		t.Skip("no Chromium installed, so the stats pages are not rendered: apt-get install chromium (or set COCOON_CHROMIUM to a Chromium binary)")
	}
	return headless{path: path, profile: t.TempDir()}
}

// run runs Chromium headless with args and returns its standard output.
func (h headless) run(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timescale(60*time.Second))
	defer cancel()
	// --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start; the pages are
	// the test's own.
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--user-data-dir=" + h.profile}
	cmd := exec.CommandContext(ctx, h.path, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "chromium %v: %s", args, stderr.String())
	return stdout.String()
}

// screenshotDir is where the screenshots are kept: the test's artifact directory with
// `go test -artifacts`, else a directory under the OS's temporary directory that outlives the
// test.
func screenshotDir(t *testing.T) string {
	t.Helper()
	if f := flag.Lookup("test.artifacts"); f != nil && f.Value.String() == "true" {
		return t.ArtifactDir()
	}
	dir, err := os.MkdirTemp("", "cocoon-pages-")
	require.NoError(t, err)
	t.Logf("screenshots kept in %s (with go test -artifacts they go to the test's artifact directory)", dir)
	return dir
}
