package chain

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKeys(t *testing.T) {
	dir := t.TempDir()
	generated := filepath.Join(dir, "gen.key")
	k, err := GenerateKey(generated)
	require.NoError(t, err)
	_, err = GenerateKey(generated)
	require.Error(t, err, "never overwrites a key")

	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(text), mode))
		return p
	}
	testCases := map[string]struct {
		path    string
		wantErr error
		anyErr  bool
	}{
		"generated":      {path: generated},
		"hex seed":       {path: write("hex.key", "  0000000000000000000000000000000000000000000000000000000000000001\n", 0o600)},
		"garbage":        {path: write("bad.key", "hello", 0o600), wantErr: ErrBadKeyFile},
		"short hex":      {path: write("short.key", "abcd", 0o600), wantErr: ErrBadKeyFile},
		"bad mnemonic":   {path: write("words.key", "a b c d e f g h i j k l m n o p q r s t u v w x", 0o600), wantErr: ErrBadKeyFile},
		"world-readable": {path: write("open.key", "00", 0o644), anyErr: true},
		"missing":        {path: filepath.Join(dir, "none"), anyErr: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			got, err := LoadKey(tc.path)
			switch {
			case tc.wantErr != nil:
				require.ErrorIs(t, err, tc.wantErr)
			case tc.anyErr:
				require.Error(t, err)
			default:
				require.NoError(t, err)
				assert.Len(t, got, 64)
				if name == "generated" {
					assert.Equal(t, k, got)
				}
			}
		})
	}
}
