package contracts_test

import (
	"crypto/ed25519"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle/contracts"
)

func TestRegistryCodecRoundTrip(t *testing.T) {
	key := testKey(3).Public().(ed25519.PublicKey)
	testCases := map[string]struct {
		reg     contracts.Registry
		wantErr bool
	}{
		"empty": {reg: contracts.Registry{Owner: account(1), Params: contracts.DefaultParams()}},
		"full": {reg: contracts.Registry{
			Owner: account(1), Version: 9, Params: contracts.DefaultParams(),
			ProxyImages: [][32]byte{{1}, {2}}, WorkerImages: [][32]byte{{3}}, Models: [][32]byte{{4}, {5}, {6}},
			Proxies: []contracts.ProxyEntry{{Key: key, Contract: account(7), Endpoint: "10.0.0.1:443"}},
		}},
		"bad key":       {reg: contracts.Registry{Proxies: []contracts.ProxyEntry{{Key: key[:5]}}}, wantErr: true},
		"long endpoint": {reg: contracts.Registry{Proxies: []contracts.ProxyEntry{{Key: key, Endpoint: string(make([]byte, 128))}}}, wantErr: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			data, err := contracts.RegistryData(tc.reg)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			got, err := contracts.ParseRegistryData(data)
			require.NoError(t, err)
			assert.Equal(t, tc.reg, got)
		})
	}
}

func TestProxyCodecRoundTrip(t *testing.T) {
	st := contracts.ProxyState{
		Key: testKey(1).Public().(ed25519.PublicKey), Owner: account(1), Status: contracts.ProxyClosing, CloseAt: 77,
		ProxyStake: 5, ClientFunds: 9, OpenClients: 1,
		Config:  contracts.ProxyConfig{Registry: account(2), MinClientStake: 3, ClientCloseDelay: 4, ProxyCloseDelay: 5},
		Clients: map[ton.AccountID]contracts.ClientAccount{account(3): {Balance: 4, Stake: 5, Charged: 6, Seqno: 7, ClosingAt: 8, Open: true}},
		Workers: map[ton.AccountID]contracts.WorkerAccount{account(4): {Paid: 1, Seqno: 2}, {Workchain: -1, Address: [32]byte{9}}: {Paid: 3, Seqno: 4}},
	}
	data, err := st.Data()
	require.NoError(t, err)
	got, err := contracts.ParseProxyData(data)
	require.NoError(t, err)
	assert.Equal(t, st, got)
	_, err = contracts.ProxyData(st.Key[:3], st.Owner, st.Config)
	require.Error(t, err)
}
