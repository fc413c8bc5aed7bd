package worker

import (
	"context"
	"encoding/base64"
	"errors"
	"sort"
	"sync/atomic"
	"time"

	"github.com/cocoon-network/cocoon/roles/internal/statsweb"
	"github.com/cocoon-network/cocoon/settle"
)

type counters struct {
	served, failed, cancelled, refused atomic.Int64
	tokens                             tokenTotals
	latency                            statsweb.Window
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

// statsweb.Window keeps the last durations for percentiles.

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
	return map[string]any{
		"role":           "worker",
		"model":          w.cfg.Model,
		"weights_digest": w.cfg.WeightsDigest,
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
		"latency_ms": map[string]float64{"p50": p50, "p99": p99},
		"payments":   w.payments(),
		"runtime":    statsweb.ReadRuntime(),
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
