// Package chaincmd is the `cocoon chain …` command: wallet keys, the registry and proxy
// contracts, client deposits and worker payouts, on the local chain or on TON. chaincmd.go holds
// each operation as a plain function that takes a chain.Chain and an io.Writer for
// human-readable output; command.go maps urfave/cli arguments and flags onto them (Command).
// What runtime code needs too (amounts, opening a chain, submitting states) lives in settle,
// settle/chain/chains and settle/paystate, so nothing outside main imports this package.
package chaincmd

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"

	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/contracts"
	"github.com/cocoon-network/cocoon/settle/paystate"
)

// Faucet is implemented by chains that can mint test TON (the local chain).
type Faucet interface {
	Faucet(ctx context.Context, to ton.AccountID, amount uint64) error
}

// ShowRegistry prints the registry: version, owner, prices, allow-lists and proxies.
func ShowRegistry(ctx context.Context, c chain.Chain, w io.Writer, registry ton.AccountID) error {
	r, err := chain.Registry(ctx, c, registry)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := r.Params
	fmt.Fprintf(tw, "registry\t%s\n", registry.ToRaw())
	fmt.Fprintf(tw, "version\t%d\n", r.Version)
	fmt.Fprintf(tw, "owner\t%s\n", r.Owner.ToRaw())
	fmt.Fprintf(tw, "price_per_token\t%d nanoTON\n", p.PricePerToken)
	fmt.Fprintf(tw, "worker_fee_per_token\t%d nanoTON\n", p.WorkerFeePerToken)
	fmt.Fprintf(tw, "multipliers (10000 = 1x)\tprompt %d, cached %d, completion %d, reasoning %d\n",
		p.PromptMult, p.CachedPromptMult, p.CompletionMult, p.ReasoningMult)
	fmt.Fprintf(tw, "min stakes\tproxy %s TON, client %s TON\n", settle.FormatTON(p.MinProxyStake), settle.FormatTON(p.MinClientStake))
	fmt.Fprintf(tw, "close delays\tclient %s, proxy %s\n",
		time.Duration(p.ClientCloseDelay)*time.Second, time.Duration(p.ProxyCloseDelay)*time.Second)
	fmt.Fprintf(tw, "max worker coefficient\t%s (1000 = 1x)\n", coefficient(p.MaxCoefficient))
	for _, l := range []struct {
		name string
		list [][32]byte
	}{{"proxy image", r.ProxyImages}, {"worker image", r.WorkerImages}, {"model", r.Models}} {
		for _, h := range l.list {
			fmt.Fprintf(tw, "%s\t%s\n", l.name, hex.EncodeToString(h[:]))
		}
	}
	for _, px := range r.Proxies {
		fmt.Fprintf(tw, "proxy\tpayment key %s\n", hex.EncodeToString(px.Key))
		fmt.Fprintf(tw, "  contract\t%s\n", px.Contract.ToRaw())
		fmt.Fprintf(tw, "  worker endpoint\t%s\n", px.WorkerEndpoint)
		fmt.Fprintf(tw, "  client endpoint\t%s\n", px.ClientEndpoint)
	}
	return tw.Flush()
}

// coefficient shows a registry's coefficient cap; zero is a registry from before the field.
func coefficient(c uint32) string {
	if c == 0 {
		return fmt.Sprintf("not set: list price only (%d)", settle.CoefficientOne)
	}
	return fmt.Sprint(c)
}

// DeployRegistry deploys a registry owned by key's wallet and prints its address.
func DeployRegistry(ctx context.Context, c chain.Chain, w io.Writer, key ed25519.PrivateKey, p contracts.RegistryParams, amount uint64) (ton.AccountID, error) {
	if err := haveFunds(ctx, c, key, "deploy registry", amount); err != nil {
		return ton.AccountID{}, err
	}
	addr, err := chain.DeployRegistry(ctx, c, key, contracts.Registry{Params: p}, amount)
	if err != nil {
		return ton.AccountID{}, err
	}
	fmt.Fprintf(w, "registry deployed at %s\n", addr.ToRaw())
	return addr, nil
}

