package local

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"

	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/contracts"
	"github.com/cocoon-network/cocoon/settle/emu"
)

// DemoChain is a chain SetupDemo can lay a network out on: the local chain itself, or a
// `cocoon chain serve` reached through its toncenter API (settle/chain/toncenter), both of which
// mint test TON.
type DemoChain interface {
	chain.Chain
	Faucet(ctx context.Context, to ton.AccountID, amount uint64) error
}

// DemoConfig says who takes part in a demo network on the local chain.
type DemoConfig struct {
	Owner   ed25519.PrivateKey // registry owner's wallet key
	Proxies []DemoProxy        // the proxies, at least one; those with endpoints are listed
	Params  contracts.RegistryParams
	Fund    []ed25519.PublicKey // wallets to fund (clients, workers)
	// Allowed image hashes and model digests (the simulated TDX images, the demo model): the
	// registry's lists become exactly these.
	ProxyImages, WorkerImages, Models [][32]byte
}

// DemoProxy is one proxy of a demo network.
type DemoProxy struct {
	Operator       ed25519.PrivateKey // its operator's wallet key: owns the proxy contract, pays its stake
	PaymentKey     ed25519.PublicKey  // its attested payment key, the registry's key for it
	WorkerEndpoint string             // host:port workers connect to; "": not listed (not listening yet)
	ClientEndpoint string             // host:port clients connect to; "": WorkerEndpoint
}

// Demo is the network SetupDemo made.
type Demo struct {
	Registry ton.AccountID
	Proxies  []ton.AccountID // each proxy's contract, in DemoConfig.Proxies order
	Proxy    ton.AccountID   // Proxies[0], the contract of a demo with one proxy
}

// demoFunding keeps every demo wallet at least this rich (nanoTON).
const demoFunding = 1_000_000_000_000

// SetupDemo makes a chain ready for `cocoon demo` (or a development network of separate
// processes): funded wallets (owner, each operator, each payment key's, which pays the gas of
// settling client charges, and cfg.Fund), a registry whose lists are exactly the given images and
// models and which lists exactly the given proxies that have endpoints, and each proxy's contract
// with its minimum stake. It is idempotent: run it at every start (and again once the proxies
// listen), it only does what is missing or changed (an endpoint on a new port, a proxy added or
// gone, an image of another build), so a restarted demo keeps its balances and history. The
// registry owner's changes go out in one wallet message.
func SetupDemo(ctx context.Context, c DemoChain, cfg DemoConfig) (Demo, error) {
	var d Demo
	entries, err := demoEntries(cfg.Proxies)
	if err != nil {
		return d, err
	}
	// The payment keys' wallets pay the gas of the charged states the proxies submit themselves.
	keys := []ed25519.PublicKey{pubOf(cfg.Owner)}
	for _, p := range cfg.Proxies {
		keys = append(keys, pubOf(p.Operator), p.PaymentKey)
	}
	for _, k := range append(keys, cfg.Fund...) {
		addr, err := c.WalletAddress(k)
		if err != nil {
			return d, err
		}
		bal, err := chain.Balance(ctx, c, addr)
		if err != nil {
			return d, err
		}
		if bal < demoFunding/2 {
			if err := c.Faucet(ctx, addr, demoFunding-bal); err != nil {
				return d, err
			}
		}
	}

	if d.Registry, err = DemoRegistry(c, cfg.Owner, cfg.Params); err != nil {
		return d, err
	}
	if _, err := chain.Registry(ctx, c, d.Registry); err != nil {
		if d.Registry, err = chain.DeployRegistry(ctx, c, cfg.Owner, contracts.Registry{Params: cfg.Params}, 10_000_000_000); err != nil {
			return d, fmt.Errorf("demo: %w", err)
		}
	}
	reg, err := chain.Registry(ctx, c, d.Registry)
	if err != nil {
		return d, err
	}

	pcfg := contracts.ProxyConfig{Registry: d.Registry, MinClientStake: reg.Params.MinClientStake,
		ClientCloseDelay: reg.Params.ClientCloseDelay, ProxyCloseDelay: reg.Params.ProxyCloseDelay}
	for i, p := range cfg.Proxies {
		addr, err := DemoProxyContract(c, d.Registry, reg.Params, p)
		if err != nil {
			return d, err
		}
		if _, err := chain.Proxy(ctx, c, addr); err != nil {
			if _, err := chain.DeployProxy(ctx, c, p.Operator, p.PaymentKey, pcfg, reg.Params.MinProxyStake+contracts.OpFee); err != nil {
				return d, fmt.Errorf("demo: %w", err)
			}
		}
		d.Proxies = append(d.Proxies, addr)
		if entries[i] != nil {
			entries[i].Contract = addr
		}
	}
	d.Proxy = d.Proxies[0]

	// Owner updates, each only if missing or changed, in one message of the owner's wallet.
	var bodies []*boc.Cell
	for _, l := range []struct {
		list   contracts.List
		want   [][32]byte
		listed [][32]byte
	}{
		{contracts.ListProxyImages, cfg.ProxyImages, reg.ProxyImages},
		{contracts.ListWorkerImages, cfg.WorkerImages, reg.WorkerImages},
		{contracts.ListModels, cfg.Models, reg.Models},
	} {
		for _, h := range l.listed {
			if !slices.Contains(l.want, h) {
				b, err := contracts.SetAllowedBody(0, l.list, h, false)
				if err != nil {
					return d, err
				}
				bodies = append(bodies, b)
			}
		}
		for _, h := range slices.Compact(slices.Clone(l.want)) {
			if !slices.Contains(l.listed, h) {
				b, err := contracts.SetAllowedBody(0, l.list, h, true)
				if err != nil {
					return d, err
				}
				bodies = append(bodies, b)
			}
		}
	}
	listed, err := proxyUpdates(reg, entries)
	if err != nil {
		return d, err
	}
	bodies = append(bodies, listed...)
	if len(bodies) == 0 {
		return d, nil
	}
	msgs := make([]chain.Message, len(bodies))
	for i, b := range bodies {
		msgs[i] = chain.Message{To: d.Registry, Amount: chain.GasAmount, Body: b, Bounce: true}
	}
	if err := c.Send(ctx, cfg.Owner, msgs...); err != nil {
		return d, fmt.Errorf("demo: update the registry: %w", err)
	}
	return d, nil
}

