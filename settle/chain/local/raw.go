package local

import (
	"context"
	"fmt"

	"github.com/tonkeeper/tongo/tlb"
	"github.com/tonkeeper/tongo/ton"
)

// The raw chain, as a node API serves it (`cocoon chain serve`, settle/chain/chainserve): account
// states, external messages and get-methods, each under the chain's lock.

// GetAccountState is an account's state; unknown accounts are AccountNone.
func (c *Chain) GetAccountState(ctx context.Context, id ton.AccountID) (tlb.ShardAccount, error) {
	return backend{c}.GetAccountState(ctx, id)
}

// SendMessage runs an external message (a BOC) and what it sends, and keeps the result.
func (c *Chain) SendMessage(ctx context.Context, payload []byte) (uint32, error) {
	return backend{c}.SendMessage(ctx, payload)
}

// RunGet runs a get-method of an active account (emu.ErrNotActive otherwise) and returns its exit
// code and stack.
func (c *Chain) RunGet(ctx context.Context, id ton.AccountID, method string, args tlb.VmStack) (uint32, tlb.VmStack, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	exit, stack, err := c.emu.RunGet(ctx, id, method, args)
	if err != nil {
		return 0, tlb.VmStack{}, fmt.Errorf("local chain: %w", err)
	}
	return exit, stack, nil
}
