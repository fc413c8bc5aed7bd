package node

import (
	"crypto/ed25519"
	"time"

	"github.com/rs/zerolog"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/roles/client"
	"github.com/cocoon-network/cocoon/roles/proxy"
	"github.com/cocoon-network/cocoon/roles/worker"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/contracts"
	"github.com/cocoon-network/cocoon/settle/meter"
	"github.com/cocoon-network/cocoon/transport"
)

// BuildProxy builds a proxy; with m it meters and charges every request.
// With reg it accepts only workers whose image and model the registry lists (narrowed by the
// local policy), following changes.
func BuildProxy(cfg config.Config, version string, log zerolog.Logger, m *meter.Meter, reg *Registry) (*proxy.Proxy, error) {
	return buildProxy(cfg, version, log, m, reg, nil)
}

// buildProxy is BuildProxy; adjust, when set, changes the proxy's transport before it is used.
func buildProxy(cfg config.Config, version string, log zerolog.Logger, m *meter.Meter, reg *Registry, adjust func(*transport.Config)) (*proxy.Proxy, error) {
	log = log.With().Str("role", "proxy").Logger()
	var claims attest.Claims
	pc := proxy.Config{
		Listen: cfg.Proxy.Listen, StatsListen: cfg.Proxy.StatsListen, StatsToken: cfg.Proxy.StatsToken,
		RequestTimeout: time.Duration(cfg.Proxy.RequestTimeout), MaxAttempts: cfg.Proxy.MaxAttempts,
	}
	if m != nil {
		// The payment key is named in the attested claims: clients and workers check the states
		// they receive against it, and the proxy contract is bound to it.
		pc.Payments = &proxy.Payments{Ledger: m.Ledger(), Prices: m.Prices, Account: m.Account, PaymentKey: m.PaymentKey(), CoefficientCap: m.CoefficientCap}
		claims.PaymentKey = pc.Payments.PaymentKey
	}
	tc, err := Transport(&cfg, attest.RoleProxy, claims, version, log)
	if err != nil {
		return nil, err
	}
	if reg != nil {
		reg.policyFrom(tc.Verifier)
	}
	if adjust != nil {
		adjust(&tc)
	}
	p, err := proxy.New(pc, tc, log)
	if err == nil && reg != nil {
		reg.onChange(func(r contracts.Registry) { p.RegistryRead(r.Version) })
	}
	return p, err
}

// BuildWorker builds a worker; with pay it earns into pay's wallet and keeps its states.
// With reg it connects to the proxies the registry lists (worker endpoints), follows changes, and
// ignores worker.proxies.
func BuildWorker(cfg config.Config, version string, log zerolog.Logger, pay *Party, reg *Registry) (*worker.Worker, error) {
	log = log.With().Str("role", "worker").Logger()
	engine, digest, err := Engine(cfg, log)
	if err != nil {
		return nil, err
	}
	wc := cfg.Worker
	tc, err := Transport(&cfg, attest.RoleWorker, attest.Claims{Model: wc.Model, WeightsDigest: digest}, version, log)
	if err != nil {
		return nil, err
	}
	if reg != nil {
		reg.policyFrom(tc.Verifier)
	}
	c := worker.Config{
		Proxies: wc.Proxies, Model: wc.Model, WeightsDigest: digest, Coefficient: wc.Coefficient,
		MaxActive: wc.MaxActive, OwnerAddress: wc.OwnerAddress.String(), StatsListen: wc.StatsListen,
	}
	if pay != nil {
		c.OwnerAddress, c.States = pay.Account.ToRaw(), pay.States
	}
	if reg != nil {
		c.Proxies, c.Discover = nil, true
	}
	w, err := worker.New(c, engine, tc, log)
	if err != nil {
		return nil, err
	}
	if reg != nil {
		reg.onChange(func(r contracts.Registry) {
			if err := w.SetProxies(targets(r, true)); err != nil {
				log.Warn().Err(err).Msg("proxies from the registry")
			}
		})
	}
	return w, nil
}

// BuildClient builds a client; with pay it pays from pay's wallet, whose key is also its
// certificate key (that is how a proxy knows whose deposit pays), and keeps its states.
// With reg it connects to the proxies the registry lists (client endpoints), follows changes, and
// ignores client.proxies.
func BuildClient(cfg config.Config, version string, log zerolog.Logger, pay *Party, reg *Registry) (*client.Client, error) {
	log = log.With().Str("role", "client").Logger()
	var keys []ed25519.PrivateKey
	if pay != nil {
		keys = append(keys, pay.Key)
	}
	tc, err := Transport(&cfg, attest.RoleClient, attest.Claims{}, version, log, keys...)
	if err != nil {
		return nil, err
	}
	if reg != nil {
		reg.policyFrom(tc.Verifier)
	}
	cc := cfg.Client
	c := client.Config{
		Proxies: cc.Proxies, Listen: cc.Listen, APIToken: cc.APIToken, MaxBodyBytes: cc.MaxBodyBytes,
		MaxCoefficient: cc.MaxCoefficient, RequestTimeout: time.Duration(cc.RequestTimeout), MaxProxies: cc.MaxProxies,
		MaxBodiesBytes: cc.MaxBodiesBytes, MaxConnections: cc.MaxConnections,
		AllowedOrigins: cc.AllowedOrigins, AllowedHosts: cc.AllowedHosts,
		PlaintextDev: cc.PlaintextDev, ReceiptsKept: cc.ReceiptsKept,
	}
	if cc.PlaintextDev {
		log.Warn().Msg("client.plaintext_dev: request bodies go to the proxy IN CLEAR (development only)")
	}
	if pay != nil {
		c.States = pay.States
	}
	if reg != nil {
		c.Proxies, c.Discover = nil, true
		c.Prices = func() (settle.Prices, bool) {
			r, ok := reg.current()
			return r.Params.Prices, ok
		}
	}
	cl, err := client.New(c, tc, log)
	if err != nil {
		return nil, err
	}
	if reg != nil {
		reg.onChange(func(r contracts.Registry) {
			if err := cl.SetProxies(targets(r, false)); err != nil {
				log.Warn().Err(err).Msg("proxies from the registry")
			}
		})
	}
	return cl, nil
}
