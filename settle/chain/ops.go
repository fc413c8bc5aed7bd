package chain

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/tlb"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

// GasAmount is attached to operations that carry no deposit; the contracts keep what the
// operation costs and (for payouts) forward the rest.
const GasAmount = 50_000_000

// contractData returns the data of an active contract.
func contractData(ctx context.Context, c Chain, id ton.AccountID) (*boc.Cell, error) {
	a, err := c.Account(ctx, id)
	if err != nil {
		return nil, err
	}
	if a.Status != StatusActive || a.Data == nil {
		return nil, fmt.Errorf("read %s: %w (status %s)", id.ToRaw(), ErrNotDeployed, a.Status)
	}
	// Parsing moves the cell's read cursors, and a chain may hand the same cell to concurrent
	// readers (the local chain does): parse a copy of our own.
	b, err := a.Data.ToBoc()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", id.ToRaw(), err)
	}
	cells, err := boc.DeserializeBoc(b)
	if err != nil || len(cells) != 1 {
		return nil, fmt.Errorf("read %s: copy contract data: %v", id.ToRaw(), err)
	}
	return cells[0], nil
}

// Registry reads the registry contract.
func Registry(ctx context.Context, c Chain, id ton.AccountID) (contracts.Registry, error) {
	data, err := contractData(ctx, c, id)
	if err != nil {
		return contracts.Registry{}, err
	}
	r, err := contracts.ParseRegistryData(data)
	if err != nil {
		return contracts.Registry{}, fmt.Errorf("read registry %s: %w", id.ToRaw(), err)
	}
	return r, nil
}

// Proxy reads a proxy contract.
func Proxy(ctx context.Context, c Chain, id ton.AccountID) (contracts.ProxyState, error) {
	data, err := contractData(ctx, c, id)
	if err != nil {
		return contracts.ProxyState{}, err
	}
	p, err := contracts.ParseProxyData(data)
	if err != nil {
		return contracts.ProxyState{}, fmt.Errorf("read proxy %s: %w", id.ToRaw(), err)
	}
	return p, nil
}

// Balance is an account's balance in nanoTON.
func Balance(ctx context.Context, c Chain, id ton.AccountID) (uint64, error) {
	a, err := c.Account(ctx, id)
	if err != nil {
		return 0, err
	}
	return a.Balance, nil
}

// WalletBalance is the balance of key's wallet.
func WalletBalance(ctx context.Context, c Chain, pub ed25519.PublicKey) (uint64, error) {
	addr, err := c.WalletAddress(pub)
	if err != nil {
		return 0, err
	}
	return Balance(ctx, c, addr)
}

// Transfer sends amount nanoTON from key's wallet to another account (non-bounceable, so
// it also funds accounts that do not exist yet).
func Transfer(ctx context.Context, c Chain, key ed25519.PrivateKey, to ton.AccountID, amount uint64) error {
	return c.Send(ctx, key, Message{To: to, Amount: amount})
}

func stateInit(code, data *boc.Cell) (ton.AccountID, *tlb.StateInit, error) {
	si := &tlb.StateInit{}
	si.Code.Exists, si.Code.Value.Value = true, *code
	si.Data.Exists, si.Data.Value.Value = true, *data
	cell := boc.NewCell()
	if err := tlb.Marshal(cell, si); err != nil {
		return ton.AccountID{}, nil, fmt.Errorf("encode state init: %w", err)
	}
	h, err := cell.Hash256()
	if err != nil {
		return ton.AccountID{}, nil, fmt.Errorf("hash state init: %w", err)
	}
	return ton.AccountID{Workchain: 0, Address: h}, si, nil
}

// DeployRegistry deploys a registry owned by key's wallet (r.Owner is overwritten with it)
// and leaves amount nanoTON on it for storage rent.
func DeployRegistry(ctx context.Context, c Chain, key ed25519.PrivateKey, r contracts.Registry, amount uint64) (ton.AccountID, error) {
	owner, err := c.WalletAddress(key.Public().(ed25519.PublicKey))
	if err != nil {
		return ton.AccountID{}, err
	}
	r.Owner = owner
	data, err := contracts.RegistryData(r)
	if err != nil {
		return ton.AccountID{}, err
	}
	addr, si, err := stateInit(contracts.RegistryCode(), data)
	if err != nil {
		return ton.AccountID{}, err
	}
	if err := deploy(ctx, c, key, Message{To: addr, Amount: amount, Init: si}); err != nil {
		return ton.AccountID{}, fmt.Errorf("deploy registry: %w", err)
	}
	return addr, nil
}

// ProxyAddress is where the proxy contract for a payment key and owner lives.
func ProxyAddress(paymentKey ed25519.PublicKey, owner ton.AccountID, cfg contracts.ProxyConfig) (ton.AccountID, *tlb.StateInit, error) {
	data, err := contracts.ProxyData(paymentKey, owner, cfg)
	if err != nil {
		return ton.AccountID{}, nil, err
	}
	return stateInit(contracts.ProxyCode(), data)
}

// DeployProxy deploys the proxy contract bound to paymentKey, owned by key's wallet, with
// stake nanoTON (minus contracts.OpFee) as the proxy's stake; cfg is copied from the registry.
func DeployProxy(ctx context.Context, c Chain, key ed25519.PrivateKey, paymentKey ed25519.PublicKey, cfg contracts.ProxyConfig, stake uint64) (ton.AccountID, error) {
	owner, err := c.WalletAddress(key.Public().(ed25519.PublicKey))
	if err != nil {
		return ton.AccountID{}, err
	}
	addr, si, err := ProxyAddress(paymentKey, owner, cfg)
	if err != nil {
		return ton.AccountID{}, err
	}
	msg := Message{To: addr, Amount: stake, Init: si, Body: contracts.ProxyAddStakeBody(0)}
	if err := deploy(ctx, c, key, msg); err != nil {
		return ton.AccountID{}, fmt.Errorf("deploy proxy: %w", err)
	}
	return addr, nil
}

