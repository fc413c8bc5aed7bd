package doctor

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/tonkeeper/tongo/ton"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/sim"
	"github.com/cocoon-network/cocoon/roles/node"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/chains"
	"github.com/cocoon-network/cocoon/settle/chain/local"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

// Thresholds of the checks.
const (
	skewWarn  = 30 * time.Second // the chain's time is read to about a block
	skewFail  = 2 * time.Minute  // certificates and states are dated: beyond this handshakes and settlement go wrong
	diskWarn  = 1 << 30
	diskFail  = 100 << 20
	gasNeeded = chain.GasAmount // a submit or top-up attaches this much
	// dialTimeout bounds one handshake: QUIC over loopback or a LAN completes in milliseconds,
	// and a proxy that sends nothing back sends nothing later either.
	dialTimeout = 5 * time.Second
)

func (d *Doctor) checkTDX(context.Context) Result {
	const name = "tdx"
	if d.cfg.Attestation.Simulated {
		dir := d.cfg.SimRoot()
		const fix = "run the node in a TDX VM and unset attestation.simulated (--sim) for anything but development"
		if made, err := simRootMade(dir); err != nil {
			return fail(name, "remove "+dir+" to have a new development root made, or point attestation.sim_dir elsewhere",
				"simulated TDX: the development root of trust at %s does not load: %s", dir, short(err))
		} else if !made {
			return warn(name, fix, "simulated TDX: the development root of trust at %s is made on first start; quotes prove nothing about hardware", dir)
		}
		return warn(name, fix, "simulated TDX with the development root of trust at %s: quotes prove nothing about hardware", dir)
	}
	q, err := d.deps.TDX()
	if err != nil {
		return fail(name, "run the node in a TDX VM (or set attestation.simulated, --sim, for development)", "%s", short(err))
	}
	if _, err := q.Quote([64]byte{}); err != nil {
		return fail(name, "check the host's quote generation service (QGS) and the VM's vsock to it", "the TDX guest gave no quote: %s", short(err))
	}
	iface := "the TDX guest"
	if n, ok := q.(interface{ Interface() string }); ok {
		iface = n.Interface()
	}
	return ok(name, "TDX quotes from %s", iface)
}

func (d *Doctor) checkCollateral(context.Context) Result {
	const name = "collateral"
	a := d.cfg.Attestation
	if a.Simulated || a.AllowSimulated {
		dir := d.cfg.SimRoot()
		if made, err := simRootMade(dir); err == nil && !made {
			if d.role == attest.RoleClient {
				return fail(name, "start a simulated proxy or worker first (it makes the root), or point attestation.sim_dir (--sim-dir) at theirs",
					"no development root of trust at %s to check simulated quotes with", dir)
			}
			return ok(name, "simulated quotes: the development root at %s, made on first start, signs its own collateral", dir)
		} else if err != nil {
			return fail(name, "remove "+dir+" to have a new development root made, or point attestation.sim_dir elsewhere", "development root at %s: %s", dir, short(err))
		}
		return ok(name, "simulated quotes: collateral signed by the development root at %s (Intel's not checked)", dir)
	}
	now := d.deps.Now()
	const refresh = "refresh it with `cocoon attest collateral fetch` (or drop attestation.offline to fetch it)"
	if a.CollateralBundle != "" || a.Offline {
		src := a.CollateralBundle
		if src == "" {
			src = d.collateralDir()
		}
		entries, err := attest.ReadCollateralBundle(src)
		if err != nil {
			return fail(name, refresh, "collateral %s: %s", src, short(err))
		}
		return freshness(name, "collateral in "+src, entries, now, refresh)
	}
	g, err := attest.NewCollateralGetter(attest.CollateralConfig{URL: a.CollateralURL, HTTP: d.deps.Collateral, Now: d.deps.Now})
	if err != nil {
		return fail(name, "set attestation.collateral_url to http(s)://host[:port] of a PCCS, or leave it empty for Intel PCS", "%s", short(err))
	}
	base := a.CollateralURL
	if base == "" {
		base = attest.IntelPCSURL
	}
	e, err := g.Fetch(attest.CollateralURLs("", "platform")[1]) // the QE identity: the same for every platform
	if err != nil {
		return fail(name, "check this machine reaches "+base+", set attestation.collateral_url to a PCCS it reaches, or give attestation.collateral_bundle",
			"no collateral from %s: %s", base, short(err))
	}
	return freshness(name, base+" answers", []*attest.CollateralEntry{e}, now, "the PCCS at "+base+" serves expired collateral: refresh its cache")
}

// simRootMade says whether the development root of trust in dir was made, and loads; a missing or
// empty directory is one the first node to start makes.
func simRootMade(dir string) (bool, error) {
	if entries, err := os.ReadDir(dir); errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0) {
		return false, nil
	}
	if _, err := sim.OpenPublic(dir); err != nil {
		return false, err
	}
	return true, nil
}

// freshness is ok when every entry is current, and fails naming the first expired one.
func freshness(name, what string, entries []*attest.CollateralEntry, now time.Time, fix string) Result {
	if len(entries) == 0 {
		return fail(name, fix, "%s: no collateral", what)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].NextUpdate.Before(entries[j].NextUpdate) })
	first := entries[0]
	if !now.Before(first.NextUpdate) {
		return fail(name, fix, "%s: %d response(s), %s expired %s", what, len(entries), first.URL, first.NextUpdate.UTC().Format(time.RFC3339))
	}
	return ok(name, "%s: %d response(s), current until %s", what, len(entries), first.NextUpdate.UTC().Format(time.RFC3339))
}

func (d *Doctor) collateralDir() string {
	if d.cfg.Attestation.CollateralDir != "" {
		return d.cfg.Attestation.CollateralDir
	}
	return filepath.Join(d.cfg.Data, "collateral")
}

func (d *Doctor) checkEngine(ctx context.Context) Result {
	const name = "engine"
	w := d.cfg.Worker
	if w.EngineURL == "" {
		return ok(name, "the built-in engine serves %s (canned answers; set worker.engine_url for vLLM, SGLang, llama.cpp or Ollama)", w.Model)
	}
	models, err := listModels(ctx, d.deps.HTTP, w.EngineURL, w.EngineAPIKey)
	switch {
	case errors.Is(err, errUnauthorized):
		return fail(name, "set worker.engine_api_key to the engine's key", "the engine at %s refuses the key: %s", w.EngineURL, short(err))
	case errors.Is(err, errNoList):
		return warn(name, "check the engine serves "+w.Model+" under that name", "the engine at %s answers but lists no models (%s)", w.EngineURL, short(err))
	case err != nil:
		return fail(name, "start the engine, or fix worker.engine_url", "the engine at %s does not answer: %s", w.EngineURL, node.Cause(err))
	}
	for _, m := range models {
		if m == w.Model {
			return ok(name, "the engine at %s answers and serves %s", w.EngineURL, w.Model)
		}
	}
	return fail(name, "set worker.model to one the engine serves, or load "+w.Model+" in the engine",
		"the engine at %s serves %s, not %s", w.EngineURL, strings.Join(models, ", "), w.Model)
}

// weightsDigest is the digest the worker announces and where it comes from.
func (d *Doctor) weightsDigest() (digest, from string, err error) {
	d.weightsOnce.Do(func() {
		w := d.cfg.Worker
		_, d.weights, d.weightsErr = node.Engine(d.cfg, zerolog.Nop())
		switch {
		case w.ModelDir != "":
			d.weightsFrom = "digest of " + w.ModelDir
		case w.WeightsDigest != "":
			d.weightsFrom = "worker.weights_digest"
		default:
			d.weightsFrom = "the built-in engine's"
		}
	})
	return d.weights, d.weightsFrom, d.weightsErr
}

func (d *Doctor) checkWeights(context.Context) Result {
	const name = "weights"
	digest, from, err := d.weightsDigest()
	if err != nil {
		return fail(name, "set worker.model_dir to the weights directory, or worker.weights_digest to sha256:<64 hex>", "%s", short(err))
	}
	if _, err := parseDigest(digest); err != nil {
		return fail(name, "set worker.weights_digest to sha256:<64 hex> (the digest of the weights the engine loads)", "%s: %s", from, short(err))
	}
	return ok(name, "%s (%s)", digest, from)
}

