package paystate

import (
	"context"
	"crypto/ed25519"
	"errors"
	"time"

	"github.com/rs/zerolog"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
)

// topUpSettles is how long a top-up sent is given to show in the contract's balance before the
// same contract is topped up again: on TON a message takes seconds to land.
const topUpSettles = 2 * time.Minute

// TopUpper keeps a client's deposit in each proxy contract it uses at or above a floor: when what
// is left there falls below Below, it deposits Amount more from the client's wallet. What is left
// is the contract's balance for the client less what the proxy has charged since (the latest
// state held in Store, when set), so a client that spends fast is topped up before the proxy
// refuses it for want of funds.
type TopUpper struct {
	Chain  chain.Chain
	Key    ed25519.PrivateKey // the client's wallet key: whose deposit, and what pays
	Below  uint64             // nanoTON; 0: off, Run returns at once
	Amount uint64             // nanoTON deposited each time
	Every  time.Duration      // how often the deposits are checked
	// Contracts are the proxy contracts the client uses now (from the registry entries of its
	// proxies); it is called at every check.
	Contracts func() []ton.AccountID
	Store     *Store // optional: the states the proxies signed, for charges not yet on chain
	Log       zerolog.Logger

	party   ton.AccountID
	pending map[ton.AccountID]pendingTopUp
	lastErr map[ton.AccountID]string // the last failure logged per contract, so that it is logged once
}

type pendingTopUp struct {
	before uint64 // the contract's balance for the client when the top-up was sent
	at     time.Time
}

// TopUpResult is what one check did for one contract.
type TopUpResult struct {
	Contract ton.AccountID
	Left     uint64 // what was left before: balance less charges not yet on chain
	TopUp    uint64 // deposited now; 0: none
	Err      error
}

// Run checks the deposits at once and then every u.Every until ctx ends; it returns nil then. A
// zero Below leaves top-ups to `cocoon chain top-up`.
func (u *TopUpper) Run(ctx context.Context) error {
	if u.Below == 0 {
		return nil
	}
	if u.Amount == 0 || u.Every <= 0 || u.Contracts == nil {
		return errors.New("top up: amount, interval and contracts are required")
	}
	t := time.NewTicker(u.Every)
	defer t.Stop()
	for {
		u.Once(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Once checks each contract once and tops up those below the floor. It is not safe for
// concurrent use.
func (u *TopUpper) Once(ctx context.Context) []TopUpResult {
	if u.pending == nil {
		u.pending, u.lastErr = map[ton.AccountID]pendingTopUp{}, map[ton.AccountID]string{}
		party, err := u.Chain.WalletAddress(u.Key.Public().(ed25519.PublicKey))
		if err != nil {
			u.Log.Warn().Err(err).Msg("top up: wallet address")
			u.pending = nil
			return nil
		}
		u.party = party
	}
	var out []TopUpResult
	seen := map[ton.AccountID]bool{}
	for _, id := range u.Contracts() {
		if seen[id] {
			continue
		}
		seen[id] = true
		r := u.check(ctx, id)
		u.report(r)
		out = append(out, r)
	}
	return out
}

// check reads one contract and tops it up when the client's deposit there is below the floor.
func (u *TopUpper) check(ctx context.Context, id ton.AccountID) TopUpResult {
	r := TopUpResult{Contract: id}
	p, err := chain.Proxy(ctx, u.Chain, id)
	if err != nil {
		r.Err = err
		return r
	}
	_, a := OnChain(p, settle.KindClientCharged, u.party)
	r.Left = a.Balance
	if u.Store != nil {
		for _, st := range u.Store.All() {
			if st.State.Proxy == id && st.State.Party == u.party && st.State.Total > a.Settled {
				r.Left -= min(r.Left, st.State.Total-a.Settled)
			}
		}
	}
	if c, ok := p.Clients[u.party]; ok && c.ClosingAt != 0 {
		return r // a closing account is not refilled: the client is leaving that proxy
	}
	if r.Left >= u.Below {
		delete(u.pending, id)
		return r
	}
	if pt, ok := u.pending[id]; ok && a.Balance == pt.before && time.Since(pt.at) < topUpSettles {
		return r // the last top-up has not landed yet
	}
	if err := chain.TopUp(ctx, u.Chain, u.Key, id, u.Amount); err != nil {
		r.Err = err
		return r
	}
	u.pending[id] = pendingTopUp{before: a.Balance, at: time.Now()}
	r.TopUp = u.Amount
	return r
}

// report logs a top-up, and each new failure of a contract once.
func (u *TopUpper) report(r TopUpResult) {
	if r.Err != nil {
		if msg := r.Err.Error(); msg != u.lastErr[r.Contract] {
			u.lastErr[r.Contract] = msg
			u.Log.Warn().Err(r.Err).Str("proxy_contract", r.Contract.ToRaw()).
				Msg("top up: cannot read or refill the deposit; retrying at the next check")
		}
		return
	}
	delete(u.lastErr, r.Contract)
	if r.TopUp > 0 {
		u.Log.Info().Str("proxy_contract", r.Contract.ToRaw()).Str("left_ton", settle.FormatTON(r.Left)).
			Str("floor_ton", settle.FormatTON(u.Below)).Str("top_up_ton", settle.FormatTON(r.TopUp)).
			Msg("deposit below the floor: topped up")
	}
}
