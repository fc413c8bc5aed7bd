//go:build unix

package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/roles/internal/poll"
)

// TestGCOnSignal: each signal is answered with one more collection in the count file, and the
// process goes on; after stop, the handler is gone.
func TestGCOnSignal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "role.gc")
	stop, err := GCOnSignal(path)
	require.NoError(t, err)
	count := func(want string) {
		t.Helper()
		require.NoError(t, poll.Until(context.Background(), 10*time.Second, nil, func() error {
			b, err := os.ReadFile(path)
			if err == nil && string(b) != want {
				err = fmt.Errorf("count %q, want %q", b, want)
			}
			return err
		}))
	}
	count("0")
	for _, want := range []string{"1", "2"} {
		require.NoError(t, syscall.Kill(os.Getpid(), gcSignal))
		count(want)
	}
	stop()

	_, err = GCOnSignal(filepath.Join(t.TempDir(), "missing", "role.gc"))
	require.ErrorContains(t, err, "is the bench's directory writable?")
}
