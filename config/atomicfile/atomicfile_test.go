package atomicfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWrite(t *testing.T) {
	require := require.New(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	require.NoError(Write(path, []byte("old"), 0o600))
	require.NoError(Write(path, []byte("new"), 0o644))
	b, err := os.ReadFile(path)
	require.NoError(err)
	require.Equal("new", string(b))
	st, err := os.Stat(path)
	require.NoError(err)
	require.Equal(os.FileMode(0o644), st.Mode().Perm())
	entries, err := os.ReadDir(dir)
	require.NoError(err)
	require.Len(entries, 1, "no temporary file left behind")

	require.Error(Write(filepath.Join(dir, "missing", "f"), nil, 0o644))
}
