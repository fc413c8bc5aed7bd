package chain

import (
	"context"
	"crypto/ed25519"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle/contracts"
)

// scriptedChain answers Account with before until something was sent, then with after.
type scriptedChain struct {
	mu            sync.Mutex
	before, after Account
	sent          []Message
}

func (s *scriptedChain) Account(context.Context, ton.AccountID) (Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sent) == 0 {
		return s.before, nil
	}
	return s.after, nil
}

func (s *scriptedChain) Send(_ context.Context, _ ed25519.PrivateKey, msgs ...Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, msgs...)
	return nil
}

func (s *scriptedChain) WalletAddress(ed25519.PublicKey) (ton.AccountID, error) {
	return ton.AccountID{Address: [32]byte{7}}, nil
}

func dataCell(t *testing.T, v uint64) *boc.Cell {
	c := boc.NewCell()
	require.NoError(t, c.WriteUint(v, 64))
	return c
}

// fastWatch makes the watch of sent operations quick for a test.
func fastWatch(t *testing.T) {
	every, grace, limit := watchEvery, watchGrace, watchFor
	watchEvery, watchGrace, watchFor = time.Millisecond, 5*time.Millisecond, 50*time.Millisecond
	t.Cleanup(func() { watchEvery, watchGrace, watchFor = every, grace, limit })
}

// TestCallBounce: Call tells an operation that changed the contract's data from one the contract
// ran and refused (bounced), from one that never reached it, and sends nothing to an account
// without code.
func TestCallBounce(t *testing.T) {
	fastWatch(t)
	to := ton.AccountID{Address: [32]byte{1}}
	active := func(lt, data uint64) Account {
		return Account{ID: to, Status: StatusActive, LastLT: lt, Data: dataCell(t, data)}
	}
	testCases := map[string]struct {
		before, after Account
		wantErr       error // nil: accepted
		wantSent      bool
	}{
		"data changed":              {before: active(10, 1), after: active(12, 2), wantSent: true},
		"ran, data unchanged":       {before: active(10, 1), after: active(12, 1), wantErr: ErrBounced, wantSent: true},
		"no transaction":            {before: active(10, 1), after: active(10, 1), wantErr: ErrNotProcessed, wantSent: true},
		"not deployed":              {before: Account{ID: to, Status: StatusNonexist}, wantErr: ErrNotDeployed},
		"uninitialised, not active": {before: Account{ID: to, Status: StatusUninit, LastLT: 3}, wantErr: ErrNotDeployed},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			c := &scriptedChain{before: tc.before, after: tc.after}
			err := Call(context.Background(), c, nil, to, 0, contracts.ClientCloseBody(1))
			if tc.wantErr == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.wantErr)
			}
			if !tc.wantSent {
				assert.Empty(t, c.sent)
				return
			}
			require.Len(t, c.sent, 1)
			assert.True(t, c.sent[0].Bounce, "operations are bounceable")
			assert.Equal(t, uint64(GasAmount), c.sent[0].Amount)
		})
	}
}

// TestDeployBounce: a deploy succeeds when the contract runs afterwards; an init the chain
// refused leaves the account uninitialised, which is an error naming where the value went.
func TestDeployBounce(t *testing.T) {
	fastWatch(t)
	to := ton.AccountID{Address: [32]byte{2}}
	testCases := map[string]struct {
		before, after Account
		body          bool
		wantErr       error
	}{
		"new contract runs":       {before: Account{Status: StatusNonexist}, after: Account{Status: StatusActive, LastLT: 5, Data: dataCell(t, 1)}},
		"init refused":            {before: Account{Status: StatusNonexist}, after: Account{Status: StatusUninit, LastLT: 5}, wantErr: ErrBounced},
		"again, plain transfer":   {before: Account{Status: StatusActive, LastLT: 5, Data: dataCell(t, 1)}, after: Account{Status: StatusActive, LastLT: 7, Data: dataCell(t, 1)}},
		"again, with a body":      {before: Account{Status: StatusActive, LastLT: 5, Data: dataCell(t, 1)}, after: Account{Status: StatusActive, LastLT: 7, Data: dataCell(t, 2)}, body: true},
		"again, body refused":     {before: Account{Status: StatusActive, LastLT: 5, Data: dataCell(t, 1)}, after: Account{Status: StatusActive, LastLT: 7, Data: dataCell(t, 1)}, body: true, wantErr: ErrBounced},
		"never reached the chain": {before: Account{Status: StatusNonexist}, after: Account{Status: StatusNonexist}, wantErr: ErrNotProcessed},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			c := &scriptedChain{before: tc.before, after: tc.after}
			msg := Message{To: to, Amount: 1}
			if tc.body {
				msg.Body = contracts.ProxyAddStakeBody(0)
			}
			err := deploy(context.Background(), c, nil, msg)
			if tc.wantErr == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.wantErr)
			}
			assert.Len(t, c.sent, 1)
		})
	}
}

// TestTopUpRule: the deposits a proxy contract would bounce are refused before sending, with the
// cause and the amount that would do.
func TestTopUpRule(t *testing.T) {
	const ton1 = 1_000_000_000
	client := ton.AccountID{Address: [32]byte{3}}
	proxy := func(status contracts.ProxyStatus, acc *contracts.ClientAccount) contracts.ProxyState {
		p := contracts.ProxyState{Status: status, Config: contracts.ProxyConfig{MinClientStake: ton1},
			Clients: map[ton.AccountID]contracts.ClientAccount{}}
		if acc != nil {
			p.Clients[client] = *acc
		}
		return p
	}
	testCases := map[string]struct {
		p       contracts.ProxyState
		amount  uint64
		wantMsg string // "": accepted
	}{
		"first deposit covers the stake": {p: proxy(contracts.ProxyActive, nil), amount: ton1 + contracts.OpFee},
		"first deposit below the stake":  {p: proxy(contracts.ProxyActive, nil), amount: ton1 / 2, wantMsg: "the first deposit must cover the registry's min_client_stake of 1 TON (plus the 0.02 TON fee); send at least 1.02 TON"},
		"stake already full":             {p: proxy(contracts.ProxyActive, &contracts.ClientAccount{Stake: ton1, Open: true}), amount: ton1 / 10},
		"part of the stake there":        {p: proxy(contracts.ProxyActive, &contracts.ClientAccount{Stake: ton1 / 2}), amount: ton1 / 4, wantMsg: "send at least 0.52 TON"},
		"only the fee":                   {p: proxy(contracts.ProxyActive, nil), amount: contracts.OpFee, wantMsg: "does not cover the 0.02 TON fee"},
		"closing account":                {p: proxy(contracts.ProxyActive, &contracts.ClientAccount{Stake: ton1, Open: true, ClosingAt: 9}), amount: 2 * ton1, wantMsg: "is closing and takes no deposits"},
		"closed account reopens":         {p: proxy(contracts.ProxyActive, &contracts.ClientAccount{ClosingAt: 9}), amount: 2 * ton1},
		"closing proxy contract":         {p: proxy(contracts.ProxyClosing, nil), amount: 2 * ton1, wantMsg: "the contract is closing and takes no deposits"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			err := TopUpRule(tc.p, client, tc.amount)
			if tc.wantMsg == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrRefused)
			assert.Contains(t, err.Error(), tc.wantMsg)
		})
	}
}
