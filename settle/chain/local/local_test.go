package local_test

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/local"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

const ton1 = 1_000_000_000

func key(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s)
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// clock is a settable chain clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func params() contracts.RegistryParams {
	return contracts.RegistryParams{
		Prices: settle.Prices{
			PricePerToken: 20, WorkerFeePerToken: 15,
			PromptMult: 10000, CachedPromptMult: 2500, CompletionMult: 40000, ReasoningMult: 40000,
		},
		MinProxyStake: 10 * ton1, MinClientStake: ton1, ClientCloseDelay: 3600, ProxyCloseDelay: 86400,
	}
}

// fund gives each key's wallet 1000 TON.
func fund(t *testing.T, c *local.Chain, keys ...ed25519.PrivateKey) {
	for _, k := range keys {
		addr, err := c.WalletAddress(pub(k))
		require.NoError(t, err)
		require.NoError(t, c.Faucet(context.Background(), addr, 1000*ton1))
	}
}

func TestLocalChainEndToEndAndRestart(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "chain.db")
	clk := &clock{t: time.Now()}
	c, err := local.Open(path, local.Options{Clock: clk.now})
	require.NoError(err)

	owner, proxyOwner, client, worker := key(1), key(2), key(3), key(4)
	payment := key(9)
	fund(t, c, owner, proxyOwner, client, worker)

	reg, err := chain.DeployRegistry(ctx, c, owner, contracts.Registry{Params: params()}, ton1)
	require.NoError(err)
	r, err := chain.Registry(ctx, c, reg)
	require.NoError(err)
	ownerAddr, err := c.WalletAddress(pub(owner))
	require.NoError(err)
	assert.Equal(ownerAddr, r.Owner)

	cfg := contracts.ProxyConfig{Registry: reg, MinClientStake: r.Params.MinClientStake,
		ClientCloseDelay: r.Params.ClientCloseDelay, ProxyCloseDelay: r.Params.ProxyCloseDelay}
	proxy, err := chain.DeployProxy(ctx, c, proxyOwner, pub(payment), cfg, 20*ton1)
	require.NoError(err)
	require.NoError(chain.TopUp(ctx, c, client, proxy, 10*ton1))

	clientAddr, err := c.WalletAddress(pub(client))
	require.NoError(err)
	workerAddr, err := c.WalletAddress(pub(worker))
	require.NoError(err)
	charged, err := settle.Sign(settle.State{Proxy: proxy, Party: clientAddr, Kind: settle.KindClientCharged, Seqno: 1, Total: 2 * ton1}, payment)
	require.NoError(err)
	require.NoError(chain.SubmitState(ctx, c, proxyOwner, charged))
	earned, err := settle.Sign(settle.State{Proxy: proxy, Party: workerAddr, Kind: settle.KindWorkerEarned, Seqno: 1, Total: ton1}, payment)
	require.NoError(err)
	workerBefore, err := chain.Balance(ctx, c, workerAddr)
	require.NoError(err)
	require.NoError(chain.SubmitState(ctx, c, worker, earned))
	workerAfter, err := chain.Balance(ctx, c, workerAddr)
	require.NoError(err)
	assert.Greater(workerAfter, workerBefore+ton1-chain.GasAmount, "the worker was paid about 1 TON")

	p, err := chain.Proxy(ctx, c, proxy)
	require.NoError(err)
	assert.Equal(uint64(2*ton1), p.Clients[clientAddr].Charged)
	assert.Equal(uint64(ton1), p.Workers[workerAddr].Paid)

	// Everything survives a restart.
	accounts := []ton.AccountID{reg, proxy, clientAddr, workerAddr, ownerAddr}
	before := map[ton.AccountID]chain.Account{}
	for _, id := range accounts {
		before[id], err = c.Account(ctx, id)
		require.NoError(err)
	}
	require.NoError(c.Close())
	c, err = local.Open(path, local.Options{Clock: clk.now})
	require.NoError(err)
	defer func() { require.NoError(c.Close()) }()
	for _, id := range accounts {
		a, err := c.Account(ctx, id)
		require.NoError(err)
		assert.Equal(before[id].Balance, a.Balance)
		assert.Equal(before[id].LastLT, a.LastLT)
		assert.Equal(before[id].Status, a.Status)
	}
	p2, err := chain.Proxy(ctx, c, proxy)
	require.NoError(err)
	assert.Equal(p, p2)

	// And the chain goes on from there: seqnos and logical times continue.
	clk.add(time.Hour)
	require.NoError(chain.Call(ctx, c, client, proxy, 0, contracts.ClientCloseBody(1)))
	clk.add(time.Hour)
	require.NoError(chain.Call(ctx, c, client, proxy, 0, contracts.ClientWithdrawStakeBody(2)))
	p, err = chain.Proxy(ctx, c, proxy)
	require.NoError(err)
	assert.False(p.Clients[clientAddr].Open)
}

