package client

import (
	_ "embed"
	"net/http"
	"sort"
	"time"

	"github.com/cocoon-network/cocoon/roles/internal/statsweb"
)

//go:embed page.html
var pageHTML string

var page = statsweb.NewPage(pageHTML)

// clientPage is what the client's /stats page shows: the /jsonstats document, with rates, the
// outcomes in order and the payments per proxy.
type clientPage struct {
	statsJSON
	UptimeD                time.Duration
	Connected              int // proxies connected now
	RequestRate, TokenRate float64
	RateOver               time.Duration
	Outcomes               []outcomeCount
	Spend                  []pageSpend
	Charged                uint64 // over the proxies' signed states
	DepositLeft            uint64
	DepositKnown           bool
}

type outcomeCount struct {
	Name  string
	Count uint64
}

// pageSpend is one proxy's account of this client: what the proxy signed it charged, what its
// contract accepted, and the deposit left there.
type pageSpend struct {
	Proxy, Contract         string
	Charged, Seqno          uint64
	OnChain, Balance        uint64
	OnChainKnown, BalanceOK bool
}

func (c *Client) pageData() clientPage {
	d := clientPage{statsJSON: c.snapshot()}
	d.UptimeD = time.Duration(d.Uptime * float64(time.Second)).Round(time.Second)
	var ended uint64
	for name, n := range d.Requests.ByOutcome {
		d.Outcomes = append(d.Outcomes, outcomeCount{name, n})
		ended += n
	}
	sort.Slice(d.Outcomes, func(a, b int) bool { return d.Outcomes[a].Name < d.Outcomes[b].Name })
	per, over := c.stats.rates.Per(time.Now(), float64(ended), float64(d.Tokens.Prompt+d.Tokens.Completion))
	d.RequestRate, d.TokenRate, d.RateOver = per[0], per[1], over
	byKey := map[string]string{}
	for _, p := range d.Proxies {
		if p.Connected {
			d.Connected++
		}
		if p.PaymentKey != "" {
			byKey[p.PaymentKey] = p.Address
		}
	}
	for key, p := range d.Payments {
		s := pageSpend{Proxy: byKey[key], Contract: p.ProxyContract, Charged: p.Charged, Seqno: p.Seqno}
		if s.Proxy == "" {
			s.Proxy = "payment key " + key[:min(len(key), 16)] + "…"
		}
		if p.ChargedOnChain != nil {
			s.OnChain, s.OnChainKnown = *p.ChargedOnChain, true
		}
		if p.Balance != nil {
			s.Balance, s.BalanceOK = *p.Balance, true
			d.DepositLeft += *p.Balance
			d.DepositKnown = true
		}
		d.Charged += p.Charged
		d.Spend = append(d.Spend, s)
	}
	sort.Slice(d.Spend, func(a, b int) bool { return d.Spend[a].Proxy < d.Spend[b].Proxy })
	return d
}

func (c *Client) serveHTMLStats(w http.ResponseWriter, _ *http.Request) {
	page.Render(w, statsweb.View{Role: "client", Health: c.healthy(), Data: c.pageData()})
}
