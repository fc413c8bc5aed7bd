package proxy

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cocoon-network/cocoon/roles/internal/metrics"
	"github.com/cocoon-network/cocoon/roles/internal/statsweb"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/ledger"
	"github.com/cocoon-network/cocoon/transport/wire"
)

type counters struct {
	clients                            atomic.Int64
	requests, served, failed, notFound atomic.Int64
	// badRequest counts requests refused for the caller's own mistake (a malformed or unpriceable
	// request, or one the engine refused with a 4xx), paymentRequired those the balance could not
	// cover: neither is a failure of the network.
	badRequest, paymentRequired atomic.Int64
	latency                     statsweb.Window
	firstToken                  statsweb.Window // time from a request's arrival to its answer's head
	handshakes                  statsweb.Window // attested connection set-up, clients' and workers'
	// Billing anomalies, each charged the reservation or refused: usage that could not be priced,
	// answers with content and no usage, usage beyond the reservation, requests whose cost has no
	// bound.
	pricingErrors, zeroUsage, beyond, unpriceable atomic.Int64
	// tokens are the usage workers reported in the answers relayed.
	tokens struct{ prompt, cached, completion, reasoning atomic.Uint64 }
	// registry is the version of the registry the proxy follows, plus one; zero: none read.
	registry atomic.Uint64
	rates    statsweb.Rates // requests and tokens per second, for the page
}

// RegistryRead tells the proxy which version of the registry it follows now, for its stats.
func (p *Proxy) RegistryRead(version uint32) { p.stats.registry.Store(uint64(version) + 1) }

// registryVersion is the version of the registry last read; ok is false before any.
func (p *Proxy) registryVersion() (version uint32, ok bool) {
	v := p.stats.registry.Load()
	return uint32(v - 1), v != 0
}

// pricesDoc is settle.Prices in /jsonstats: nanoTON per adjusted token, multipliers in
// settle.MultiplierOne.
type pricesDoc struct {
	PricePerToken     uint64 `json:"price_per_token"`
	WorkerFeePerToken uint64 `json:"worker_fee_per_token"`
	PromptMult        uint32 `json:"prompt_multiplier"`
	CachedPromptMult  uint32 `json:"cached_prompt_multiplier"`
	CompletionMult    uint32 `json:"completion_multiplier"`
	ReasoningMult     uint32 `json:"reasoning_multiplier"`
}

func newPricesDoc(pr settle.Prices) pricesDoc {
	return pricesDoc{pr.PricePerToken, pr.WorkerFeePerToken, pr.PromptMult, pr.CachedPromptMult, pr.CompletionMult, pr.ReasoningMult}
}

// usage counts the tokens of an answer the proxy relayed.
func (c *counters) usage(r result) {
	if r.done == nil {
		return
	}
	u := wire.DecodeUsage(r.done.GetUsage())
	c.tokens.prompt.Add(u.PromptTokens)
	c.tokens.cached.Add(u.CachedTokens)
	c.tokens.completion.Add(u.CompletionTokens)
	c.tokens.reasoning.Add(u.ReasoningTokens)
}

// Metrics registers the proxy's series: the same counters as Stats, with no client, worker or
// owner address in any label.
func (p *Proxy) Metrics(set *metrics.Set) {
	c := &p.stats
	set.CounterVec("requests_total", "Requests from clients, by outcome.", "outcome", func() map[string]float64 {
		return map[string]float64{"served": float64(c.served.Load()), "failed": float64(c.failed.Load()),
			"unknown_model": float64(c.notFound.Load()), "bad_request": float64(c.badRequest.Load()),
			"payment_required": float64(c.paymentRequired.Load())}
	})
	set.CounterVec("tokens_total", "Tokens in the answers relayed, by class.", "class", func() map[string]float64 {
		return map[string]float64{"prompt": float64(c.tokens.prompt.Load()), "cached": float64(c.tokens.cached.Load()),
			"completion": float64(c.tokens.completion.Load()), "reasoning": float64(c.tokens.reasoning.Load())}
	})
	for name, v := range map[string]*atomic.Int64{
		"pricing_errors_total":               &c.pricingErrors,
		"zero_usage_answers_total":           &c.zeroUsage,
		"beyond_reservation_total":           &c.beyond,
		"unpriceable_requests_refused_total": &c.unpriceable,
	} {
		set.Counter(name, "Billing anomalies: "+strings.ReplaceAll(strings.TrimSuffix(name, "_total"), "_", " ")+
			" (each charged the reservation or refused).", func() float64 { return float64(v.Load()) })
	}
	set.Histogram("request_duration_seconds", "Time from a request's arrival to the end of its answer, for answered requests.",
		c.latency.Distribution)
	set.Histogram("time_to_first_token_seconds", "Time from a request's arrival to its answer's head, which the worker sends "+
		"with the engine's first chunk, for answered requests.", c.firstToken.Distribution)
	set.Histogram("handshake_duration_seconds", "Time to set up an attested connection with a client or worker, "+
		"from the check of its certificate (the quote's verification) to its Hello.", c.handshakes.Distribution)
	set.Gauge("client_connections", "Clients connected now.", func() float64 { return float64(c.clients.Load()) })
	set.Gauge("quic_streams_held", metrics.StreamsHeldHelp, func() float64 { return float64(p.tc.Conns.HeldStreams()) })
	set.Gauge("workers", "Workers registered now.", func() float64 { return float64(len(p.reg.all())) })
	set.Gauge("active_requests", "Requests under way at the registered workers.", func() float64 {
		var n int64
		for _, w := range p.reg.all() {
			n += w.active.Load()
		}
		return float64(n)
	})
	if pm := p.cfg.Payments; pm != nil {
		totals := func() ledger.Totals {
			_, _, t, _ := pm.Ledger.Snapshot()
			return t
		}
		set.Counter("charged_nanoton_total", "What clients were charged, in nanoTON.",
			func() float64 { return float64(totals().Charged) })
		set.Counter("earned_nanoton_total", "What workers earned, in nanoTON.",
			func() float64 { return float64(totals().Earned) })
		set.Counter("commission_nanoton_total", "The proxy's commission, in nanoTON.",
			func() float64 { return float64(totals().Commission) })
	}
}

// Healthy is true once the proxy listens. It does not wait for workers: workers wait for a healthy
// proxy before they can register (docker compose depends_on), so that would never resolve.
func (p *Proxy) Healthy() error {
	select {
	case <-p.ready:
	default:
		return errors.New("not listening yet")
	}
	if err := p.halted.get(); err != nil {
		return fmt.Errorf("refusing requests: %w", err)
	}
	return nil
}

// WorkerCount is how many workers are registered now.
func (p *Proxy) WorkerCount() int { return len(p.reg.all()) }

type workerStats struct {
	ID          string  `json:"id"`
	Model       string  `json:"model"`
	Address     string  `json:"address"`
	Image       string  `json:"image_hash"`
	Attestation string  `json:"attestation"`
	Coefficient uint32  `json:"coefficient"`
	Active      int64   `json:"active"`
	MaxActive   int64   `json:"max_active"`
	Served      int64   `json:"served"`
	Failures    int64   `json:"failures"`
	AvgMs       float64 `json:"avg_latency_ms"`
	Owner       string  `json:"owner_address,omitempty"`
	// Draining: the connection's certificates expire soon and the worker is connecting a
	// replacement, which shows up as another entry; this one gets no new requests while another
	// worker can take them.
	Draining bool `json:"draining,omitempty"`
}

