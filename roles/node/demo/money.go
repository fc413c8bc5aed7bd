package demo

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/rs/zerolog"

	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/roles/node"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/local"
	"github.com/cocoon-network/cocoon/settle/contracts"
	"github.com/cocoon-network/cocoon/settle/meter"
	"github.com/cocoon-network/cocoon/settle/paystate"
)

// deposit is what the demo client keeps deposited with each demo proxy.
const deposit = 2_000_000_000 // 2 TON

// Money is the demo's settlement: the local chain with a registry, each proxy's contract, funded
// client and worker wallets, each proxy's meter and the states client and workers keep. Every
// role uses the same code as on TON; only the chain differs.
type Money struct {
	Chain  *local.Chain
	Net    local.Demo
	Meters []*meter.Meter // one per proxy, in Net.Proxies order
	// Meter is Meters[0], the meter of a demo with one proxy.
	Meter   *meter.Meter
	acct    accounts
	client  *node.Party
	workers []*node.Party
	demoCfg local.DemoConfig
	// deposits are the client's accounts with the proxies as setup left them.
	deposits []deposited
}

// setupMoney lays the demo network out on the local chain in data: keys in data/keys, the
// registry (whose address cfg's payments then name, so that the images computed from cfg are
// those the nodes present), each proxy's contract (not listed until it listens: listProxies),
// the client's deposit with each proxy and a meter per proxy.
func setupMoney(ctx context.Context, data string, cfg *config.Config, proxies, workers int, log zerolog.Logger) (m *Money, err error) {
	ch, err := local.OpenDir(data, local.Options{})
	if err != nil {
		return nil, fmt.Errorf("local chain: %w", err)
	}
	money := &Money{Chain: ch}
	m = money
	defer func() {
		if err != nil {
			money.close()
		}
	}()
	keys := filepath.Join(data, "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		return nil, err
	}
	if m.acct, err = loadAccounts(func(name string) (ed25519.PrivateKey, error) { return node.KeyIn(keys, name) }, proxies, workers); err != nil {
		return nil, fmt.Errorf("demo %w", err)
	}
	params := contracts.DefaultParams()
	l, err := plan(ch, m.acct, params)
	if err != nil {
		return nil, err
	}
	cfg.Payments = config.Payments{Chain: "local", ChainData: filepath.Join(data, local.DefaultFile),
		Registry: config.Address{AccountID: l.Registry, Set: true}, ProxyContract: config.Address{AccountID: l.Contracts[0], Set: true}}
	pimg, wimg, models, err := images(*cfg, []string{cfg.Worker.Model})
	if err != nil {
		return nil, err
	}
	fund := []ed25519.PublicKey{m.acct.client.Public().(ed25519.PublicKey)}
	for _, w := range m.acct.workers {
		fund = append(fund, w.Public().(ed25519.PublicKey))
	}
	m.demoCfg = local.DemoConfig{Owner: m.acct.owner, Proxies: m.acct.demoProxies(nil), Params: params, Fund: fund,
		ProxyImages: pimg, WorkerImages: wimg, Models: models}
	if m.Net, err = local.SetupDemo(ctx, ch, m.demoCfg); err != nil {
		return nil, fmt.Errorf("demo network on the local chain: %w", err)
	}
	if m.client, err = node.NewParty(ch, m.acct.client, settle.KindClientCharged, filepath.Join(data, "client-states"), 0, log); err != nil {
		return nil, err
	}
	for i, k := range m.acct.workers {
		w, err := node.NewParty(ch, k, settle.KindWorkerEarned, filepath.Join(data, keyName("worker-states", i)), 0, log)
		if err != nil {
			return nil, err
		}
		m.workers = append(m.workers, w)
	}
	// Keep the client's deposits topped up, as an app developer would.
	if m.deposits, err = keepDeposited(ctx, ch, m.acct.client, m.Net.Proxies, deposit); err != nil {
		return nil, err
	}
	for i, contract := range m.Net.Proxies {
		ledger := "proxy-ledger.db"
		if i > 0 {
			ledger = fmt.Sprintf("proxy-%d-ledger.db", i+1)
		}
		mt, err := meter.New(ctx, ch, meter.Config{Contract: contract, Registry: m.Net.Registry, PaymentKey: m.acct.payKeys[i],
			LedgerPath: filepath.Join(data, ledger)}, log)
		if err != nil {
			return nil, err
		}
		m.Meters = append(m.Meters, mt)
	}
	m.Meter = m.Meters[0]
	return m, nil
}

// listProxies lists each proxy in the registry at the endpoint it listens on.
func (m *Money) listProxies(ctx context.Context, endpoints []string) error {
	cfg := m.demoCfg
	cfg.Proxies = m.acct.demoProxies(endpoints)
	_, err := local.SetupDemo(ctx, m.Chain, cfg)
	return err
}

func (m *Money) close() {
	for _, mt := range m.Meters {
		_ = mt.Close()
	}
	_ = m.Chain.Close()
}

