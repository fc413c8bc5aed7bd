package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "role.trace")
	stop, err := Trace(path)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {})
	}
	wg.Wait()
	stop()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(b, []byte("go 1.")), "an execution trace begins with its Go version: %q", b[:min(len(b), 16)])

	_, err = Trace(filepath.Join(t.TempDir(), "missing", "role.trace"))
	assert.ErrorContains(t, err, "is the --trace directory writable?")
}
