package worker

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/roles/internal/statsweb"
)

func TestPageRenders(t *testing.T) {
	testCases := map[string]struct {
		data   workerPage
		health error
		want   []string
	}{
		"nothing yet": {
			data:   workerPage{Model: "m"},
			health: errors.New("not registered with any proxy"),
			want:   []string{"unhealthy: not registered with any proxy", "no proxy configured", "Payments are off"},
		},
		"earning": {
			data: workerPage{Model: "m", WeightsDigest: "sha256:ab", Attestation: "simulated", Image: "c270", Payments: true,
				Earned: 4480, Paid: 4000, Proxies: []pageProxy{{Address: "127.0.0.1:1", Connected: true, Refused: "payment key mismatch"}},
				Earnings: []pageEarning{{Proxy: "127.0.0.1:1", Earned: 4480, Paid: 4000, Unpaid: 480, PaidKnown: true, Seqno: 3}}},
			want: []string{"healthy", "sha256:ab", "simulated", "c270", "payment key mismatch", "0.00000448 TON", "4,480 nanoTON",
				"0.000004 TON", "480 nanoTON", "seqno 3"},
		},
		"chain unreachable": {
			data: workerPage{Model: "m", Payments: true, Earnings: []pageEarning{{Proxy: "p", Earned: 1, PaidErr: "connection refused"}}},
			want: []string{"chain: connection refused"},
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			html, err := page.HTML(statsweb.View{Role: "worker", Health: tc.health, Data: tc.data})
			require.NoError(t, err)
			for _, want := range tc.want {
				assert.Contains(t, string(html), want)
			}
		})
	}
}
