package local

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"

	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/contracts"
	"github.com/cocoon-network/cocoon/settle/emu"
)

// DemoConfig says who takes part in a demo network on the local chain.
type DemoConfig struct {
	Owner   ed25519.PrivateKey // registry owner's wallet key
	Proxies []DemoProxy        // the proxies the registry lists, at least one
	Params  contracts.RegistryParams
	Fund    []ed25519.PublicKey // wallets to fund (clients, workers)
	// Allowed image hashes and model digests (the simulated TDX images, the demo model).
	ProxyImages, WorkerImages, Models [][32]byte
}

// DemoProxy is one proxy of a demo network.
type DemoProxy struct {
	Operator       ed25519.PrivateKey // its operator's wallet key: owns the proxy contract, pays its stake
	PaymentKey     ed25519.PublicKey  // its attested payment key, the registry's key for it
	WorkerEndpoint string             // host:port workers connect to
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

// SetupDemo makes the local chain ready for `cocoon demo`: funded wallets (owner, each operator,
// each payment key's, which pays the gas of settling client charges, and cfg.Fund), a registry
// that allows the given images and models and lists exactly the given proxies with their
// endpoints, and each proxy's contract with its minimum stake. It is idempotent: run it at every
// start, it only does what is missing or changed (an endpoint on a new port, a proxy added or
// gone), so a restarted demo keeps its balances and history.
func SetupDemo(ctx context.Context, c *Chain, cfg DemoConfig) (Demo, error) {
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

	owner, err := c.WalletAddress(pubOf(cfg.Owner))
	if err != nil {
		return d, err
	}
	// The registry's address follows from its first state, so the same config finds it again.
	data, err := contracts.RegistryData(contracts.Registry{Owner: owner, Params: cfg.Params})
	if err != nil {
		return d, err
	}
	d.Registry, _, err = emu.StateInitAddress(0, contracts.RegistryCode(), data)
	if err != nil {
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
		operator, err := c.WalletAddress(pubOf(p.Operator))
		if err != nil {
			return d, err
		}
		addr, _, err := chain.ProxyAddress(p.PaymentKey, operator, pcfg)
		if err != nil {
			return d, err
		}
		if _, err := chain.Proxy(ctx, c, addr); err != nil {
			if _, err := chain.DeployProxy(ctx, c, p.Operator, p.PaymentKey, pcfg, reg.Params.MinProxyStake+contracts.OpFee); err != nil {
				return d, fmt.Errorf("demo: %w", err)
			}
		}
		d.Proxies = append(d.Proxies, addr)
		entries[i].Contract = addr
	}
	d.Proxy = d.Proxies[0]

	// Owner updates, each only if missing.
	for _, l := range []struct {
		list   contracts.List
		hashes [][32]byte
		has    func([32]byte) bool
	}{
		{contracts.ListProxyImages, cfg.ProxyImages, reg.ProxyImageAllowed},
		{contracts.ListWorkerImages, cfg.WorkerImages, reg.WorkerImageAllowed},
		{contracts.ListModels, cfg.Models, reg.ModelAllowed},
	} {
		for _, h := range l.hashes {
			if l.has(h) {
				continue
			}
			body, err := contracts.SetAllowedBody(0, l.list, h, true)
			if err != nil {
				return d, err
			}
			if err := chain.Call(ctx, c, cfg.Owner, d.Registry, 0, body); err != nil {
				return d, fmt.Errorf("demo: allow %x: %w", h, err)
			}
		}
	}
	return d, listDemoProxies(ctx, c, cfg.Owner, d.Registry, reg, entries)
}

// demoEntries are the registry entries of the demo's proxies, without their contracts yet. Two
// proxies may not share a payment key or an endpoint: the registry could not tell them apart.
func demoEntries(proxies []DemoProxy) ([]contracts.ProxyEntry, error) {
	if len(proxies) == 0 {
		return nil, errors.New("demo: no proxy to list")
	}
	entries := make([]contracts.ProxyEntry, len(proxies))
	keys, endpoints := map[string]int{}, map[string]int{}
	for i, p := range proxies {
		e := contracts.ProxyEntry{Key: p.PaymentKey, WorkerEndpoint: p.WorkerEndpoint, ClientEndpoint: p.ClientEndpoint}
		if e.ClientEndpoint == "" {
			e.ClientEndpoint = e.WorkerEndpoint
		}
		if len(p.PaymentKey) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("demo: proxy %d: payment key has %d bytes", i+1, len(p.PaymentKey))
		}
		if j, dup := keys[string(p.PaymentKey)]; dup {
			return nil, fmt.Errorf("demo: proxies %d and %d have the same payment key", j+1, i+1)
		}
		keys[string(p.PaymentKey)] = i
		for _, ep := range slices.Compact([]string{e.WorkerEndpoint, e.ClientEndpoint}) {
			if ep == "" {
				return nil, fmt.Errorf("demo: proxy %d has no endpoint", i+1)
			}
			if j, dup := endpoints[ep]; dup {
				return nil, fmt.Errorf("demo: proxies %d and %d both use endpoint %s", j+1, i+1, ep)
			}
			endpoints[ep] = i
		}
		entries[i] = e
	}
	return entries, nil
}

// listDemoProxies makes the registry list exactly entries: each one missing or changed is set,
// each listed proxy not among them removed (a demo that ran with more proxies before).
func listDemoProxies(ctx context.Context, c *Chain, owner ed25519.PrivateKey, registry ton.AccountID, reg contracts.Registry, entries []contracts.ProxyEntry) error {
	send := func(key ed25519.PublicKey, e *contracts.ProxyEntry) error {
		body, err := contracts.SetProxyBody(0, key, e)
		if err != nil {
			return err
		}
		return chain.Call(ctx, c, owner, registry, 0, body)
	}
	for _, listed := range reg.Proxies {
		if !slices.ContainsFunc(entries, func(e contracts.ProxyEntry) bool { return bytes.Equal(e.Key, listed.Key) }) {
			if err := send(listed.Key, nil); err != nil {
				return fmt.Errorf("demo: remove proxy %s: %w", listed.ClientEndpoint, err)
			}
		}
	}
	for _, e := range entries {
		if got, ok := reg.Proxy(e.Key); ok && got.Contract == e.Contract &&
			got.WorkerEndpoint == e.WorkerEndpoint && got.ClientEndpoint == e.ClientEndpoint {
			continue
		}
		if err := send(e.Key, &e); err != nil {
			return fmt.Errorf("demo: list proxy %s: %w", e.ClientEndpoint, err)
		}
	}
	return nil
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }
