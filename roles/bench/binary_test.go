package bench

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCopyBinary(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "built")
	require.NoError(t, os.WriteFile(src, []byte("\x7fELF and the rest"), 0o700))
	into := t.TempDir()
	path, err := copyBinary(src, into)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(into, "cocoon"), path)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "\x7fELF and the rest", string(b))
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.NotZero(t, st.Mode()&0o100, "the copy is executable")

	_, err = copyBinary(filepath.Join(dir, "missing"), t.TempDir())
	require.ErrorContains(t, err, "bench: copy the cocoon binary: open")
}
