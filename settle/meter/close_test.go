package meter

import (
	"context"
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/local"
	"github.com/cocoon-network/cocoon/settle/contracts"
	"github.com/cocoon-network/cocoon/settle/ledger"
	"github.com/cocoon-network/cocoon/settle/paystate"
)

const ton1 = 1_000_000_000

// TestClientCannotLeaveBeforeCharged: a client that closes at any moment leaves the proxy no
// worse off than the signed states say. The ledger, the meter and the local chain run as in a
// proxy: the meter settles the client's charges itself (before the bound, and when it sees the
// close), the worker cashes its earnings, and after the close delay the client takes the rest.
// Then the proxy stake is intact, the worker was paid no more than the client was charged on
// chain, and the client got back exactly its deposit minus what it was charged.
func TestClientCannotLeaveBeforeCharged(t *testing.T) {
	const deposit = 10 * ton1
	requests := []uint64{ton1 / 2, ton1, 7 * ton1} // costs in order; the worker earns 80%
	testCases := map[string]struct {
		served        int  // requests served before the client closes
		waitSubmitted bool // the meter put the charges on chain before the close
	}{
		"before any request":             {served: 0},
		"mid-way with unsettled charges": {served: 2},
		"right after a large request":    {served: 3},
		"after the proxy submitted":      {served: 3, waitSubmitted: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			ctx := context.Background()
			dir := t.TempDir()
			var skew atomic.Int64 // seconds the chain clock runs ahead
			c, err := local.OpenDir(dir, local.Options{Clock: func() time.Time { return time.Now().Add(time.Duration(skew.Load()) * time.Second) }})
			require.NoError(err)
			defer func() { require.NoError(c.Close()) }()
			payKey, clientKey, workerKey := key(9), key(3), key(4)
			params := contracts.DefaultParams()
			d, err := local.SetupDemo(ctx, c, local.DemoConfig{
				Owner: key(1), Proxies: []local.DemoProxy{{Operator: key(2), PaymentKey: pub(payKey), WorkerEndpoint: "127.0.0.1:7000"}},
				Params: params, Fund: []ed25519.PublicKey{pub(clientKey), pub(workerKey)},
			})
			require.NoError(err)
			require.NoError(chain.TopUp(ctx, c, clientKey, d.Proxy, deposit))
			before, err := chain.Proxy(ctx, c, d.Proxy)
			require.NoError(err)

			m, err := New(ctx, c, Config{Contract: d.Proxy, Registry: d.Registry, PaymentKey: payKey,
				LedgerPath: filepath.Join(dir, "ledger.db"), DepositsEvery: 10 * time.Millisecond}, zerolog.New(zerolog.NewTestWriter(t)))
			require.NoError(err)
			defer func() { require.NoError(m.Close()) }()
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- m.Run(runCtx) }()
			defer func() { cancel(); require.NoError(<-done) }()

			client, err := m.Account(pub(clientKey))
			require.NoError(err)
			worker, err := m.Account(pub(workerKey))
			require.NoError(err)
			l := m.Ledger()
			require.Eventually(func() bool {
				cl, _ := l.Client(client)
				return cl.Available() > 0
			}, 30*time.Second, 5*time.Millisecond, "the deposit reaches the ledger")

			var charged uint64
			for _, cost := range requests[:tc.served] {
				r, err := l.Reserve(client, cost)
				require.NoError(err)
				_, err = l.Settle(r, worker, cost, cost*8/10)
				require.NoError(err)
				charged += cost
			}
			onChain := func() contracts.ProxyState {
				p, err := chain.Proxy(ctx, c, d.Proxy)
				require.NoError(err)
				return p
			}
			landed := func() bool { return onChain().Clients[client].Charged == charged }
			if tc.waitSubmitted {
				require.Eventually(landed, 30*time.Second, 5*time.Millisecond, "the meter settles past half of what is locked")
			}

			require.NoError(chain.Call(ctx, c, clientKey, d.Proxy, 0, contracts.ClientCloseBody(1)))
			// The meter sees the close: no more reservations, and the charges land during the delay.
			require.Eventually(func() bool {
				_, err := l.Reserve(client, 1)
				return err != nil
			}, 30*time.Second, 5*time.Millisecond, "a closing client gets no more service")
			_, err = l.Reserve(client, 1)
			require.ErrorIs(err, ledger.ErrInsufficientFunds)
			require.Eventually(landed, 30*time.Second, 5*time.Millisecond, "the meter settles a closing client's charges")

			// The worker cashes its earnings; then the delay passes and the client takes the rest.
			if tc.served > 0 {
				earned, err := l.Current(worker, settle.KindWorkerEarned)
				require.NoError(err)
				_, err = paystate.Submit(ctx, c, workerKey, earned)
				require.NoError(err)
			}
			skew.Store(int64(params.ClientCloseDelay) + 1)
			acc := onChain().Clients[client]
			owed := deposit - contracts.OpFee - charged
			assert.Equal(owed, acc.Balance+acc.Stake, "the client is owed its deposit minus its charges")
			wallet, err := chain.WalletBalance(ctx, c, pub(clientKey))
			require.NoError(err)
			require.NoError(chain.Call(ctx, c, clientKey, d.Proxy, 0, contracts.ClientWithdrawStakeBody(2)))
			after, err := chain.WalletBalance(ctx, c, pub(clientKey))
			require.NoError(err)
			assert.InDelta(float64(wallet+owed), float64(after), chain.GasAmount, "the client got back what it was owed (± gas)")

			p := onChain()
			assert.False(p.Clients[client].Open)
			assert.Equal(charged, p.Clients[client].Charged, "every signed charge landed")
			assert.LessOrEqual(p.Workers[worker].Paid, p.Clients[client].Charged, "workers paid from client charges")
			assert.Equal(before.ProxyStake, p.ProxyStake, "the proxy stake is intact")
			assert.Zero(p.ClientFunds)
		})
	}
}

