package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/roles/proxy"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/tonchain"
	"github.com/cocoon-network/cocoon/settle/chaincmd"
	"github.com/cocoon-network/cocoon/settle/contracts"
	"github.com/cocoon-network/cocoon/settle/ledger"
	"github.com/cocoon-network/cocoon/settle/paystate"
)

// proxyPay is a proxy's metering: its ledger, the registry's prices and the deposits on its
// contract, kept current from the chain.
type proxyPay struct {
	chain              chain.Chain
	contract, registry ton.AccountID
	payKey             ed25519.PrivateKey
	ledger             *ledger.Ledger
	prices             atomic.Pointer[settle.Prices]
}

// newProxyPay checks that contract is bound to payKey, reads the registry's prices and opens the
// ledger at ledgerPath.
func newProxyPay(ctx context.Context, ch chain.Chain, payKey ed25519.PrivateKey, contract, registry ton.AccountID, ledgerPath string) (*proxyPay, error) {
	ps, err := chain.Proxy(ctx, ch, contract)
	if err != nil {
		return nil, fmt.Errorf("payments.proxy_contract %s: %w", contract.ToRaw(), err)
	}
	pub := payKey.Public().(ed25519.PublicKey)
	if !pub.Equal(ps.Key) {
		return nil, fmt.Errorf("payments.proxy_contract %s is bound to another payment key; deploy one for %x with `cocoon chain proxy deploy`",
			contract.ToRaw(), []byte(pub))
	}
	reg, err := chain.Registry(ctx, ch, registry)
	if err != nil {
		return nil, fmt.Errorf("payments.registry %s: %w", registry.ToRaw(), err)
	}
	pp := &proxyPay{chain: ch, contract: contract, registry: registry, payKey: payKey}
	prices := reg.Params.Prices
	pp.prices.Store(&prices)
	if pp.ledger, err = ledger.Open(ledgerPath, contract, payKey, ledger.Options{}); err != nil {
		return nil, err
	}
	return pp, nil
}

// payments is what the proxy role takes.
func (pp *proxyPay) payments() *proxy.Payments {
	return &proxy.Payments{
		Ledger: pp.ledger, Prices: func() settle.Prices { return *pp.prices.Load() },
		Account: pp.chain.WalletAddress, PaymentKey: pp.payKey.Public().(ed25519.PublicKey),
	}
}

// watch keeps the ledger's deposits and the prices in step with the chain until ctx ends.
func (pp *proxyPay) watch(ctx context.Context, log zerolog.Logger) {
	onErr := func(err error) { log.Warn().Err(err).Msg("chain watch") }
	go func() {
		_ = chain.WatchDeposits(ctx, pp.chain, pp.contract, 300*time.Millisecond, func(id ton.AccountID, acc contracts.ClientAccount) {
			// What a client can be charged in all: its balance plus what was charged on chain.
			if err := pp.ledger.Deposit(id, acc.Balance+acc.Charged, acc.Stake); err != nil {
				onErr(err)
			}
		}, onErr)
	}()
	go func() {
		_ = chain.WatchRegistry(ctx, pp.chain, pp.registry, 2*time.Second, func(r contracts.Registry) {
			p := r.Params.Prices
			pp.prices.Store(&p)
			log.Info().Uint64("price_per_token", p.PricePerToken).Uint64("worker_fee_per_token", p.WorkerFeePerToken).Msg("registry prices")
		}, onErr)
	}()
}

// partyPay is a client's or worker's side: its wallet, the latest states the proxies signed for
// it, and their submission to the chain once they moved by the threshold.
type partyPay struct {
	chain     chain.Chain
	key       ed25519.PrivateKey
	account   ton.AccountID
	states    *paystate.Store
	threshold uint64
}

func newPartyPay(ch chain.Chain, key ed25519.PrivateKey, kind settle.Kind, dir string, threshold uint64) (*partyPay, error) {
	acct, err := ch.WalletAddress(key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	st, err := paystate.Open(dir, kind, acct)
	if err != nil {
		return nil, err
	}
	pp := &partyPay{chain: ch, key: key, account: acct, states: st, threshold: threshold}
	st.SetReader(func(ctx context.Context, proxy ton.AccountID) (paystate.Account, error) {
		ps, err := chain.Proxy(ctx, ch, proxy)
		if err != nil {
			return paystate.Account{}, err
		}
		if kind == settle.KindClientCharged {
			a := ps.Clients[acct]
			return paystate.Account{Balance: a.Balance, Stake: a.Stake, Settled: a.Charged}, nil
		}
		return paystate.Account{Settled: ps.Workers[acct].Paid}, nil
	})
	return pp, nil
}

// autoSubmit submits a held state once it is threshold nanoTON ahead of what its proxy contract
// has accepted (checked every interval), so that earnings are paid and charges settled without
// an operator. A zero threshold leaves submission to `cocoon chain submit`.
func (pp *partyPay) autoSubmit(ctx context.Context, every time.Duration, log zerolog.Logger) {
	if pp.threshold == 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, st := range pp.states.All() {
			ps, err := chain.Proxy(ctx, pp.chain, st.State.Proxy)
			if err != nil {
				log.Warn().Err(err).Msg("read proxy contract")
				continue
			}
			var accepted uint64
			if st.State.Kind == settle.KindClientCharged {
				accepted = ps.Clients[pp.account].Charged
			} else {
				accepted = ps.Workers[pp.account].Paid
			}
			if st.State.Total < accepted+pp.threshold {
				continue
			}
			if err := chain.SubmitState(ctx, pp.chain, pp.key, st); err != nil {
				log.Warn().Err(err).Msg("submit payment state")
				continue
			}
			log.Info().Str("kind", st.State.Kind.String()).Uint64("total", st.State.Total).Uint64("seqno", st.State.Seqno).
				Msg("payment state settled on chain")
		}
	}
}

