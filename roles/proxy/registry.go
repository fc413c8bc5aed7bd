package proxy

import (
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/seal"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// workerEntry is one registered worker connection.
type workerEntry struct {
	id          string
	conn        *transport.Conn
	model       string
	digest      string
	coefficient uint32
	maxActive   int64
	owner       ton.AccountID // where the worker's earnings go
	ownerText   string
	image       string
	attestation string
	// hpkeID names the worker's attested HPKE key, which presealed requests name; zero for a
	// worker without one.
	hpkeID seal.KeyID

	active   atomic.Int64
	pingMu   sync.Mutex // orders updates of the connection's ping interval
	served   atomic.Int64
	failures atomic.Int64
	// avgNanos is an exponentially weighted average of request durations.
	avgNanos atomic.Int64
}

// Ping intervals for a worker connection: often while it serves, so a request cut off mid-answer
// fails within a second; at transport.IdlePingInterval while it is idle.
const (
	busyPing = 250 * time.Millisecond
	idlePing = transport.IdlePingInterval
)

// updatePing sets the connection's ping interval from the worker's current load. Callers call it
// after every change of active; the last call sees the last value.
func (w *workerEntry) updatePing() {
	w.pingMu.Lock()
	defer w.pingMu.Unlock()
	if w.active.Load() > 0 {
		w.conn.SetPingInterval(busyPing)
	} else {
		w.conn.SetPingInterval(idlePing)
	}
}

// release ends one request on the worker.
func (w *workerEntry) release() {
	w.active.Add(-1)
	w.updatePing()
}

func (w *workerEntry) observe(d time.Duration) {
	for {
		old := w.avgNanos.Load()
		next := int64(d)
		if old != 0 {
			next = old + (int64(d)-old)/8
		}
		if w.avgNanos.CompareAndSwap(old, next) {
			return
		}
	}
}

// registry holds the registered workers by model.
type registry struct {
	mu      sync.RWMutex
	byModel map[string][]*workerEntry
	seq     atomic.Int64
}

func newRegistry() *registry { return &registry{byModel: map[string][]*workerEntry{}} }

func (r *registry) add(w *workerEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byModel[w.model] = append(r.byModel[w.model], w)
}

func (r *registry) remove(w *workerEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	list := r.byModel[w.model]
	for i, e := range list {
		if e == w {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(r.byModel, w.model)
	} else {
		r.byModel[w.model] = list
	}
}

// hasModel reports whether any worker serves model.
func (r *registry) hasModel(model string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byModel[model]) > 0
}

// choose picks a worker for model: under its maximum, coefficient at or under maxCoef (0: any), not
// in exclude, with the lowest score (below); ties broken at random. Connections that drain before
// their certificates expire are chosen only when no other will do: their worker is connecting a
// replacement. Workers the policy no longer allows (a registry change) are never chosen. The chosen worker's active count is already incremented.
//
// prefer, when not nil, names the HPKE key of the worker a client presealed its request to: that
// worker is taken while its score is at most presealSlack times the best, since another costs the
// client a round trip to seal the body again.
func (r *registry) choose(model string, maxCoef uint32, exclude map[*workerEntry]bool, prefer *seal.KeyID) *workerEntry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if w := r.chooseAmong(model, maxCoef, exclude, false, prefer); w != nil {
		return w
	}
	return r.chooseAmong(model, maxCoef, exclude, true, prefer)
}

// presealSlack is how much worse than the best a presealed request's worker may score and still
// be chosen: a round trip saved is worth a little imbalance, never a queue. With equal prices and
// speeds, a worker with two requests running keeps its client while another has one, not while
// another is idle.
const presealSlack = 1.5

// score is what a client pays for a worker in price and time together:
//
//	(active + 1) × average request time × coefficient
//
// (active + 1) × average is when this request would be done there if requests ran one after
// another, and the coefficient is what each token costs. Load alone would send requests to an
// expensive worker precisely because nobody else uses it (it is idle); price alone would queue
// everything on the cheapest one. With the product, a worker at twice the price gets a request
// once the cheaper one has twice the work waiting, and one at 1000× only when the cheaper ones
// have a thousand requests each, which their capacity never allows. A worker with no history is
// taken to be as fast as the average of those with one, so being unknown is no advantage.
func score(active, avgNanos int64, coefficient uint32) float64 {
	return float64(active+1) * float64(avgNanos) * float64(coefficient)
}

func (r *registry) chooseAmong(model string, maxCoef uint32, exclude map[*workerEntry]bool, draining bool, prefer *seal.KeyID) *workerEntry {
	var candidates []*workerEntry
	var known, sum int64
	for _, w := range r.byModel[model] {
		if exclude[w] || (maxCoef != 0 && w.coefficient > maxCoef) || w.conn.IsDraining() != draining {
			continue
		}
		if w.conn.Refusal() != nil {
			// The policy no longer allows this worker: it finishes what it has and gets nothing new.
			continue
		}
		if w.active.Load() >= w.maxActive {
			continue
		}
		candidates = append(candidates, w)
		if a := w.avgNanos.Load(); a > 0 {
			known++
			sum += a
		}
	}
	unknown := int64(time.Millisecond)
	if known > 0 {
		unknown = sum / known
	}
	var best []*workerEntry
	var bestScore, preferScore float64
	var preferred *workerEntry
	for _, w := range candidates {
		avg := w.avgNanos.Load()
		if avg <= 0 {
			avg = unknown
		}
		s := score(w.active.Load(), avg, w.coefficient)
		if prefer != nil && w.hpkeID == *prefer {
			preferred, preferScore = w, s
		}
		switch {
		case best == nil || s < bestScore:
			best, bestScore = append(best[:0], w), s
		case s == bestScore:
			best = append(best, w)
		}
	}
	if preferred != nil && preferScore <= presealSlack*bestScore {
		if preferred.active.Add(1) <= preferred.maxActive {
			preferred.updatePing()
			return preferred
		}
		preferred.active.Add(-1)
	}
	for len(best) > 0 {
		i := rand.IntN(len(best))
		w := best[i]
		if w.active.Add(1) <= w.maxActive {
			w.updatePing()
			return w
		}
		// Raced with another request for the last slot.
		w.active.Add(-1)
		best = append(best[:i], best[i+1:]...)
	}
	return nil
}

// models lists what is offered, for ModelsRequest.
func (r *registry) models() []*wire.ModelInfo {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*wire.ModelInfo, 0, len(r.byModel))
	for name, list := range r.byModel {
		mi := &wire.ModelInfo{Name: name, MinCoefficient: ^uint32(0)}
		digests := map[string]bool{}
		for _, w := range list {
			// A draining connection's worker is, or soon will be, registered again on its
			// replacement: count it only where nothing else is left.
			if !w.conn.IsDraining() {
				mi.Workers++
			}
			mi.MinCoefficient = min(mi.MinCoefficient, w.coefficient)
			mi.MaxCoefficient = max(mi.MaxCoefficient, w.coefficient)
			digests[w.digest] = true
		}
		if mi.Workers == 0 {
			mi.Workers = uint32(len(list))
		}
		for d := range digests {
			mi.WeightsDigests = append(mi.WeightsDigests, d)
		}
		sort.Strings(mi.WeightsDigests)
		out = append(out, mi)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

func (r *registry) all() []*workerEntry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*workerEntry
	for _, list := range r.byModel {
		out = append(out, list...)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].id < out[b].id })
	return out
}
