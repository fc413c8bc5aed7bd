package main

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/settle/emu"
)

// reproducible are the go build flags of the README's install line and the Dockerfile: no build
// paths and no VCS state in the binary, so one commit on one toolchain gives one digest.
var reproducible = []string{"-trimpath", "-buildvcs=false"}

// goBuild builds the module's cocoon into dir with the reproducible flags and env added to the
// environment (CGO_ENABLED=0, …), and returns its path.
func goBuild(dir string, env ...string) (string, error) {
	bin := filepath.Join(dir, "cocoon")
	args := append(append([]string{"build"}, reproducible...), "-o", bin, ".")
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s (%s): %w\n%s", strings.Join(args, " "), strings.Join(env, " "), err, out)
	}
	return bin, nil
}

// askOnce sends one chat completion through the client at api and checks the answer.
func askOnce(t *testing.T, api string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timescale(30*time.Second))
	defer cancel()
	resp := post(t, ctx, api+"/v1/chat/completions", chatBody("cocoon-builtin", false, ""))
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, 200, resp.StatusCode, "%s", body)
	assert.Contains(t, string(body), `"chat.completion"`)
}

var (
	noCgoOnce sync.Once
	noCgoPath string
	noCgoErr  error
)

// noCgoBinary builds cocoon with CGO_ENABLED=0 once per test run.
func noCgoBinary(t *testing.T) string {
	t.Helper()
	cocoonBinary(t) // skips with -short, and makes buildDir
	noCgoOnce.Do(func() {
		dir := filepath.Join(buildDir, "nocgo")
		if noCgoErr = os.Mkdir(dir, 0o700); noCgoErr != nil {
			return
		}
		noCgoPath, noCgoErr = goBuild(dir, "CGO_ENABLED=0")
	})
	require.NoError(t, noCgoErr)
	return noCgoPath
}

// TestBinaryWithoutCgo: `CGO_ENABLED=0 go build` gives a static binary whose proxy, worker and
// client, each its own process, answer a chat completion; asked for the local chain, it stops
// with one line naming the fix (build with cgo) and status 1, before creating any chain file.
func TestBinaryWithoutCgo(t *testing.T) {
	bin := noCgoBinary(t)
	if runtime.GOOS == "linux" {
		f, err := elf.Open(bin)
		require.NoError(t, err)
		libs, err := f.ImportedLibraries()
		require.NoError(t, err)
		assert.Empty(t, libs, "a CGO_ENABLED=0 binary loads no shared library")
		for _, p := range f.Progs {
			assert.NotEqual(t, elf.PT_INTERP, p.Type, "a CGO_ENABLED=0 binary needs no dynamic loader")
		}
		require.NoError(t, f.Close())
	}

	t.Run("proxy, worker and client", func(t *testing.T) {
		n := newNetworkOf(t, bin)
		n.worker("worker", "", "cocoon-builtin", "--builtin-token-delay", "1ms")
		n.workers(1)
		_, api := n.client()
		askOnce(t, api)
	})

	const fix = `the local chain runs contracts in tongo's TVM emulator, a C library, and this cocoon was built without cgo \(CGO_ENABLED=0\); build it with cgo \(CGO_ENABLED=1 go build\)`
	registry := "0:" + strings.Repeat("0", 64)
	testCases := map[string]func(data string) []string{
		"worker on the local chain": func(data string) []string {
			return []string{"worker", "--sim", "--allow-simulated", "--sim-dir", t.TempDir(), "--data", data,
				"--stats-listen", "127.0.0.1:0", "--proxies", "127.0.0.1:1", "--chain", "local", "--registry", registry}
		},
		"chain serve": func(data string) []string {
			return []string{"chain", "serve", "--data", data, "--listen", "127.0.0.1:0"}
		},
		"demo": func(data string) []string {
			return []string{"demo", "--once", "--data", data, "--listen", "127.0.0.1:0"}
		},
	}
	for name, args := range testCases {
		t.Run(name, func(t *testing.T) {
			data := t.TempDir()
			r := runBinary(t, bin, args(data)...)
			assert.Equal(t, 1, r.code)
			oneLineFailure(t, r, `^cocoon: .*open local chain: `+fix)
			assert.NoFileExists(t, filepath.Join(data, "chain.db"), "refused before the chain file is created")
		})
	}
}