// SetParams replaces the registry's price parameters (owner only).
func SetParams(ctx context.Context, c chain.Chain, w io.Writer, key ed25519.PrivateKey, registry ton.AccountID, p contracts.RegistryParams) error {
	body, err := contracts.SetParamsBody(uint64(time.Now().Unix()), p)
	if err != nil {
		return err
	}
	return sendUpdate(ctx, c, w, key, registry, "params", body)
}

// Allow adds (allowed) or removes a hash on one of the registry's allow-lists (owner only).
func Allow(ctx context.Context, c chain.Chain, w io.Writer, key ed25519.PrivateKey, registry ton.AccountID, list contracts.List, hash [32]byte, allowed bool) error {
	body, err := contracts.SetAllowedBody(uint64(time.Now().Unix()), list, hash, allowed)
	if err != nil {
		return err
	}
	return sendUpdate(ctx, c, w, key, registry, "allow-list", body)
}

// SetProxy lists a proxy in the registry (owner only); with a nil entry it removes the
// proxy whose payment key is key.
func SetProxy(ctx context.Context, c chain.Chain, w io.Writer, key ed25519.PrivateKey, registry ton.AccountID, paymentKey ed25519.PublicKey, entry *contracts.ProxyEntry) error {
	body, err := contracts.SetProxyBody(uint64(time.Now().Unix()), paymentKey, entry)
	if err != nil {
		return err
	}
	return sendUpdate(ctx, c, w, key, registry, "proxy list", body)
}

func sendUpdate(ctx context.Context, c chain.Chain, w io.Writer, key ed25519.PrivateKey, registry ton.AccountID, what string, body *boc.Cell) error {
	sender, err := c.WalletAddress(key.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	owner := func() error {
		r, err := chain.Registry(ctx, c, registry)
		if err != nil {
			return err
		}
		if sender != r.Owner {
			return fmt.Errorf("%w: only its owner %s may change it, and --key is the wallet %s; pass the owner's key",
				chain.ErrRefused, r.Owner.ToRaw(), sender.ToRaw())
		}
		return nil
	}
	if err := owner(); err != nil {
		return fmt.Errorf("update registry %s: %w", what, err)
	}
	if err := haveFunds(ctx, c, key, "update registry "+what, 0); err != nil {
		return err
	}
	if err := chain.Call(ctx, c, key, registry, 0, body); err != nil {
		return fmt.Errorf("update registry %s: %w", what, withCause(err, owner, "registry show "+registry.ToRaw()))
	}
	r, err := chain.Registry(ctx, c, registry)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "registry %s update sent; version now %d\n", what, r.Version)
	return nil
}

// withCause adds to an operation the contract bounced why, by the contract's rules applied to its
// state now (it may have changed since the check before sending), or that those rules name no
// cause and where to look.
func withCause(err error, rule func() error, show string) error {
	if !errors.Is(err, chain.ErrBounced) {
		return err
	}
	if cause := rule(); cause != nil {
		return fmt.Errorf("%w; by the contract's rules: %v", err, cause)
	}
	return fmt.Errorf("%w; by the contract's rules as cocoon knows them it should have taken it: read the contract with `cocoon chain %s`, and retry", err, show)
}

