package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
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

// exited is one finished cocoon command.
type exited struct {
	code           int
	stdout, stderr string
}

// runCocoon runs the binary to its end with the roles logging errors only, so that stderr holds
// what the command itself says.
func runCocoon(t *testing.T, args ...string) exited {
	t.Helper()
	return runBinary(t, cocoonBinary(t), args...)
}

// runBinary is runCocoon with another build of cocoon.
func runBinary(t *testing.T, bin string, args ...string) exited {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timescale(60*time.Second))
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "COCOON_LOG_LEVEL=error")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		require.NoError(t, err)
	}
	require.NoError(t, ctx.Err(), "cocoon %v did not end", args)
	return exited{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// oneLineFailure checks a failed command: non-zero status, and stderr exactly one line starting
// with "cocoon:" that matches each of want (the cause, the fix), with no panic or goroutine dump.
func oneLineFailure(t *testing.T, r exited, want ...string) {
	t.Helper()
	assert.NotZero(t, r.code, "exit status; stderr:\n%s", r.stderr)
	assert.NotContains(t, r.stderr, "panic")
	assert.NotContains(t, r.stderr, "goroutine")
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	require.Len(t, lines, 1, "stderr:\n%s", r.stderr)
	assert.True(t, strings.HasPrefix(lines[0], "cocoon: "), lines[0])
	for _, w := range want {
		assert.Regexp(t, regexp.MustCompile(w), lines[0])
	}
}

// holdPort keeps a loopback port busy for the test (network "tcp" or "udp").
func holdPort(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c.LocalAddr().String()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l.Addr().String()
}

// startDemo starts a serving demo on data and waits for its demo.json.
func startDemo(t *testing.T, data string, extra ...string) demo.URLs {
	t.Helper()
	args := append([]string{"demo", "--listen", "127.0.0.1:0", "--data", data, "--token-delay", "1ms"}, extra...)
	p := start(t, "demo", args...)
	var urls demo.URLs
	waitFor(t, "demo.json", func() bool {
		select {
		case <-p.done:
			t.Fatalf("the demo stopped:\n%s", p.out.String())
		default:
		}
		b, err := os.ReadFile(filepath.Join(data, "demo.json"))
		return err == nil && json.Unmarshal(b, &urls) == nil
	})
	return urls
}

// TestStartupRolesBusyPort: proxy, worker and client refuse a port another process listens on in
// one line naming the flag and the fix.
func TestStartupRolesBusyPort(t *testing.T) {
	sim := []string{"--sim", "--allow-simulated", "--sim-dir", t.TempDir()}
	testCases := map[string][]string{
		"proxy QUIC":  append([]string{"proxy", "--listen", holdPort(t, "udp"), "--stats-listen", "127.0.0.1:0", "--data", t.TempDir()}, sim...),
		"proxy stats": append([]string{"proxy", "--listen", "127.0.0.1:0", "--stats-listen", holdPort(t, "tcp"), "--data", t.TempDir()}, sim...),
		"worker":      append([]string{"worker", "--proxies", "127.0.0.1:1", "--stats-listen", holdPort(t, "tcp"), "--data", t.TempDir()}, sim...),
		"client":      {"client", "--proxies", "127.0.0.1:1", "--listen", holdPort(t, "tcp"), "--allow-simulated", "--sim-dir", sim[3], "--data", t.TempDir()},
	}
	for name, args := range testCases {
		t.Run(name, func(t *testing.T) {
			flag := "--listen"
			if strings.Contains(name, "stats") || name == "worker" {
				flag = "--stats-listen"
			}
			oneLineFailure(t, runCocoon(t, args...), `^cocoon: `+flag+` 127\.0\.0\.1:\d+ \((TCP|UDP)\): the port is in use`,
				"another `cocoon "+args[0]+"`", "pick a free port with "+flag)
		})
	}
}

// TestStartupDemo: a second demo on the same data, a demo on a busy --listen and one against an
// engine that does not answer each stop at once with one line; with a demo serving, `cocoon
// chain` uses the chain URL the demo wrote, refuses a top-up below min_client_stake before
// sending it, and says what to do when the demo does not serve its chain.
func TestStartupDemo(t *testing.T) {
	data := t.TempDir()
	urls := startDemo(t, data)
	require.NotEmpty(t, urls.Chain)

	t.Run("second demo on the same data", func(t *testing.T) {
		oneLineFailure(t, runCocoon(t, "demo", "--once", "--listen", "127.0.0.1:0", "--data", data),
			"the data directory "+regexp.QuoteMeta(data)+" is in use", "stop it, or pass another --data")
	})
	t.Run("busy listen", func(t *testing.T) {
		oneLineFailure(t, runCocoon(t, "demo", "--once", "--listen", holdPort(t, "tcp"), "--data", t.TempDir()),
			`--listen 127\.0\.0\.1:\d+ \(TCP\): the port is in use`, "pick a free port with --listen")
	})
	t.Run("engine unreachable", func(t *testing.T) {
		// Refused before the chain is set up: a worker would wait for its engine, the demo for the worker.
		oneLineFailure(t, runCocoon(t, "demo", "--once", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--engine", "http://127.0.0.1:1"),
			`the engine at http://127\.0\.0\.1:1 does not answer \(connect: connection refused\)`, "leave out --engine for the built-in engine")
	})

	keys := filepath.Join(data, "keys")
	t.Run("balance while the demo holds the chain", func(t *testing.T) {
		r := runCocoon(t, "chain", "balance", "--data", data, "--key", filepath.Join(keys, "client-wallet.key"))
		require.Zero(t, r.code, r.stderr)
		assert.Contains(t, r.stdout, "balance")
		assert.Equal(t, "cocoon: the local chain "+filepath.Join(data, "chain.db")+" is held by a running `cocoon demo` or `cocoon chain serve`; using the chain it serves at "+urls.Chain+"\n", r.stderr)
	})
	t.Run("top-up below min_client_stake", func(t *testing.T) {
		shown := runCocoon(t, "chain", "registry", "show", "--chain-url", urls.Chain, urls.Registry)
		require.Zero(t, shown.code, shown.stderr)
		m := regexp.MustCompile(`contract\s+(\S+)`).FindStringSubmatch(shown.stdout)
		require.NotNil(t, m, shown.stdout)
		key := filepath.Join(t.TempDir(), "new.key")
		for _, args := range [][]string{{"chain", "key", "new", key}, {"chain", "fund", "--chain-url", urls.Chain, "--key", key, "5"}} {
			r := runCocoon(t, args...)
			require.Zero(t, r.code, r.stderr)
		}
		before := runCocoon(t, "chain", "balance", "--chain-url", urls.Chain, "--key", key)
		oneLineFailure(t, runCocoon(t, "chain", "client", "top-up", "--chain-url", urls.Chain, "--key", key, m[1], "0.5"),
			"top-up refused by proxy contract "+regexp.QuoteMeta(m[1]),
			`the first deposit must cover the registry's min_client_stake of 1 TON .*; send at least 1\.02 TON`)
		after := runCocoon(t, "chain", "balance", "--chain-url", urls.Chain, "--key", key)
		assert.Equal(t, before.stdout, after.stdout, "nothing was sent, no fee paid")
	})
}

// TestStartupDemoChainNotServed: a demo run with --chain-listen "" holds its chain without
// serving it; `cocoon chain balance` says so and what to do.
func TestStartupDemoChainNotServed(t *testing.T) {
	data := t.TempDir()
	startDemo(t, data, "--chain-listen", "")
	oneLineFailure(t, runCocoon(t, "chain", "balance", "--data", data, "--key", filepath.Join(data, "keys", "client-wallet.key")),
		"the local chain "+regexp.QuoteMeta(filepath.Join(data, "chain.db"))+" is held by a running `cocoon demo` that does not serve it",
		"stop the demo, or run it with --chain-listen and pass --chain-url")
}
