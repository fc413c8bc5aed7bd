package worker

import (
	"context"
	_ "embed"
	"encoding/hex"
	"sort"
	"sync"
	"time"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/ratls"
	"github.com/cocoon-network/cocoon/roles/internal/statsweb"
	"github.com/cocoon-network/cocoon/transport"
)

//go:embed page.html
var pageHTML string

var page = statsweb.NewPage(pageHTML)

// pageState is what the page keeps between views: the worker's own attestation, read once, and
// the rates.
type pageState struct {
	selfOnce    sync.Once
	image, kind string
	rates       statsweb.Rates
}

// self is the worker's own image hash and attestation kind ("tdx", "simulated" or
// "unattested"), from the quote in its certificate. Both stay the same across certificates.
func (w *Worker) self() (image, kind string) {
	ps := &w.stats.page
	ps.selfOnce.Do(func() { ps.image, ps.kind = attestationOf(w.tc) })
	return ps.image, ps.kind
}

func attestationOf(tc transport.Config) (image, kind string) {
	if tc.Identity == nil || tc.Identity.Certificate() == nil {
		return "", "unattested"
	}
	c, err := ratls.ParseCertificate(tc.Identity.Certificate().Certificate, time.Now(), 366*24*time.Hour)
	if err != nil || c.Quote == nil {
		return "", "unattested"
	}
	q, err := attest.ParseQuote(c.Quote)
	if err != nil {
		return "", "unreadable quote"
	}
	image, kind = q.Measurements.ImageHash().String(), "tdx"
	if tc.Verifier != nil {
		// Only the signature chain: which root it ends in says whether the quote is simulated.
		if rep, _ := tc.Verifier.Examine(c.Quote, true); rep != nil && rep.Simulated {
			kind = "simulated"
		}
	}
	return image, kind
}

// workerPage is what the worker's /stats page shows.
type workerPage struct {
	Model, WeightsDigest, Image, Attestation string
	EngineUp                                 bool
	Coefficient                              uint32
	Active, MaxActive                        int64
	Proxies                                  []pageProxy
	Registered                               int
	Served, Failed, Cancelled, Refused       int64
	Tokens                                   struct{ Prompt, Cached, Completion, Reasoning uint64 }
	RequestRate, TokenRate                   float64
	RateOver                                 time.Duration
	Latency, FirstToken                      struct{ P50, P99 float64 }
	Payments                                 bool // payments are on
	Earnings                                 []pageEarning
	Earned, Paid                             uint64
}

type pageProxy struct {
	Address, Name, Attestation, Image, Refused string
	Connected, Registered                      bool
}

// pageEarning is one proxy's account of the worker: what the proxy signed the worker earned,
// and what its contract paid out on chain.
type pageEarning struct {
	Proxy, Contract string
	Earned, Seqno   uint64
	Paid, Unpaid    uint64
	PaidKnown       bool   // the chain answered
	PaidErr         string // why it did not
}

// Page is the worker's /stats page: what it serves, to whom, how fast, and what it earned.
func (w *Worker) Page() (*statsweb.Page, any) {
	d := workerPage{Model: w.cfg.Model, WeightsDigest: w.cfg.WeightsDigest, EngineUp: w.healthy.Load(),
		Coefficient: w.cfg.Coefficient, Active: w.active.Load(), MaxActive: int64(w.cfg.MaxActive)}
	d.Image, d.Attestation = w.self()
	byKey := map[string]string{} // proxy payment key (hex) → how the page names the proxy
	for _, m := range w.set.Members() {
		refused := m.Refusal()
		w.mu.Lock()
		p := *m.Value
		if p.conn != nil {
			if k := p.conn.Peer().Claims.PaymentKey; len(k) > 0 {
				p.PaymentKey = hex.EncodeToString(k)
			}
		}
		w.mu.Unlock()
		d.Proxies = append(d.Proxies, pageProxy{Address: p.Addr, Name: p.Name, Attestation: p.Attestation, Image: p.Image,
			Refused: refused, Connected: p.Connected, Registered: p.Registered})
		if p.Registered {
			d.Registered++
		}
		if p.PaymentKey != "" {
			byKey[p.PaymentKey] = p.Addr
		}
	}
	sort.Slice(d.Proxies, func(a, b int) bool { return d.Proxies[a].Address < d.Proxies[b].Address })
	c := &w.stats
	d.Served, d.Failed, d.Cancelled, d.Refused = c.served.Load(), c.failed.Load(), c.cancelled.Load(), c.refused.Load()
	d.Tokens.Prompt, d.Tokens.Cached = c.tokens.prompt.Load(), c.tokens.cached.Load()
	d.Tokens.Completion, d.Tokens.Reasoning = c.tokens.completion.Load(), c.tokens.reasoning.Load()
	per, over := c.page.rates.Per(time.Now(), float64(d.Served), float64(d.Tokens.Prompt+d.Tokens.Completion))
	d.RequestRate, d.TokenRate, d.RateOver = per[0], per[1], over
	d.Latency.P50, d.Latency.P99 = c.latency.Percentiles()
	d.FirstToken.P50, d.FirstToken.P99 = c.firstToken.Percentiles()
	if st := w.cfg.States; st != nil {
		d.Payments = true
		for key, s := range st.All() {
			e := pageEarning{Proxy: byKey[key], Contract: s.State.Proxy.ToRaw(), Earned: s.State.Total, Seqno: s.State.Seqno}
			if e.Proxy == "" {
				e.Proxy = "payment key " + key[:min(len(key), 16)] + "…"
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			acc, ok, err := st.Account(ctx, s.State.Proxy)
			cancel()
			switch {
			case err != nil:
				e.PaidErr = err.Error()
			case ok:
				e.Paid, e.PaidKnown = acc.Settled, true
				e.Unpaid = e.Earned - min(e.Paid, e.Earned)
			}
			d.Earned += e.Earned
			d.Paid += e.Paid
			d.Earnings = append(d.Earnings, e)
		}
		sort.Slice(d.Earnings, func(a, b int) bool { return d.Earnings[a].Proxy < d.Earnings[b].Proxy })
	}
	return page, d
}