// parseDigest reads sha256:<64 hex>.
func parseDigest(s string) ([32]byte, error) {
	var h [32]byte
	b, err := hex.DecodeString(strings.TrimPrefix(s, "sha256:"))
	if !strings.HasPrefix(s, "sha256:") || err != nil || len(b) != len(h) {
		return h, fmt.Errorf("%q is not sha256:<64 hex>", s)
	}
	copy(h[:], b)
	return h, nil
}

func (d *Doctor) checkListen(context.Context) Result {
	const name = "listen"
	addr := d.cfg.Proxy.Listen
	if err := node.CheckListen("proxy.listen", "udp", addr, "this proxy, already running, or another"); err != nil {
		return warn(name, "stop what listens there, or set proxy.listen (--listen) to a free port", "%s", short(err))
	}
	return ok(name, "UDP %s is free for the proxy's QUIC", addr)
}

// chain opens the payments chain once: through the URL a process holding the local chain file
// serves it at, when it records one and it answers, else as configured.
func (d *Doctor) chain(ctx context.Context) (chain.Chain, error) {
	d.chainOnce.Do(func() {
		w, err := node.ChainWhere(d.cfg)
		if err != nil {
			d.chainErr = err
			return
		}
		d.where = w
		if w.Local != "" {
			if _, err := os.Stat(w.Local); err != nil {
				d.chainErr = fmt.Errorf("no local chain at %s: run `cocoon demo` once, or set payments.chain_data", w.Local)
				return
			}
			if u := local.ServedURL(w.Local); u != "" {
				if ch, closeCh, err := d.deps.OpenChain(ctx, chains.Where{URL: u}); err == nil {
					if _, err := ch.Account(ctx, ton.AccountID{}); err == nil {
						d.ch, d.closeCh, d.chainVia = ch, closeCh, u
						return
					}
					_ = closeCh()
				}
			}
		}
		d.ch, d.closeCh, d.chainErr = d.deps.OpenChain(ctx, w)
		if errors.Is(d.chainErr, bolterrors.ErrTimeout) {
			d.chainErr = fmt.Errorf("the local chain %s is held by another process that does not serve it (a running node?): stop it, or run doctor with payments.chain toncenter and the URL of a `cocoon chain serve`", w.Local)
		}
	})
	return d.ch, d.chainErr
}

// registry reads payments.registry once.
func (d *Doctor) registry(ctx context.Context) (contracts.Registry, error) {
	d.regOnce.Do(func() {
		ch, err := d.chain(ctx)
		if err != nil {
			d.regErr = err
			return
		}
		d.reg, d.regErr = chain.Registry(ctx, ch, d.cfg.Payments.Registry.AccountID)
	})
	return d.reg, d.regErr
}

func (d *Doctor) hasRegistry() bool { return d.cfg.Payments.Chain != "" && d.cfg.Payments.Registry.Set }

const registryFix = "check payments.chain and payments.registry name the chain and registry the network runs on"

func (d *Doctor) checkRegistry(ctx context.Context) Result {
	const name = "registry"
	if !d.hasRegistry() {
		return ok(name, "no payments.registry: proxies and images come from the configuration (proxies, attestation.policy)")
	}
	r, err := d.registry(ctx)
	if err != nil {
		return fail(name, registryFix, "%s", short(err))
	}
	via := ""
	if d.chainVia != "" {
		via = " (read through " + d.chainVia + ")"
	}
	return ok(name, "%s version %d lists %s, %s, %s, %s%s", d.cfg.Payments.Registry.AccountID.ToHuman(true, false), r.Version,
		count(len(r.Proxies), "proxy", "proxies"), count(len(r.ProxyImages), "proxy image", "proxy images"),
		count(len(r.WorkerImages), "worker image", "worker images"), count(len(r.Models), "model", "models"), via)
}

func (d *Doctor) checkImage(ctx context.Context) Result {
	const name = "image"
	h, simulated, err := d.deps.ImageHash(d.cfg, d.role)
	if err != nil {
		return fail(name, "see the cause; `cocoon "+string(d.role)+" --print-image` shows the same", "%s", short(err))
	}
	label := ""
	if simulated {
		label = " (simulated)"
	}
	if !d.hasRegistry() {
		return ok(name, "%s%s; no registry to check it against", h, label)
	}
	r, err := d.registry(ctx)
	if err != nil {
		return fail(name, registryFix, "%s%s: registry unread: %s", h, label, short(err))
	}
	allowed, list := r.WorkerImageAllowed(h), "worker-image"
	if d.role == attest.RoleProxy {
		allowed, list = r.ProxyImageAllowed(h), "proxy-image"
	}
	if !allowed {
		return fail(name, fmt.Sprintf("the registry's owner allows it: cocoon chain registry allow %s %s %s (or run the image the registry lists)",
			d.cfg.Payments.Registry.AccountID.ToRaw(), list, h), "%s%s is not on the registry's %s list (peers refuse it)", h, label, list)
	}
	return ok(name, "%s%s is on the registry's %s list", h, label, list)
}

func (d *Doctor) checkModel(ctx context.Context) Result {
	const name = "model"
	digest, _, err := d.weightsDigest()
	if err != nil {
		return fail(name, "fix the weights check first", "no weights digest: %s", short(err))
	}
	h, err := parseDigest(digest)
	if err != nil {
		return fail(name, "fix the weights check first", "%s", short(err))
	}
	if !d.hasRegistry() {
		return ok(name, "%s serves %s; no registry to check it against", d.cfg.Worker.Model, digest)
	}
	r, err := d.registry(ctx)
	if err != nil {
		return fail(name, registryFix, "registry unread: %s", short(err))
	}
	if !r.ModelAllowed(h) {
		return fail(name, fmt.Sprintf("the registry's owner allows it: cocoon chain registry allow %s model %s", d.cfg.Payments.Registry.AccountID.ToRaw(), digest),
			"%s (%s) is not on the registry's model list (proxies refuse the worker)", digest, d.cfg.Worker.Model)
	}
	return ok(name, "%s (%s) is on the registry's model list", digest, d.cfg.Worker.Model)
}

// endpoints are the proxies this node connects to: the registry's when it follows one, else
// the configured ones.
func (d *Doctor) endpoints(ctx context.Context) ([]string, string, error) {
	if !d.hasRegistry() {
		if d.role == attest.RoleWorker {
			return d.cfg.Worker.Proxies, "worker.proxies", nil
		}
		return d.cfg.Client.Proxies, "client.proxies", nil
	}
	r, err := d.registry(ctx)
	if err != nil {
		return nil, "", err
	}
	var out []string
	for _, p := range r.Proxies {
		ep := p.ClientEndpoint
		if d.role == attest.RoleWorker {
			ep = p.WorkerEndpoint
		}
		out = append(out, ep)
	}
	return out, "the registry", nil
}

func (d *Doctor) checkProxies(ctx context.Context) Result {
	const name = "proxies"
	eps, from, err := d.endpoints(ctx)
	if err != nil {
		return fail(name, registryFix, "registry unread: %s", short(err))
	}
	if len(eps) == 0 {
		return fail(name, "list the proxies in "+from, "no proxies in %s", from)
	}
	lines := make([]string, len(eps))
	bad := make([]bool, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Go(func() {
			dctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			start := d.deps.Now()
			peer, err := d.deps.Dial(dctx, ep)
			took := d.deps.Now().Sub(start).Round(time.Millisecond)
			switch {
			case err == nil:
				lines[i] = fmt.Sprintf("%s %s in %s", ep, peer.Label(), took)
			case noAnswer(err):
				lines[i], bad[i] = fmt.Sprintf("%s: no answer over UDP (the proxy is down, or a firewall drops UDP to it)", ep), true
			default:
				lines[i], bad[i] = fmt.Sprintf("%s answered over UDP, but the attested handshake failed: %s", ep, short(err)), true
			}
		})
	}
	wg.Wait()
	var failed []string
	for i, l := range lines {
		if bad[i] {
			failed = append(failed, l)
		}
	}
	switch {
	case len(failed) == len(eps):
		return fail(name, "start the proxies or open UDP to them; a refused handshake names its cause",
			"none of %d from %s: %s", len(eps), from, strings.Join(failed, "; "))
	case len(failed) > 0:
		return warn(name, "see the cause of each", "%d of %d from %s answered: %s", len(eps)-len(failed), len(eps), from, strings.Join(lines, "; "))
	}
	return ok(name, "%d of %d from %s: attested QUIC handshake with %s", len(eps), len(eps), from, strings.Join(lines, "; "))
}

// noAnswer says a dial got nothing back: a timeout, or a port nothing listens on.
func noAnswer(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) ||
		strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "timeout: no recent network activity")
}

