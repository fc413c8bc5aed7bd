package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/roles/proxy"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/local"
	"github.com/cocoon-network/cocoon/settle/chaincmd"
	"github.com/cocoon-network/cocoon/settle/contracts"
	"github.com/cocoon-network/cocoon/settle/ledger"
	"github.com/cocoon-network/cocoon/settle/paystate"
)

// demoDeposit is what the demo client keeps deposited with the demo proxy.
const demoDeposit = 2_000_000_000 // 2 TON

// money is the demo's settlement: the local chain with a registry, the proxy's contract, funded
// client and worker wallets, and the proxy's ledger. Every role uses the real settle code paths.
type money struct {
	chain                        *local.Chain
	net                          local.Demo
	clientKey, workerKey, payKey ed25519.PrivateKey
	operatorKey                  ed25519.PrivateKey
	clientAcct, workerAcct       ton.AccountID
	ledger                       *ledger.Ledger
	prices                       atomic.Pointer[settle.Prices]
	clientStates, workerStates   *paystate.Store
}

// keyIn loads a wallet key from dir, making it on first use.
func keyIn(dir, name string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, name+".key")
	k, err := chain.LoadKey(path)
	if errors.Is(err, os.ErrNotExist) {
		return chain.GenerateKey(path)
	}
	return k, err
}

func setupMoney(ctx context.Context, data string, proxyImage, workerImage attest.ImageHash, weightsDigest string) (*money, error) {
	ch, err := local.OpenDir(data, local.Options{})
	if err != nil {
		return nil, fmt.Errorf("local chain: %w", err)
	}
	m := &money{chain: ch}
	keys := filepath.Join(data, "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		return nil, err
	}
	var owner ed25519.PrivateKey
	for name, k := range map[string]*ed25519.PrivateKey{"registry-owner": &owner, "proxy-operator": &m.operatorKey,
		"client-wallet": &m.clientKey, "worker-wallet": &m.workerKey, "proxy-payment": &m.payKey} {
		if *k, err = keyIn(keys, name); err != nil {
			return nil, fmt.Errorf("demo key %s: %w", name, err)
		}
	}
	var model [32]byte
	if b, err := hex.DecodeString(strings.TrimPrefix(weightsDigest, "sha256:")); err == nil && len(b) == 32 {
		copy(model[:], b)
	}
	m.net, err = local.SetupDemo(ctx, ch, local.DemoConfig{
		Owner: owner, Operator: m.operatorKey, PaymentKey: m.payKey.Public().(ed25519.PublicKey), Endpoint: "127.0.0.1:4433",
		Params:      contracts.DefaultParams(),
		Fund:        []ed25519.PublicKey{m.clientKey.Public().(ed25519.PublicKey), m.workerKey.Public().(ed25519.PublicKey)},
		ProxyImages: [][32]byte{proxyImage}, WorkerImages: [][32]byte{workerImage}, Models: [][32]byte{model},
	})
	if err != nil {
		return nil, fmt.Errorf("demo network on the local chain: %w", err)
	}
	reg, err := chain.Registry(ctx, ch, m.net.Registry)
	if err != nil {
		return nil, err
	}
	prices := reg.Params.Prices
	m.prices.Store(&prices)
	if m.clientAcct, err = ch.WalletAddress(m.clientKey.Public().(ed25519.PublicKey)); err != nil {
		return nil, err
	}
	if m.workerAcct, err = ch.WalletAddress(m.workerKey.Public().(ed25519.PublicKey)); err != nil {
		return nil, err
	}
	// Keep the client's deposit topped up, as an app developer would.
	ps, err := chain.Proxy(ctx, ch, m.net.Proxy)
	if err != nil {
		return nil, err
	}
	if acc := ps.Clients[m.clientAcct]; acc.Balance < demoDeposit/2 {
		if err := chain.TopUp(ctx, ch, m.clientKey, m.net.Proxy, demoDeposit); err != nil {
			return nil, fmt.Errorf("client top-up: %w", err)
		}
	}
	if m.ledger, err = ledger.Open(filepath.Join(data, "proxy-ledger.db"), m.net.Proxy, m.payKey, ledger.Options{}); err != nil {
		return nil, err
	}
	if m.clientStates, err = paystate.Open(filepath.Join(data, "client-states"), settle.KindClientCharged, m.clientAcct); err != nil {
		return nil, err
	}
	if m.workerStates, err = paystate.Open(filepath.Join(data, "worker-states"), settle.KindWorkerEarned, m.workerAcct); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *money) close() {
	_ = m.ledger.Close()
	_ = m.chain.Close()
}

// payments is the proxy's side.
func (m *money) payments() *proxy.Payments {
	return &proxy.Payments{
		Ledger: m.ledger, Prices: func() settle.Prices { return *m.prices.Load() },
		Account: m.chain.WalletAddress, PaymentKey: m.payKey.Public().(ed25519.PublicKey),
	}
}

// watch keeps the ledger's deposits and the prices in step with the chain until ctx ends.
func (m *money) watch(ctx context.Context, log zerolog.Logger) {
	onErr := func(err error) { log.Warn().Err(err).Msg("chain watch") }
	go func() {
		_ = chain.WatchDeposits(ctx, m.chain, m.net.Proxy, 300*time.Millisecond, func(id ton.AccountID, acc contracts.ClientAccount) {
			if err := m.ledger.Deposit(id, acc.Balance+acc.Charged, acc.Stake); err != nil {
				onErr(err)
			}
		}, onErr)
	}()
	go func() {
		_ = chain.WatchRegistry(ctx, m.chain, m.net.Registry, 2*time.Second, func(r contracts.Registry) {
			p := r.Params.Prices
			m.prices.Store(&p)
		}, onErr)
	}()
}

// deposited waits until the ledger has seen the client's deposit.
func (m *money) deposited() error {
	c, err := m.ledger.Client(m.clientAcct)
	if err != nil {
		return err
	}
	if c.Available() == 0 {
		return errors.New("client deposit not seen yet")
	}
	return nil
}

// settleOnChain submits the latest signed states (the proxy operator does here; client, worker
// or anyone may at any time) and reports the balances that moved.
func (m *money) settleOnChain(ctx context.Context, out io.Writer) error {
	pay := m.payKey.Public().(ed25519.PublicKey)
	before, err := chain.WalletBalance(ctx, m.chain, m.workerKey.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	ws, ok := m.workerStates.Latest(pay)
	if !ok {
		return errors.New("the worker holds no earned state")
	}
	cs, ok := m.clientStates.Latest(pay)
	if !ok {
		return errors.New("the client holds no charged state")
	}
	// The worker is paid what the proxy signed it earned; the client's charge moves to the proxy.
	if err := chain.SubmitState(ctx, m.chain, m.operatorKey, cs); err != nil {
		return fmt.Errorf("submit client state: %w", err)
	}
	if err := chain.SubmitState(ctx, m.chain, m.operatorKey, ws); err != nil {
		return fmt.Errorf("submit worker state: %w", err)
	}
	after, err := chain.WalletBalance(ctx, m.chain, m.workerKey.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	ps, err := chain.Proxy(ctx, m.chain, m.net.Proxy)
	if err != nil {
		return err
	}
	acc := ps.Clients[m.clientAcct]
	fmt.Fprintf(out, "Settled on the local chain: client charged %s TON in all (deposit left %s TON); "+
		"worker paid %s TON in all, its wallet %s → %s TON\n",
		chaincmd.FormatTON(acc.Charged), chaincmd.FormatTON(acc.Balance), chaincmd.FormatTON(ps.Workers[m.workerAcct].Paid),
		chaincmd.FormatTON(before), chaincmd.FormatTON(after))
	if after <= before {
		return fmt.Errorf("the worker's payout did not reach its wallet (%d → %d nanoTON)", before, after)
	}
	return nil
}
