package paystate

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

// OnChain is what proxy contract p holds for party's totals of kind: the last accepted seqno and
// total, and for clients the deposit and stake left.
func OnChain(p contracts.ProxyState, kind settle.Kind, party ton.AccountID) (seqno uint64, a Account) {
	if kind == settle.KindWorkerEarned {
		w := p.Workers[party]
		return w.Seqno, Account{Settled: w.Paid}
	}
	c := p.Clients[party]
	return c.Seqno, Account{Balance: c.Balance, Stake: c.Stake, Settled: c.Charged}
}

// Due reports whether s is worth submitting to p: it is newer than what p accepted and its
// total is at least threshold nanoTON ahead (threshold 0: any newer state). This is the one rule
// by which a party, an operator command or the demo decides that a state goes on chain.
func Due(p contracts.ProxyState, s settle.State, threshold uint64) bool {
	seqno, a := OnChain(p, s.Kind, s.Party)
	return s.Seqno > seqno && s.Total >= a.Settled && s.Total-a.Settled >= threshold
}

// Submitted is what one submission moved on chain.
type Submitted struct {
	Skipped bool    // the contract already held this seqno or a later one: nothing was sent
	Seqno   uint64  // the seqno on chain afterwards
	Before  Account // the party's account before
	After   Account // and after
}

// Submit sends s to its proxy contract from key's wallet, after checking what the contract would
// bounce (so a bad state costs no fee): it must be signed by the contract's payment key and not
// go back. A state the contract already holds is skipped. It reads the contract again to confirm
// the contract kept the state.
func Submit(ctx context.Context, ch chain.Chain, key ed25519.PrivateKey, s settle.SignedState) (Submitted, error) {
	st := s.State
	p, err := chain.Proxy(ctx, ch, st.Proxy)
	if err != nil {
		return Submitted{}, err
	}
	if err := s.Verify(p.Key); err != nil {
		return Submitted{}, fmt.Errorf("not signed by proxy contract %s's payment key: %w", st.Proxy.ToRaw(), err)
	}
	var out Submitted
	out.Seqno, out.Before = OnChain(p, st.Kind, st.Party)
	if st.Seqno <= out.Seqno {
		out.Skipped, out.After = true, out.Before
		return out, nil
	}
	if st.Total < out.Before.Settled {
		return out, fmt.Errorf("%w: total %s TON is below the %s TON on chain", settle.ErrStateRefused,
			settle.FormatTON(st.Total), settle.FormatTON(out.Before.Settled))
	}
	if err := chain.SubmitState(ctx, ch, key, s); err != nil {
		return out, err
	}
	if p, err = chain.Proxy(ctx, ch, st.Proxy); err != nil {
		return out, err
	}
	out.Seqno, out.After = OnChain(p, st.Kind, st.Party)
	if out.Seqno != st.Seqno {
		return out, fmt.Errorf("%w: proxy contract %s kept seqno %d", settle.ErrStateRefused, st.Proxy.ToRaw(), out.Seqno)
	}
	return out, nil
}

// Submitter puts a party's held states on chain once they are due, so that earnings are paid and
// charges settled without an operator.
type Submitter struct {
	Store     *Store
	Chain     chain.Chain
	Key       ed25519.PrivateKey // pays the gas
	Threshold uint64             // nanoTON a state must be ahead; 0: Run returns at once
	Every     time.Duration      // how often the states are checked
	Log       zerolog.Logger
}

// Run checks the held states every s.Every until ctx ends. A zero threshold leaves submission to
// `cocoon chain submit`.
func (s *Submitter) Run(ctx context.Context) error {
	if s.Threshold == 0 {
		return nil
	}
	t := time.NewTicker(s.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		s.Once(ctx)
	}
}

// Once submits every held state that is due now.
func (s *Submitter) Once(ctx context.Context) {
	for _, st := range s.Store.All() {
		p, err := chain.Proxy(ctx, s.Chain, st.State.Proxy)
		if err != nil {
			s.Log.Warn().Err(err).Msg("read proxy contract")
			continue
		}
		if !Due(p, st.State, s.Threshold) {
			continue
		}
		if _, err := Submit(ctx, s.Chain, s.Key, st); err != nil {
			s.Log.Warn().Err(err).Msg("submit payment state")
			continue
		}
		s.Log.Info().Str("kind", st.State.Kind.String()).Uint64("total", st.State.Total).Uint64("seqno", st.State.Seqno).
			Msg("payment state settled on chain")
	}
}

// ChainReader is the Reader that reads the party's account from the chain.
func ChainReader(ch chain.Chain, kind settle.Kind, party ton.AccountID) Reader {
	return func(ctx context.Context, proxy ton.AccountID) (Account, error) {
		p, err := chain.Proxy(ctx, ch, proxy)
		if err != nil {
			return Account{}, err
		}
		_, a := OnChain(p, kind, party)
		return a, nil
	}
}
