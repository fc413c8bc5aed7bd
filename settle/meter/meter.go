// Package meter is a proxy's metering runtime: its ledger, the registry's current prices and the
// client deposits on its contract, kept in step with the chain. The proxy role charges through the
// ledger; Run owns the goroutines that watch the chain.
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
)

// Config says which contracts a proxy meters against.
type Config struct {
	Contract   ton.AccountID      // the proxy's own contract, bound to PaymentKey
	Registry   ton.AccountID      // the registry whose prices apply
	PaymentKey ed25519.PrivateKey // signs payment states; named in the proxy's attested claims
	LedgerPath string             // the ledger's database file
	// DepositsEvery and PricesEvery are how often the chain is read; zero: 300ms and 2s.
	DepositsEvery, PricesEvery time.Duration
}

// Meter is one proxy's metering.
type Meter struct {
	cfg    Config
	chain  chain.Chain
	ledger *ledger.Ledger
	prices atomic.Pointer[settle.Prices]
	log    zerolog.Logger
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
	m := &Meter{cfg: cfg, chain: ch, log: log.With().Str("component", "meter").Logger()}
	prices := reg.Params.Prices
	m.prices.Store(&prices)
	if m.ledger, err = ledger.Open(cfg.LedgerPath, cfg.Contract, cfg.PaymentKey, ledger.Options{}); err != nil {
		return nil, err
	}
	return m, nil
}

// Ledger is where requests are reserved and charged.
func (m *Meter) Ledger() *ledger.Ledger { return m.ledger }

// Prices are the registry's prices as last read.
func (m *Meter) Prices() settle.Prices { return *m.prices.Load() }

// PaymentKey is the public key that signs this proxy's payment states.
func (m *Meter) PaymentKey() ed25519.PublicKey { return m.cfg.PaymentKey.Public().(ed25519.PublicKey) }

// Contract is the proxy's contract.
func (m *Meter) Contract() ton.AccountID { return m.cfg.Contract }

// Account maps a client's key (its certificate key, which is its wallet key) to its wallet.
func (m *Meter) Account(pub ed25519.PublicKey) (ton.AccountID, error) { return m.chain.WalletAddress(pub) }

// Run keeps the ledger's deposits and the prices in step with the chain until ctx ends, and
// returns once both watchers stopped.
func (m *Meter) Run(ctx context.Context) error {
	onErr := func(err error) { m.log.Warn().Err(err).Msg("chain watch") }
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() {
		errs[0] = chain.WatchDeposits(ctx, m.chain, m.cfg.Contract, m.cfg.DepositsEvery, func(id ton.AccountID, acc contracts.ClientAccount) {
			// What a client can be charged in all: its balance plus what was charged on chain.
			if err := m.ledger.Deposit(id, acc.Balance+acc.Charged, acc.Stake); err != nil {
				onErr(err)
			}
		}, onErr)
	})
	wg.Go(func() {
		errs[1] = chain.WatchRegistry(ctx, m.chain, m.cfg.Registry, m.cfg.PricesEvery, func(r contracts.Registry) {
			p := r.Params.Prices
			m.prices.Store(&p)
			m.log.Info().Uint64("price_per_token", p.PricePerToken).Uint64("worker_fee_per_token", p.WorkerFeePerToken).Msg("registry prices")
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

// Close closes the ledger; call it after Run returned.
func (m *Meter) Close() error { return m.ledger.Close() }
