package worker

import (
	"context"
	"encoding/base64"
	"errors"
	"sort"
	"sync/atomic"
	"time"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/roles/internal/metrics"
	"github.com/cocoon-network/cocoon/roles/internal/statsweb"
	"github.com/cocoon-network/cocoon/settle"
)

type counters struct {
	served, failed, cancelled, refused atomic.Int64
	tokens                             tokenTotals
	latency                            statsweb.Window
	firstToken                         statsweb.Window // time from the engine request to its first chunk
	handshakes                         statsweb.Window // attested connection set-up with proxies
	page                               pageState
}

type tokenTotals struct {
	prompt, cached, completion, reasoning atomic.Uint64
}

func (t *tokenTotals) add(u settle.Usage) {
	t.prompt.Add(u.PromptTokens)
	t.cached.Add(u.CachedTokens)
	t.completion.Add(u.CompletionTokens)
	t.reasoning.Add(u.ReasoningTokens)
}

// firstChunk times each engine request to its first chunk: the worker's time to first token.
type firstChunk struct {
	gpu.Engine
	hist interface{ Observe(time.Duration) }
}

func timed(e gpu.Engine, h *statsweb.Window) gpu.Engine { return firstChunk{e, h} }

func (f firstChunk) Do(ctx context.Context, req gpu.Request, sink gpu.Sink) (settle.Usage, error) {
	start, first := time.Now(), true
	return f.Engine.Do(ctx, req, func(ch gpu.Chunk) error {
		if first {
			first = false
			f.hist.Observe(time.Since(start))
		}
		return sink(ch)
	})
}

// Metrics registers the worker's series: the same counters as Stats, with no proxy address or
// payment key in any label.
func (w *Worker) Metrics(set *metrics.Set) {
	c := &w.stats
	set.CounterVec("requests_total", "Requests from proxies, by outcome.", "outcome", func() map[string]float64 {
		return map[string]float64{"served": float64(c.served.Load()), "failed": float64(c.failed.Load()),
			"cancelled": float64(c.cancelled.Load()), "refused": float64(c.refused.Load())}
	})
	set.CounterVec("tokens_total", "Tokens the engine reported, by class.", "class", func() map[string]float64 {
		return map[string]float64{"prompt": float64(c.tokens.prompt.Load()), "cached": float64(c.tokens.cached.Load()),
			"completion": float64(c.tokens.completion.Load()), "reasoning": float64(c.tokens.reasoning.Load())}
	})
	set.Histogram("request_duration_seconds", "Time the engine took for a served request.", c.latency.Distribution)
	set.Histogram("handshake_duration_seconds", "Time to set up an attested connection with a proxy: QUIC, TLS, the "+
		"verification of its quote, and its Hello.", c.handshakes.Distribution)
	set.Histogram("time_to_first_token_seconds", "Time from the engine request to its first chunk.", c.firstToken.Distribution)
	set.Gauge("active_requests", "Requests the engine is working on now.", func() float64 { return float64(w.active.Load()) })
	set.Gauge("quic_streams_held", metrics.StreamsHeldHelp, func() float64 { return float64(w.tc.Conns.HeldStreams()) })
	set.Gauge("max_active_requests", "How many requests the worker takes at once.", func() float64 { return float64(w.cfg.MaxActive) })
	set.Gauge("proxy_connections", "Proxies the worker is registered with now.", func() float64 {
		members := w.set.Members()
		w.mu.Lock()
		defer w.mu.Unlock()
		n := 0
		for _, m := range members {
			if m.Value.Registered {
				n++
			}
		}
		return float64(n)
	})
	set.Gauge("engine_up", "1 when the inference engine answers its health check, else 0.", func() float64 {
		if w.healthy.Load() {
			return 1
		}
		return 0
	})
	if st := w.cfg.States; st != nil {
		set.Counter("earned_nanoton_total", "What proxies signed as earned, summed over proxies, in nanoTON.", func() float64 {
			var sum uint64
			for _, s := range st.All() {
				sum += s.State.Total
			}
			return float64(sum)
		})
	}
}

// Healthy is true when the engine answers and at least one proxy has the worker registered.
func (w *Worker) Healthy() error {
	if !w.healthy.Load() {
		return errors.New("engine not answering")
	}
	members := w.set.Members()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range members {
		if m.Value.Registered {
			return nil
		}
	}
	return errors.New("not registered with any proxy")
}

// Stats is the worker's /jsonstats document.
func (w *Worker) Stats() any {
	members := w.set.Members()
	proxies := make([]proxyState, 0, len(members))
	for _, m := range members {
		refused := m.Refusal()
		w.mu.Lock()
		p := *m.Value
		w.mu.Unlock()
		p.Refused = refused
		proxies = append(proxies, p)
	}
	sort.Slice(proxies, func(a, b int) bool { return proxies[a].Addr < proxies[b].Addr })
	p50, p99 := w.stats.latency.Percentiles()
	t50, t99 := w.stats.firstToken.Percentiles()
	image, kind := w.self()
	return map[string]any{
		"role":           "worker",
		"model":          w.cfg.Model,
		"weights_digest": w.cfg.WeightsDigest,
		"image_hash":     image,
		"attestation":    kind,
		"coefficient":    w.cfg.Coefficient,
		"max_active":     w.cfg.MaxActive,
		"active":         w.active.Load(),
		"engine_healthy": w.healthy.Load(),
		"proxies":        proxies,
		"requests": map[string]int64{
			"served": w.stats.served.Load(), "failed": w.stats.failed.Load(),
			"cancelled": w.stats.cancelled.Load(), "refused": w.stats.refused.Load(),
		},
		"tokens": map[string]uint64{
			"prompt": w.stats.tokens.prompt.Load(), "cached": w.stats.tokens.cached.Load(),
			"completion": w.stats.tokens.completion.Load(), "reasoning": w.stats.tokens.reasoning.Load(),
		},
		"latency_ms":             map[string]float64{"p50": p50, "p99": p99},
		"time_to_first_token_ms": map[string]float64{"p50": t50, "p99": t99},
		"payments":               w.payments(),
		"runtime":                statsweb.ReadRuntime(),
	}
}

// payments lists, per proxy payment key, the latest signed "earned" total and what was paid.
func (w *Worker) payments() map[string]any {
	out := map[string]any{}
	if w.cfg.States == nil {
		return out
	}
	for key, st := range w.cfg.States.All() {
		doc := map[string]any{
			"earned": st.State.Total, "seqno": st.State.Seqno, "proxy_contract": st.State.Proxy.ToRaw(),
		}
		if b, err := st.MarshalBinary(); err == nil {
			doc["latest_state"] = base64.StdEncoding.EncodeToString(b)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if acc, ok, err := w.cfg.States.Account(ctx, st.State.Proxy); ok && err == nil {
			doc["paid"] = acc.Settled
		}
		cancel()
		out[key] = doc
	}
	return out
}