// TestBuildReproducible: two builds of this tree into two directories, one after the other with
// the same flags, give the same sha256, with cgo and without. (They share the Go build cache; with
// an empty cache the digest is the same too.)
func TestBuildReproducible(t *testing.T) {
	cocoonBinary(t) // skips with -short
	digest := func(dir string, env []string) string {
		bin, err := goBuild(dir, env...)
		require.NoError(t, err)
		b, err := os.ReadFile(bin)
		require.NoError(t, err)
		sum := sha256.Sum256(b)
		return hex.EncodeToString(sum[:])
	}
	for name, env := range map[string][]string{"with cgo": {"CGO_ENABLED=1"}, "without cgo": {"CGO_ENABLED=0"}} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, digest(t.TempDir(), env), digest(t.TempDir(), env), "two builds of one tree differ")
		})
	}
}

// TestBinaryLoadsEmulatorOnlyForTheLocalChain: the cgo binary does not link libemulator (no
// DT_NEEDED, no RUNPATH into the module cache), its proxy, worker and client never load it, and a
// copy of it opens the local chain with the library next to it, or says in one line where it
// looked and how to fix that.
func TestBinaryLoadsEmulatorOnlyForTheLocalChain(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads ELF headers and /proc")
	}
	src := cocoonBinary(t)
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tonkeeper/tongo").Output()
	require.NoError(t, err)
	lib := filepath.Join(strings.TrimSpace(string(out)), "lib", "linux", "libemulator.so")

	f, err := elf.Open(src)
	require.NoError(t, err)
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	for _, l := range libs {
		assert.NotContains(t, l, "emulator")
	}
	for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
		paths, err := f.DynString(tag)
		require.NoError(t, err)
		assert.Empty(t, paths, "%v", tag)
	}
	require.NoError(t, f.Close())

	t.Run("roles do not load it", func(t *testing.T) {
		n := newNetwork(t)
		worker, _ := n.worker("worker", "", "cocoon-builtin", "--builtin-token-delay", "1ms")
		n.workers(1)
		client, api := n.client()
		askOnce(t, api)
		for _, p := range []*proc{n.proxyP, worker, client} {
			maps, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/maps")
			require.NoError(t, err)
			assert.NotContains(t, string(maps), "libemulator", "the %s loaded the emulator", p.name)
		}
	})

	dir := t.TempDir()
	bin := filepath.Join(dir, "cocoon")
	copyFile(t, src, bin)
	key := filepath.Join(dir, "wallet.key")
	require.Zero(t, runBinary(t, bin, "chain", "key", "new", key).code)
	balance := func() exited {
		return runBinary(t, bin, "chain", "balance", "--chain-data", filepath.Join(dir, "chain.db"), "--key", key)
	}
	// Nowhere: not next to the copy, not in a module cache (an empty one), not named.
	t.Setenv("GOMODCACHE", t.TempDir())
	t.Setenv(emu.LibraryEnv, "")
	r := balance()
	if r.code == 0 {
		t.Skip("libemulator.so is on this machine's library search path")
	}
	oneLineFailure(t, r, `^cocoon: chain balance: open local chain: the local chain needs tongo's TVM emulator library libemulator\.so, not found next to the binary \(`+
		regexp.QuoteMeta(filepath.Join(dir, "libemulator.so"))+`\)`, "copy it next to the binary", emu.LibraryEnv)

	copyFile(t, lib, filepath.Join(dir, "libemulator.so"))
	r = balance()
	require.Zero(t, r.code, r.stderr)
	assert.Contains(t, r.stdout, "balance 0 TON")
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, b, 0o755))
}
