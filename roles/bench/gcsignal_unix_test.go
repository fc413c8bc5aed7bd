//go:build unix

package bench

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/roles/internal/poll"
)

// TestGCOnSignal: each signal is answered with one more collection in the count file, and the
// process goes on; after stop, the handler is gone.
func TestGCOnSignal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "role.gc")
	stop, err := GCOnSignal(path, "")
	require.NoError(t, err)
	count := func(want int) {
		t.Helper()
		require.NoError(t, poll.Until(context.Background(), 10*time.Second, nil, func() error {
			r, err := readGCReport(path)
			if err == nil && r.count != want {
				err = fmt.Errorf("count %d, want %d", r.count, want)
			}
			return err
		}))
		// With the count come the memory classes the bench splits memory per stream by.
		r, err := readGCReport(path)
		require.NoError(t, err)
		assert.NotZero(t, r.classes[classStacks])
		assert.NotZero(t, r.classes[classObjects])
	}
	count(0)
	for _, want := range []int{1, 2} {
		require.NoError(t, syscall.Kill(os.Getpid(), gcSignal))
		count(want)
	}
	stop()

	_, err = GCOnSignal(filepath.Join(t.TempDir(), "missing", "role.gc"), "")
	require.ErrorContains(t, err, "is the bench's directory writable?")
}

// TestGCOnSignalProfiles: with a profile prefix, each collection leaves a heap and a goroutine
// profile numbered after it, complete by the time the count says it is done.
func TestGCOnSignalProfiles(t *testing.T) {
	rate := runtime.MemProfileRate
	t.Cleanup(func() { runtime.MemProfileRate = rate })
	dir := t.TempDir()
	path, prefix := filepath.Join(dir, "role.gc"), filepath.Join(dir, "part-role")
	stop, err := GCOnSignal(path, prefix)
	require.NoError(t, err)
	defer stop()
	require.NoError(t, syscall.Kill(os.Getpid(), gcSignal))
	require.NoError(t, poll.Until(context.Background(), 10*time.Second, nil, func() error {
		r, err := readGCReport(path)
		if err == nil && r.count != 1 {
			err = fmt.Errorf("count %d, want 1", r.count)
		}
		return err
	}))
	for _, kind := range []string{"heap", "goroutine"} {
		f, err := os.Open(prefix + "-1." + kind + ".pprof")
		require.NoError(t, err)
		zr, err := gzip.NewReader(f) // a profile is a gzipped protocol buffer
		require.NoError(t, err, kind)
		b, err := io.ReadAll(zr)
		f.Close()
		require.NoError(t, err, kind)
		require.NotEmpty(t, b, kind)
	}
}

func readGCReport(path string) (gcReport, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return gcReport{}, err
	}
	return parseGCReport(b)
}
