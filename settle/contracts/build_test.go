package contracts_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCompiledCodeIsFresh recompiles the Tolk sources with the pinned compiler and compares
// with the committed *.boc.b64. It needs node and the npm package (`go generate ./settle/...`
// installs it); without them it skips, since the committed code is what ships.
func TestCompiledCodeIsFresh(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed: cannot check the compiled contracts against their Tolk sources")
	}
	if _, err := os.Stat(filepath.Join("node_modules", "@ton", "tolk-js")); err != nil {
		t.Skip("@ton/tolk-js is not installed: run `go generate ./settle/contracts` to check the compiled contracts")
	}
	out := t.TempDir()
	cmd := exec.Command("node", "build.js", out)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, string(b))
	for _, name := range []string{"registry.boc.b64", "proxy.boc.b64"} {
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(out, name))
			require.NoError(t, err)
			got, err := os.ReadFile(name)
			require.NoError(t, err)
			assert.Equal(t, string(want), string(got), "committed %s is stale: run go generate ./settle/contracts", name)
		})
	}
}
