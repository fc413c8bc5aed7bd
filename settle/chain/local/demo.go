package local

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/contracts"
	"github.com/cocoon-network/cocoon/settle/emu"
)

// DemoConfig says who takes part in a demo network on the local chain.
type DemoConfig struct {
	Owner      ed25519.PrivateKey // registry owner's wallet key
	Operator   ed25519.PrivateKey // proxy operator's wallet key
	PaymentKey ed25519.PublicKey  // the proxy's attested payment key
	Endpoint   string             // the proxy's host:port
	Params     contracts.RegistryParams
	Fund       []ed25519.PublicKey // wallets to fund (clients, workers)
	// Allowed image hashes and model digests (the simulated TDX images, the demo model).
	ProxyImages, WorkerImages, Models [][32]byte
}

// Demo is the network SetupDemo made.
type Demo struct {
	Registry ton.AccountID
	Proxy    ton.AccountID
}

// demoFunding keeps every demo wallet at least this rich (nanoTON).
const demoFunding = 1_000_000_000_000

// SetupDemo makes the local chain ready for `cocoon demo`: funded wallets (owner, operator,
// the payment key's, which pays the gas of settling client charges, and cfg.Fund), a registry that
// allows the given images and models and lists the proxy, and the proxy's contract with its
// minimum stake. It is idempotent: run it at every start, it only does what is missing, so a
// restarted demo keeps its balances and history.
func SetupDemo(ctx context.Context, c *Chain, cfg DemoConfig) (Demo, error) {
	var d Demo
	// The payment key's wallet pays the gas of the charged states the proxy submits itself.
	keys := append([]ed25519.PublicKey{pubOf(cfg.Owner), pubOf(cfg.Operator), cfg.PaymentKey}, cfg.Fund...)
	for _, k := range keys {
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
	operator, err := c.WalletAddress(pubOf(cfg.Operator))
	if err != nil {
		return d, err
	}
	d.Proxy, _, err = chain.ProxyAddress(cfg.PaymentKey, operator, pcfg)
	if err != nil {
		return d, err
	}
	if _, err := chain.Proxy(ctx, c, d.Proxy); err != nil {
		if _, err := chain.DeployProxy(ctx, c, cfg.Operator, cfg.PaymentKey, pcfg, reg.Params.MinProxyStake+contracts.OpFee); err != nil {
			return d, fmt.Errorf("demo: %w", err)
		}
	}

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
	want := contracts.ProxyEntry{Key: cfg.PaymentKey, Contract: d.Proxy, Endpoint: cfg.Endpoint}
	if got, ok := reg.Proxy(cfg.PaymentKey); !ok || got.Contract != want.Contract || got.Endpoint != want.Endpoint {
		body, err := contracts.SetProxyBody(0, cfg.PaymentKey, &want)
		if err != nil {
			return d, err
		}
		if err := chain.Call(ctx, c, cfg.Owner, d.Registry, 0, body); err != nil {
			return d, fmt.Errorf("demo: list proxy: %w", err)
		}
	}
	return d, nil
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }
