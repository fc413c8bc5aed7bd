package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/roles/node/demo"
)

// doctorLines checks the shape of `cocoon doctor`'s output (a title, one line per check with its
// status, a count) and returns each check's line by name.
func doctorLines(t *testing.T, r exited) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	require.GreaterOrEqual(t, len(lines), 3, r.stdout)
	assert.True(t, strings.HasPrefix(lines[0], "cocoon doctor: "), lines[0])
	assert.Regexp(t, `^\d+ ok, \d+ warn, \d+ fail$`, lines[len(lines)-1])
	out := map[string]string{}
	check := regexp.MustCompile(`^(ok|warn|fail) +(\S+) +\S`)
	for _, l := range lines[1 : len(lines)-1] {
		m := check.FindStringSubmatch(l)
		require.NotNil(t, m, "a check's line: %q", l)
		out[m[2]] = l
		if m[1] != "ok" {
			assert.Contains(t, l, "; fix: ", "a warning or failure names the fix")
		}
	}
	return out
}

// TestDoctorSimConfigs runs `cocoon doctor` on the simulated-TDX example configurations of
// testdata/config, their ports and directories moved to the test's: without the proxy the worker
// and client fail their proxies check (exit 1, the fix said, one line on stderr); with it running
// every role passes (exit 0), the worker after an attested handshake with it.
func TestDoctorSimConfigs(t *testing.T) {
	sim, udp := t.TempDir(), freePort(t, "udp")
	common := func(role string) []string {
		return []string{"doctor", "--role", role, "--config", filepath.Join("testdata", "config", "sim-"+role+".yaml"),
			"--data", filepath.Join(t.TempDir(), role), "--sim-dir", sim}
	}
	worker := append(common("worker"), "--proxies", udp, "--stats-listen", freePort(t, "tcp"))
	client := append(common("client"), "--proxies", udp, "--listen", freePort(t, "tcp"))

	r := runCocoon(t, worker...)
	assert.Equal(t, 1, r.code, r.stdout+r.stderr)
	lines := doctorLines(t, r)
	assert.Contains(t, lines["proxies"], "fail  proxies     none of 1 from worker.proxies: "+udp+": no answer over UDP")
	assert.Equal(t, "cocoon: doctor: 1 check(s) failed (proxies): apply the fixes above, then rerun\n", r.stderr)

	web := freePort(t, "tcp")
	start(t, "proxy", "proxy", "--config", filepath.Join("testdata", "config", "sim-proxy.yaml"), "--listen", udp,
		"--stats-listen", web, "--data", filepath.Join(t.TempDir(), "proxy"), "--sim-dir", sim)
	waitHTTP(t, "http://"+web+"/healthz", 200)

	r = runCocoon(t, worker...)
	assert.Equal(t, 0, r.code, r.stdout+r.stderr)
	lines = doctorLines(t, r)
	for _, name := range []string{"tdx", "collateral", "engine", "weights", "registry", "image", "model", "proxies", "wallet", "clock", "disk"} {
		assert.Contains(t, lines, name)
	}
	assert.Contains(t, lines["tdx"], "warn  tdx         simulated TDX")
	assert.Regexp(t, `^ok    proxies     1 of 1 from worker.proxies: attested QUIC handshake with `+regexp.QuoteMeta(udp)+` simulated in \d+ms$`, lines["proxies"])
	assert.Regexp(t, `^ok    image       [0-9a-f]{64} \(simulated\)`, lines["image"])

	r = runCocoon(t, client...)
	assert.Equal(t, 0, r.code, r.stdout+r.stderr)
	assert.Contains(t, doctorLines(t, r)["proxies"], "ok    proxies     1 of 1 from client.proxies")

	r = runCocoon(t, append(common("proxy"), "--listen", udp)...)
	assert.Equal(t, 0, r.code, r.stdout+r.stderr)
	assert.Contains(t, doctorLines(t, r)["listen"], "warn  listen      proxy.listen "+udp+" (UDP): the port is in use", "the running proxy holds it")
	t.Logf("cocoon doctor on sim-worker.yaml with sim-proxy.yaml running:\n%s", runCocoon(t, worker...).stdout)
}

