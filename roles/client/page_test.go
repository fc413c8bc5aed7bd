package client

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/roles/internal/statsweb"
)

func TestPageRenders(t *testing.T) {
	since := time.Now().Add(-90 * time.Second)
	testCases := map[string]struct {
		data clientPage
		want []string
	}{
		"nothing yet": {want: []string{"no proxy yet", "nothing spent yet"}},
		"spending": {
			data: clientPage{statsJSON: statsJSON{Cost: 15740,
				Proxies: []proxyStats{{Address: "127.0.0.1:1", Connected: true, ConnectedSince: &since, RTTMs: 0.155},
					{Address: "127.0.0.1:2", Refused: "image not allowed"}}},
				Connected: 1, DepositKnown: true, DepositLeft: 979_994_400,
				Spend: []pageSpend{{Proxy: "127.0.0.1:1", Charged: 15740, Seqno: 4, OnChain: 5600, OnChainKnown: true}}},
			want: []string{"1 of 2", "for 1 min 30 s", "155 µs", "image not allowed", "0.00001574 TON", "15,740 nanoTON",
				"0.9799944 TON", "5,600 nanoTON", "seqno 4"},
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			html, err := page.HTML(statsweb.View{Role: "client", Data: tc.data})
			require.NoError(t, err)
			for _, want := range tc.want {
				assert.Contains(t, string(html), want)
			}
		})
	}
}