// chains shares one open chain per backend within the process: a local chain file can be opened
// only once, and the demo and tests run several roles in one process.
var chains struct {
	sync.Mutex
	open map[chaincmd.Backend]chain.Chain
}

func roleChain(ctx context.Context, p config.Payments, data string) (chain.Chain, error) {
	b := chaincmd.Backend{Local: p.ChainData, ConfigPath: p.TONConfig}
	switch p.Chain {
	case "local":
		b.ConfigPath = ""
		if b.Local == "" {
			b.Local = filepath.Join(data, "chain.db")
		}
	case "ton":
		b.Local = ""
		b.Network = tonchain.Network(p.Network)
		if _, err := b.Network.GlobalID(); err != nil {
			return nil, fmt.Errorf("payments.network: %w", err)
		}
	default:
		return nil, errors.New("payments.chain: not set")
	}
	chains.Lock()
	defer chains.Unlock()
	if c, ok := chains.open[b]; ok {
		return c, nil
	}
	c, _, err := chaincmd.Open(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("open chain: %w", err)
	}
	if chains.open == nil {
		chains.open = map[chaincmd.Backend]chain.Chain{}
	}
	chains.open[b] = c
	return c, nil
}

// roleKey is the key a role's payments use: the configured file, or <data>/keys/<name>.key made
// on first use.
func roleKey(p config.Payments, data, name string) (ed25519.PrivateKey, error) {
	if p.Key != "" {
		return chain.LoadKey(p.Key)
	}
	return keyIn(filepath.Join(data, "keys"), name)
}

// standaloneProxyPay wires `cocoon proxy` to its chain when payments are configured.
func standaloneProxyPay(ctx context.Context, cfg config.Config, log zerolog.Logger) (*proxyPay, error) {
	p := cfg.Payments
	if p.Chain == "" {
		log.Warn().Msg("no payments.chain: requests are served without charge")
		return nil, nil
	}
	ch, err := roleChain(ctx, p, cfg.Data)
	if err != nil {
		return nil, err
	}
	key, err := roleKey(p, cfg.Data, "proxy-payment")
	if err != nil {
		return nil, fmt.Errorf("payments.key: %w", err)
	}
	contract, _ := ton.ParseAccountID(p.ProxyContract) // validated
	registry, _ := ton.ParseAccountID(p.Registry)
	pp, err := newProxyPay(ctx, ch, key, contract, registry, filepath.Join(cfg.Data, "ledger.db"))
	if err != nil {
		return nil, err
	}
	log.Info().Hex("payment_key", key.Public().(ed25519.PublicKey)).Str("proxy_contract", contract.ToRaw()).Msg("payments on")
	pp.watch(ctx, log)
	return pp, nil
}

// standaloneParty wires `cocoon client` or `cocoon worker` to its chain when payments are configured.
func standaloneParty(ctx context.Context, cfg config.Config, role string, kind settle.Kind, log zerolog.Logger) (*partyPay, error) {
	p := cfg.Payments
	if p.Chain == "" {
		return nil, nil
	}
	ch, err := roleChain(ctx, p, cfg.Data)
	if err != nil {
		return nil, err
	}
	key, err := roleKey(p, cfg.Data, role+"-wallet")
	if err != nil {
		return nil, fmt.Errorf("payments.key: %w", err)
	}
	pay, err := newPartyPay(ch, key, kind, filepath.Join(cfg.Data, role+"-states"), p.SubmitThreshold)
	if err != nil {
		return nil, err
	}
	log.Info().Str("wallet", pay.account.ToHuman(true, false)).Msg("payments on")
	go pay.autoSubmit(ctx, submitEvery, log)
	return pay, nil
}

// submitEvery is how often clients and workers check whether a state is due on chain.
var submitEvery = 10 * time.Second
