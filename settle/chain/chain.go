// Package chain is cocoon's access to TON: one small interface (Chain) for what the roles do
// on chain — read accounts, send messages from a wallet — and the operations built on it:
// reading the registry and proxy contracts, watching them for changes, deploying them,
// depositing, submitting signed payment states and paying out.
//
// Three implementations exist: settle/chain/local, an embedded chain that runs the real
// contract code in tongo's emulator (the default of `cocoon demo`); settle/chain/toncenter, a
// client of toncenter's HTTP API for `cocoon chain serve` and toncenter.com alike; and
// settle/chain/tonchain, tongo's lite-server client for mainnet or testnet. All send through a
// real wallet contract (v5r1 by default), built here by New around a Backend.
package chain

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/tlb"
	"github.com/tonkeeper/tongo/ton"
	"github.com/tonkeeper/tongo/wallet"
)

// Chain is what the roles need from a blockchain.
type Chain interface {
	// Account returns an account's current state; unknown accounts have StatusNonexist.
	Account(ctx context.Context, id ton.AccountID) (Account, error)
	// Send signs msgs with the wallet of key and submits them, deploying the wallet first
	// if needed. It returns once the wallet has accepted them (its seqno moved on).
	Send(ctx context.Context, key ed25519.PrivateKey, msgs ...Message) error
	// WalletAddress is the address of pub's wallet on this chain.
	WalletAddress(pub ed25519.PublicKey) (ton.AccountID, error)
}

// Status of an account.
type Status string

const (
	StatusNonexist Status = "nonexist"
	StatusUninit   Status = "uninit"
	StatusActive   Status = "active"
	StatusFrozen   Status = "frozen"
)

// Account is an account's state.
type Account struct {
	ID      ton.AccountID
	Status  Status
	Balance uint64 // nanoTON
	Code    *boc.Cell
	Data    *boc.Cell
	LastLT  uint64
}

// Message is an internal message a wallet sends.
type Message struct {
	To     ton.AccountID
	Amount uint64 // nanoTON
	Body   *boc.Cell
	Init   *tlb.StateInit // deploys the destination
	Bounce bool
}

var (
	// ErrNotDeployed is returned when a contract is read before it exists.
	ErrNotDeployed = errors.New("contract is not deployed")
	// ErrInsufficientBalance is returned when a wallet cannot pay what it is asked to send.
	ErrInsufficientBalance = errors.New("insufficient wallet balance")
	// ErrNotConfirmed is returned when a sent message expired without the wallet accepting it
	// (it may have been dropped by the network); sending again is safe.
	ErrNotConfirmed = errors.New("wallet message not confirmed before it expired")
)

// Backend is the minimum a blockchain implementation provides; tongo's liteapi.Client is one.
type Backend interface {
	GetAccountState(ctx context.Context, id ton.AccountID) (tlb.ShardAccount, error)
	SendMessage(ctx context.Context, payload []byte) (uint32, error)
	GetSeqno(ctx context.Context, id ton.AccountID) (uint32, error)
}

// Options tune New.
type Options struct {
	WalletVersion   wallet.Version // default wallet.V5R1
	NetworkGlobalID *int32         // v5 wallets bind the network into their id; nil = mainnet (-239)
	MessageLifetime time.Duration  // validity of a wallet's external message; default 3 minutes
	ConfirmEvery    time.Duration  // how often Send polls for the wallet's seqno; default 1s
	// ConfirmGrace is how long after a message expired Send still waits for it to show up in
	// a block; default 30s.
	ConfirmGrace time.Duration
}

// New builds a Chain on a backend.
func New(b Backend, opts Options) Chain {
	if opts.MessageLifetime == 0 {
		opts.MessageLifetime = wallet.DefaultMessageLifetime
	}
	if opts.ConfirmEvery == 0 {
		opts.ConfirmEvery = time.Second
	}
	if opts.ConfirmGrace == 0 {
		opts.ConfirmGrace = 30 * time.Second
	}
	if opts.WalletVersion == 0 {
		opts.WalletVersion = wallet.V5R1
	}
	return &walletChain{b: b, opts: opts}
}

type walletChain struct {
	b    Backend
	opts Options
}

func (w *walletChain) walletOptions() []wallet.Option {
	o := []wallet.Option{wallet.WithMessageLifetime(w.opts.MessageLifetime)}
	if w.opts.NetworkGlobalID != nil {
		o = append(o, wallet.WithNetworkGlobalID(*w.opts.NetworkGlobalID))
	}
	return o
}

func (w *walletChain) WalletAddress(pub ed25519.PublicKey) (ton.AccountID, error) {
	wl, err := wallet.NewFromPublicKey(pub, w.opts.WalletVersion, w.walletOptions()...)
	if err != nil {
		return ton.AccountID{}, fmt.Errorf("wallet address: %w", err)
	}
	return wl.GetAddress(), nil
}

func (w *walletChain) Account(ctx context.Context, id ton.AccountID) (Account, error) {
	st, err := w.b.GetAccountState(ctx, id)
	if err != nil {
		return Account{}, fmt.Errorf("get account %s: %w", id.ToRaw(), err)
	}
	return accountFromShard(id, st), nil
}

func accountFromShard(id ton.AccountID, st tlb.ShardAccount) Account {
	a := Account{ID: id, Status: StatusNonexist, LastLT: st.LastTransLt}
	if st.Account.SumType != "Account" {
		return a
	}
	storage := st.Account.Account.Storage
	a.Balance = uint64(storage.Balance.Grams)
	switch storage.State.SumType {
	case "AccountUninit":
		a.Status = StatusUninit
	case "AccountFrozen":
		a.Status = StatusFrozen
	case "AccountActive":
		a.Status = StatusActive
		init := storage.State.AccountActive.StateInit
		if init.Code.Exists {
			c := init.Code.Value.Value
			a.Code = &c
		}
		if init.Data.Exists {
			d := init.Data.Value.Value
			a.Data = &d
		}
	}
	return a
}

func (w *walletChain) Send(ctx context.Context, key ed25519.PrivateKey, msgs ...Message) error {
	wl, err := wallet.New(key, w.opts.WalletVersion, w.b, w.walletOptions()...)
	if err != nil {
		return fmt.Errorf("open wallet: %w", err)
	}
	addr := wl.GetAddress()
	acc, err := w.Account(ctx, addr)
	if err != nil {
		return err
	}
	var total uint64
	sendables := make([]wallet.Sendable, 0, len(msgs))
	for _, m := range msgs {
		total += m.Amount
		sendables = append(sendables, wallet.Message{
			Amount: tlb.Grams(m.Amount), Address: m.To, Body: m.Body, Init: m.Init, Bounce: m.Bounce,
			Mode: wallet.DefaultMessageMode,
		})
	}
	if acc.Balance < total {
		return fmt.Errorf("send from %s: %w: have %d, need %d nanoTON", addr.ToRaw(), ErrInsufficientBalance, acc.Balance, total)
	}
	var seqno uint32
	if acc.Status == StatusActive {
		if seqno, err = w.b.GetSeqno(ctx, addr); err != nil {
			return fmt.Errorf("send from %s: get seqno: %w", addr.ToRaw(), err)
		}
	}
	// The wallet signs with time.Now()+lifetime; past that (plus grace) it can never land.
	expired := time.NewTimer(w.opts.MessageLifetime + w.opts.ConfirmGrace)
	defer expired.Stop()
	if err := wl.Send(ctx, sendables...); err != nil {
		return fmt.Errorf("send from %s: %w", addr.ToRaw(), err)
	}
	// Wait until the wallet used its seqno, so the next Send does not reuse it.
	t := time.NewTicker(w.opts.ConfirmEvery)
	defer t.Stop()
	for {
		now, err := w.b.GetSeqno(ctx, addr)
		if err == nil && now > seqno {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("send from %s: wait for seqno %d: %w", addr.ToRaw(), seqno+1, ctx.Err())
		case <-expired.C:
			return fmt.Errorf("send from %s: seqno %d: %w", addr.ToRaw(), seqno, ErrNotConfirmed)
		case <-t.C:
		}
	}
}
