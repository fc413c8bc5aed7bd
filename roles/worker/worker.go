package worker

import (
	"context"
	"encoding/hex"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/roles/internal/proxyset"
	"github.com/cocoon-network/cocoon/roles/internal/redial"
	"github.com/cocoon-network/cocoon/roles/internal/statsweb"
	"github.com/cocoon-network/cocoon/settle/paystate"
	"github.com/cocoon-network/cocoon/transport"
)

// Config is what a worker needs to know, already validated by config.
type Config struct {
	Proxies []string // proxy QUIC addresses: the first set (SetProxies replaces it); at least one unless Discover
	// Discover says the proxies come from SetProxies (the registry), so Proxies may be empty.
	Discover       bool
	Model          string
	WeightsDigest  string
	Coefficient    uint32        // price coefficient, 1000 = 1.0x
	MaxActive      int           // requests served at once
	OwnerAddress   string        // TON address that earns
	HealthInterval time.Duration // how often the engine is checked; zero: 2s
	StatsListen    string        // HTTP address of /healthz, /stats, /jsonstats; empty: none
	Backoff        redial.Backoff
	// States keeps the latest "earned" state each proxy signed; nil when payments are off.
	States *paystate.Store
}

// Worker serves inference requests from proxies.
type Worker struct {
	cfg    Config
	engine gpu.Engine
	tc     transport.Config
	log    zerolog.Logger
	// evidence is what the worker signs and binds with, per certificate it presented.
	evidence evidences

	healthy  atomic.Bool
	healthCh chan struct{} // closed and replaced on every health change
	healthMu sync.Mutex

	active atomic.Int64
	stats  counters
	mu     sync.Mutex // guards every proxyState
	set    *proxyset.Set[*proxyState]

	refusalBackoff redial.Backoff // after a payment key mismatch or a refused registration

	statsAddr chan net.Addr
}

type proxyState struct {
	Addr        string `json:"address"`
	Name        string `json:"name,omitempty"`
	PaymentKey  string `json:"payment_key,omitempty"` // hex, when the registry lists one
	Connected   bool   `json:"connected"`
	Registered  bool   `json:"registered"`
	Attestation string `json:"attestation,omitempty"`
	Image       string `json:"image_hash,omitempty"`
	// Refused is why the proxy refused this worker (its attestation, its registration) or the
	// worker the proxy (its payment key), while that lasts.
	Refused string `json:"refused,omitempty"`

	conn *transport.Conn // the current connection; a replaced one drains on its own
}

// New checks cfg and returns a worker. The engine and transport config are its dependencies.
func New(cfg Config, engine gpu.Engine, tc transport.Config, log zerolog.Logger) (*Worker, error) {
	if len(cfg.Proxies) == 0 && !cfg.Discover {
		return nil, errors.New("worker: proxies: at least one proxy address is required")
	}
	if cfg.Model == "" {
		return nil, errors.New("worker: model: required")
	}
	if cfg.Coefficient == 0 {
		cfg.Coefficient = 1000
	}
	if cfg.MaxActive <= 0 {
		return nil, errors.New("worker: max_active: must be positive")
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = 2 * time.Second
	}
	if cfg.Backoff == (redial.Backoff{}) {
		cfg.Backoff = redial.DefaultBackoff
	}
	if tc.Conns == nil {
		tc.Conns = new(transport.Conns)
	}
	w := &Worker{
		cfg: cfg, engine: engine, tc: tc,
		log:       log.With().Str("component", "worker").Logger(),
		healthCh:  make(chan struct{}),
		statsAddr: make(chan net.Addr, 1),

		refusalBackoff: proxyset.SlowBackoff,
	}
	w.engine = timed(engine, &w.stats.firstToken)
	w.tc.OnHandshake = w.stats.handshakes.Also(tc.OnHandshake)
	w.set = proxyset.New(newProxyState, w.keep)
	if err := w.SetProxies(proxyset.Static(cfg.Proxies)); err != nil {
		return nil, err
	}
	return w, nil
}

// ProxyTarget is a proxy the worker serves: the endpoint to dial, the payment key the registry
// lists for it (nil for a proxy configured by hand) and a name for logs.
type ProxyTarget = proxyset.Target

