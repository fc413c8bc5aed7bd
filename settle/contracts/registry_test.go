package contracts_test

import (
	"crypto/ed25519"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/tlb"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

func testParams() contracts.RegistryParams {
	return contracts.RegistryParams{
		Prices: settle.Prices{
			PricePerToken: 20, WorkerFeePerToken: 15,
			PromptMult: 10000, CachedPromptMult: 2500, CompletionMult: 40000, ReasoningMult: 40000,
		},
		MinProxyStake: 10 * ton1, MinClientStake: ton1, ClientCloseDelay: 3600, ProxyCloseDelay: 86400,
		MaxCoefficient: 3000,
	}
}

func deployRegistry(e *env, owner ton.AccountID) ton.AccountID {
	data, err := contracts.RegistryData(contracts.Registry{Owner: owner, Params: testParams()})
	require.NoError(e.t, err)
	return e.deploy(owner, contracts.RegistryCode(), data, ton1, nil)
}

func TestRegistryDeployAndGetters(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	e := newEnv(t)
	owner := e.user(1)
	reg := deployRegistry(e, owner)

	r := e.registry(reg)
	assert.Equal(owner, r.Owner)
	assert.Equal(uint32(0), r.Version)
	assert.Equal(testParams(), r.Params)

	st := e.get(reg, "get_version")
	require.Len(st, 1)
	assert.Equal(int64(0), st[0].Int64())
	st = e.get(reg, "get_params")
	require.Len(st, 11)
	assert.Equal(int64(20), st[0].Int64())
	assert.Equal(int64(40000), st[5].Int64())
	assert.Equal(int64(86400), st[9].Int64())
	assert.Equal(int64(3000), st[10].Int64())
}

func TestRegistryOwnerOperations(t *testing.T) {
	e := newEnv(t)
	owner := e.user(1)
	reg := deployRegistry(e, owner)
	proxyKey := testKey(7).Public().(ed25519.PublicKey)
	image := [32]byte{0x11}
	model := [32]byte{0x22}

	newParams := testParams()
	newParams.PricePerToken = 25
	setParams, err := contracts.SetParamsBody(1, newParams)
	require.NoError(t, err)
	allowProxyImage, err := contracts.SetAllowedBody(2, contracts.ListProxyImages, image, true)
	require.NoError(t, err)
	allowWorkerImage, err := contracts.SetAllowedBody(3, contracts.ListWorkerImages, image, true)
	require.NoError(t, err)
	allowModel, err := contracts.SetAllowedBody(4, contracts.ListModels, model, true)
	require.NoError(t, err)
	disallowModel, err := contracts.SetAllowedBody(5, contracts.ListModels, model, false)
	require.NoError(t, err)
	entry := contracts.ProxyEntry{Key: proxyKey, Contract: account(9), WorkerEndpoint: "10.0.0.9:4433", ClientEndpoint: "proxy.example:8443"}
	setProxy, err := contracts.SetProxyBody(6, proxyKey, &entry)
	require.NoError(t, err)
	moved := entry
	moved.ClientEndpoint = "proxy.example:9443"
	moveProxy, err := contracts.SetProxyBody(9, proxyKey, &moved)
	require.NoError(t, err)
	// Entries the contract refuses: the layout without a client endpoint, and an empty endpoint.
	oneEndpoint := setProxyRaw(t, proxyKey, proxyInfoCell(t, account(9), "10.0.0.9:4433"))
	emptyEndpoint := setProxyRaw(t, proxyKey, proxyInfoCell(t, account(9), "10.0.0.9:4433", ""))
	removeProxy, err := contracts.SetProxyBody(7, proxyKey, nil)
	require.NoError(t, err)
	badList, err := contracts.SetAllowedBody(8, 9, model, true)
	require.NoError(t, err)

	// Each step runs on the state the previous steps left, like the owner's real history.
	steps := []struct {
		name     string
		from     ton.AccountID
		body     *boc.Cell
		wantExit int
		check    func(*assert.Assertions, contracts.Registry)
	}{
		{name: "set params", body: setParams, check: func(a *assert.Assertions, r contracts.Registry) {
			a.Equal(uint64(25), r.Params.PricePerToken)
			a.Equal(uint32(1), r.Version)
		}},
		{name: "allow proxy image", body: allowProxyImage, check: func(a *assert.Assertions, r contracts.Registry) {
			a.True(r.ProxyImageAllowed(image))
			a.False(r.WorkerImageAllowed(image))
			a.Equal(uint32(2), r.Version)
		}},
		{name: "allow worker image", body: allowWorkerImage, check: func(a *assert.Assertions, r contracts.Registry) {
			a.True(r.WorkerImageAllowed(image))
		}},
		{name: "allow model", body: allowModel, check: func(a *assert.Assertions, r contracts.Registry) {
			a.True(r.ModelAllowed(model))
			a.Equal([][32]byte{model}, r.Models)
		}},
		{name: "disallow model", body: disallowModel, check: func(a *assert.Assertions, r contracts.Registry) {
			a.False(r.ModelAllowed(model))
			a.Equal(uint32(5), r.Version)
		}},
		{name: "set proxy", body: setProxy, check: func(a *assert.Assertions, r contracts.Registry) {
			p, ok := r.Proxy(proxyKey)
			a.True(ok)
			a.Equal(entry, p)
			a.Equal(uint32(6), r.Version)
			a.Equal([]string{entry.WorkerEndpoint, entry.ClientEndpoint}, proxyEndpoints(t, e, reg, proxyKey), "get_proxy agrees")
		}},
		{name: "not owner", from: account(66), body: setParams, wantExit: contracts.ExitNotOwner, check: func(a *assert.Assertions, r contracts.Registry) {
			a.Equal(uint32(6), r.Version)
		}},
		{name: "proxy without client endpoint", body: oneEndpoint, wantExit: contracts.ExitBadRequest, check: func(a *assert.Assertions, r contracts.Registry) {
			p, _ := r.Proxy(proxyKey)
			a.Equal(entry, p, "the listed entry is unchanged")
		}},
		{name: "proxy with empty endpoint", body: emptyEndpoint, wantExit: contracts.ExitBadRequest, check: func(a *assert.Assertions, r contracts.Registry) {
			a.Equal(uint32(6), r.Version)
		}},
		{name: "move client endpoint", body: moveProxy, check: func(a *assert.Assertions, r contracts.Registry) {
			p, _ := r.Proxy(proxyKey)
			a.Equal(moved, p)
			a.Equal(uint32(7), r.Version, "an endpoint change bumps the version")
		}},
		{name: "bad list", body: badList, wantExit: contracts.ExitBadRequest},
		{name: "unknown op", body: func() *boc.Cell { c := boc.NewCell(); _ = c.WriteUint(0x12345678, 32); return c }(), wantExit: contracts.ExitUnknownOp},
		{name: "remove proxy", body: removeProxy, check: func(a *assert.Assertions, r contracts.Registry) {
			_, ok := r.Proxy(proxyKey)
			a.False(ok)
			a.Equal(uint32(8), r.Version)
		}},
	}
	e.chain.Mint(account(66), 10*ton1)
	for _, s := range steps {
		from := s.from
		if from.IsZero() {
			from = owner
		}
		before := e.chain.Balance(from)
		tx, tr := e.send(from, reg, ton1/10, s.body)
		assert.Equal(t, s.wantExit, tx.ExitCode(), s.name)
		if s.wantExit != 0 {
			// A refused message bounces: the sender gets its value back minus fees.
			// (Test messages are not debited from the sender, so the refund shows as a gain.)
			assert.True(t, tx.Bounced(), s.name)
			require.Len(t, tr, 2, s.name)
			assert.Equal(t, from, tr[1].Account, s.name)
			refund := e.chain.Balance(from) - before
			assert.Greater(t, refund, uint64(ton1/10-ton1/100), s.name)
			assert.Less(t, refund, uint64(ton1/10), s.name)
		}
		if s.check != nil {
			s.check(assert.New(t), e.registry(reg))
		}
	}

	// Get-methods agree with the decoded storage.
	assert.Equal(t, int64(8), e.get(reg, "get_version")[0].Int64())
	assert.Equal(t, int64(-1), e.get(reg, "is_proxy_image_allowed", keyArg(image[:]))[0].Int64())
	assert.Equal(t, int64(0), e.get(reg, "is_model_allowed", keyArg(model[:]))[0].Int64())
	assert.Equal(t, int64(0), e.get(reg, "get_proxy", keyArg(proxyKey))[0].Int64())
}

func TestRegistryChangeOwner(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	e := newEnv(t)
	owner, next := e.user(1), e.user(2)
	reg := deployRegistry(e, owner)
	body, err := contracts.ChangeOwnerBody(1, next)
	require.NoError(err)
	tx, _ := e.send(owner, reg, ton1/10, body)
	assert.True(tx.Success())
	assert.Equal(next, e.registry(reg).Owner)
	// The old owner lost its rights.
	tx, _ = e.send(owner, reg, ton1/10, body)
	assert.Equal(contracts.ExitNotOwner, tx.ExitCode())
}

// TestRegistryProxyBeforeClientEndpoint: an entry written with the layout that had one endpoint
// (a registry deployed before client endpoints) reads with that endpoint for workers and clients,
// in Go and in get_proxy; replacing it writes both.
func TestRegistryProxyBeforeClientEndpoint(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	e := newEnv(t)
	owner := e.user(1)
	key := testKey(7).Public().(ed25519.PublicKey)
	reg := e.deploy(owner, contracts.RegistryCode(), oneEndpointRegistry(t, owner, key, account(9), "10.0.0.9:4433"), ton1, nil)

	want := contracts.ProxyEntry{Key: key, Contract: account(9), WorkerEndpoint: "10.0.0.9:4433", ClientEndpoint: "10.0.0.9:4433"}
	r := e.registry(reg)
	p, ok := r.Proxy(key)
	require.True(ok)
	assert.Equal(want, p)
	assert.Equal([]string{want.WorkerEndpoint, want.ClientEndpoint}, proxyEndpoints(t, e, reg, key))

	want.ClientEndpoint = "proxy.example:8443"
	body, err := contracts.SetProxyBody(1, key, &want)
	require.NoError(err)
	tx, _ := e.send(owner, reg, ton1/10, body)
	require.True(tx.Success())
	p, _ = e.registry(reg).Proxy(key)
	assert.Equal(want, p)
	assert.Equal([]string{want.WorkerEndpoint, want.ClientEndpoint}, proxyEndpoints(t, e, reg, key))
}

func TestRegistryProxyByEndpoint(t *testing.T) {
	a := contracts.ProxyEntry{Key: testKey(1).Public().(ed25519.PublicKey), WorkerEndpoint: "10.0.0.1:4433", ClientEndpoint: "a.example:443"}
	b := contracts.ProxyEntry{Key: testKey(2).Public().(ed25519.PublicKey), WorkerEndpoint: "10.0.0.2:4433", ClientEndpoint: "10.0.0.2:4433"}
	c := contracts.ProxyEntry{Key: testKey(3).Public().(ed25519.PublicKey), WorkerEndpoint: "10.0.0.3:4433", ClientEndpoint: "a.example:443"}
	testCases := map[string]struct {
		proxies  []contracts.ProxyEntry
		endpoint string
		want     contracts.ProxyEntry
		wantOK   bool
	}{
		"worker endpoint":       {proxies: []contracts.ProxyEntry{a, b}, endpoint: "10.0.0.1:4433", want: a, wantOK: true},
		"client endpoint":       {proxies: []contracts.ProxyEntry{a, b}, endpoint: "a.example:443", want: a, wantOK: true},
		"both endpoints equal":  {proxies: []contracts.ProxyEntry{a, b}, endpoint: "10.0.0.2:4433", want: b, wantOK: true},
		"not listed":            {proxies: []contracts.ProxyEntry{a, b}, endpoint: "10.0.0.9:4433"},
		"written differently":   {proxies: []contracts.ProxyEntry{a, b}, endpoint: "A.example:443"},
		"listed by two proxies": {proxies: []contracts.ProxyEntry{a, b, c}, endpoint: "a.example:443"},
		"other endpoint of two": {proxies: []contracts.ProxyEntry{a, b, c}, endpoint: "10.0.0.3:4433", want: c, wantOK: true},
		"empty registry":        {endpoint: "10.0.0.1:4433"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			got, ok := contracts.Registry{Proxies: tc.proxies}.ProxyByEndpoint(tc.endpoint)
			assert.Equal(tc.wantOK, ok)
			assert.Equal(tc.want, got)
		})
	}
}

