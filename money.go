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

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/local"
	"github.com/cocoon-network/cocoon/settle/chaincmd"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

// demoDeposit is what the demo client keeps deposited with the demo proxy.
const demoDeposit = 2_000_000_000 // 2 TON

// money is the demo's settlement: the local chain with a registry, the proxy's contract, funded
// client and worker wallets, the proxy's ledger and the states client and worker keep. Every role
// uses the same code as on TON; only the chain differs.
type money struct {
	chain       *local.Chain
	net         local.Demo
	operatorKey ed25519.PrivateKey
	proxy       *proxyPay
	client      *partyPay
	worker      *partyPay
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

func setupMoney(ctx context.Context, data string, proxyImage, workerImage attest.ImageHash, weightsDigest string) (m *money, err error) {
	ch, err := local.OpenDir(data, local.Options{})
	if err != nil {
		return nil, fmt.Errorf("local chain: %w", err)
	}
	m = &money{chain: ch}
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
		if *k, err = keyIn(keys, name); err != nil {
			return nil, fmt.Errorf("demo key %s: %w", name, err)
		}
	}
	var model [32]byte
	if b, err := hex.DecodeString(strings.TrimPrefix(weightsDigest, "sha256:")); err == nil && len(b) == 32 {
		copy(model[:], b)
	}
	m.net, err = local.SetupDemo(ctx, ch, local.DemoConfig{
		Owner: owner, Operator: m.operatorKey, PaymentKey: payKey.Public().(ed25519.PublicKey), Endpoint: "127.0.0.1:4433",
		Params:      contracts.DefaultParams(),
		Fund:        []ed25519.PublicKey{clientKey.Public().(ed25519.PublicKey), workerKey.Public().(ed25519.PublicKey)},
		ProxyImages: [][32]byte{proxyImage}, WorkerImages: [][32]byte{workerImage}, Models: [][32]byte{model},
	})
	if err != nil {
		return nil, fmt.Errorf("demo network on the local chain: %w", err)
	}
	if m.client, err = newPartyPay(ch, clientKey, settle.KindClientCharged, filepath.Join(data, "client-states"), 0); err != nil {
		return nil, err
	}
	if m.worker, err = newPartyPay(ch, workerKey, settle.KindWorkerEarned, filepath.Join(data, "worker-states"), 0); err != nil {
		return nil, err
	}
	// Keep the client's deposit topped up, as an app developer would.
	ps, err := chain.Proxy(ctx, ch, m.net.Proxy)
	if err != nil {
		return nil, err
	}
	if acc := ps.Clients[m.client.account]; acc.Balance < demoDeposit/2 {
		if err := chain.TopUp(ctx, ch, clientKey, m.net.Proxy, demoDeposit); err != nil {
			return nil, fmt.Errorf("client top-up: %w", err)
		}
	}
	if m.proxy, err = newProxyPay(ctx, ch, payKey, m.net.Proxy, m.net.Registry, filepath.Join(data, "proxy-ledger.db")); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *money) close() {
	if m.proxy != nil {
		_ = m.proxy.ledger.Close()
	}
	_ = m.chain.Close()
}

// deposited waits until the ledger has seen the client's deposit.
func (m *money) deposited() error {
	c, err := m.proxy.ledger.Client(m.client.account)
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
	pay := m.proxy.payKey.Public().(ed25519.PublicKey)
	before, err := chain.WalletBalance(ctx, m.chain, m.worker.key.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	ws, ok := m.worker.states.Latest(pay)
	if !ok {
		return errors.New("the worker holds no earned state")
	}
	cs, ok := m.client.states.Latest(pay)
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
	after, err := chain.WalletBalance(ctx, m.chain, m.worker.key.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	ps, err := chain.Proxy(ctx, m.chain, m.net.Proxy)
	if err != nil {
		return err
	}
	acc := ps.Clients[m.client.account]
	fmt.Fprintf(out, "Settled on the local chain: client charged %s TON in all (deposit left %s TON); "+
		"worker paid %s TON in all, its wallet %s → %s TON\n",
		chaincmd.FormatTON(acc.Charged), chaincmd.FormatTON(acc.Balance), chaincmd.FormatTON(ps.Workers[m.worker.account].Paid),
		chaincmd.FormatTON(before), chaincmd.FormatTON(after))
	if after <= before {
		return fmt.Errorf("the worker's payout did not reach its wallet (%d → %d nanoTON)", before, after)
	}
	return nil
}
