package client

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cocoon-network/cocoon/roles/internal/metrics"
	"github.com/cocoon-network/cocoon/roles/internal/proxyset"
	"github.com/cocoon-network/cocoon/roles/internal/statsweb"
)

// latencyWindow is how many recent requests the latency percentiles cover.
const latencyWindow = 1024

// stats counts requests by outcome and keeps recent latencies. It never holds any content.
type stats struct {
	mu        sync.Mutex
	total     uint64
	inFlight  int64
	failovers uint64
	outcomes  map[string]uint64
	reqBytes  uint64
	respBytes uint64
	tokens    tokenTotals
	cost      uint64
	latency   ring // whole-request durations of successful requests
	head      ring // time to the response head of successful requests
	// handshakes times attested connection set-up with proxies; it locks itself.
	handshakes statsweb.Window
	rates      statsweb.Rates
}

type tokenTotals struct {
	Prompt     uint64 `json:"prompt"`
	Cached     uint64 `json:"cached"`
	Completion uint64 `json:"completion"`
	Reasoning  uint64 `json:"reasoning"`
}

func newStats() *stats { return &stats{outcomes: map[string]uint64{}} }

func (s *stats) begin() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	s.inFlight++
}

// outcome counts a request refused before it began (bad method, bad token).
func (s *stats) outcome(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	s.outcomes[name]++
}

func (s *stats) failover() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failovers++
}

func (s *stats) end(x *call, outcome string, took time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight--
	s.outcomes[outcome]++
	s.reqBytes += uint64(x.reqBytes)
	s.respBytes += uint64(x.respBytes)
	if x.done != nil {
		u := x.done.GetUsage()
		s.tokens.Prompt += u.GetPromptTokens()
		s.tokens.Cached += u.GetCachedTokens()
		s.tokens.Completion += u.GetCompletionTokens()
		s.tokens.Reasoning += u.GetReasoningTokens()
		s.cost += x.done.GetTotalCost()
	}
	if outcome == "ok" {
		s.latency.add(took)
		s.head.add(x.headAt)
	}
}

// ring keeps the last latencyWindow durations, and all of them in hist for /metrics.
type ring struct {
	buf  [latencyWindow]time.Duration
	n    int
	pos  int
	hist statsweb.Hist
}

func (r *ring) add(d time.Duration) {
	r.hist.Observe(d)
	r.buf[r.pos] = d
	r.pos = (r.pos + 1) % latencyWindow
	r.n = min(r.n+1, latencyWindow)
}

type percentiles struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
}

func (r *ring) percentiles() percentiles {
	if r.n == 0 {
		return percentiles{}
	}
	d := slices.Clone(r.buf[:r.n])
	at := func(q float64) float64 { return float64(statsweb.Percentile(d, q).Microseconds()) / 1000 }
	return percentiles{Count: r.n, P50: at(0.50), P99: at(0.99)}
}

// finish records a completed request and logs one line about it: ids, sizes, durations, usage.
// Never the prompt, the completion or the token.
func (c *Client) finish(x *call) {
	took := time.Since(x.start)
	outcome, status := "ok", http.StatusOK
	if x.err != nil {
		outcome, status = x.err.outcome(), x.err.status
	}
	if x.sse != nil {
		x.respBytes = x.sse.n
	}
	c.stats.end(x, outcome, took)

	// One access-log line per request, at info whatever the outcome: a burst of failures must not
	// turn into a burst of warnings (the proxy connection's own state is logged once, in keep).
	ev := c.log.Info().Str("request_id", x.id).Str("kind", kindName(x.kind)).Str("model", x.model).
		Bool("stream", x.stream).Int("status", status).Str("outcome", outcome).Int("req_bytes", x.reqBytes).
		Int64("resp_bytes", x.respBytes).Int("chunks", x.chunks).Int("attempts", x.attempts).
		Dur("total", took)
	if x.proxy != "" {
		ev = ev.Str("proxy", x.proxy)
	}
	if x.head != nil {
		ev = ev.Dur("time_to_head", x.headAt).Str("worker_image", x.head.GetWorker().GetImageHash())
	}
	if x.done != nil {
		u := x.done.GetUsage()
		ev = ev.Uint64("prompt_tokens", u.GetPromptTokens()).Uint64("completion_tokens", u.GetCompletionTokens()).
			Uint64("total_cost", x.done.GetTotalCost())
	}
	if x.err != nil && status >= 500 {
		// Messages from proxies and our own; they describe failures, not content.
		ev = ev.Str("error", x.err.msg)
	}
	ev.Msg("request")
}

