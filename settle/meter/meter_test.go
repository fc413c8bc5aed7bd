package meter

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/local"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func key(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s)
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// TestMeter: a meter refuses a contract bound to another payment key with the fix in the
// message; one bound to its key starts with the registry's prices, learns the client's deposit
// while it runs, and Run returns once its watchers stopped.
func TestMeter(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	ctx := context.Background()
	dir := t.TempDir()
	c, err := local.OpenDir(dir, local.Options{})
	require.NoError(err)
	defer func() { require.NoError(c.Close()) }()
	payKey, client := key(9), key(3)
	d, err := local.SetupDemo(ctx, c, local.DemoConfig{
		Owner: key(1), Proxies: []local.DemoProxy{{Operator: key(2), PaymentKey: pub(payKey), WorkerEndpoint: "127.0.0.1:7000"}},
		Params: contracts.DefaultParams(), Fund: []ed25519.PublicKey{pub(client)},
	})
	require.NoError(err)
	require.NoError(chain.TopUp(ctx, c, client, d.Proxy, 2_000_000_000))
	log := zerolog.New(zerolog.NewTestWriter(t))

	_, err = New(ctx, c, Config{Contract: d.Proxy, Registry: d.Registry, PaymentKey: key(8), LedgerPath: filepath.Join(dir, "other.db")}, log)
	require.ErrorContains(err, "is bound to another payment key; deploy one for")

	m, err := New(ctx, c, Config{Contract: d.Proxy, Registry: d.Registry, PaymentKey: payKey, LedgerPath: filepath.Join(dir, "ledger.db")}, log)
	require.NoError(err)
	defer func() { require.NoError(m.Close()) }()
	assert.Equal(contracts.DefaultParams().Prices, m.Prices())
	assert.Equal(contracts.DefaultParams().CoefficientCap(), m.CoefficientCap(), "the registry caps the coefficient")
	assert.Equal(pub(payKey), m.PaymentKey())

	account, err := m.Account(pub(client))
	require.NoError(err)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	require.Eventually(func() bool {
		cl, err := m.Ledger().Client(account)
		return err == nil && cl.Available() > 0
	}, 30*time.Second, 20*time.Millisecond, "the deposit reaches the ledger")
	cancel()
	require.NoError(<-done)
}