// flaky fails the first sends, as an unreachable lite server or an unfunded wallet would.
type flaky struct {
	chain.Chain
	fails atomic.Int32
}

func (f *flaky) Send(ctx context.Context, key ed25519.PrivateKey, msgs ...chain.Message) error {
	if f.fails.Add(-1) >= 0 {
		return errors.New("lite server unreachable")
	}
	return f.Chain.Send(ctx, key, msgs...)
}

// TestMeterRetriesSubmission: a failed submission is retried until the charges land, and they
// land once.
func TestMeterRetriesSubmission(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	ctx := context.Background()
	dir := t.TempDir()
	lc, err := local.OpenDir(dir, local.Options{})
	require.NoError(err)
	defer func() { require.NoError(lc.Close()) }()
	payKey, clientKey := key(9), key(3)
	d, err := local.SetupDemo(ctx, lc, local.DemoConfig{
		Owner: key(1), Proxies: []local.DemoProxy{{Operator: key(2), PaymentKey: pub(payKey), WorkerEndpoint: "127.0.0.1:7000"}},
		Params: contracts.DefaultParams(), Fund: []ed25519.PublicKey{pub(clientKey)},
	})
	require.NoError(err)
	require.NoError(chain.TopUp(ctx, lc, clientKey, d.Proxy, 10*ton1))
	c := &flaky{Chain: lc}
	c.fails.Store(3)
	m, err := New(ctx, c, Config{Contract: d.Proxy, Registry: d.Registry, PaymentKey: payKey,
		LedgerPath: filepath.Join(dir, "ledger.db"), DepositsEvery: 5 * time.Millisecond}, zerolog.New(zerolog.NewTestWriter(t)))
	require.NoError(err)
	defer func() { require.NoError(m.Close()) }()
	client, err := m.Account(pub(clientKey))
	require.NoError(err)
	l := m.Ledger()

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	defer func() { cancel(); require.NoError(<-done) }()
	require.Eventually(func() bool {
		cl, _ := l.Client(client)
		return cl.Available() > 0
	}, 30*time.Second, 5*time.Millisecond)
	r, err := l.Reserve(client, 6*ton1) // past half of the 9.98 TON locked: due at once
	require.NoError(err)
	_, err = l.Settle(r, client, 6*ton1, 0)
	require.NoError(err)
	require.Eventually(func() bool {
		p, err := chain.Proxy(ctx, lc, d.Proxy)
		return err == nil && p.Clients[client].Charged == 6*ton1
	}, 30*time.Second, 5*time.Millisecond, "the charge lands after the failures")
	assert.Less(c.fails.Load(), int32(0), "every failure was retried")
	p, err := chain.Proxy(ctx, lc, d.Proxy)
	require.NoError(err)
	assert.Equal(uint64(1), p.Clients[client].Seqno, "one state, landed once")
	assert.Equal(uint64(10*ton1-contracts.OpFee-6*ton1), p.Clients[client].Balance+p.Clients[client].Stake)
}
