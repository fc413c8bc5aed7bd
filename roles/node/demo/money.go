package demo

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

	"github.com/rs/zerolog"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/roles/node"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/local"
	"github.com/cocoon-network/cocoon/settle/contracts"
	"github.com/cocoon-network/cocoon/settle/meter"
	"github.com/cocoon-network/cocoon/settle/paystate"
)

// deposit is what the demo client keeps deposited with the demo proxy.
const deposit = 2_000_000_000 // 2 TON

// Money is the demo's settlement: the local chain with a registry, the proxy's contract, funded
// client and worker wallets, the proxy's meter and the states client and worker keep. Every role
// uses the same code as on TON; only the chain differs.
type Money struct {
	Chain       *local.Chain
	Net         local.Demo
	operatorKey ed25519.PrivateKey
	Meter       *meter.Meter
	client      *node.Party
	worker      *node.Party
}

func setupMoney(ctx context.Context, data string, proxyImage, workerImage attest.ImageHash, weightsDigest string, log zerolog.Logger) (m *Money, err error) {
	ch, err := local.OpenDir(data, local.Options{})
	if err != nil {
		return nil, fmt.Errorf("local chain: %w", err)
	}
	m = &Money{Chain: ch}
	defer func() {
		if err != nil {
			m.close()
		}
	}()
	keys := filepath.Join(data, "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		return nil, err
	}
	var owner, clientKey, workerKey, payKey ed25519.PrivateKey
	for name, k := range map[string]*ed25519.PrivateKey{"registry-owner": &owner, "proxy-operator": &m.operatorKey,
		"client-wallet": &clientKey, "worker-wallet": &workerKey, "proxy-payment": &payKey} {
		if *k, err = node.KeyIn(keys, name); err != nil {
			return nil, fmt.Errorf("demo key %s: %w", name, err)
		}
	}
	var model [32]byte
	if b, err := hex.DecodeString(strings.TrimPrefix(weightsDigest, "sha256:")); err == nil && len(b) == 32 {
		copy(model[:], b)
	}
	m.Net, err = local.SetupDemo(ctx, ch, local.DemoConfig{
		Owner: owner,
		Proxies: []local.DemoProxy{{Operator: m.operatorKey, PaymentKey: payKey.Public().(ed25519.PublicKey),
			WorkerEndpoint: "127.0.0.1:4433"}},
		Params:      contracts.DefaultParams(),
		Fund:        []ed25519.PublicKey{clientKey.Public().(ed25519.PublicKey), workerKey.Public().(ed25519.PublicKey)},
		ProxyImages: [][32]byte{proxyImage}, WorkerImages: [][32]byte{workerImage}, Models: [][32]byte{model},
	})
	if err != nil {
		return nil, fmt.Errorf("demo network on the local chain: %w", err)
	}
	if m.client, err = node.NewParty(ch, clientKey, settle.KindClientCharged, filepath.Join(data, "client-states"), 0, log); err != nil {
		return nil, err
	}
	if m.worker, err = node.NewParty(ch, workerKey, settle.KindWorkerEarned, filepath.Join(data, "worker-states"), 0, log); err != nil {
		return nil, err
	}
	// Keep the client's deposit topped up, as an app developer would.
	ps, err := chain.Proxy(ctx, ch, m.Net.Proxy)
	if err != nil {
		return nil, err
	}
	if acc := ps.Clients[m.client.Account]; acc.Balance < deposit/2 {
		if err := chain.TopUp(ctx, ch, clientKey, m.Net.Proxy, deposit); err != nil {
			return nil, fmt.Errorf("client top-up: %w", err)
		}
	}
	m.Meter, err = meter.New(ctx, ch, meter.Config{Contract: m.Net.Proxy, Registry: m.Net.Registry, PaymentKey: payKey,
		LedgerPath: filepath.Join(data, "proxy-ledger.db")}, log)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Money) close() {
	if m.Meter != nil {
		_ = m.Meter.Close()
	}
	_ = m.Chain.Close()
}

// deposited waits until the ledger has seen the client's deposit.
func (m *Money) deposited() error {
	c, err := m.Meter.Ledger().Client(m.client.Account)
	if err != nil {
		return err
	}
	if c.Available() == 0 {
		return errors.New("client deposit not seen yet")
	}
	return nil
}

// held reports whether client and worker both hold a state the proxy signed.
func (m *Money) held() error {
	pay := m.Meter.PaymentKey()
	if _, ok := m.worker.States.Latest(pay); !ok {
		return errors.New("worker has no state yet")
	}
	if _, ok := m.client.States.Latest(pay); !ok {
		return errors.New("client has no state yet")
	}
	return nil
}

// settleOnChain submits the latest signed states (the proxy operator does here; client, worker
// or anyone may at any time) and reports what the contract accepted.
func (m *Money) settleOnChain(ctx context.Context, out io.Writer) error {
	pay := m.Meter.PaymentKey()
	ws, _ := m.worker.States.Latest(pay)
	cs, _ := m.client.States.Latest(pay)
	// The worker is paid what the proxy signed it earned; the client's charge moves to the proxy.
	c, err := paystate.Submit(ctx, m.Chain, m.operatorKey, cs)
	if err != nil {
		return fmt.Errorf("submit client state: %w", err)
	}
	w, err := paystate.Submit(ctx, m.Chain, m.operatorKey, ws)
	if err != nil {
		return fmt.Errorf("submit worker state: %w", err)
	}
	fmt.Fprintf(out, "Settled on the local chain: client charged %s TON in all (deposit left %s TON); "+
		"worker paid %s TON by the proxy contract (%s TON in all)\n",
		settle.FormatTON(c.After.Settled), settle.FormatTON(c.After.Balance),
		settle.FormatTON(w.After.Settled-w.Before.Settled), settle.FormatTON(w.After.Settled))
	// The contract's own total is the check: the worker's wallet also receives the submitter's
	// leftover gas, so its balance would grow even if nothing was paid.
	if w.After.Settled != ws.State.Total {
		return fmt.Errorf("the proxy contract paid the worker %d nanoTON in all, not the %d its state says", w.After.Settled, ws.State.Total)
	}
	return nil
}
