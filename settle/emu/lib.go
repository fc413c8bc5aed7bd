package emu

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"unicode"
)

// The TVM lives in tongo's libemulator, a C++ library. It is opened with dlopen the first time a
// chain is created (lib_cgo.go), not linked into the binary: a node that settles on TON, and every
// process that never opens the local chain, starts without it, and the binary needs neither the
// Go module cache nor a library next to it unless it runs the local chain.

// tongoModule is the module that ships libemulator; its version in the build picks the library
// found in the module cache.
const tongoModule = "github.com/tonkeeper/tongo"

// LibraryEnv names a libemulator file to load instead of searching for it.
const LibraryEnv = "COCOON_LIBEMULATOR"

// libraryName is libemulator's file name on this OS (tongo ships Linux and macOS builds).
func libraryName() string {
	if runtime.GOOS == "darwin" {
		return "libemulator.dylib"
	}
	return "libemulator.so"
}

// candidate is one place libemulator may be: a path, or a bare name for the system loader's
// search (LD_LIBRARY_PATH, the ld.so cache).
type candidate struct {
	path   string
	search bool
	where  string // for the error when it is not there
}

// candidates are the places to load libemulator from, in order: $COCOON_LIBEMULATOR alone when
// set; else next to the executable (how a copied binary ships it), the loader's search path (the
// image installs it in /usr/local/lib), and the Go module cache of the tongo version this binary
// was built with (go run, go test and go build on a development machine).
func candidates() []candidate {
	if p := os.Getenv(LibraryEnv); p != "" {
		return []candidate{{path: p, where: "at $" + LibraryEnv + " (" + p + ")"}}
	}
	var out []candidate
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		p := filepath.Join(filepath.Dir(exe), libraryName())
		out = append(out, candidate{path: p, where: "next to the binary (" + p + ")"})
	}
	out = append(out, candidate{path: libraryName(), search: true, where: "on the library search path"})
	if p := moduleCacheLibrary(); p != "" {
		out = append(out, candidate{path: p, where: "in the Go module cache (" + p + ")"})
	}
	return out
}

// moduleCacheLibrary is where `go mod download` put the libemulator of the tongo version in this
// binary's build information, or for a test binary (which lists no dependencies) in the go.mod
// above the working directory ("" when neither says).
func moduleCacheLibrary() string {
	version := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == tongoModule {
				version = m.Version
				if m.Replace != nil {
					if m.Replace.Version == "" { // a directory replacement
						return filepath.Join(m.Replace.Path, "lib", runtime.GOOS, libraryName())
					}
					version = m.Replace.Version
				}
			}
		}
	}
	if version == "" {
		version = goModVersion()
	}
	if version == "" {
		return ""
	}
	cache := os.Getenv("GOMODCACHE")
	if cache == "" {
		gopath := os.Getenv("GOPATH")
		if gopath == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return ""
			}
			gopath = filepath.Join(home, "go")
		}
		cache = filepath.Join(filepath.SplitList(gopath)[0], "pkg", "mod")
	}
	return filepath.Join(cache, escapeModulePath(tongoModule)+"@"+version, "lib", runtime.GOOS, libraryName())
}

// goModVersion is the tongo version required by the nearest go.mod at or above the working
// directory (go test runs a test binary in its package's directory).
func goModVersion() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
				if len(f) >= 2 && f[0] == tongoModule {
					return f[1]
				}
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// escapeModulePath is the module cache's spelling of a path: capitals as "!" and the lower case.
func escapeModulePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

var (
	loadOnce sync.Once
	loadErr  error
)

// load opens libemulator once per process; every later call returns the first outcome.
func load() error {
	loadOnce.Do(func() { loadErr = loadLibrary(candidates()) })
	return loadErr
}

// loadLibrary tries each candidate in turn. A file that exists but does not load is the answer
// (a wrong architecture or C library), not a reason to look further.
func loadLibrary(cands []candidate) error {
	var looked []string
	for _, c := range cands {
		if !c.search {
			if _, err := os.Stat(c.path); err != nil {
				looked = append(looked, c.where)
				continue
			}
		}
		err := openLibrary(c.path)
		if err == nil {
			return nil
		}
		if errors.Is(err, errNoCgo) || !c.search {
			return err
		}
		looked = append(looked, c.where)
	}
	if len(looked) > 1 {
		looked[len(looked)-1] = "or " + looked[len(looked)-1]
	}
	return fmt.Errorf("the local chain needs tongo's TVM emulator library %[1]s, not found %[2]s; "+
		"copy it next to the binary from the Go module cache ($(go list -m -f '{{.Dir}}' %[3]s)/lib/%[4]s/%[1]s) or set %[5]s to its path",
		libraryName(), strings.Join(looked, ", "), tongoModule, runtime.GOOS, LibraryEnv)
}

// errNoCgo is what a binary built without cgo answers to every use of the emulator.
var errNoCgo = errors.New("the local chain runs contracts in tongo's TVM emulator, a C library, " +
	"and this cocoon was built without cgo (CGO_ENABLED=0); build it with cgo (CGO_ENABLED=1 go build) " +
	"to run the local chain, or settle on TON (payments.chain: ton or toncenter)")

// emulation is libemulator's answer to transaction_emulator_emulate_transaction.
type emulation struct {
	Success      bool   `json:"success"`
	Error        string `json:"error"`
	Transaction  string `json:"transaction"`
	ShardAccount string `json:"shard_account"`
	VMExitCode   int    `json:"vm_exit_code"`
}

// getResult is libemulator's answer to tvm_emulator_run_get_method.
type getResult struct {
	Success    bool   `json:"success"`
	Error      string `json:"error"`
	VMExitCode int    `json:"vm_exit_code"`
	Stack      string `json:"stack"`
}

func decodeJSON[T any](s string) (T, error) {
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return v, fmt.Errorf("decode emulator answer: %w", err)
	}
	return v, nil
}
