package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	mrand "math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
)

func account(b byte) ton.AccountID {
	var id ton.AccountID
	id.Address[0] = b
	return id
}

func open(t *testing.T, path string) (*Ledger, ed25519.PublicKey) {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	l, err := Open(path, account(0xee), key, Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l, pub
}

var prices = settle.Prices{PricePerToken: 1000, WorkerFeePerToken: 800, PromptMult: 10000, CachedPromptMult: 1000,
	CompletionMult: 10000, ReasoningMult: 10000}

// TestThousandRequestsAddUp: client charged = Σ costs, worker earned = Σ earnings, commission = the difference.
func TestThousandRequestsAddUp(t *testing.T) {
	require := require.New(t)
	l, pub := open(t, filepath.Join(t.TempDir(), "ledger.db"))
	client, worker := account(1), account(2)
	require.NoError(l.Deposit(client, 1<<50, 0))
	rng := mrand.New(mrand.NewPCG(1, 2))
	var sumCost, sumEarn uint64
	var last Receipt
	for range 1000 {
		prompt, cached, completion, reasoning := rng.Uint64N(4000), rng.Uint64N(1000), rng.Uint64N(2000), rng.Uint64N(500)
		u := settle.Usage{PromptTokens: prompt + cached, CachedTokens: cached, CompletionTokens: completion + reasoning, ReasoningTokens: reasoning}
		coef := uint32(500 + rng.IntN(1500))
		cost, err := settle.Cost(u, prices, coef)
		require.NoError(err)
		earn, err := settle.WorkerEarning(u, prices, coef)
		require.NoError(err)
		r, err := l.Reserve(client, cost+rng.Uint64N(1000))
		require.NoError(err)
		last, err = l.Settle(r, worker, cost, earn)
		require.NoError(err)
		require.Equal(cost, last.Charged)
		sumCost += cost
		sumEarn += earn
	}
	c, err := l.Client(client)
	require.NoError(err)
	w, err := l.Worker(worker)
	require.NoError(err)
	assert.Equal(t, sumCost, c.Charged)
	assert.Equal(t, sumEarn, w.Earned)
	assert.Zero(t, c.Reserved)
	_, _, totals, err := l.Snapshot()
	require.NoError(err)
	assert.Equal(t, sumCost-sumEarn, totals.Commission)
	assert.Equal(t, uint64(1000), last.ClientState.State().Seqno)
	assert.Equal(t, sumCost, last.ClientState.State().Total)
	for _, st := range []Committed{last.ClientState, last.WorkerState} {
		signed, err := st.Sign()
		require.NoError(err)
		assert.Equal(t, st.State(), signed.State)
		require.NoError(signed.Verify(pub))
	}
}

// TestLastNanoTON: concurrent requests racing for the last nanoTON never overdraw.
func TestLastNanoTON(t *testing.T) {
	l, _ := open(t, filepath.Join(t.TempDir(), "ledger.db"))
	client, worker := account(1), account(2)
	const deposit, price, n = 1000, 7, 400
	require.NoError(t, l.Deposit(client, deposit, 0))
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := 0
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := l.Reserve(client, price)
			if err != nil {
				require.ErrorIs(t, err, ErrInsufficientFunds)
				return
			}
			if _, err := l.Settle(r, worker, price, price/2); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			granted++
			mu.Unlock()
		}()
	}
	wg.Wait()
	c, err := l.Client(client)
	require.NoError(t, err)
	assert.Equal(t, deposit/price, granted)
	assert.LessOrEqual(t, c.Charged, uint64(deposit))
	assert.Equal(t, uint64(granted*price), c.Charged)
}

func TestChargeCappedAtReservation(t *testing.T) {
	l, _ := open(t, filepath.Join(t.TempDir(), "ledger.db"))
	client, worker := account(1), account(2)
	require.NoError(t, l.Deposit(client, 100, 0))
	r, err := l.Reserve(client, 40)
	require.NoError(t, err)
	rc, err := l.Settle(r, worker, 90, 95)
	require.NoError(t, err)
	assert.Equal(t, uint64(40), rc.Charged)
	assert.Equal(t, uint64(40), rc.Earned, "a worker never earns more than the client paid")
}

// TestReopenKeepsEverySignedState: whatever was signed is on disk after a reopen (a crash loses
// only reservations), and a state ahead of the ledger is detected as a rollback.
func TestReopenKeepsEverySignedState(t *testing.T) {
	require := require.New(t)
	path := filepath.Join(t.TempDir(), "ledger.db")
	client, worker := account(1), account(2)
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(err)
	_ = pub
	l, err := Open(path, account(0xee), key, Options{})
	require.NoError(err)
	require.NoError(l.Deposit(client, 10_000, 0))
	var signed []Receipt
	for range 20 {
		r, err := l.Reserve(client, 100)
		require.NoError(err)
		rc, err := l.Settle(r, worker, 50, 40)
		require.NoError(err)
		signed = append(signed, rc)
	}
	_, err = l.Reserve(client, 100) // in flight when the process dies
	require.NoError(err)
	require.NoError(l.Close())

	l2, err := Open(path, account(0xee), key, Options{})
	require.NoError(err)
	defer l2.Close()
	for _, rc := range signed {
		require.NoError(l2.Check(rc.ClientState.State()))
		require.NoError(l2.Check(rc.WorkerState.State()))
	}
	c, err := l2.Client(client)
	require.NoError(err)
	assert.Equal(t, uint64(1000), c.Charged)
	assert.Zero(t, c.Reserved, "reservations do not survive the process")

	ahead := signed[len(signed)-1].ClientState.State()
	ahead.Seqno++
	ahead.Total += 50
	require.ErrorIs(l2.Check(ahead), ErrRollback)
}

