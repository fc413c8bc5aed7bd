package chains

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOpenRefusals(t *testing.T) {
	testCases := map[string]struct {
		where   Where
		wantErr string
	}{
		"nothing given":   {wantErr: "neither a local data file, a TON config file nor a chain URL given"},
		"unknown network": {where: Where{ConfigPath: "global.json", Network: "moonnet"}, wantErr: "moonnet"},
		"URL and a file":  {where: Where{URL: "http://127.0.0.1:8081", Local: "chain.db"}, wantErr: "give one"},
		"URL network":     {where: Where{URL: "http://127.0.0.1:8081", Network: "moonnet"}, wantErr: "moonnet"},
		"URL scheme":      {where: Where{URL: "ftp://127.0.0.1:8081"}, wantErr: "want http://host:port"},
		"URL with a key":  {where: Where{URL: "https://toncenter.com/api?api_key=secret"}, wantErr: "no user info, query"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			_, _, err := Open(context.Background(), tc.where)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
		})
	}
}

// TestSetSharesAndCloses: the same local file is opened once per set, and closing the set
// releases it so that it can be opened again.
func TestSetSharesAndCloses(t *testing.T) {
	require := require.New(t)
	w := Where{Local: filepath.Join(t.TempDir(), "chain.db")}
	var s Set
	a, err := s.Open(context.Background(), w)
	require.NoError(err)
	b, err := s.Open(context.Background(), w)
	require.NoError(err)
	require.Same(a, b, "one open chain per place")
	require.NoError(s.Close())

	again, closeChain, err := Open(context.Background(), w)
	require.NoError(err, "the set released the file")
	require.NotNil(again)
	require.NoError(closeChain())
}
