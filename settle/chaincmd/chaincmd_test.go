package chaincmd

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/chains"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

func TestCommandsOnLocalChain(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	ctx := context.Background()
	c, closeChain, err := chains.Open(ctx, chains.Where{Local: filepath.Join(t.TempDir(), "chain.db")})
	require.NoError(err)
	defer func() { require.NoError(closeChain()) }()
	var out bytes.Buffer
	owner, proxyOwner, client, worker, payment := key(1), key(2), key(3), key(4), key(9)
	for _, k := range []ed25519.PrivateKey{owner, proxyOwner, client, worker} {
		require.NoError(Fund(ctx, c, &out, pub(k), 100_000_000_000))
	}
	assert.Contains(out.String(), "balance 100 TON")

	params := contracts.RegistryParams{
		Prices:        settle.Prices{PricePerToken: 20, WorkerFeePerToken: 15, PromptMult: 10000, CachedPromptMult: 2500, CompletionMult: 40000, ReasoningMult: 40000},
		MinProxyStake: 10_000_000_000, MinClientStake: 1_000_000_000, ClientCloseDelay: 0, ProxyCloseDelay: 60,
	}
	reg, err := DeployRegistry(ctx, c, &out, owner, params, 1_000_000_000)
	require.NoError(err)
	params.PricePerToken = 25
	require.NoError(SetParams(ctx, c, &out, owner, reg, params))
	require.NoError(Allow(ctx, c, &out, owner, reg, contracts.ListModels, [32]byte{0xAB}, true))
	assert.Contains(out.String(), "version now 2")

	_, err = DeployProxy(ctx, c, &out, proxyOwner, reg, pub(payment), 5_000_000_000)
	require.Error(err, "stake below the registry minimum")
	proxy, err := DeployProxy(ctx, c, &out, proxyOwner, reg, pub(payment), 20_000_000_000)
	require.NoError(err)
	require.NoError(SetProxy(ctx, c, &out, owner, reg, pub(payment), &contracts.ProxyEntry{Key: pub(payment), Contract: proxy, WorkerEndpoint: "127.0.0.1:9000", ClientEndpoint: "127.0.0.1:9001"}))

	out.Reset()
	require.NoError(ShowRegistry(ctx, c, &out, reg))
	assert.Regexp(`price_per_token\s+25 nanoTON`, out.String())
	assert.Regexp(`model\s+ab00`, out.String())
	assert.Regexp(`worker endpoint\s+127.0.0.1:9000\n\s+client endpoint\s+127.0.0.1:9001`, out.String())

	out.Reset()
	require.NoError(TopUp(ctx, c, &out, client, proxy, 5_000_000_000))
	assert.Regexp(`  balance\s+3.98 TON`, out.String())

	// The worker cashes in a signed state the proxy gave it.
	workerAddr, err := c.WalletAddress(pub(worker))
	require.NoError(err)
	s, err := settle.Sign(settle.State{Proxy: proxy, Party: workerAddr, Kind: settle.KindWorkerEarned, Seqno: 1, Total: 1_000_000_000}, payment)
	require.NoError(err)
	b, err := s.MarshalBinary()
	require.NoError(err)
	out.Reset()
	require.NoError(Payout(ctx, c, &out, worker, b))
	assert.Contains(out.String(), "paid 1 TON")
	require.ErrorIs(Payout(ctx, c, &out, worker, b), settle.ErrStateRefused, "a replayed state is refused")
	forged, err := settle.Sign(s.State, key(66))
	require.NoError(err)
	fb, err := forged.MarshalBinary()
	require.NoError(err)
	require.ErrorIs(Payout(ctx, c, &out, worker, fb), settle.ErrBadSignature)

	out.Reset()
	require.NoError(Withdraw(ctx, c, &out, client, proxy))
	assert.Regexp(`  balance\s+3.98 TON`, out.String(), "closing locks the balance for the close delay")
	out.Reset()
	require.NoError(WithdrawStake(ctx, c, &out, client, proxy))
	assert.Regexp(`  balance\s+0 TON`, out.String())
	assert.Regexp(`  stake\s+0 TON`, out.String())
	p, err := chain.Proxy(ctx, c, proxy)
	require.NoError(err)
	assert.Equal(uint32(0), p.OpenClients)

	out.Reset()
	require.NoError(ShowProxy(ctx, c, &out, proxy, nil))
	assert.Contains(out.String(), "status")
	assert.Regexp(`workers\s+1`, out.String())
}

func key(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s)
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }
