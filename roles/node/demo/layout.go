package demo

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rs/zerolog"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/roles/node"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/local"
	"github.com/cocoon-network/cocoon/settle/chain/toncenter"
	"github.com/cocoon-network/cocoon/settle/chain/tonchain"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

// keyName is the file name (without .key) of the i-th (from 0) key of a kind: the first keeps
// the plain name, so a one-proxy, one-worker demo keeps the files it always had.
func keyName(base string, i int) string {
	if i == 0 {
		return base
	}
	return fmt.Sprintf("%s-%d", base, i+1)
}

// keySource gives the key of a name: made on first use in a directory (the demo), or derived
// from a public seed (a development network laid out before its nodes start).
type keySource func(name string) (ed25519.PrivateKey, error)

// accounts are a development network's keys: the registry owner, each proxy's operator and
// payment key, the client's wallet and each worker's.
type accounts struct {
	owner, client      ed25519.PrivateKey
	operators, payKeys []ed25519.PrivateKey
	workers            []ed25519.PrivateKey
}

func loadAccounts(keys keySource, proxies, workers int) (accounts, error) {
	var a accounts
	get := func(name string) (k ed25519.PrivateKey, err error) {
		if k, err = keys(name); err != nil {
			return nil, fmt.Errorf("key %s: %w", name, err)
		}
		return k, nil
	}
	var err error
	if a.owner, err = get("registry-owner"); err != nil {
		return a, err
	}
	if a.client, err = get("client-wallet"); err != nil {
		return a, err
	}
	for i := range proxies {
		op, err := get(keyName("proxy-operator", i))
		if err != nil {
			return a, err
		}
		pay, err := get(keyName("proxy-payment", i))
		if err != nil {
			return a, err
		}
		a.operators, a.payKeys = append(a.operators, op), append(a.payKeys, pay)
	}
	for i := range workers {
		w, err := get(keyName("worker-wallet", i))
		if err != nil {
			return a, err
		}
		a.workers = append(a.workers, w)
	}
	return a, nil
}

// demoProxies are the proxies of a, listed at endpoints (each "worker[,client]"; "": not listed).
func (a accounts) demoProxies(endpoints []string) []local.DemoProxy {
	out := make([]local.DemoProxy, len(a.payKeys))
	for i := range a.payKeys {
		out[i] = local.DemoProxy{Operator: a.operators[i], PaymentKey: a.payKeys[i].Public().(ed25519.PublicKey)}
		if i < len(endpoints) {
			out[i].WorkerEndpoint, out[i].ClientEndpoint, _ = strings.Cut(endpoints[i], ",")
		}
	}
	return out
}

// images are what the nodes of cfg present: the proxy image, one worker image and one model
// digest per model served (cfg.Worker.Model replaced by each).
func images(cfg config.Config, models []string) (proxyImages, workerImages, digests [][32]byte, err error) {
	p, err := node.SimulatedMeasurements(cfg, attest.RoleProxy)
	if err != nil {
		return nil, nil, nil, err
	}
	proxyImages = [][32]byte{p.ImageHash()}
	for _, m := range models {
		wc := cfg
		wc.Worker.Model = m
		w, err := node.SimulatedMeasurements(wc, attest.RoleWorker)
		if err != nil {
			return nil, nil, nil, err
		}
		_, weights, err := node.Engine(wc, zerolog.Nop())
		if err != nil {
			return nil, nil, nil, err
		}
		b, err := hex.DecodeString(strings.TrimPrefix(weights, "sha256:"))
		if err != nil || len(b) != 32 {
			return nil, nil, nil, fmt.Errorf("model %s: weights digest %q is not sha256:<64 hex>", m, weights)
		}
		workerImages, digests = append(workerImages, w.ImageHash()), append(digests, [32]byte(b))
	}
	return proxyImages, workerImages, digests, nil
}

// SetupOptions are what `cocoon demo setup` takes.
type SetupOptions struct {
	ChainURL string   // the `cocoon chain serve` to lay the network out on
	Keys     string   // directory the keys are written to, for the nodes to read
	Seed     string   // every key derives from it (public: development only)
	Proxies  []string // each proxy's endpoints, "worker[,client]"
	Models   []string // the models the workers serve, one worker image each
	// EngineURL and WeightsDigest are the workers' engine settings ("": the built-in engine).
	EngineURL, WeightsDigest string
	Deposit                  uint64 // nanoTON the client keeps deposited with each proxy
}

// DefaultSeed is the seed of `cocoon demo setup` unless told otherwise.
const DefaultSeed = "cocoon development network"

// Layout is a development network laid out on a chain: the addresses its nodes are configured
// with.
type Layout struct {
	Registry  ton.AccountID
	Contracts []ton.AccountID // each proxy's, in SetupOptions.Proxies order
}