func kindName(k kind) string {
	switch k {
	case kindChat:
		return "chat"
	case kindCompletion:
		return "completion"
	}
	return "unknown"
}

// statsJSON is the /jsonstats document.
type statsJSON struct {
	Role     string           `json:"role"`
	Healthy  bool             `json:"healthy"`
	Health   string           `json:"health"`
	Uptime   float64          `json:"uptime_s"`
	Runtime  statsweb.Runtime `json:"runtime"`
	Proxies  []proxyStats     `json:"proxies"`
	Requests requestStats     `json:"requests"`
	Latency  percentiles      `json:"latency_ms"`
	Head     percentiles      `json:"time_to_head_ms"`
	Tokens   tokenTotals      `json:"tokens"`
	Cost     uint64           `json:"total_cost_nanoton"`
	// Payments: per proxy payment key, the latest signed "charged" total.
	Payments map[string]paymentStats `json:"payments"`
	Sealing  sealingStats            `json:"sealing"`
}

// sealingStats says how requests travel: sealed to the worker (the default) or in clear, and what
// the end-to-end checks found.
type sealingStats struct {
	Mode             string `json:"mode"`            // "sealed" or "plaintext_dev"
	Receipts         uint64 `json:"receipts"`        // sealed answers whose receipt and usage record checked out
	ReceiptsKept     int    `json:"receipts_kept"`   // of them, the ones kept to serve now
	WorkersRefused   uint64 `json:"workers_refused"` // offered workers this client's policy refused
	LastRefusal      string `json:"last_refusal,omitempty"`
	AnswersRefused   uint64 `json:"answers_refused"`   // sealed answers that did not check out
	ChargeMismatches uint64 `json:"charge_mismatches"` // charges that differ from the signed usage at the registry's prices
}

type paymentStats struct {
	ProxyContract  string  `json:"proxy_contract"`
	Charged        uint64  `json:"charged"`
	Seqno          uint64  `json:"seqno"`
	LatestState    string  `json:"latest_state"`               // the signed state, base64 BOC
	Balance        *uint64 `json:"balance,omitempty"`          // deposit left on chain
	ChargedOnChain *uint64 `json:"charged_on_chain,omitempty"` // what the contract accepted
}

type proxyStats struct {
	Address    string `json:"address"`
	Name       string `json:"name,omitempty"`
	PaymentKey string `json:"payment_key,omitempty"` // hex, when the registry lists one
	Connected  bool   `json:"connected"`
	Standby    bool   `json:"standby,omitempty"` // not connected: max_proxies others answer faster
	InFlight   int    `json:"in_flight"`
	// Connections is how many connections to the proxy are open: one, and more while requests
	// fill it (transport.DefaultMaxStreams each).
	Connections    int        `json:"connections"`
	Attestation    string     `json:"attestation,omitempty"`
	ImageHash      string     `json:"image_hash,omitempty"`
	RTTMs          float64    `json:"rtt_ms"`
	ConnectedSince *time.Time `json:"connected_since,omitempty"`
	Connects       uint64     `json:"connects"`
	LastError      string     `json:"last_error,omitempty"`
	// Refused is why the proxy refused this client or the client it (its attestation, its
	// payment key), while that lasts.
	Refused string `json:"refused,omitempty"`
}

// proxyStats lists the proxies in the set, then the standbys (with MaxProxies) as last probed.
func (c *Client) proxyStats() []proxyStats {
	out := []proxyStats{}
	in := map[string]bool{}
	for _, m := range c.set.Members() {
		p := m.Value
		in[m.Target.Endpoint] = true
		p.mu.Lock()
		ps := proxyStats{Address: p.addr, Name: m.Name(), PaymentKey: hex.EncodeToString(m.Target.PaymentKey),
			Connected: p.conn != nil, InFlight: p.inFlight, Connects: p.connects, LastError: p.lastErr, Refused: m.Refusal()}
		if p.conn != nil {
			ps.Connections = 1 + len(p.extra)
			since := p.connectedAt
			ps.Attestation, ps.ImageHash, ps.ConnectedSince = p.attestation, p.imageHash, &since
			ps.RTTMs = float64(p.rtt.Microseconds()) / 1000
		}
		p.mu.Unlock()
		out = append(out, ps)
	}
	c.targetsMu.Lock()
	defer c.targetsMu.Unlock()
	for _, t := range c.targets {
		if in[t.Endpoint] {
			continue
		}
		ps := proxyStats{Address: t.Endpoint, Name: t.Name, PaymentKey: hex.EncodeToString(t.PaymentKey), Standby: true}
		if pr, ok := c.probes[t.Endpoint]; ok {
			ps.RTTMs = float64(pr.rtt.Microseconds()) / 1000
			if pr.err != nil {
				ps.LastError, ps.Refused = pr.err.Error(), proxyset.Refusal(pr.err)
			}
		}
		out = append(out, ps)
	}
	return out
}

type requestStats struct {
	Total     uint64            `json:"total"`
	InFlight  int64             `json:"in_flight"`
	Failovers uint64            `json:"failovers"`
	ByOutcome map[string]uint64 `json:"by_outcome"`
	ReqBytes  uint64            `json:"request_bytes"`
	RespBytes uint64            `json:"response_bytes"`
}

