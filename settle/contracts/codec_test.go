package contracts_test

import (
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/tlb"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

func TestRegistryCodecRoundTrip(t *testing.T) {
	key := testKey(3).Public().(ed25519.PublicKey)
	long := strings.Repeat("a", 128)
	testCases := map[string]struct {
		reg     contracts.Registry
		wantErr bool
	}{
		"empty": {reg: contracts.Registry{Owner: account(1), Params: contracts.DefaultParams()}},
		"full": {reg: contracts.Registry{
			Owner: account(1), Version: 9, Params: contracts.DefaultParams(),
			ProxyImages: [][32]byte{{1}, {2}}, WorkerImages: [][32]byte{{3}}, Models: [][32]byte{{4}, {5}, {6}},
			Proxies: []contracts.ProxyEntry{{Key: key, Contract: account(7), WorkerEndpoint: "10.0.0.1:443", ClientEndpoint: "proxy.example:8443"}},
		}},
		"equal endpoints": {reg: contracts.Registry{Owner: account(1), Params: contracts.DefaultParams(),
			Proxies: []contracts.ProxyEntry{{Key: key, Contract: account(7), WorkerEndpoint: "10.0.0.1:443", ClientEndpoint: "10.0.0.1:443"}}}},
		"longest endpoints": {reg: contracts.Registry{Owner: account(1), Params: contracts.DefaultParams(),
			Proxies: []contracts.ProxyEntry{{Key: key, Contract: account(7), WorkerEndpoint: long[:127], ClientEndpoint: long[:127]}}}},
		"bad key":              {reg: contracts.Registry{Proxies: []contracts.ProxyEntry{{Key: key[:5], WorkerEndpoint: "h:1", ClientEndpoint: "h:1"}}}, wantErr: true},
		"long worker endpoint": {reg: contracts.Registry{Proxies: []contracts.ProxyEntry{{Key: key, WorkerEndpoint: long, ClientEndpoint: "h:1"}}}, wantErr: true},
		"long client endpoint": {reg: contracts.Registry{Proxies: []contracts.ProxyEntry{{Key: key, WorkerEndpoint: "h:1", ClientEndpoint: long}}}, wantErr: true},
		"no client endpoint":   {reg: contracts.Registry{Proxies: []contracts.ProxyEntry{{Key: key, WorkerEndpoint: "h:1"}}}, wantErr: true},
		"no worker endpoint":   {reg: contracts.Registry{Proxies: []contracts.ProxyEntry{{Key: key, ClientEndpoint: "h:1"}}}, wantErr: true},
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

// TestRegistryParamsBeforeMaxCoefficient: a registry written with the parameter layout that had
// no max_coefficient still parses; its cap reads as list price only, never as unlimited.
func TestRegistryParamsBeforeMaxCoefficient(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	type paramsV1 struct {
		PricePerToken, WorkerFeePerToken                            tlb.Grams
		PromptMult, CachedPromptMult, CompletionMult, ReasoningMult tlb.Uint32
		MinProxyStake, MinClientStake                               tlb.Grams
		ClientCloseDelay, ProxyCloseDelay                           tlb.Uint32
	}
	type lists struct {
		A, B, C tlb.HashmapE[tlb.Bits256, bool]
	}
	type registryV1 struct {
		Owner   tlb.MsgAddress
		Version tlb.Uint32
		Params  tlb.Ref[paramsV1]
		Lists   tlb.Ref[lists]
		Proxies tlb.HashmapE[tlb.Bits256, bool]
	}
	d := contracts.DefaultParams()
	owner := account(1)
	old := registryV1{Owner: owner.ToMsgAddress(), Version: 3}
	old.Params.Value = paramsV1{
		PricePerToken: tlb.Grams(d.PricePerToken), WorkerFeePerToken: tlb.Grams(d.WorkerFeePerToken),
		PromptMult: tlb.Uint32(d.PromptMult), CachedPromptMult: tlb.Uint32(d.CachedPromptMult),
		CompletionMult: tlb.Uint32(d.CompletionMult), ReasoningMult: tlb.Uint32(d.ReasoningMult),
		MinProxyStake: tlb.Grams(d.MinProxyStake), MinClientStake: tlb.Grams(d.MinClientStake),
		ClientCloseDelay: tlb.Uint32(d.ClientCloseDelay), ProxyCloseDelay: tlb.Uint32(d.ProxyCloseDelay),
	}
	c := boc.NewCell()
	require.NoError(tlb.Marshal(c, old))
	got, err := contracts.ParseRegistryData(c)
	require.NoError(err)
	want := d
	want.MaxCoefficient = 0
	assert.Equal(want, got.Params)
	assert.Equal(uint32(settle.CoefficientOne), got.Params.CoefficientCap())
	assert.Equal(uint32(contracts.DefaultMaxCoefficient), d.CoefficientCap())
}