// oneEndpointRegistry is a registry's storage as the layout with one endpoint per proxy wrote it,
// listing key at endpoint.
func oneEndpointRegistry(t testing.TB, owner ton.AccountID, key ed25519.PublicKey, contract ton.AccountID, endpoint string) *boc.Cell {
	data, err := contracts.RegistryData(contracts.Registry{Owner: owner, Params: testParams()})
	require.NoError(t, err)
	// Storage is owner, version, params, lists, then the proxies dictionary: swap in one holding an
	// old-layout entry.
	var st struct {
		Owner   tlb.MsgAddress
		Version tlb.Uint32
		Params  tlb.Ref[boc.Cell]
		Lists   tlb.Ref[boc.Cell]
		Proxies tlb.HashmapE[tlb.Bits256, tlb.Ref[boc.Cell]]
	}
	require.NoError(t, tlb.Unmarshal(data, &st))
	st.Proxies = tlb.NewHashmapE([]tlb.Bits256{tlb.Bits256(key)}, []tlb.Ref[boc.Cell]{{Value: *proxyInfoCell(t, contract, endpoint)}})
	data = boc.NewCell()
	require.NoError(t, tlb.Marshal(data, st))
	return data
}

// proxyInfoCell builds a ProxyInfo cell by hand: the contract, then one ref per endpoint given.
func proxyInfoCell(t testing.TB, contract ton.AccountID, endpoints ...string) *boc.Cell {
	c := boc.NewCell()
	require.NoError(t, tlb.Marshal(c, contract.ToMsgAddress()))
	for _, ep := range endpoints {
		ref := boc.NewCell()
		require.NoError(t, ref.WriteBytes([]byte(ep)))
		require.NoError(t, c.AddRef(ref))
	}
	return c
}

// setProxyRaw is a SetProxy message carrying info as it is, for entries SetProxyBody refuses to build.
func setProxyRaw(t *testing.T, key ed25519.PublicKey, info *boc.Cell) *boc.Cell {
	c := boc.NewCell()
	require.NoError(t, c.WriteUint(contracts.OpSetProxy, 32))
	require.NoError(t, c.WriteUint(0, 64))
	require.NoError(t, c.WriteBytes(key))
	require.NoError(t, c.WriteBit(true))
	require.NoError(t, c.AddRef(info))
	return c
}

// proxyEndpoints calls get_proxy and returns the worker and client endpoints it gives.
func proxyEndpoints(t *testing.T, e *env, reg ton.AccountID, key ed25519.PublicKey) []string {
	st := e.get(reg, "get_proxy", keyArg(key))
	require.Len(t, st, 4)
	require.Equal(t, int64(-1), st[0].Int64(), "found")
	var out []string
	for _, v := range st[2:] {
		c := v.Cell()
		require.NotNil(t, c)
		b, err := c.ReadBytes(c.BitsAvailableForRead() / 8)
		require.NoError(t, err)
		out = append(out, string(b))
	}
	return out
}