// deposited waits until every proxy's ledger has seen the client's deposit.
func (m *Money) deposited() error {
	for i, mt := range m.Meters {
		c, err := mt.Ledger().Client(m.client.Account)
		if err != nil {
			return err
		}
		if c.Available() == 0 {
			return fmt.Errorf("proxy %d has not seen the client deposit yet", i+1)
		}
	}
	return nil
}

// held reports whether the client and a worker both hold a state one proxy signed.
func (m *Money) held() error {
	for _, mt := range m.Meters {
		if _, ok := m.client.States.Latest(mt.PaymentKey()); !ok {
			continue
		}
		for _, w := range m.workers {
			if _, ok := w.States.Latest(mt.PaymentKey()); ok {
				return nil
			}
		}
		return errors.New("no worker has a state yet")
	}
	return errors.New("client has no state yet")
}

// settleOnChain submits the latest signed states (each proxy's operator does here; client,
// workers or anyone may at any time) and reports what moved, from the contracts' numbers: what
// the client was charged and has left, what the workers were paid and what the proxies kept, and
// why the workers' wallets grew by more than their pay.
func (m *Money) settleOnChain(ctx context.Context, out io.Writer) error {
	var s settled
	for i, mt := range m.Meters {
		pay, operator := mt.PaymentKey(), m.acct.operators[i]
		// The client's charge moves to the proxy; each worker is paid what the proxy signed it earned.
		if cs, ok := m.client.States.Latest(pay); ok {
			c, err := paystate.Submit(ctx, m.Chain, operator, cs)
			if err != nil {
				return fmt.Errorf("submit client state: %w", err)
			}
			s.charged, s.chargedAll, s.left = s.charged+c.After.Settled-c.Before.Settled, s.chargedAll+c.After.Settled, s.left+c.After.Balance
		}
		for _, wp := range m.workers {
			ws, ok := wp.States.Latest(pay)
			if !ok {
				continue
			}
			before, err := chain.Balance(ctx, m.Chain, wp.Account)
			if err != nil {
				return err
			}
			w, err := paystate.Submit(ctx, m.Chain, operator, ws)
			if err != nil {
				return fmt.Errorf("submit worker state: %w", err)
			}
			// The contract's own total is the check: the worker's wallet also receives the
			// submitter's leftover gas, so its balance would grow even if nothing was paid.
			if w.After.Settled != ws.State.Total {
				return fmt.Errorf("the proxy contract paid the worker %d nanoTON in all, not the %d its state says", w.After.Settled, ws.State.Total)
			}
			after, err := chain.Balance(ctx, m.Chain, wp.Account)
			if err != nil {
				return err
			}
			s.paid, s.paidAll = s.paid+w.After.Settled-w.Before.Settled, s.paidAll+w.After.Settled
			s.walletGrew += after - min(after, before)
			if !w.Skipped {
				s.submits++
			}
		}
	}
	s.print(out, len(m.workers) > 1, len(m.Meters) > 1)
	return nil
}

// settled is what one settlement moved, in nanoTON, summed over proxies and workers.
type settled struct {
	charged, chargedAll, left uint64 // the client: charged now, in all; left to spend
	paid, paidAll             uint64 // the workers: paid now, in all
	walletGrew                uint64 // the workers' wallets: the pay and the gas returned with it
	submits                   int    // worker states sent (each attaches chain.GasAmount)
}

func (s settled) print(out io.Writer, workers, proxies bool) {
	worker, contract := "worker", "the proxy contract"
	if workers {
		worker = "workers"
	}
	if proxies {
		contract = "the proxy contracts"
	}
	fmt.Fprintln(out, "Settled on the local chain (each proxy's operator submitted the signed states; client and worker may too):")
	fmt.Fprintf(out, "  %-15s %s TON now, %s TON in all; %s TON of the deposit left to spend\n",
		"client charged", settle.FormatTON(s.charged), settle.FormatTON(s.chargedAll), settle.FormatTON(s.left))
	kept := ""
	if s.charged >= s.paid {
		kept = fmt.Sprintf("; the proxy keeps the other %s TON of the charge", settle.FormatTON(s.charged-s.paid))
	}
	fmt.Fprintf(out, "  %-15s %s TON by %s (%s TON in all)%s\n", worker+" paid", settle.FormatTON(s.paid), contract, settle.FormatTON(s.paidAll), kept)
	if s.submits == 0 {
		fmt.Fprintf(out, "  %-15s unchanged: nothing new to pay, nothing sent\n", worker+" wallet")
		return
	}
	gas := s.walletGrew - min(s.walletGrew, s.paid)
	fmt.Fprintf(out, "  %-15s +%s TON: the %s TON pay and %s TON of the %s TON gas each submit attaches, which the contract returns with the pay\n",
		worker+" wallet", settle.FormatTON(s.walletGrew), settle.FormatTON(s.paid), settle.FormatTON(gas), settle.FormatTON(chain.GasAmount))
}

// addresses are the proxy contracts in human form.
func (m *Money) addresses() string {
	var out []string
	for _, c := range m.Net.Proxies {
		out = append(out, c.ToHuman(true, true))
	}
	return strings.Join(out, ", ")
}
