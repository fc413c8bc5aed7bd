package proxy

import (
	_ "embed"
	"sort"
	"time"

	"github.com/cocoon-network/cocoon/roles/internal/statsweb"
	"github.com/cocoon-network/cocoon/settle"
)

//go:embed page.html
var pageHTML string

var page = statsweb.NewPage(pageHTML)

// proxyPage is what the proxy's /stats page shows.
type proxyPage struct {
	Models                              []pageModel
	Workers                             int
	Clients                             int64 // connected now
	Total, Served, Failed, UnknownModel int64
	RequestRate, TokenRate              float64
	RateOver                            time.Duration
	Latency                             struct{ P50, P99 float64 }
	Tokens                              struct{ Prompt, Cached, Completion, Reasoning uint64 }
	PricingErrors, ZeroUsage, Beyond    int64
	Unpriceable                         int64
	RegistryVersion                     uint32
	RegistryKnown                       bool
	Halted                              string
	Money                               *pageMoney // nil: payments are off
}

type pageModel struct {
	Name              string
	Active, MaxActive int64
	Workers           []pageWorker
}

type pageWorker struct {
	ID, Address, Image, Attestation, Owner string
	Coefficient                            uint32
	Active, MaxActive, Served, Failures    int64
	Avg                                    time.Duration
	Draining                               bool
}

type pageMoney struct {
	Contract                          string
	Prices                            settle.Prices
	Charged, Earned, Commission, Paid uint64
	Deposited, Reserved, Available    uint64 // over every client account
	ClientAccounts, WorkerAccounts    int
	Detailed                          bool // per account, for loopback or the stats token
	Clients                           []pageClient
	WorkerOwners                      []pageOwner
}

type pageClient struct {
	Account                                                 string
	Deposited, Charged, Settled, Reserved, Available, Stake uint64
	Closing                                                 bool
}

// pageOwner is a worker owner's account: what the ledger signed it earned, and what the proxy
// contract paid it on chain.
type pageOwner struct {
	Account              string
	Earned, Paid, Unpaid uint64
	Seqno                uint64
}

// Page is the proxy's /stats page in aggregate.
func (p *Proxy) Page() (*statsweb.Page, any) { return page, p.pageData(false) }

// Page is the proxy's /stats page with every client's and worker owner's account.
func (d detailed) Page() (*statsweb.Page, any) { return page, d.pageData(true) }

func (p *Proxy) pageData(detail bool) proxyPage {
	c := &p.stats
	d := proxyPage{Clients: c.clients.Load(), Total: c.requests.Load(), Served: c.served.Load(), Failed: c.failed.Load(),
		UnknownModel: c.notFound.Load(), PricingErrors: c.pricingErrors.Load(), ZeroUsage: c.zeroUsage.Load(),
		Beyond: c.beyond.Load(), Unpriceable: c.unpriceable.Load()}
	d.RegistryVersion, d.RegistryKnown = p.registryVersion()
	if err := p.halted.get(); err != nil {
		d.Halted = err.Error()
	}
	byModel := map[string]*pageModel{}
	for _, w := range p.reg.all() {
		m := byModel[w.model]
		if m == nil {
			m = &pageModel{Name: w.model}
			byModel[w.model] = m
		}
		pw := pageWorker{ID: w.id, Address: w.conn.RemoteAddr().String(), Image: w.image, Attestation: w.attestation,
			Owner: w.ownerText, Coefficient: w.coefficient, Active: w.active.Load(), MaxActive: w.maxActive,
			Served: w.served.Load(), Failures: w.failures.Load(), Avg: time.Duration(w.avgNanos.Load()), Draining: w.conn.IsDraining()}
		m.Workers = append(m.Workers, pw)
		m.Active += pw.Active
		m.MaxActive += pw.MaxActive
		d.Workers++
	}
	for _, m := range byModel {
		d.Models = append(d.Models, *m)
	}
	sort.Slice(d.Models, func(a, b int) bool { return d.Models[a].Name < d.Models[b].Name })
	d.Tokens.Prompt, d.Tokens.Cached = c.tokens.prompt.Load(), c.tokens.cached.Load()
	d.Tokens.Completion, d.Tokens.Reasoning = c.tokens.completion.Load(), c.tokens.reasoning.Load()
	per, over := c.rates.Per(time.Now(), float64(d.Served), float64(d.Tokens.Prompt+d.Tokens.Completion))
	d.RequestRate, d.TokenRate, d.RateOver = per[0], per[1], over
	d.Latency.P50, d.Latency.P99 = c.latency.Percentiles()
	if pm := p.cfg.Payments; pm != nil {
		d.Money = money(pm, detail)
	}
	return d
}

func money(pm *Payments, detail bool) *pageMoney {
	clients, workers, totals, _ := pm.Ledger.Snapshot()
	m := &pageMoney{Contract: pm.Ledger.Proxy().ToRaw(), Prices: pm.Prices(), Charged: totals.Charged, Earned: totals.Earned,
		Commission: totals.Commission, ClientAccounts: len(clients), WorkerAccounts: len(workers), Detailed: detail}
	for id, cl := range clients {
		m.Deposited += cl.Deposited
		m.Reserved += cl.Reserved
		m.Available += cl.Available()
		if detail {
			m.Clients = append(m.Clients, pageClient{Account: id.ToRaw(), Deposited: cl.Deposited, Charged: cl.Charged,
				Settled: cl.Settled, Reserved: cl.Reserved, Available: cl.Available(), Stake: cl.Stake, Closing: cl.Closing})
		}
	}
	for id, w := range workers {
		m.Paid += w.Paid
		if detail {
			m.WorkerOwners = append(m.WorkerOwners, pageOwner{Account: id.ToRaw(), Earned: w.Earned, Paid: w.Paid,
				Unpaid: w.Earned - min(w.Paid, w.Earned), Seqno: w.Seqno})
		}
	}
	sort.Slice(m.Clients, func(a, b int) bool { return m.Clients[a].Account < m.Clients[b].Account })
	sort.Slice(m.WorkerOwners, func(a, b int) bool { return m.WorkerOwners[a].Account < m.WorkerOwners[b].Account })
	return m
}