// seeded derives every key from seed and writes it to dir (mode 0600), so that the registry's and
// the proxy contracts' addresses are known before the chain exists: a compose file or a script
// can name them. Anyone who knows the seed holds these keys; that is what makes it development
// only.
func seeded(seed, dir string) keySource {
	return func(name string) (ed25519.PrivateKey, error) {
		sum := sha256.Sum256([]byte(seed + "/" + name))
		k := ed25519.NewKeyFromSeed(sum[:])
		path := filepath.Join(dir, name+".key")
		if old, err := chain.LoadKey(path); err == nil {
			if !old.Equal(k) {
				return nil, fmt.Errorf("%s holds another key than the seed gives: remove it or use its seed", path)
			}
			return k, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if err := os.WriteFile(path, []byte(hex.EncodeToString(sum[:])+"\n"), 0o600); err != nil {
			return nil, err
		}
		return k, nil
	}
}

// PlanSetup is the layout Setup makes with o, computed without a chain.
func PlanSetup(o SetupOptions) (Layout, error) {
	ch, err := setupChain(o.ChainURL)
	if err != nil {
		return Layout{}, err
	}
	a, err := loadAccounts(derived(o.Seed), len(o.Proxies), 0)
	if err != nil {
		return Layout{}, err
	}
	return plan(ch, a, contracts.DefaultParams())
}

// derived is seeded without files: the keys alone.
func derived(seed string) keySource {
	return func(name string) (ed25519.PrivateKey, error) {
		sum := sha256.Sum256([]byte(seed + "/" + name))
		return ed25519.NewKeyFromSeed(sum[:]), nil
	}
}

func plan(ch chain.Chain, a accounts, params contracts.RegistryParams) (Layout, error) {
	var l Layout
	var err error
	if l.Registry, err = local.DemoRegistry(ch, a.owner, params); err != nil {
		return l, err
	}
	for _, p := range a.demoProxies(nil) {
		c, err := local.DemoProxyContract(ch, l.Registry, params, p)
		if err != nil {
			return l, err
		}
		l.Contracts = append(l.Contracts, c)
	}
	return l, nil
}

// Setup lays a development network out on the chain at o.ChainURL the way the demo does on its
// own: keys derived from o.Seed written to o.Keys (registry-owner, proxy-operator, proxy-payment,
// client-wallet, worker-wallet; -2, -3… for further proxies), a registry that allows exactly the images that
// proxies and workers present with simulated TDX, payments on that chain and that registry (and
// the models they serve), each proxy's contract listed at its endpoints, and the client's wallet
// funded and deposited with every proxy. It is idempotent, so it may run at every start.
func Setup(ctx context.Context, o SetupOptions, out func(format string, args ...any)) (Layout, error) {
	ch, err := setupChain(o.ChainURL)
	if err != nil {
		return Layout{}, err
	}
	if len(o.Proxies) == 0 || len(o.Models) == 0 {
		return Layout{}, errors.New("at least one proxy and one model")
	}
	if err := os.MkdirAll(o.Keys, 0o700); err != nil {
		return Layout{}, fmt.Errorf("keys directory: %w", err)
	}
	// A worker's wallet too: it only earns, but the worker needs a key file to earn into.
	a, err := loadAccounts(seeded(o.Seed, o.Keys), len(o.Proxies), 1)
	if err != nil {
		return Layout{}, err
	}
	params := contracts.DefaultParams()
	l, err := plan(ch, a, params)
	if err != nil {
		return l, err
	}
	// What the nodes run with, as far as their image hashes see it.
	cfg := config.Defaults()
	cfg.Attestation.Simulated, cfg.Attestation.AllowSimulated = true, true
	cfg.Payments = config.Payments{Chain: "toncenter", ChainURL: o.ChainURL, Registry: config.Address{AccountID: l.Registry, Set: true}}
	cfg.Worker.EngineURL, cfg.Worker.WeightsDigest = o.EngineURL, o.WeightsDigest
	pimg, wimg, models, err := images(cfg, o.Models)
	if err != nil {
		return l, err
	}
	d, err := local.SetupDemo(ctx, ch, local.DemoConfig{
		Owner: a.owner, Proxies: a.demoProxies(o.Proxies), Params: params,
		Fund:        []ed25519.PublicKey{a.client.Public().(ed25519.PublicKey)},
		ProxyImages: pimg, WorkerImages: wimg, Models: models,
	})
	if err != nil {
		return l, err
	}
	if d.Registry != l.Registry {
		return l, fmt.Errorf("the registry is at %s, not at %s as planned (other parameters on chain?)", d.Registry.ToRaw(), l.Registry.ToRaw())
	}
	if _, err := keepDeposited(ctx, ch, a.client, d.Proxies, o.Deposit); err != nil {
		return l, err
	}
	out("registry        %s\n", l.Registry.ToHuman(true, false))
	for i, c := range d.Proxies {
		out("proxy contract  %s  at %s  (key %s)\n", c.ToHuman(true, false), o.Proxies[i], filepath.Join(o.Keys, keyName("proxy-payment", i)+".key"))
	}
	acct, err := ch.WalletAddress(a.client.Public().(ed25519.PublicKey))
	if err != nil {
		return l, err
	}
	out("client wallet   %s  (key %s)\n", acct.ToHuman(true, false), filepath.Join(o.Keys, "client-wallet.key"))
	for i, h := range wimg {
		out("worker image    %x  (%s)\n", h, o.Models[i])
	}
	out("proxy image     %x\n", pimg[0])
	return l, nil
}

// setupChain is the `cocoon chain serve` at url; only its address functions are used offline.
func setupChain(url string) (local.DemoChain, error) {
	if url == "" {
		return nil, errors.New("a chain URL (`cocoon chain serve`) is required")
	}
	return toncenter.New(url, tonchain.Mainnet, toncenter.Options{})
}
