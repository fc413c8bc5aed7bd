package proxy

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/roles/internal/statsweb"
	"github.com/cocoon-network/cocoon/settle"
)

func TestPageRenders(t *testing.T) {
	prices := settle.Prices{PricePerToken: 20, WorkerFeePerToken: 16, PromptMult: 10000, CachedPromptMult: 2500,
		CompletionMult: 40000, ReasoningMult: 40000}
	testCases := map[string]struct {
		data proxyPage
		want []string
	}{
		"nothing yet": {want: []string{"No worker registered.", "Payments are off", "no registry followed"}},
		"halted":      {data: proxyPage{Halted: "ledger write failed"}, want: []string{"Refusing requests: ledger write failed"}},
		"in aggregate": {
			data: proxyPage{RegistryKnown: true, RegistryVersion: 4, Workers: 1, Models: []pageModel{{Name: "m", Active: 1, MaxActive: 4,
				Workers: []pageWorker{{ID: "w1", Active: 1, MaxActive: 4, Coefficient: 1250, Draining: true}}}},
				Money: &pageMoney{Prices: prices, Charged: 5600, Earned: 4480, Paid: 4480, Commission: 1120}},
			want: []string{"version 4", "load 1 of 4 (25%)", "1.25×", "draining", "0.0000056 TON", "5,600 nanoTON",
				"0.00000448 TON", "20 nanoTON", "1× / 0.25× / 4× / 4×", "shown on loopback or with the stats token"},
		},
		"detailed": {
			data: proxyPage{Money: &pageMoney{Detailed: true, Clients: []pageClient{{Account: "0:c1", Deposited: 980_000_000, Closing: true}},
				WorkerOwners: []pageOwner{{Account: "0:w1", Earned: 4480, Paid: 4000, Unpaid: 480}}}},
			want: []string{"0:c1", "0.98 TON", "980,000,000 nanoTON", "closing", "0:w1", "480 nanoTON"},
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			html, err := page.HTML(statsweb.View{Role: "proxy", Data: tc.data})
			require.NoError(t, err)
			for _, want := range tc.want {
				assert.Contains(t, string(html), want)
			}
		})
	}
}