// Stats is the proxy's /jsonstats document.
func (p *Proxy) Stats() any {
	var workers []workerStats
	for _, w := range p.reg.all() {
		workers = append(workers, workerStats{
			ID: w.id, Model: w.model, Address: w.conn.RemoteAddr().String(), Image: w.image, Attestation: w.attestation,
			Coefficient: w.coefficient, Active: w.active.Load(), MaxActive: w.maxActive, Served: w.served.Load(),
			Failures: w.failures.Load(), AvgMs: float64(w.avgNanos.Load()) / 1e6, Owner: w.ownerText,
			Draining: w.conn.IsDraining(),
		})
	}
	p50, p99 := p.stats.latency.Percentiles()
	doc := map[string]any{
		"role":    "proxy",
		"workers": workers,
		"models":  p.reg.models(),
		"clients": map[string]int64{"connected": p.stats.clients.Load()},
		"requests": map[string]int64{
			"total": p.stats.requests.Load(), "served": p.stats.served.Load(),
			"failed": p.stats.failed.Load(), "unknown_model": p.stats.notFound.Load(),
			"bad_request": p.stats.badRequest.Load(), "payment_required": p.stats.paymentRequired.Load(),
		},
		"billing": map[string]int64{
			"pricing_errors": p.stats.pricingErrors.Load(), "zero_usage": p.stats.zeroUsage.Load(),
			"beyond_reservation": p.stats.beyond.Load(), "unpriceable_refused": p.stats.unpriceable.Load(),
		},
		"latency_ms": map[string]float64{"p50": p50, "p99": p99},
		"runtime":    statsweb.ReadRuntime(),
	}
	if v, ok := p.registryVersion(); ok {
		doc["registry"] = map[string]uint32{"version": v}
	}
	if pm := p.cfg.Payments; pm != nil {
		clients, workers, totals, _ := pm.Ledger.Snapshot()
		var paid uint64
		for _, w := range workers {
			paid += w.Paid
		}
		doc["payments"] = map[string]any{
			"proxy_contract": pm.Ledger.Proxy().ToRaw(),
			"prices":         newPricesDoc(pm.Prices()),
			"clients":        len(clients),
			"workers":        len(workers),
			"charged":        totals.Charged,
			"earned":         totals.Earned,
			"commission":     totals.Commission,
			"paid":           paid, // to workers, on chain
		}
	}
	if err := p.halted.get(); err != nil {
		doc["halted"] = err.Error()
	}
	return doc
}

// detailed is the proxy's /jsonstats for its operator: Stats with every client's and worker
// owner's account.
type detailed struct{ *Proxy }

func (d detailed) Stats() any {
	doc := d.Proxy.Stats().(map[string]any)
	if pm := d.cfg.Payments; pm != nil {
		clients, workers, _, _ := pm.Ledger.Snapshot()
		type clientDoc struct {
			Deposited uint64 `json:"deposited"`
			Charged   uint64 `json:"charged"`
			Reserved  uint64 `json:"reserved"`
			Available uint64 `json:"available"`
			Stake     uint64 `json:"stake"`
			Seqno     uint64 `json:"seqno"`
		}
		cd := map[string]clientDoc{}
		for id, c := range clients {
			cd[id.ToRaw()] = clientDoc{c.Deposited, c.Charged, c.Reserved, c.Available(), c.Stake, c.Seqno}
		}
		wd := map[string]ledger.Worker{}
		for id, w := range workers {
			wd[id.ToRaw()] = w
		}
		payments := doc["payments"].(map[string]any)
		payments["clients"], payments["workers"] = cd, wd
	}
	return doc
}

// statsHandler serves /healthz, /stats and /jsonstats: in aggregate to anyone who reaches the
// stats port (inside a VM, its untrusted host can), with each client's wallet and charges only to
// requests from loopback or bearing the stats token.
func (p *Proxy) statsHandler() http.Handler {
	public, private := http.NewServeMux(), http.NewServeMux()
	statsweb.Register(public, "proxy", p)
	statsweb.Register(private, "proxy", detailed{p})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.mayDetail(r) {
			private.ServeHTTP(w, r)
			return
		}
		public.ServeHTTP(w, r)
	})
}

func (p *Proxy) mayDetail(r *http.Request) bool {
	if tok := p.cfg.StatsToken; tok != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if ok && subtle.ConstantTimeCompare([]byte(got), []byte(tok)) == 1 {
			return true
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// serveStats listens on addr and serves statsHandler until ctx ends; wg tracks the server.
func (p *Proxy) serveStats(ctx context.Context, wg *sync.WaitGroup, addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("proxy: listen stats %s: %w", addr, err)
	}
	srv := &http.Server{Handler: p.statsHandler(), ReadHeaderTimeout: 5 * time.Second}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.Serve(ln)
	}()
	context.AfterFunc(ctx, func() { _ = srv.Close() })
	return ln.Addr(), nil
}
