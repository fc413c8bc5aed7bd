package demo

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"

	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

// deposited is the client's account with one proxy contract after keepDeposited.
type deposited struct {
	Contract ton.AccountID
	Sent     uint64 // nanoTON the top-up sent; 0: none was due
	ToStake  uint64 // of Sent, what went to the stake (the rest, less the fee, is to spend)
	Stake    uint64 // what the contract holds as stake (min_client_stake)
	Balance  uint64 // what is left to spend
	Target   uint64 // what a full deposit leaves to spend
}

// depositPlan is what a deposit of amount leaves to spend on an account holding stake of the
// min_client_stake need, and what a top-up to that sends now for an account that has balance.
// The contract fills the stake first and keeps contracts.OpFee of every deposit.
func depositPlan(amount, need, stake, balance uint64) (target, send uint64, err error) {
	if amount <= need+contracts.OpFee {
		return 0, 0, fmt.Errorf("a deposit of %s TON leaves nothing to spend: the contract holds %s TON as stake and keeps %s TON as its fee; deposit more",
			settle.FormatTON(amount), settle.FormatTON(need), settle.FormatTON(contracts.OpFee))
	}
	target = amount - need - contracts.OpFee
	// Top up once less than half of the spendable part is left: the stake is never spent, so
	// counting it would top up after every run.
	if balance >= target/2 && stake >= need {
		return target, 0, nil
	}
	send = contracts.OpFee + max(target, balance) - balance
	if stake < need {
		send += need - stake
	}
	return target, send, nil
}

// keepDeposited tops the client's deposit with each proxy contract up to amount (stake, fee and
// what is left to spend) once less than half of what it leaves to spend is left.
func keepDeposited(ctx context.Context, ch chain.Chain, client ed25519.PrivateKey, proxies []ton.AccountID, amount uint64) ([]deposited, error) {
	acct, err := ch.WalletAddress(client.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	var out []deposited
	for _, p := range proxies {
		ps, err := chain.Proxy(ctx, ch, p)
		if err != nil {
			return nil, err
		}
		acc := ps.Clients[acct]
		need := ps.Config.MinClientStake
		target, send, err := depositPlan(amount, need, acc.Stake, acc.Balance)
		if err != nil {
			return nil, fmt.Errorf("client deposit: %w", err)
		}
		toStake := need - min(need, acc.Stake)
		if send > 0 {
			if err := chain.TopUp(ctx, ch, client, p, send); err != nil {
				return nil, fmt.Errorf("client top-up: %w", err)
			}
			if ps, err = chain.Proxy(ctx, ch, p); err != nil {
				return nil, err
			}
			acc = ps.Clients[acct]
		}
		if send == 0 {
			toStake = 0
		}
		out = append(out, deposited{Contract: p, Sent: send, ToStake: toStake, Stake: acc.Stake, Balance: acc.Balance, Target: target})
	}
	return out, nil
}

// printDeposits says what the client holds with the proxies and why: what a top-up sent became
// (stake, what is left to spend, the contract's fee), or why none was sent.
func printDeposits(out io.Writer, ds []deposited) {
	for _, d := range ds {
		c := d.Contract.ToHuman(true, true)
		if d.Sent > 0 {
			toSpend := d.Sent - d.ToStake - contracts.OpFee
			fmt.Fprintf(out, "Client deposit:  %s TON sent to %s = %s TON stake (held while the account is open) + %s TON to spend + %s TON contract fee",
				settle.FormatTON(d.Sent), c, settle.FormatTON(d.ToStake), settle.FormatTON(toSpend), settle.FormatTON(contracts.OpFee))
			if d.Balance != toSpend {
				fmt.Fprintf(out, "; %s TON to spend in all", settle.FormatTON(d.Balance))
			}
			fmt.Fprintln(out)
			continue
		}
		fmt.Fprintf(out, "Client deposit:  %s TON left to spend with %s, %s TON stake; no top-up (one is sent when less than %s TON is left)\n",
			settle.FormatTON(d.Balance), c, settle.FormatTON(d.Stake), settle.FormatTON(d.Target/2))
	}
}