// TestDoctorAndChainWhileDemoRuns: while a demo holds its local chain, `cocoon doctor` checks the
// demo's client (registry, proxies from it, wallet, deposit) and `cocoon chain` reads balance,
// registry and proxy contract, both through the URL the demo serves the chain at.
func TestDoctorAndChainWhileDemoRuns(t *testing.T) {
	data := t.TempDir()
	dp := start(t, "demo", "demo", "--listen", "127.0.0.1:0", "--data", data, "--token-delay", "1ms")
	waitFor(t, "the demo's sample request", func() bool { return strings.Contains(dp.out.String(), "Serving until interrupted") })
	var urls demo.URLs
	b, err := os.ReadFile(filepath.Join(data, "demo.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &urls))
	clientKey := filepath.Join(data, "keys", "client-wallet.key")

	// The hint the demo prints runs as written (with this build as cocoon), and its answer was
	// sealed end to end, with a receipt.
	hint := regexp.MustCompile(`Ask from a shell: cocoon (ask --client \S+) "([^"]+)"`).FindStringSubmatch(dp.out.String())
	require.Len(t, hint, 3, dp.out.String())
	asked := runCocoon(t, append(strings.Fields(hint[1]), hint[2])...)
	assert.Equal(t, 0, asked.code, asked.stderr)
	assert.Contains(t, asked.stdout, "worker", "the answer, on stdout")
	assert.Contains(t, asked.stderr, "sealed: end to end; the worker's signed receipt is at /v1/cocoon/receipts/")
	assert.Contains(t, asked.stderr, "nanoTON")

	r := runCocoon(t, "doctor", "--role", "client", "--chain", "local", "--chain-data", filepath.Join(data, "chain.db"),
		"--registry", urls.Registry, "--key", clientKey, "--allow-simulated", "--sim-dir", filepath.Join(data, "tdx-sim"),
		"--data", t.TempDir())
	assert.Equal(t, 0, r.code, r.stdout+r.stderr)
	lines := doctorLines(t, r)
	assert.Contains(t, lines["registry"], "(read through "+urls.Chain+")")
	assert.Contains(t, lines["proxies"], "ok    proxies     1 of 1 from the registry: attested QUIC handshake")
	assert.Regexp(t, `^ok    wallet      wallet \S+ holds [0-9.]+ TON$`, lines["wallet"])
	assert.Regexp(t, `^ok    deposit     0\.9799\d* TON left \(stake 1 TON\) with `, lines["deposit"])
	t.Logf("cocoon doctor on the demo's client:\n%s", r.stdout)

	reg := runCocoon(t, "chain", "registry", "show", "--data", data, urls.Registry).stdout
	contract := regexp.MustCompile(`contract\s+(\S+)`).FindStringSubmatch(reg)
	require.Len(t, contract, 2, reg)

	// The demo's worker and proxy: with the settings their image hash measures (simulated TDX, the
	// local chain, the registry), doctor computes the image hashes the registry allows.
	node := []string{"--sim", "--allow-simulated", "--sim-dir", filepath.Join(data, "tdx-sim"), "--data", data,
		"--chain", "local", "--chain-data", filepath.Join(data, "chain.db"), "--registry", urls.Registry}
	r = runCocoon(t, append([]string{"doctor", "--role", "worker", "--key", filepath.Join(data, "keys", "worker-wallet.key")}, node...)...)
	assert.Equal(t, 0, r.code, r.stdout+r.stderr)
	lines = doctorLines(t, r)
	assert.Regexp(t, `^ok    image       [0-9a-f]{64} \(simulated\) is on the registry's worker-image list$`, lines["image"])
	assert.Regexp(t, `^ok    model       sha256:[0-9a-f]{64} \(cocoon-builtin\) is on the registry's model list$`, lines["model"])
	assert.Contains(t, lines["proxies"], "ok    proxies     1 of 1 from the registry: attested QUIC handshake")
	t.Logf("cocoon doctor on the demo's worker:\n%s", r.stdout)
	r = runCocoon(t, append([]string{"doctor", "--role", "proxy", "--key", filepath.Join(data, "keys", "proxy-payment.key"),
		"--proxy-contract", contract[1], "--listen", "127.0.0.1:0"}, node...)...)
	assert.Equal(t, 0, r.code, r.stdout+r.stderr)
	lines = doctorLines(t, r)
	assert.Contains(t, lines["image"], "is on the registry's proxy-image list")
	assert.Regexp(t, `^ok    deposit     proxy contract \S+ active: stake 10 TON, client funds [0-9.]+ TON in 1 open account$`, lines["deposit"])
	t.Logf("cocoon doctor on the demo's proxy:\n%s", r.stdout)
	for _, args := range [][]string{
		{"chain", "balance", "--data", data, "--key", clientKey},
		{"chain", "registry", "show", "--data", data, urls.Registry},
		{"chain", "proxy", "show", "--data", data, contract[1]},
	} {
		began := time.Now()
		r := runCocoon(t, args...)
		assert.Equal(t, 0, r.code, "%v: %s", args, r.stderr)
		assert.Contains(t, r.stderr, "using the chain it serves at "+urls.Chain)
		assert.Less(t, time.Since(began), timescale(4*time.Second), "%v waits for no file lock", args)
	}
	assert.Regexp(t, `status\s+active`, runCocoon(t, "chain", "proxy", "show", "--data", data, contract[1]).stdout)
}

// runDemo runs `cocoon demo --once` in data with env added to this process's, without the
// COCOON_LOG_LEVEL the other tests set, and returns its standard output.
func runDemo(t *testing.T, data string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timescale(60*time.Second))
	defer cancel()
	cmd := exec.CommandContext(ctx, cocoonBinary(t), append([]string{"demo", "--once", "--listen", "127.0.0.1:0", "--data", data, "--token-delay", "1ms"}, args...)...)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "COCOON_LOG_LEVEL=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	return string(out)
}

// TestDemoTerminalOutput: the demo's terminal shows a two-line banner and short money lines, the
// roles' warnings going to demo.log; a second run sends no top-up; --log-level brings the logs back
// to the terminal.
func TestDemoTerminalOutput(t *testing.T) {
	data := t.TempDir()
	out := runDemo(t, data)
	lines := strings.Split(out, "\n")
	assert.True(t, strings.HasPrefix(lines[0], "cocoon demo: 1 proxy, 1 worker and a client on this machine; state in "+data+", logs in "+filepath.Join(data, "demo.log")), lines[0])
	assert.True(t, strings.HasPrefix(lines[1], "SIMULATED TDX: "), lines[1])
	assert.Contains(t, out, "Client deposit:  2 TON sent to ")
	assert.Contains(t, out, " = 1 TON stake (held while the account is open) + 0.98 TON to spend + 0.02 TON contract fee\n")
	assert.Regexp(t, `worker wallet\s+\+[0-9.]+ TON: the [0-9.]+ TON pay and [0-9.]+ TON of the 0.05 TON gas`, out)
	assert.NotContains(t, out, `"level"`, "no log lines on the terminal")
	for _, l := range strings.Split(out[:strings.Index(out, "\n> ")], "\n") {
		assert.Less(t, len(l), 200, "a short line before the answer: %q", l)
	}
	logged, err := os.ReadFile(filepath.Join(data, "demo.log"))
	require.NoError(t, err)
	assert.Contains(t, string(logged), "SIMULATED TDX", "the roles' warnings are in the log file")
	t.Logf("cocoon demo --once, first run:\n%s", out)

	again := runDemo(t, data)
	assert.Regexp(t, `Client deposit:  0\.9799\d* TON left to spend with \S+, 1 TON stake; no top-up \(one is sent when less than 0.49 TON is left\)`, again)
	assert.Regexp(t, `client charged\s+[0-9.]+ TON now, [0-9.]+ TON in all`, again)

	verbose := runDemo(t, data, "--log-level", "warn")
	assert.Contains(t, verbose, "logs here (--log-level warn)")
	assert.Contains(t, verbose, `"level":"warn"`, "--log-level puts the logs on the terminal")
}
