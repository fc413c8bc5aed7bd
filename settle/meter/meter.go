// Package meter is a proxy's metering runtime: its ledger, the registry's current prices and the
// client deposits on its contract, kept in step with the chain. The proxy role charges through the
// ledger; Run owns the goroutines that watch the chain and the one that settles charges on it.
//
// Settling: the ledger never lets a client's unsettled charges exceed what the contract locks for
// it (ledger.Reserve). Before that bound is reached the meter submits the client's latest signed
// charged state itself — once the unsettled part passes half of what is locked, and as soon as the
// client starts closing (its funds leave after the close delay). The gas comes from the wallet of
// the payment key (chain.WalletAddress of its public key), which the operator funds. A failed
// submission is logged and retried with backoff; it never charges twice: the contract refuses old
// sequence numbers and paystate.Submit skips what is already on chain.
package meter

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/contracts"
	"github.com/cocoon-network/cocoon/settle/ledger"
	"github.com/cocoon-network/cocoon/settle/paystate"
)

// Config says which contracts a proxy meters against.
type Config struct {
	Contract   ton.AccountID      // the proxy's own contract, bound to PaymentKey
	Registry   ton.AccountID      // the registry whose prices apply
	PaymentKey ed25519.PrivateKey // signs payment states; named in the proxy's attested claims
	LedgerPath string             // the ledger's database file
	// DepositsEvery and PricesEvery are how often the chain is read; zero: 300ms and 2s. Charges
	// due on chain are looked for every DepositsEvery too.
	DepositsEvery, PricesEvery time.Duration
}

// maxRetryDelay caps the backoff between failed submissions for one client.
const maxRetryDelay = time.Minute

// lowGas: below this balance the gas wallet is reported at start (a few dozen submissions).
const lowGas = 20 * chain.GasAmount

// Meter is one proxy's metering.
type Meter struct {
	cfg     Config
	chain   chain.Chain
	ledger  *ledger.Ledger
	prices  atomic.Pointer[settle.Prices]
	coefCap atomic.Uint32 // the registry's cap on a worker's coefficient
	log     zerolog.Logger

	kick  chan struct{}                // a client started closing: look for due charges now
	retry map[ton.AccountID]retryState // owned by the settling goroutine
}

type retryState struct {
	at    time.Time
	delay time.Duration
}

// New checks that the contract is bound to the payment key, reads the registry's prices and
// opens the ledger.
func New(ctx context.Context, ch chain.Chain, cfg Config, log zerolog.Logger) (*Meter, error) {
	ps, err := chain.Proxy(ctx, ch, cfg.Contract)
	if err != nil {
		return nil, fmt.Errorf("payments.proxy_contract %s: %w", cfg.Contract.ToRaw(), err)
	}
	pub := cfg.PaymentKey.Public().(ed25519.PublicKey)
	if !pub.Equal(ps.Key) {
		return nil, fmt.Errorf("payments.proxy_contract %s is bound to another payment key; deploy one for %x with `cocoon chain proxy deploy`",
			cfg.Contract.ToRaw(), []byte(pub))
	}
	reg, err := chain.Registry(ctx, ch, cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("payments.registry %s: %w", cfg.Registry.ToRaw(), err)
	}
	if cfg.DepositsEvery == 0 {
		cfg.DepositsEvery = 300 * time.Millisecond
	}
	if cfg.PricesEvery == 0 {
		cfg.PricesEvery = 2 * time.Second
	}
	m := &Meter{cfg: cfg, chain: ch, log: log.With().Str("component", "meter").Logger(),
		kick: make(chan struct{}, 1), retry: map[ton.AccountID]retryState{}}
	gas, err := ch.WalletAddress(pub)
	if err != nil {
		return nil, fmt.Errorf("payment key wallet: %w", err)
	}
	if bal, err := chain.Balance(ctx, ch, gas); err == nil && bal < lowGas {
		m.log.Warn().Str("wallet", gas.ToRaw()).Str("balance_ton", settle.FormatTON(bal)).
			Msg("the payment key's wallet pays the gas of settling client charges; fund it (cocoon chain balance --key <payment key> shows it)")
	}
	prices := reg.Params.Prices
	m.prices.Store(&prices)
	m.coefCap.Store(reg.Params.CoefficientCap())
	if m.ledger, err = ledger.Open(cfg.LedgerPath, cfg.Contract, cfg.PaymentKey, ledger.Options{}); err != nil {
		return nil, err
	}
	return m, nil
}

// Ledger is where requests are reserved and charged.
func (m *Meter) Ledger() *ledger.Ledger { return m.ledger }

// Prices are the registry's prices as last read.
func (m *Meter) Prices() settle.Prices { return *m.prices.Load() }

// CoefficientCap is the highest worker price coefficient the registry allows, as last read.
func (m *Meter) CoefficientCap() uint32 { return m.coefCap.Load() }

// PaymentKey is the public key that signs this proxy's payment states.
func (m *Meter) PaymentKey() ed25519.PublicKey { return m.cfg.PaymentKey.Public().(ed25519.PublicKey) }

// Contract is the proxy's contract.
func (m *Meter) Contract() ton.AccountID { return m.cfg.Contract }

// Account maps a client's key (its certificate key, which is its wallet key) to its wallet.
func (m *Meter) Account(pub ed25519.PublicKey) (ton.AccountID, error) {
	return m.chain.WalletAddress(pub)
}

// Run keeps the ledger's deposits and the prices in step with the chain and settles due
// charges until ctx ends, and returns once its goroutines stopped.
func (m *Meter) Run(ctx context.Context) error {
	onErr := func(err error) { m.log.Warn().Err(err).Msg("chain watch") }
	var wg sync.WaitGroup
	errs := make([]error, 3)
	wg.Go(func() {
		errs[0] = chain.WatchDeposits(ctx, m.chain, m.cfg.Contract, m.cfg.DepositsEvery, func(id ton.AccountID, acc contracts.ClientAccount) {
			closing := acc.ClosingAt != 0 || !acc.Open
			if err := m.ledger.Observe(id, ledger.OnChain{Balance: acc.Balance, Stake: acc.Stake, Charged: acc.Charged, Closing: closing}); err != nil {
				onErr(err)
			}
			if closing {
				select {
				case m.kick <- struct{}{}:
				default:
				}
			}
		}, onErr)
	})
	wg.Go(func() { m.settleLoop(ctx) })
	// What workers were paid: the ledger's Worker.Paid, which the stats show beside what each
	// worker earned (workers submit their own states, so only the chain knows).
	wg.Go(func() {
		errs[2] = chain.WatchPayouts(ctx, m.chain, m.cfg.Contract, m.cfg.PricesEvery, func(id ton.AccountID, acc contracts.WorkerAccount) {
			if err := m.ledger.Paid(id, acc.Paid); err != nil {
				onErr(err)
			}
		}, onErr)
	})
	wg.Go(func() {
		errs[1] = chain.WatchRegistry(ctx, m.chain, m.cfg.Registry, m.cfg.PricesEvery, func(r contracts.Registry) {
			p := r.Params.Prices
			m.prices.Store(&p)
			m.coefCap.Store(r.Params.CoefficientCap())
			m.log.Info().Uint64("price_per_token", p.PricePerToken).Uint64("worker_fee_per_token", p.WorkerFeePerToken).
				Uint32("max_coefficient", r.Params.CoefficientCap()).Msg("registry prices")
		}, onErr)
	})
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
	return nil
}

// due reports whether a client's charges should go on chain now: unsettled charges past half of
// what the contract locks, or any unsettled charge once the client is closing.
func due(c ledger.Client) bool {
	u := c.Unsettled()
	return u > 0 && (c.Closing || u > c.Locked()/2)
}

func (m *Meter) settleLoop(ctx context.Context) {
	t := time.NewTicker(m.cfg.DepositsEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.kick:
		}
		m.settleDue(ctx)
	}
}

// settleDue submits the latest charged state of every client whose charges are due on chain
// (Run calls it every DepositsEvery and when a client starts closing).
func (m *Meter) settleDue(ctx context.Context) {
	now := time.Now()
	for id, c := range m.ledger.Unsettled() {
		if ctx.Err() != nil {
			return
		}
		if !due(c) || now.Before(m.retry[id].at) {
			continue
		}
		if err := m.submit(ctx, id, c); err != nil {
			r := m.retry[id]
			r.delay = min(max(2*r.delay, m.cfg.DepositsEvery), maxRetryDelay)
			r.at = time.Now().Add(r.delay)
			m.retry[id] = r
			if ctx.Err() == nil {
				m.log.Warn().Err(err).Str("client", id.ToRaw()).Dur("retry_in", r.delay).Msg("settle client charges on chain")
			}
			continue
		}
		delete(m.retry, id)
	}
}

func (m *Meter) submit(ctx context.Context, id ton.AccountID, c ledger.Client) error {
	s, err := m.ledger.Current(id, settle.KindClientCharged)
	if err != nil {
		return err
	}
	out, err := paystate.Submit(ctx, m.chain, m.cfg.PaymentKey, s)
	if err != nil {
		return err
	}
	if out.Skipped {
		if out.Before.Settled >= s.State.Total {
			return nil // already on chain (the client submitted it); the next reading shows it
		}
		// The chain holds this seqno or a later one, yet less than the ledger charged: the
		// ledger is behind a state it signed; charges cannot land until that is resolved.
		return fmt.Errorf("%w: proxy contract holds seqno %d for the client, ledger at seqno %d with %d nanoTON unsettled",
			ledger.ErrRollback, out.Seqno, s.State.Seqno, c.Unsettled())
	}
	// The next reading of the contract (WatchDeposits) brings the ledger up to date.
	m.log.Info().Str("client", id.ToRaw()).Uint64("seqno", s.State.Seqno).Uint64("total", s.State.Total).
		Bool("closing", c.Closing).Msg("client charges settled on chain")
	return nil
}

// Close closes the ledger; call it after Run returned.
func (m *Meter) Close() error { return m.ledger.Close() }