func TestLocalChainRefusals(t *testing.T) {
	ctx := context.Background()
	c, err := local.Open(filepath.Join(t.TempDir(), "chain.db"), local.Options{})
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	rich, poor := key(1), key(2)
	fund(t, c, rich)

	t.Run("insufficient balance", func(t *testing.T) {
		err := chain.Transfer(ctx, c, poor, ton.AccountID{}, ton1)
		require.ErrorIs(t, err, chain.ErrInsufficientBalance)
	})
	t.Run("not deployed", func(t *testing.T) {
		_, err := chain.Registry(ctx, c, ton.AccountID{Address: [32]byte{5}})
		require.ErrorIs(t, err, chain.ErrNotDeployed)
	})
	t.Run("transfer", func(t *testing.T) {
		to := ton.AccountID{Address: [32]byte{6}}
		require.NoError(t, chain.Transfer(ctx, c, rich, to, 3*ton1))
		b, err := chain.Balance(ctx, c, to)
		require.NoError(t, err)
		assert.Equal(t, uint64(3*ton1), b)
	})
}

func TestWatchRegistrySeesNewPrice(t *testing.T) {
	require := require.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := local.Open(filepath.Join(t.TempDir(), "chain.db"), local.Options{})
	require.NoError(err)
	defer func() { require.NoError(c.Close()) }()
	owner := key(1)
	fund(t, c, owner)
	reg, err := chain.DeployRegistry(ctx, c, owner, contracts.Registry{Params: params()}, ton1)
	require.NoError(err)

	seen := make(chan contracts.Registry, 10)
	done := make(chan error, 1)
	go func() {
		done <- chain.WatchRegistry(ctx, c, reg, 5*time.Millisecond, func(r contracts.Registry) { seen <- r }, func(err error) { t.Error(err) })
	}()
	wait := func() contracts.Registry {
		select {
		case r := <-seen:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("no registry notification")
			return contracts.Registry{}
		}
	}
	first := wait()
	require.Equal(uint32(0), first.Version)

	newParams := params()
	newParams.PricePerToken = 30
	body, err := contracts.SetParamsBody(1, newParams)
	require.NoError(err)
	require.NoError(chain.Call(ctx, c, owner, reg, 0, body))
	second := wait()
	require.Equal(uint32(1), second.Version)
	require.Equal(uint64(30), second.Params.PricePerToken)

	cancel()
	require.NoError(<-done)
	require.Empty(seen, "no notification without a version change")
}

func TestWatchDeposits(t *testing.T) {
	require := require.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := local.OpenDir(filepath.Join(t.TempDir(), "data"), local.Options{})
	require.NoError(err)
	defer func() { require.NoError(c.Close()) }()
	proxyOwner, client := key(1), key(2)
	fund(t, c, proxyOwner, client)
	proxy, err := chain.DeployProxy(ctx, c, proxyOwner, pub(key(9)), contracts.ProxyConfig{MinClientStake: ton1, ClientCloseDelay: 60, ProxyCloseDelay: 60}, 20*ton1)
	require.NoError(err)

	type deposit struct {
		id  ton.AccountID
		acc contracts.ClientAccount
	}
	seen := make(chan deposit, 10)
	done := make(chan error, 1)
	go func() {
		done <- chain.WatchDeposits(ctx, c, proxy, 5*time.Millisecond, func(id ton.AccountID, a contracts.ClientAccount) { seen <- deposit{id, a} }, func(err error) { t.Error(err) })
	}()
	defer func() { cancel(); require.NoError(<-done) }()
	require.NoError(chain.TopUp(ctx, c, client, proxy, 5*ton1))
	clientAddr, err := c.WalletAddress(pub(client))
	require.NoError(err)
	select {
	case d := <-seen:
		require.Equal(clientAddr, d.id)
		require.Equal(uint64(5*ton1-contracts.OpFee-ton1), d.acc.Balance)
	case <-time.After(10 * time.Second):
		t.Fatal("no deposit notification")
	}
}