// walletKey loads the role's wallet key (never making one): payments.key, else the one the role
// makes on first start. A proxy's is its payment key, whose wallet pays the gas of settling
// client charges.
func (d *Doctor) walletKey() (ed25519.PrivateKey, string, error) {
	path := d.cfg.Payments.Key
	if path == "" {
		name := string(d.role) + "-wallet.key"
		if d.role == attest.RoleProxy {
			name = "proxy-payment.key"
		}
		path = filepath.Join(d.cfg.Data, "keys", name)
	}
	k, err := chain.LoadKey(path)
	return k, path, err
}

func (d *Doctor) checkWallet(ctx context.Context) Result {
	const name = "wallet"
	key, path, err := d.walletKey()
	if errors.Is(err, os.ErrNotExist) {
		return warn(name, "start the "+string(d.role)+" once, or set payments.key, then fund the wallet it prints", "no wallet key at %s yet (made on first start)", path)
	}
	if err != nil {
		return fail(name, "fix or replace the key file (payments.key)", "%s", short(err))
	}
	ch, err := d.chain(ctx)
	if err != nil {
		return fail(name, registryFix, "chain unread: %s", short(err))
	}
	addr, err := ch.WalletAddress(key.Public().(ed25519.PublicKey))
	if err != nil {
		return fail(name, "check payments.network", "%s", short(err))
	}
	b, err := chain.Balance(ctx, ch, addr)
	if err != nil {
		return fail(name, registryFix, "wallet %s: %s", addr.ToHuman(true, false), short(err))
	}
	what := map[attest.Role]string{attest.RoleClient: "top-ups and submits attach", attest.RoleWorker: "a payout submit attaches",
		attest.RoleProxy: "a settlement of client charges attaches"}[d.role]
	if b < gasNeeded {
		return warn(name, "send TON to "+addr.ToHuman(true, false), "wallet %s holds %s TON: less than the %s TON of gas %s",
			addr.ToHuman(true, false), settle.FormatTON(b), settle.FormatTON(gasNeeded), what)
	}
	return ok(name, "wallet %s holds %s TON", addr.ToHuman(true, false), settle.FormatTON(b))
}

func (d *Doctor) checkDeposit(ctx context.Context) Result {
	const name = "deposit"
	ch, err := d.chain(ctx)
	if err != nil {
		return fail(name, registryFix, "chain unread: %s", short(err))
	}
	if d.role == attest.RoleProxy {
		return d.proxyStake(ctx, ch)
	}
	if !d.hasRegistry() {
		return warn(name, "set payments.registry", "no payments.registry: the client's deposits are not checked (the registry names each proxy's contract)")
	}
	r, err := d.registry(ctx)
	if err != nil {
		return fail(name, registryFix, "registry unread: %s", short(err))
	}
	key, path, err := d.walletKey()
	if err != nil {
		return fail(name, "start the client once, or set payments.key", "no wallet key: %s", short(err))
	}
	addr, err := ch.WalletAddress(key.Public().(ed25519.PublicKey))
	if err != nil {
		return fail(name, "check payments.network", "%s", short(err))
	}
	var funded, empty []string
	for _, p := range r.Proxies {
		ps, err := chain.Proxy(ctx, ch, p.Contract)
		if err != nil {
			empty = append(empty, fmt.Sprintf("%s: %s", p.Contract.ToHuman(true, false), short(err)))
			continue
		}
		if acc, ok := ps.Clients[addr]; ok && acc.Open && acc.Balance > 0 {
			funded = append(funded, fmt.Sprintf("%s TON left (stake %s TON) with %s", settle.FormatTON(acc.Balance), settle.FormatTON(acc.Stake), p.Contract.ToHuman(true, false)))
		} else {
			empty = append(empty, p.Contract.ToHuman(true, false))
		}
	}
	topUp := fmt.Sprintf("cocoon chain client top-up --key %s CONTRACT AMOUNT", path)
	switch {
	case len(r.Proxies) == 0:
		return fail(name, "wait for proxies to be listed", "the registry lists no proxies to deposit with")
	case len(funded) == 0:
		return fail(name, topUp, "no deposit with any of the %d listed proxy contracts: %s", len(r.Proxies), strings.Join(empty, ", "))
	case len(empty) > 0:
		return warn(name, topUp+" (requests go only to proxies holding a deposit)", "%s; none with %s", strings.Join(funded, "; "), strings.Join(empty, ", "))
	}
	return ok(name, "%s", strings.Join(funded, "; "))
}