func (c *Client) snapshot() statsJSON {
	out := statsJSON{Role: "client", Uptime: time.Since(c.started).Seconds(), Runtime: statsweb.ReadRuntime(),
		Proxies: []proxyStats{}, Payments: map[string]paymentStats{}}
	if c.cfg.States != nil {
		for key, st := range c.cfg.States.All() {
			ps := paymentStats{ProxyContract: st.State.Proxy.ToRaw(), Charged: st.State.Total, Seqno: st.State.Seqno}
			if b, err := st.MarshalBinary(); err == nil {
				ps.LatestState = base64.StdEncoding.EncodeToString(b)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if acc, ok, err := c.cfg.States.Account(ctx, st.State.Proxy); ok && err == nil {
				ps.Balance, ps.ChargedOnChain = &acc.Balance, &acc.Settled
			}
			cancel()
			out.Payments[key] = ps
		}
	}
	out.Proxies = c.proxyStats()
	out.Sealing = c.sealingStats()
	err := c.healthy()
	out.Healthy, out.Health = err == nil, "ok"
	if err != nil {
		out.Health = err.Error()
	}
	s := c.stats
	s.mu.Lock()
	defer s.mu.Unlock()
	out.Requests = requestStats{Total: s.total, InFlight: s.inFlight, Failovers: s.failovers,
		ByOutcome: maps.Clone(s.outcomes), ReqBytes: s.reqBytes, RespBytes: s.respBytes}
	out.Latency, out.Head = s.latency.percentiles(), s.head.percentiles()
	out.Tokens, out.Cost = s.tokens, s.cost
	return out
}

// Metrics registers the client's series: the same counters as /jsonstats, with no proxy address,
// payment key or token in any label.
func (c *Client) Metrics(set *metrics.Set) {
	s := c.stats
	locked := func(f func() float64) func() float64 {
		return func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return f()
		}
	}
	set.CounterVec("requests_total", "Requests from applications that ended, by outcome (ok, bad_request, cancelled…).",
		"outcome", func() map[string]float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			out := make(map[string]float64, len(s.outcomes))
			for k, v := range s.outcomes {
				out[k] = float64(v)
			}
			return out
		})
	set.CounterVec("tokens_total", "Tokens the answers reported, by class.", "class", func() map[string]float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		t := s.tokens
		return map[string]float64{"prompt": float64(t.Prompt), "cached": float64(t.Cached),
			"completion": float64(t.Completion), "reasoning": float64(t.Reasoning)}
	})
	set.Counter("charged_nanoton_total", "What proxies charged for the answers, in nanoTON.",
		locked(func() float64 { return float64(s.cost) }))
	set.Counter("failovers_total", "Requests retried on another proxy.", locked(func() float64 { return float64(s.failovers) }))
	set.Counter("request_bytes_total", "Bytes of request bodies.", locked(func() float64 { return float64(s.reqBytes) }))
	set.Counter("response_bytes_total", "Bytes of response bodies.", locked(func() float64 { return float64(s.respBytes) }))
	hist := func(r *ring) func() metrics.Distribution { return r.hist.Distribution }
	set.Histogram("request_duration_seconds", "Time from a request's arrival to the end of its answer, for requests that ended ok.",
		hist(&s.latency))
	set.Histogram("time_to_first_token_seconds", "Time from a request's arrival to its answer's head, which the worker sends "+
		"with the engine's first chunk, for requests that ended ok.", hist(&s.head))
	set.Histogram("handshake_duration_seconds", "Time to set up an attested connection with a proxy: QUIC, TLS, the "+
		"verification of its quote, and its Hello.", s.handshakes.Distribution)
	set.Counter("sealed_receipts_total", "Sealed answers whose receipt and signed usage checked out.",
		func() float64 { return float64(c.receipts.checked.Load()) })
	set.Counter("workers_refused_total", "Workers proxies offered that this client's attestation policy refused.",
		func() float64 { return float64(c.receipts.refused.Load()) })
	set.Counter("sealed_answers_refused_total", "Sealed answers refused: changed, cut, replayed, or without a valid receipt.",
		func() float64 { return float64(c.receipts.badAnswers.Load()) })
	set.Counter("charge_mismatches_total", "Charges that differ from the worker's signed usage at the registry's prices.",
		func() float64 { return float64(c.receipts.mismatches.Load()) })
	set.Gauge("active_requests", "Requests under way now.", locked(func() float64 { return float64(s.inFlight) }))
	set.Gauge("quic_streams_held", metrics.StreamsHeldHelp, func() float64 { return float64(c.tc.Conns.HeldStreams()) })
	set.Gauge("proxy_connections", "Proxies connected now.", func() float64 {
		n := 0
		for _, m := range c.set.Members() {
			if conn, _ := m.Value.current(); conn != nil {
				n++
			}
		}
		return float64(n)
	})
	if states := c.cfg.States; states != nil {
		set.Gauge("deposit_left_nanoton", "Deposit left on chain in the client's payment contracts, summed over proxies, in nanoTON.",
			func() float64 {
				var sum uint64
				for _, st := range states.All() {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					if acc, ok, err := states.Account(ctx, st.State.Proxy); ok && err == nil {
						sum += acc.Balance
					}
					cancel()
				}
				return float64(sum)
			})
	}
}

// healthy is nil when at least one proxy is connected, else why not.
func (c *Client) healthy() error {
	var reason string
	for _, m := range c.set.Members() {
		p := m.Value
		p.mu.Lock()
		up, lastErr := p.conn != nil, p.lastErr
		p.mu.Unlock()
		if up {
			return nil
		}
		if reason == "" && lastErr != "" {
			reason = p.addr + ": " + lastErr
		}
	}
	if reason == "" {
		reason = "not connected yet"
	}
	return errors.New("no proxy connected (" + reason + ")")
}

func (c *Client) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := c.healthy(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(err.Error() + "\n"))
		return
	}
	n, members := 0, c.set.Members()
	for _, m := range members {
		if conn, _ := m.Value.current(); conn != nil {
			n++
		}
	}
	_, _ = w.Write([]byte("ok: " + strconv.Itoa(n) + " of " + strconv.Itoa(len(members)) + " proxies connected\n"))
}

func (c *Client) serveJSONStats(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, c.snapshot())
}
