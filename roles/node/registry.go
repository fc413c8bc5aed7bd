package node

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/roles/internal/proxyset"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

// DefaultRegistryInterval is how often a registry is read unless configured.
const DefaultRegistryInterval = 10 * time.Second

// Registry follows one registry contract and hands every new version to the parts of the node
// that depend on it: the proxies a client or worker connects to, the policy its handshakes use.
type Registry struct {
	chain chain.Chain
	addr  ton.AccountID
	every time.Duration
	log   zerolog.Logger

	mu     sync.Mutex
	last   contracts.Registry
	seen   bool
	notify []func(contracts.Registry)
}

// NewRegistry follows the registry at addr on ch, reading it every interval (payments.registry_interval);
// Read it once, then Run it.
func NewRegistry(ch chain.Chain, addr ton.AccountID, every time.Duration, log zerolog.Logger) *Registry {
	if every <= 0 {
		every = DefaultRegistryInterval
	}
	return &Registry{chain: ch, addr: addr, every: every, log: log.With().Str("registry", addr.ToRaw()).Logger()}
}

// Read reads the registry once, so that a node starts with its lists rather than with nothing.
func (r *Registry) Read(ctx context.Context) error {
	reg, err := chain.Registry(ctx, r.chain, r.addr)
	if err != nil {
		return err
	}
	r.apply(reg)
	return nil
}

// onChange calls f with the registry now (if read) and with every later version.
func (r *Registry) onChange(f func(contracts.Registry)) {
	r.mu.Lock()
	r.notify = append(r.notify, f)
	last, seen := r.last, r.seen
	r.mu.Unlock()
	if seen {
		f(last)
	}
}

func (r *Registry) apply(reg contracts.Registry) {
	r.mu.Lock()
	if r.seen && reg.Version == r.last.Version {
		r.mu.Unlock()
		return
	}
	r.last, r.seen = reg, true
	notify := append([]func(contracts.Registry){}, r.notify...)
	r.mu.Unlock()
	r.log.Info().Uint32("version", reg.Version).Int("proxies", len(reg.Proxies)).Int("proxy_images", len(reg.ProxyImages)).
		Int("worker_images", len(reg.WorkerImages)).Int("models", len(reg.Models)).Msg("registry")
	for _, f := range notify {
		f(reg)
	}
}

// current is the registry as last read.
func (r *Registry) current() (contracts.Registry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last, r.seen
}

// Run watches the registry until ctx ends.
func (r *Registry) Run(ctx context.Context) error {
	return chain.WatchRegistry(ctx, r.chain, r.addr, r.every, r.apply, func(err error) {
		r.log.Warn().Err(err).Msg("read registry")
	})
}

// targets are the registry's proxies as a client (client endpoints) or a worker (worker
// endpoints) connects to them, each with the payment key the registry lists for it.
func targets(reg contracts.Registry, forWorker bool) []proxyset.Target {
	out := make([]proxyset.Target, 0, len(reg.Proxies))
	for _, p := range reg.Proxies {
		ep := p.ClientEndpoint
		if forWorker {
			ep = p.WorkerEndpoint
		}
		out = append(out, proxyset.Target{Endpoint: ep, PaymentKey: p.Key, Name: p.Contract.ToHuman(true, false)})
	}
	return out
}

// contractsOf are the proxy contracts the registry lists.
func contractsOf(reg contracts.Registry) []ton.AccountID {
	out := make([]ton.AccountID, 0, len(reg.Proxies))
	for _, p := range reg.Proxies {
		out = append(out, p.Contract)
	}
	return out
}

// policyFrom keeps v's policy equal to its local policy (as v has it now) narrowed to each
// registry version's lists, so that a change on chain reaches new handshakes at once and drains
// the connections of peers no longer allowed.
func (r *Registry) policyFrom(v *attest.Verifier) {
	local := v.Policy()
	r.onChange(func(reg contracts.Registry) {
		p, err := attest.PolicyFromRegistry(attest.RegistryLists{
			Address: r.addr.ToHuman(true, false), Version: reg.Version,
			ProxyImages: reg.ProxyImages, WorkerImages: reg.WorkerImages, Models: reg.Models,
		}, local)
		if err == nil {
			err = v.SetPolicy(p)
		}
		if err != nil {
			// The old policy stays: it is at least as strict as the registry's last good lists.
			r.log.Error().Err(err).Uint32("version", reg.Version).Msg("registry lists not applied")
		}
	})
}