// Call sends an operation body to a contract from key's wallet, bounceable, with amount
// (GasAmount when 0) attached. It returns once the contract's data changed, or ErrBounced when
// the contract ran a transaction and its data stayed the same (it refused the operation).
func Call(ctx context.Context, c Chain, key ed25519.PrivateKey, to ton.AccountID, amount uint64, body *boc.Cell) error {
	return CallExpect(ctx, c, key, to, amount, body, DataChanged)
}

// CallExpect is Call with the effect the operation must have on the contract's account.
func CallExpect(ctx context.Context, c Chain, key ed25519.PrivateKey, to ton.AccountID, amount uint64, body *boc.Cell, took Effect) error {
	if amount == 0 {
		amount = GasAmount
	}
	before, err := c.Account(ctx, to)
	if err != nil {
		return err
	}
	if before.Status != StatusActive {
		// A bounceable message to an account without code comes back, less the fees.
		return fmt.Errorf("%s: %w (status %s): nothing sent", to.ToRaw(), ErrNotDeployed, before.Status)
	}
	return sendExpect(ctx, c, key, Message{To: to, Amount: amount, Body: body, Bounce: true}, before, took)
}

// TopUp deposits amount nanoTON for key's wallet on a proxy contract. It refuses, sending
// nothing, what the contract would bounce: a deposit to a closing contract or account, one that
// does not pay the fee, and one that leaves the stake below the contract's min_client_stake
// (copied from the registry).
func TopUp(ctx context.Context, c Chain, key ed25519.PrivateKey, proxy ton.AccountID, amount uint64) error {
	p, err := Proxy(ctx, c, proxy)
	if err != nil {
		return fmt.Errorf("top up: %w", err)
	}
	client, err := c.WalletAddress(key.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	if err := TopUpRule(p, client, amount); err != nil {
		return fmt.Errorf("top-up refused by proxy contract %s: %w", proxy.ToRaw(), err)
	}
	grew := func(before, after Account) error {
		b, a := clientFunds(before, client), clientFunds(after, client)
		if a <= b {
			return fmt.Errorf("the deposit of %s did not grow (%s TON)", client.ToRaw(), settle.FormatTON(a))
		}
		return nil
	}
	if err := CallExpect(ctx, c, key, proxy, amount, contracts.TopUpBody(0), grew); err != nil {
		return fmt.Errorf("top up %s: %w", proxy.ToRaw(), err)
	}
	return nil
}

// TopUpRule is the proxy contract's rule for a deposit of amount nanoTON from client: nil when
// it would be accepted, else an error wrapping ErrRefused that names the cause and the fix.
func TopUpRule(p contracts.ProxyState, client ton.AccountID, amount uint64) error {
	if p.Status != contracts.ProxyActive {
		return fmt.Errorf("%w: the contract is %s and takes no deposits; deposit with another proxy", ErrRefused, p.Status)
	}
	acc, found := p.Clients[client]
	if found && acc.Open && acc.ClosingAt != 0 {
		return fmt.Errorf("%w: the account of %s is closing and takes no deposits; take it back with withdraw-stake after the close delay, then deposit again",
			ErrRefused, client.ToRaw())
	}
	if amount <= contracts.OpFee {
		return fmt.Errorf("%w: %s TON does not cover the %s TON fee of a deposit; send more",
			ErrRefused, settle.FormatTON(amount), settle.FormatTON(contracts.OpFee))
	}
	need := p.Config.MinClientStake
	if acc.Stake+amount-contracts.OpFee < need {
		first := "the first deposit"
		if acc.Stake > 0 {
			first = fmt.Sprintf("a deposit onto a stake of %s TON", settle.FormatTON(acc.Stake))
		}
		return fmt.Errorf("%w: %s must cover the registry's min_client_stake of %s TON (plus the %s TON fee); send at least %s TON",
			ErrRefused, first, settle.FormatTON(need), settle.FormatTON(contracts.OpFee), settle.FormatTON(need-acc.Stake+contracts.OpFee))
	}
	return nil
}

// clientFunds is what client holds on a proxy contract's account (balance and stake); 0 when
// unreadable.
func clientFunds(a Account, client ton.AccountID) uint64 {
	if a.Data == nil {
		return 0
	}
	p, err := parseProxy(a)
	if err != nil {
		return 0
	}
	acc := p.Clients[client]
	return acc.Balance + acc.Stake
}

func parseProxy(a Account) (contracts.ProxyState, error) {
	b, err := a.Data.ToBoc()
	if err != nil {
		return contracts.ProxyState{}, err
	}
	cells, err := boc.DeserializeBoc(b)
	if err != nil || len(cells) != 1 {
		return contracts.ProxyState{}, fmt.Errorf("copy contract data: %v", err)
	}
	return contracts.ParseProxyData(cells[0])
}

// SubmitState submits a signed payment state from key's wallet (anyone may submit one; a
// worker-earned state pays the worker). It returns once the wallet sent it; whether the contract
// took it shows in the party's seqno there, which paystate.Submit compares.
func SubmitState(ctx context.Context, c Chain, key ed25519.PrivateKey, s settle.SignedState) error {
	body, err := contracts.SubmitStateBody(s.State.Seqno, s)
	if err != nil {
		return err
	}
	msg := Message{To: s.State.Proxy, Amount: GasAmount, Body: body, Bounce: true}
	if err := c.Send(ctx, key, msg); err != nil {
		return fmt.Errorf("submit %s state seqno %d: %w", s.State.Kind, s.State.Seqno, err)
	}
	return nil
}