// ErrPaymentKeyMismatch is a proxy that presents another payment key than the registry lists for
// its endpoint; the worker does not register with it and tries again slowly.
var ErrPaymentKeyMismatch = proxyset.ErrPaymentKeyMismatch

// member is a proxy in the worker's set.
type member = proxyset.Member[*proxyState]

func newProxyState(t ProxyTarget) *proxyState {
	return &proxyState{Addr: t.Endpoint, Name: t.Name, PaymentKey: hex.EncodeToString(t.PaymentKey)}
}

// SetProxies replaces the set of proxies the worker serves, while it runs or before: proxies
// added are connected without a restart; a proxy no longer listed is told the worker unregisters,
// and its connection closes once the requests under way finish. The configured Config.Proxies
// are only the first set: a caller that wants to keep them lists them too.
func (w *Worker) SetProxies(ts []ProxyTarget) error {
	if err := proxyset.Validate("worker: proxies", ts); err != nil {
		return err
	}
	w.set.Update(ts)
	return nil
}

// keep holds a connection to m's proxy until ctx ends.
func (w *Worker) keep(ctx context.Context, m *member) {
	redial.Loop(ctx, m.Target.Endpoint, w.tc, w.cfg.Backoff, w.log, func(ctx context.Context, c *transport.Conn) {
		w.session(ctx, m, c)
	}, redial.Hooks{DialFailed: func(err error) { w.noteRefusal(m, proxyset.Refusal(err), err) }})
}

// noteRefusal records why m's proxy refused us or we it ("": it did not) and logs each new reason
// once. Refusals by our own attestation policy are logged by redial.
func (w *Worker) noteRefusal(m *member, reason string, err error) {
	if !m.Refused(reason) || reason == "" || errors.Is(err, transport.ErrPeerRefused) {
		return
	}
	w.log.Error().Str("proxy", m.Target.Label()).Str("endpoint", m.Target.Endpoint).Str("reason", reason).
		Msg("proxy not used: refused; retrying slowly")
}

// StatsAddr waits for and returns the stats HTTP address (nil if none is configured).
func (w *Worker) StatsAddr(ctx context.Context) net.Addr {
	if w.cfg.StatsListen == "" {
		return nil
	}
	select {
	case a := <-w.statsAddr:
		w.statsAddr <- a
		return a
	case <-ctx.Done():
		return nil
	}
}

// Run serves until ctx ends; it returns nil then.
func (w *Worker) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	if w.cfg.StatsListen != "" {
		a, err := statsweb.Serve(ctx, &wg, w.cfg.StatsListen, "worker", w)
		if err != nil {
			return err
		}
		w.statsAddr <- a
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.watchEngine(ctx)
	}()
	// Certificates are short-lived: replace ours before it expires; live connections are unaffected.
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = w.tc.Identity.Run(ctx, w.log)
	}()
	wg.Go(func() { w.set.Run(ctx) })
	w.log.Info().Str("model", w.cfg.Model).Int("max_active", w.cfg.MaxActive).
		Uint32("coefficient", w.cfg.Coefficient).Strs("proxies", w.cfg.Proxies).Msg("worker started")
	<-ctx.Done()
	wg.Wait()
	return nil
}

// watchEngine keeps w.healthy current and signals every change.
func (w *Worker) watchEngine(ctx context.Context) {
	t := time.NewTicker(w.cfg.HealthInterval)
	defer t.Stop()
	for {
		hctx, cancel := context.WithTimeout(ctx, w.cfg.HealthInterval+time.Second)
		err := w.engine.Health(hctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		up := err == nil
		if w.healthy.Swap(up) != up {
			if up {
				w.log.Info().Msg("engine answers: registering")
			} else {
				w.log.Warn().Err(err).Msg("engine down: unregistering")
			}
			w.healthMu.Lock()
			close(w.healthCh)
			w.healthCh = make(chan struct{})
			w.healthMu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *Worker) healthChanged() <-chan struct{} {
	w.healthMu.Lock()
	defer w.healthMu.Unlock()
	return w.healthCh
}

// setProxy applies f to the state of proxy p while c is its current connection: a connection
// that was replaced before its certificates expire no longer speaks for the proxy.
func (w *Worker) setProxy(p *proxyState, c *transport.Conn, f func(*proxyState)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p.conn == c {
		f(p)
	}
}
