package chain

import (
	"context"
	"crypto/ed25519"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/tlb"
	"github.com/tonkeeper/tongo/ton"
	"github.com/tonkeeper/tongo/tontest"
)

// stubBackend answers with a fixed account and never applies what is sent, like a network
// that dropped the message.
type stubBackend struct {
	mu      sync.Mutex
	account tlb.ShardAccount
	sent    int
	sendErr error
}

func (s *stubBackend) GetAccountState(context.Context, ton.AccountID) (tlb.ShardAccount, error) {
	return s.account, nil
}

func (s *stubBackend) SendMessage(context.Context, []byte) (uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent++
	return 0, s.sendErr
}

func (s *stubBackend) GetSeqno(context.Context, ton.AccountID) (uint32, error) { return 0, nil }

func TestSendOutcomes(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	probe := New(&stubBackend{}, Options{})
	addr, err := probe.WalletAddress(key.Public().(ed25519.PublicKey))
	require.NoError(t, err)
	funded := tontest.Account().Address(addr).Balance(5_000_000_000).State(tlb.AccountUninit).MustShardAccount()

	testCases := map[string]struct {
		account  tlb.ShardAccount
		amount   uint64
		wantErr  error
		wantSent int
	}{
		"dropped message expires": {account: funded, amount: 1_000_000_000, wantErr: ErrNotConfirmed, wantSent: 1},
		"balance too low":         {account: funded, amount: 6_000_000_000, wantErr: ErrInsufficientBalance},
		"no wallet at all":        {account: tlb.ShardAccount{Account: tlb.Account{SumType: "AccountNone"}}, amount: 1, wantErr: ErrInsufficientBalance},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			b := &stubBackend{account: tc.account}
			c := New(b, Options{MessageLifetime: 20 * time.Millisecond, ConfirmGrace: time.Millisecond, ConfirmEvery: time.Millisecond})
			err := c.Send(context.Background(), key, Message{To: ton.AccountID{}, Amount: tc.amount})
			require.ErrorIs(t, err, tc.wantErr)
			assert.Equal(t, tc.wantSent, b.sent)
		})
	}
}

func TestAccountStatus(t *testing.T) {
	id := ton.AccountID{Address: [32]byte{1}}
	testCases := map[string]struct {
		account tlb.ShardAccount
		want    Status
		balance uint64
	}{
		"none":   {account: tlb.ShardAccount{Account: tlb.Account{SumType: "AccountNone"}}, want: StatusNonexist},
		"uninit": {account: tontest.Account().Address(id).Balance(7).State(tlb.AccountUninit).MustShardAccount(), want: StatusUninit, balance: 7},
		"active": {account: tontest.Account().Address(id).Balance(9).State(tlb.AccountActive).MustShardAccount(), want: StatusActive, balance: 9},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			a, err := New(&stubBackend{account: tc.account}, Options{}).Account(context.Background(), id)
			require.NoError(t, err)
			assert.Equal(t, tc.want, a.Status)
			assert.Equal(t, tc.balance, a.Balance)
		})
	}
}