// DemoRegistry is the address of the registry SetupDemo deploys for owner with params: it
// follows from the registry's first state, so it is known before the registry exists (a node's
// configuration names it, and its image hash covers that).
func DemoRegistry(c chain.Chain, owner ed25519.PrivateKey, params contracts.RegistryParams) (ton.AccountID, error) {
	addr, err := c.WalletAddress(pubOf(owner))
	if err != nil {
		return ton.AccountID{}, err
	}
	data, err := contracts.RegistryData(contracts.Registry{Owner: addr, Params: params})
	if err != nil {
		return ton.AccountID{}, err
	}
	reg, _, err := emu.StateInitAddress(0, contracts.RegistryCode(), data)
	return reg, err
}

// DemoProxyContract is the address of the contract SetupDemo deploys for p on registry, known
// before it exists like DemoRegistry.
func DemoProxyContract(c chain.Chain, registry ton.AccountID, params contracts.RegistryParams, p DemoProxy) (ton.AccountID, error) {
	operator, err := c.WalletAddress(pubOf(p.Operator))
	if err != nil {
		return ton.AccountID{}, err
	}
	addr, _, err := chain.ProxyAddress(p.PaymentKey, operator, contracts.ProxyConfig{Registry: registry,
		MinClientStake: params.MinClientStake, ClientCloseDelay: params.ClientCloseDelay, ProxyCloseDelay: params.ProxyCloseDelay})
	return addr, err
}

// demoEntries are the registry entries of the demo's proxies, without their contracts yet; a
// proxy without endpoints has none (nil). Two proxies may not share a payment key or an endpoint:
// the registry could not tell them apart.
func demoEntries(proxies []DemoProxy) ([]*contracts.ProxyEntry, error) {
	if len(proxies) == 0 {
		return nil, errors.New("demo: no proxy to list")
	}
	entries := make([]*contracts.ProxyEntry, len(proxies))
	keys, endpoints := map[string]int{}, map[string]int{}
	for i, p := range proxies {
		if len(p.PaymentKey) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("demo: proxy %d: payment key has %d bytes", i+1, len(p.PaymentKey))
		}
		if j, dup := keys[string(p.PaymentKey)]; dup {
			return nil, fmt.Errorf("demo: proxies %d and %d have the same payment key", j+1, i+1)
		}
		keys[string(p.PaymentKey)] = i
		if p.WorkerEndpoint == "" && p.ClientEndpoint == "" {
			continue // not listening yet: not listed
		}
		if p.WorkerEndpoint == "" {
			return nil, fmt.Errorf("demo: proxy %d has no endpoint for workers, only one for clients", i+1)
		}
		e := contracts.ProxyEntry{Key: p.PaymentKey, WorkerEndpoint: p.WorkerEndpoint, ClientEndpoint: p.ClientEndpoint}
		if e.ClientEndpoint == "" {
			e.ClientEndpoint = e.WorkerEndpoint
		}
		for _, ep := range slices.Compact([]string{e.WorkerEndpoint, e.ClientEndpoint}) {
			if j, dup := endpoints[ep]; dup {
				return nil, fmt.Errorf("demo: proxies %d and %d both use endpoint %s", j+1, i+1, ep)
			}
			endpoints[ep] = i
		}
		entries[i] = &e
	}
	return entries, nil
}

// proxyUpdates are the registry messages that make it list exactly the non-nil entries: each one
// missing or changed is set, each listed proxy not among them removed (a demo that ran with more
// proxies before, or one not listening yet).
func proxyUpdates(reg contracts.Registry, entries []*contracts.ProxyEntry) ([]*boc.Cell, error) {
	var bodies []*boc.Cell
	add := func(key ed25519.PublicKey, e *contracts.ProxyEntry) error {
		body, err := contracts.SetProxyBody(0, key, e)
		if err != nil {
			return err
		}
		bodies = append(bodies, body)
		return nil
	}
	for _, listed := range reg.Proxies {
		if !slices.ContainsFunc(entries, func(e *contracts.ProxyEntry) bool { return e != nil && bytes.Equal(e.Key, listed.Key) }) {
			if err := add(listed.Key, nil); err != nil {
				return nil, fmt.Errorf("demo: remove proxy %s: %w", listed.ClientEndpoint, err)
			}
		}
	}
	for _, e := range entries {
		if e == nil {
			continue
		}
		if got, ok := reg.Proxy(e.Key); ok && got.Contract == e.Contract &&
			got.WorkerEndpoint == e.WorkerEndpoint && got.ClientEndpoint == e.ClientEndpoint {
			continue
		}
		if err := add(e.Key, e); err != nil {
			return nil, fmt.Errorf("demo: list proxy %s: %w", e.ClientEndpoint, err)
		}
	}
	return bodies, nil
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }
