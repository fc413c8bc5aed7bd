package chain

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/tonkeeper/tongo/ton"
)

var (
	// ErrRefused is returned, with nothing sent, for an operation a contract's rules refuse
	// (the cause and the fix follow it).
	ErrRefused = errors.New("refused")
	// ErrBounced is returned when a contract ran the operation's message and refused it: its
	// transaction failed, so the message bounced back to the wallet less the fees.
	ErrBounced = errors.New("refused by the contract: the message bounced back, less the fees")
	// ErrNotProcessed is returned when a sent message had no transaction on the contract within
	// the watch time (it may still come; read the contract before sending again).
	ErrNotProcessed = errors.New("no transaction on the contract yet")
)

// Effect says whether an operation took effect on the contract, from its account before the
// message was sent and now: nil when it did, else what is missing.
type Effect func(before, after Account) error

// DataChanged is the effect of most operations: the contract's data changed (every operation of
// the registry and proxy contracts writes its data; a failed one leaves it as it was).
func DataChanged(before, after Account) error {
	if bytes.Equal(dataBytes(before), dataBytes(after)) {
		return errors.New("its data did not change")
	}
	return nil
}

func dataBytes(a Account) []byte {
	if a.Data == nil {
		return nil
	}
	b, err := a.Data.ToBoc()
	if err != nil {
		return nil
	}
	return b
}

// Watching a sent operation: the account is read every watchEvery. A refusal is only concluded
// once the contract ran a transaction since the send (its LastLT moved) and the effect is still
// missing grace after that — at least watchGrace, and twice as long as the transaction took to
// come, so that an unrelated transaction on a busy contract landing first is not taken for ours.
// With no transaction at all within watchFor the operation is ErrNotProcessed.
var (
	watchEvery = 200 * time.Millisecond
	watchGrace = time.Second
	watchFor   = 2 * time.Minute
)

// sendExpect sends msg from key's wallet and watches the destination until took holds.
func sendExpect(ctx context.Context, c Chain, key ed25519.PrivateKey, msg Message, before Account, took Effect) error {
	if err := c.Send(ctx, key, msg); err != nil {
		return err
	}
	return watch(ctx, c, msg.To, before, took)
}

// watch reads the account until took holds (nil), the contract evidently refused (ErrBounced,
// with what is missing) or nothing happened within watchFor (ErrNotProcessed).
func watch(ctx context.Context, c Chain, to ton.AccountID, before Account, took Effect) error {
	start := time.Now()
	moved := time.Duration(-1)
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		after, err := c.Account(ctx, to)
		if err != nil {
			return err
		}
		missing := took(before, after)
		if missing == nil {
			return nil
		}
		elapsed := time.Since(start)
		if moved < 0 && after.LastLT != before.LastLT {
			moved = elapsed
		}
		switch {
		case moved >= 0 && elapsed >= max(2*moved, moved+watchGrace):
			return fmt.Errorf("%w: %v", ErrBounced, missing)
		case moved < 0 && elapsed >= watchFor:
			return fmt.Errorf("%s: %w after %s", to.ToRaw(), ErrNotProcessed, watchFor)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// deploy sends a message that carries the contract's state init (not bounceable, so it may fund
// the new account) and checks the contract runs afterwards: a refused init leaves the account
// uninitialised, holding what was sent.
func deploy(ctx context.Context, c Chain, key ed25519.PrivateKey, msg Message) error {
	before, err := c.Account(ctx, msg.To)
	if err != nil {
		return err
	}
	running := func(before, after Account) error {
		if after.Status != StatusActive {
			return fmt.Errorf("the contract did not start (account %s is %s; what was sent stays there)", msg.To.ToRaw(), after.Status)
		}
		if before.Status == StatusActive && msg.Body != nil {
			return DataChanged(before, after)
		}
		return nil
	}
	return sendExpect(ctx, c, key, msg, before, running)
}
