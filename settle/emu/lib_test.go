package emu

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLoadLibraryNotFound: with libemulator nowhere, the error lists where it looked and names
// the fix, in one line.
func TestLoadLibraryNotFound(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		t.Skip("libemulator is loaded on Linux and macOS only")
	}
	missing := filepath.Join(t.TempDir(), libraryName())
	err := loadLibrary([]candidate{{path: missing, where: "next to the binary (" + missing + ")"}, {path: "/nowhere/" + libraryName(), where: "in the Go module cache (/nowhere)"}})
	require.Error(t, err)
	if errorsIsNoCgo(err) {
		return // TestNoCgo covers this build
	}
	assert.Contains(t, err.Error(), "not found next to the binary ("+missing+"), or in the Go module cache (/nowhere); ")
	assert.Contains(t, err.Error(), "copy it next to the binary")
	assert.Contains(t, err.Error(), LibraryEnv)
	assert.NotContains(t, err.Error(), "\n")
}

// TestLoadLibraryBroken: a file that is there but is no library is reported as such, not as missing.
func TestLoadLibraryBroken(t *testing.T) {
	bad := filepath.Join(t.TempDir(), libraryName())
	require.NoError(t, os.WriteFile(bad, []byte("not a library"), 0o600))
	err := loadLibrary([]candidate{{path: bad}, {path: "elsewhere"}})
	require.Error(t, err)
	if errorsIsNoCgo(err) {
		return
	}
	assert.Contains(t, err.Error(), "load the TVM emulator library")
	assert.Contains(t, err.Error(), bad)
}

// TestCandidates: $COCOON_LIBEMULATOR alone when set; else next to the executable first and the
// module cache's copy of this module's tongo version last.
func TestCandidates(t *testing.T) {
	t.Setenv(LibraryEnv, "/opt/lib/libemulator.so")
	assert.Equal(t, []candidate{{path: "/opt/lib/libemulator.so", where: "at $COCOON_LIBEMULATOR (/opt/lib/libemulator.so)"}}, candidates())

	t.Setenv(LibraryEnv, "")
	t.Setenv("GOMODCACHE", "/cache")
	c := candidates()
	require.Len(t, c, 3)
	exe, err := os.Executable()
	require.NoError(t, err)
	exe, err = filepath.EvalSymlinks(exe)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(filepath.Dir(exe), libraryName()), c[0].path)
	assert.Equal(t, candidate{path: libraryName(), search: true, where: "on the library search path"}, c[1])
	assert.Regexp(t, `^/cache/github\.com/tonkeeper/tongo@v[0-9.]+[^/]*/lib/`+runtime.GOOS+`/`+libraryName()+`$`, c[2].path)
}

func TestEscapeModulePath(t *testing.T) {
	assert.Equal(t, "github.com/!burnt!sushi/toml", escapeModulePath("github.com/BurntSushi/toml"))
	assert.Equal(t, tongoModule, escapeModulePath(tongoModule))
}

func errorsIsNoCgo(err error) bool { return errors.Is(err, errNoCgo) }
