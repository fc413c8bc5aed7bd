package node

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/config"
)

// TestNodeMakesItsDataDirectory: a worker with payments starts in a data directory that does not
// exist yet; it makes the directory and its wallet key there.
func TestNodeMakesItsDataDirectory(t *testing.T) {
	require := require.New(t)
	data := filepath.Join(t.TempDir(), "new", "worker")
	cfg := LoopbackConfig(data, "warn")
	cfg.Payments = config.Payments{Chain: "local"}
	cfg.Worker.Proxies = []string{"127.0.0.1:1"}
	require.NoError(cfg.Validate("worker"))
	n, err := Worker(context.Background(), cfg, "test", zerolog.New(zerolog.NewTestWriter(t)))
	require.NoError(err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(n.Run(ctx))
	_, err = os.Stat(filepath.Join(data, "keys", "worker-wallet.key"))
	require.NoError(err, "the wallet key was made")
}
