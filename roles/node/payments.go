package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/chains"
	"github.com/cocoon-network/cocoon/settle/chain/tonchain"
	"github.com/cocoon-network/cocoon/settle/meter"
	"github.com/cocoon-network/cocoon/settle/paystate"
)

// submitEvery is how often clients and workers check whether a state is due on chain.
var submitEvery = 10 * time.Second

// Party is a client's or worker's side of the money: its wallet, the latest states the proxies
// signed for it, and the submitter that puts them on chain once they are due.
type Party struct {
	Key       ed25519.PrivateKey
	Account   ton.AccountID
	States    *paystate.Store
	Submitter *paystate.Submitter
}

// NewParty opens the states of kind kept in dir for key's wallet on ch; a zero threshold leaves
// their submission to `cocoon chain submit`.
func NewParty(ch chain.Chain, key ed25519.PrivateKey, kind settle.Kind, dir string, threshold uint64, log zerolog.Logger) (*Party, error) {
	acct, err := ch.WalletAddress(key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	st, err := paystate.Open(dir, kind, acct)
	if err != nil {
		return nil, err
	}
	st.SetReader(paystate.ChainReader(ch, kind, acct))
	return &Party{Key: key, Account: acct, States: st, Submitter: &paystate.Submitter{
		Store: st, Chain: ch, Key: key, Threshold: threshold, Every: submitEvery, Log: log,
	}}, nil
}

// where is the chain the payments section names.
func where(p config.Payments, data string) (chains.Where, error) {
	switch p.Chain {
	case "local":
		w := chains.Where{Local: p.ChainData}
		if w.Local == "" {
			w.Local = filepath.Join(data, "chain.db")
		}
		return w, nil
	case "ton":
		w := chains.Where{ConfigPath: p.TONConfig, Network: tonchain.Network(p.Network)}
		if _, err := w.Network.GlobalID(); err != nil {
			return w, fmt.Errorf("payments.network: %w", err)
		}
		return w, nil
	case "toncenter":
		w := chains.Where{URL: p.ChainURL, APIKey: p.ChainAPIKey, Network: tonchain.Network(p.Network)}
		if w.URL == "" {
			return w, errors.New("payments.chain_url: required with chain toncenter (e.g. http://127.0.0.1:8081 for `cocoon chain serve`)")
		}
		if w.Network == "" {
			w.Network = tonchain.Mainnet // the local chain's, which `cocoon chain serve` serves
		}
		if _, err := w.Network.GlobalID(); err != nil {
			return w, fmt.Errorf("payments.network: %w", err)
		}
		return w, nil
	default:
		return chains.Where{}, errors.New("payments.chain: not set")
	}
}

// openChain opens the chain of cfg's payments in set.
func openChain(ctx context.Context, set *chains.Set, cfg config.Config) (chain.Chain, error) {
	w, err := where(cfg.Payments, cfg.Data)
	if err != nil {
		return nil, err
	}
	return set.Open(ctx, w)
}

// proxyMeter wires `cocoon proxy` to its chain when payments are configured (nil when not).
func proxyMeter(ctx context.Context, set *chains.Set, cfg config.Config, log zerolog.Logger) (*meter.Meter, error) {
	p := cfg.Payments
	if p.Chain == "" {
		log.Warn().Msg("no payments.chain: requests are served without charge")
		return nil, nil
	}
	ch, err := openChain(ctx, set, cfg)
	if err != nil {
		return nil, err
	}
	key, err := roleKey(p, cfg.Data, "proxy-payment")
	if err != nil {
		return nil, fmt.Errorf("payments.key: %w", err)
	}
	m, err := meter.New(ctx, ch, meter.Config{Contract: p.ProxyContract.AccountID, Registry: p.Registry.AccountID,
		PaymentKey: key, LedgerPath: filepath.Join(cfg.Data, "ledger.db")}, log)
	if err != nil {
		return nil, err
	}
	log.Info().Hex("payment_key", m.PaymentKey()).Str("proxy_contract", m.Contract().ToRaw()).Msg("payments on")
	return m, nil
}

// party wires `cocoon client` or `cocoon worker` to its chain when payments are configured (nil
// when not).
func party(ctx context.Context, set *chains.Set, cfg config.Config, role string, kind settle.Kind, log zerolog.Logger) (*Party, error) {
	p := cfg.Payments
	if p.Chain == "" {
		return nil, nil
	}
	ch, err := openChain(ctx, set, cfg)
	if err != nil {
		return nil, err
	}
	key, err := roleKey(p, cfg.Data, role+"-wallet")
	if err != nil {
		return nil, fmt.Errorf("payments.key: %w", err)
	}
	pay, err := NewParty(ch, key, kind, filepath.Join(cfg.Data, role+"-states"), p.SubmitThreshold, log)
	if err != nil {
		return nil, err
	}
	log.Info().Str("wallet", pay.Account.ToHuman(true, false)).Msg("payments on")
	return pay, nil
}

// ChainWhere is the chain cfg's payments section names, for tools that read it as the node
// would (`cocoon doctor`).
func ChainWhere(cfg config.Config) (chains.Where, error) { return where(cfg.Payments, cfg.Data) }