// proxyStake checks the proxy's own contract: active, staked at least the registry's minimum.
func (d *Doctor) proxyStake(ctx context.Context, ch chain.Chain) Result {
	const name = "deposit"
	pc := d.cfg.Payments.ProxyContract
	if !pc.Set {
		return fail(name, "deploy it with `cocoon chain proxy deploy REGISTRY PAYMENT-KEY-HEX`, then set payments.proxy_contract", "no payments.proxy_contract")
	}
	p, err := chain.Proxy(ctx, ch, pc.AccountID)
	if err != nil {
		return fail(name, "check payments.proxy_contract, or deploy it with `cocoon chain proxy deploy`", "%s", short(err))
	}
	if p.Status != contracts.ProxyActive {
		return fail(name, "deploy a new proxy contract: a closing one takes no deposits", "proxy contract %s is %s", pc.AccountID.ToHuman(true, false), p.Status)
	}
	if d.hasRegistry() {
		if r, err := d.registry(ctx); err == nil && p.ProxyStake < r.Params.MinProxyStake {
			return fail(name, "add stake to the contract", "proxy contract %s stakes %s TON, below the registry's minimum %s TON",
				pc.AccountID.ToHuman(true, false), settle.FormatTON(p.ProxyStake), settle.FormatTON(r.Params.MinProxyStake))
		}
	}
	return ok(name, "proxy contract %s active: stake %s TON, client funds %s TON in %s",
		pc.AccountID.ToHuman(true, false), settle.FormatTON(p.ProxyStake), settle.FormatTON(p.ClientFunds), count(int(p.OpenClients), "open account", "open accounts"))
}

func (d *Doctor) checkClock(ctx context.Context) Result {
	const name = "clock"
	const fix = "sync the clock with NTP (timedatectl set-ntp true)"
	switch d.cfg.Payments.Chain {
	case "":
		return ok(name, "no payments.chain to compare with; keep NTP on: certificates and collateral are dated")
	case "local":
		return ok(name, "the local chain keeps this machine's time")
	}
	w, err := node.ChainWhere(d.cfg)
	if err != nil {
		return fail(name, registryFix, "%s", short(err))
	}
	t, err := d.deps.ChainTime(ctx, w)
	if err != nil {
		return warn(name, "check the chain answers; then rerun", "the chain's time is unknown: %s", short(err))
	}
	skew := d.deps.Now().Sub(t).Round(time.Second)
	abs := max(skew, -skew)
	switch {
	case abs > skewFail:
		return fail(name, fix, "this machine's clock is %s off the chain's", skew)
	case abs > skewWarn:
		return warn(name, fix, "this machine's clock is %s off the chain's", skew)
	}
	return ok(name, "this machine's clock is within %s of the chain's (%s)", skewWarn, skew)
}

func (d *Doctor) checkDisk(context.Context) Result {
	const name = "disk"
	what := "payment states"
	if d.role == attest.RoleProxy {
		what = "the ledger"
	}
	dir := d.cfg.Data
	for {
		if _, err := os.Stat(dir); err == nil || filepath.Dir(dir) == dir {
			break
		}
		dir = filepath.Dir(dir) // the data directory is made on first start
	}
	free, err := d.deps.FreeBytes(dir)
	if err != nil {
		return warn(name, "check the data directory (data, --data) is on a writable file system", "free space on %s unknown: %s", dir, short(err))
	}
	fix := "free space there, or set data (--data) to a larger file system"
	switch {
	case free < diskFail:
		return fail(name, fix, "%s free on %s, for %s: below %s", mib(free), dir, what, mib(diskFail))
	case free < diskWarn:
		return warn(name, fix, "%s free on %s, for %s: below %s", mib(free), dir, what, mib(diskWarn))
	}
	return ok(name, "%s free on %s, for %s", mib(free), dir, what)
}

// count is n things, singular for one.
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func mib(b uint64) string {
	if b >= 10<<30 {
		return fmt.Sprintf("%d GiB", b>>30)
	}
	return fmt.Sprintf("%d MiB", b>>20)
}