// DeployProxy deploys the proxy contract bound to paymentKey, owned by key's wallet, with
// its configuration copied from the registry, and prints its address.
func DeployProxy(ctx context.Context, c chain.Chain, w io.Writer, key ed25519.PrivateKey, registry ton.AccountID, paymentKey ed25519.PublicKey, stake uint64) (ton.AccountID, error) {
	r, err := chain.Registry(ctx, c, registry)
	if err != nil {
		return ton.AccountID{}, err
	}
	if stake < r.Params.MinProxyStake+contracts.OpFee {
		return ton.AccountID{}, fmt.Errorf("deploy proxy: %w: stake %s TON is below the registry minimum %s TON (plus the %s TON fee); stake more",
			chain.ErrRefused, settle.FormatTON(stake), settle.FormatTON(r.Params.MinProxyStake), settle.FormatTON(contracts.OpFee))
	}
	if err := haveFunds(ctx, c, key, "deploy proxy", stake); err != nil {
		return ton.AccountID{}, err
	}
	cfg := contracts.ProxyConfig{Registry: registry, MinClientStake: r.Params.MinClientStake,
		ClientCloseDelay: r.Params.ClientCloseDelay, ProxyCloseDelay: r.Params.ProxyCloseDelay}
	addr, err := chain.DeployProxy(ctx, c, key, paymentKey, cfg, stake)
	if err != nil {
		return ton.AccountID{}, err
	}
	fmt.Fprintf(w, "proxy contract deployed at %s\n", addr.ToRaw())
	return addr, nil
}

// ShowProxy prints a proxy contract's state, or one party's account on it when party is set.
func ShowProxy(ctx context.Context, c chain.Chain, w io.Writer, proxy ton.AccountID, party *ton.AccountID) error {
	p, err := chain.Proxy(ctx, c, proxy)
	if err != nil {
		return err
	}
	balance, err := chain.Balance(ctx, c, proxy)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "proxy contract\t%s\n", proxy.ToRaw())
	fmt.Fprintf(tw, "status\t%s\n", p.Status)
	if p.Status == contracts.ProxyClosing {
		fmt.Fprintf(tw, "may settle after\t%s\n", time.Unix(int64(p.CloseAt), 0).UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "payment key\t%s\n", hex.EncodeToString(p.Key))
	fmt.Fprintf(tw, "owner\t%s\n", p.Owner.ToRaw())
	fmt.Fprintf(tw, "registry\t%s\n", p.Config.Registry.ToRaw())
	fmt.Fprintf(tw, "balance\t%s TON\n", settle.FormatTON(balance))
	fmt.Fprintf(tw, "proxy stake\t%s TON\n", settle.FormatTON(p.ProxyStake))
	fmt.Fprintf(tw, "client funds\t%s TON in %d open accounts\n", settle.FormatTON(p.ClientFunds), p.OpenClients)
	if party != nil {
		if a, ok := p.Clients[*party]; ok {
			fmt.Fprintf(tw, "client\t%s\n", party.ToRaw())
			fmt.Fprintf(tw, "  balance\t%s TON\n", settle.FormatTON(a.Balance))
			fmt.Fprintf(tw, "  stake\t%s TON\n", settle.FormatTON(a.Stake))
			fmt.Fprintf(tw, "  charged\t%s TON (seqno %d)\n", settle.FormatTON(a.Charged), a.Seqno)
			if a.ClosingAt != 0 && a.Open {
				fmt.Fprintf(tw, "  closing: balance and stake free after\t%s\n", time.Unix(int64(a.ClosingAt), 0).UTC().Format(time.RFC3339))
			}
		}
		if a, ok := p.Workers[*party]; ok {
			fmt.Fprintf(tw, "worker\t%s\n", party.ToRaw())
			fmt.Fprintf(tw, "  paid\t%s TON (seqno %d)\n", settle.FormatTON(a.Paid), a.Seqno)
		}
	} else {
		fmt.Fprintf(tw, "clients\t%d\n", len(p.Clients))
		fmt.Fprintf(tw, "workers\t%d\n", len(p.Workers))
	}
	return tw.Flush()
}

