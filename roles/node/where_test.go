package node

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/settle/chain/chains"
)

// TestWhere: the payments section names the chain opened; a missing or wrong setting is named.
func TestWhere(t *testing.T) {
	testCases := map[string]struct {
		p       config.Payments
		want    chains.Where
		wantErr string
	}{
		"local default": {p: config.Payments{Chain: "local"}, want: chains.Where{Local: "/d/chain.db"}},
		"toncenter": {p: config.Payments{Chain: "toncenter", ChainURL: "http://chain:8081", ChainAPIKey: "k"},
			want: chains.Where{URL: "http://chain:8081", APIKey: "k", Network: "mainnet"}},
		"toncenter testnet": {p: config.Payments{Chain: "toncenter", ChainURL: "https://testnet.toncenter.com", Network: "testnet"},
			want: chains.Where{URL: "https://testnet.toncenter.com", Network: "testnet"}},
		"toncenter without URL": {p: config.Payments{Chain: "toncenter"}, wantErr: "payments.chain_url"},
		"toncenter network":     {p: config.Payments{Chain: "toncenter", ChainURL: "http://c:1", Network: "moonnet"}, wantErr: "payments.network"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			got, err := where(tc.p, "/d")
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