func TestDepositIdempotent(t *testing.T) {
	l, _ := open(t, filepath.Join(t.TempDir(), "ledger.db"))
	client := account(1)
	require.NoError(t, l.Deposit(client, 500, 50))
	require.NoError(t, l.Deposit(client, 500, 50))
	c, err := l.Client(client)
	require.NoError(t, err)
	assert.Equal(t, uint64(500), c.Available())
	require.NoError(t, l.Deposit(client, 400, 50)) // a withdrawal on chain
	c, err = l.Client(client)
	require.NoError(t, err)
	assert.Equal(t, uint64(400), c.Available())
}

// TestReserveBound: unsettled charges plus reservations never exceed what the chain locks for the
// client (balance + stake); a reservation that would cross the bound is refused with
// ErrInsufficientFunds and a message saying what to do, and a closing client gets nothing.
func TestReserveBound(t *testing.T) {
	testCases := map[string]struct {
		balance, stake uint64 // on chain before any charge
		charged        uint64 // charged by the ledger
		settled        uint64 // of which the chain accepted
		reserved       uint64 // another request in flight
		closing        bool
		reserve        uint64
		wantErr        string // "" for a granted reservation
	}{
		"under, nothing settled":       {balance: 1000, charged: 400, reserve: 500},
		"at, nothing settled":          {balance: 1000, charged: 400, reserve: 600},
		"over, nothing settled":        {balance: 1000, charged: 400, reserve: 601, wantErr: "400 nanoTON charged but not yet settled on chain; top up the deposit or wait for the proxy to settle"},
		"under, all settled":           {balance: 1000, charged: 400, settled: 400, reserve: 599},
		"at, all settled":              {balance: 1000, charged: 400, settled: 400, reserve: 600},
		"over, all settled":            {balance: 1000, charged: 400, settled: 400, reserve: 601, wantErr: "available 600; top up the deposit"},
		"at, partly settled":           {balance: 1000, charged: 400, settled: 150, reserve: 600},
		"over, partly settled":         {balance: 1000, charged: 400, settled: 150, reserve: 601, wantErr: "250 nanoTON charged but not yet settled"},
		"in-flight reservation":        {balance: 1000, charged: 400, reserved: 300, reserve: 301, wantErr: "available 300"},
		"the stake is never spent":     {balance: 1000, stake: 100, reserve: 1001, wantErr: "available 1000"},
		"at, with a stake":             {balance: 1000, stake: 100, charged: 400, settled: 100, reserve: 600},
		"closing":                      {balance: 1000, charged: 400, settled: 400, closing: true, reserve: 1, wantErr: "closing on the proxy contract"},
		"chain locks less than owed":   {balance: 300, charged: 400, reserve: 1, wantErr: "available 0"},
		"closed after the close delay": {balance: 0, charged: 400, settled: 400, closing: true, reserve: 1, wantErr: "closing"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			l, _ := open(t, filepath.Join(t.TempDir(), "ledger.db"))
			client, worker := account(1), account(2)
			// Charges are made while the chain still shows the whole deposit.
			require.NoError(l.Observe(client, OnChain{Balance: max(tc.balance, tc.charged), Stake: tc.stake}))
			if tc.charged > 0 {
				r, err := l.Reserve(client, tc.charged)
				require.NoError(err)
				_, err = l.Settle(r, worker, tc.charged, tc.charged/2)
				require.NoError(err)
			}
			if tc.reserved > 0 {
				_, err := l.Reserve(client, tc.reserved)
				require.NoError(err)
			}
			// Then the chain is read again: what it accepted moved from the balance to charged.
			require.NoError(l.Observe(client, OnChain{Balance: tc.balance - tc.settled, Stake: tc.stake, Charged: tc.settled, Closing: tc.closing}))

			_, err := l.Reserve(client, tc.reserve)
			c, cerr := l.Client(client)
			require.NoError(cerr)
			if tc.wantErr != "" {
				require.ErrorIs(err, ErrInsufficientFunds)
				assert.ErrorContains(err, tc.wantErr)
			} else {
				require.NoError(err)
			}
			assert.Equal(tc.charged-tc.settled, c.Unsettled())
			if c.Unsettled() <= tc.balance+tc.stake {
				assert.LessOrEqual(c.Unsettled()+c.Reserved, c.Locked(), "the bound holds")
			}
		})
	}
}

// TestObservePersists: the chain reading survives a restart, in the same record as the totals.
func TestObservePersists(t *testing.T) {
	require := require.New(t)
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, _ := open(t, path)
	client := account(1)
	require.NoError(l.Observe(client, OnChain{Balance: 700, Stake: 100, Charged: 300, Closing: true}))
	require.NoError(l.Close())
	l2, _ := open(t, path)
	c, err := l2.Client(client)
	require.NoError(err)
	assert.Equal(t, Client{Deposited: 1000, Stake: 100, Settled: 300, Closing: true}, c)
	assert.Equal(t, uint64(800), c.Locked())
}