// TopUp deposits amount nanoTON for key's wallet on a proxy contract (client).
func TopUp(ctx context.Context, c chain.Chain, w io.Writer, key ed25519.PrivateKey, proxy ton.AccountID, amount uint64) error {
	if err := haveFunds(ctx, c, key, "top up", amount); err != nil {
		return err
	}
	if err := chain.TopUp(ctx, c, key, proxy, amount); err != nil {
		rule := func() error {
			p, err := chain.Proxy(ctx, c, proxy)
			if err != nil {
				return err
			}
			client, err := c.WalletAddress(key.Public().(ed25519.PublicKey))
			if err != nil {
				return err
			}
			return chain.TopUpRule(p, client, amount)
		}
		return withCause(err, rule, "proxy show "+proxy.ToRaw())
	}
	return printClient(ctx, c, w, key, proxy)
}

// Withdraw closes key's client account: balance and stake stay locked for the client close
// delay, so the proxy can settle its last charges; a later WithdrawStake takes back what is left.
func Withdraw(ctx context.Context, c chain.Chain, w io.Writer, key ed25519.PrivateKey, proxy ton.AccountID) error {
	open := func() error {
		acc, err := clientAccount(ctx, c, key, proxy)
		if err != nil {
			return err
		}
		if acc.ClosingAt != 0 {
			return fmt.Errorf("%w: the account is already closing; take it back with withdraw-stake after %s",
				chain.ErrRefused, time.Unix(int64(acc.ClosingAt), 0).UTC().Format(time.RFC3339))
		}
		return nil
	}
	if err := open(); err != nil {
		return fmt.Errorf("withdraw from %s: %w", proxy.ToRaw(), err)
	}
	if err := haveFunds(ctx, c, key, "withdraw", 0); err != nil {
		return err
	}
	if err := chain.Call(ctx, c, key, proxy, 0, contracts.ClientCloseBody(uint64(time.Now().Unix()))); err != nil {
		return fmt.Errorf("withdraw from %s: %w", proxy.ToRaw(), withCause(err, open, "proxy show "+proxy.ToRaw()))
	}
	return printClient(ctx, c, w, key, proxy)
}

// WithdrawStake takes back what the charges left of key's balance and stake once the close
// delay has passed.
func WithdrawStake(ctx context.Context, c chain.Chain, w io.Writer, key ed25519.PrivateKey, proxy ton.AccountID) error {
	due := func() error {
		acc, err := clientAccount(ctx, c, key, proxy)
		if err != nil {
			return err
		}
		if acc.ClosingAt == 0 {
			return fmt.Errorf("%w: the account is not closing; close it first with `cocoon chain client withdraw`, then withdraw-stake after the close delay",
				chain.ErrRefused)
		}
		if free := time.Unix(int64(acc.ClosingAt), 0); time.Now().Before(free) {
			return fmt.Errorf("%w: the close delay runs until %s (the proxy may still settle charges); retry after it",
				chain.ErrRefused, free.UTC().Format(time.RFC3339))
		}
		return nil
	}
	if err := due(); err != nil {
		return fmt.Errorf("withdraw stake from %s: %w", proxy.ToRaw(), err)
	}
	if err := haveFunds(ctx, c, key, "withdraw stake", 0); err != nil {
		return err
	}
	if err := chain.Call(ctx, c, key, proxy, 0, contracts.ClientWithdrawStakeBody(uint64(time.Now().Unix()))); err != nil {
		return fmt.Errorf("withdraw stake from %s: %w", proxy.ToRaw(), withCause(err, due, "proxy show "+proxy.ToRaw()))
	}
	return printClient(ctx, c, w, key, proxy)
}

// Payout submits a worker's latest signed "worker earned" state (as the proxy gave it, in
// settle.SignedState.MarshalBinary form) from key's wallet; the contract pays the
// difference to the worker named in the state. The signature is checked against the proxy
// contract's key first, so a bad state costs no fee.
func Payout(ctx context.Context, c chain.Chain, w io.Writer, key ed25519.PrivateKey, signedState []byte) error {
	s, err := settle.ParseSignedState(signedState)
	if err != nil {
		return err
	}
	if s.State.Kind != settle.KindWorkerEarned {
		return fmt.Errorf("payout: %w: a %s state pays no one", settle.ErrStateRefused, s.State.Kind)
	}
	if err := haveFunds(ctx, c, key, "payout", 0); err != nil {
		return err
	}
	r, err := paystate.Submit(ctx, c, key, s)
	if err != nil {
		return fmt.Errorf("payout: %w", err)
	}
	if r.Skipped {
		return fmt.Errorf("payout: %w: seqno %d total %d is not newer than seqno %d total %d",
			settle.ErrStateRefused, s.State.Seqno, s.State.Total, r.Seqno, r.Before.Settled)
	}
	fmt.Fprintf(w, "paid %s TON to %s; total paid %s TON\n", settle.FormatTON(r.After.Settled-r.Before.Settled),
		s.State.Party.ToRaw(), settle.FormatTON(r.After.Settled))
	return nil
}

// Balance prints key's wallet address and balance.
func Balance(ctx context.Context, c chain.Chain, w io.Writer, pub ed25519.PublicKey) error {
	addr, err := c.WalletAddress(pub)
	if err != nil {
		return err
	}
	b, err := chain.Balance(ctx, c, addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "wallet %s balance %s TON\n", addr.ToRaw(), settle.FormatTON(b))
	return nil
}

// Fund mints test TON to key's wallet on a chain with a faucet (the local chain).
func Fund(ctx context.Context, c chain.Chain, w io.Writer, pub ed25519.PublicKey, amount uint64) error {
	f, ok := c.(Faucet)
	if !ok {
		return errors.New("fund: this chain has no faucet (only the local chain does)")
	}
	addr, err := c.WalletAddress(pub)
	if err != nil {
		return err
	}
	if err := f.Faucet(ctx, addr, amount); err != nil {
		return err
	}
	return Balance(ctx, c, w, pub)
}

// haveFunds refuses, before anything is sent, an operation key's wallet cannot pay: amount
// nanoTON attached (chain.GasAmount when 0) plus what the wallet's own transaction costs.
func haveFunds(ctx context.Context, c chain.Chain, key ed25519.PrivateKey, what string, amount uint64) error {
	if amount == 0 {
		amount = chain.GasAmount
	}
	addr, err := c.WalletAddress(key.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	b, err := chain.Balance(ctx, c, addr)
	if err != nil {
		return err
	}
	if b < amount+walletFee {
		return fmt.Errorf("%s: %w: the wallet %s holds %s TON, and this sends %s TON plus about %s TON of fees; fund the wallet first",
			what, chain.ErrRefused, addr.ToRaw(), settle.FormatTON(b), settle.FormatTON(amount), settle.FormatTON(walletFee))
	}
	return nil
}

// walletFee is about what a wallet's own transaction costs on top of what it sends (TON's
// wallet v4 transfers cost well under this).
const walletFee = 10_000_000

// clientAccount is key's open account on a proxy contract; without one, an error wrapping
// chain.ErrRefused (there is nothing to withdraw).
func clientAccount(ctx context.Context, c chain.Chain, key ed25519.PrivateKey, proxy ton.AccountID) (contracts.ClientAccount, error) {
	p, err := chain.Proxy(ctx, c, proxy)
	if err != nil {
		return contracts.ClientAccount{}, err
	}
	addr, err := c.WalletAddress(key.Public().(ed25519.PublicKey))
	if err != nil {
		return contracts.ClientAccount{}, err
	}
	acc, ok := p.Clients[addr]
	if !ok || !acc.Open {
		return contracts.ClientAccount{}, fmt.Errorf("%w: the wallet %s has no open account there; nothing to withdraw", chain.ErrRefused, addr.ToRaw())
	}
	return acc, nil
}

func printClient(ctx context.Context, c chain.Chain, w io.Writer, key ed25519.PrivateKey, proxy ton.AccountID) error {
	addr, err := c.WalletAddress(key.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	return ShowProxy(ctx, c, w, proxy, &addr)
}
