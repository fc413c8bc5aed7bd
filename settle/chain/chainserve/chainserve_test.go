package chainserve_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/chainserve"
	"github.com/cocoon-network/cocoon/settle/chain/local"
	"github.com/cocoon-network/cocoon/settle/chain/toncenter"
	"github.com/cocoon-network/cocoon/settle/chain/tonchain"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

const ton1 = 1_000_000_000

func key(seed byte) ed25519.PrivateKey { return ed25519.NewKeyFromSeed(append(make([]byte, 31), seed)) }

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// serve runs a server for l on loopback until the test ends and returns its base URL.
func serve(t *testing.T, l *local.Chain, cfg chainserve.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- chainserve.New(l, cfg, zerolog.New(zerolog.NewTestWriter(t))).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return "http://" + ln.Addr().String()
}

// openLocal opens a fresh local chain whose clock stands still at now.
func openLocal(t *testing.T, now time.Time) *local.Chain {
	t.Helper()
	c, err := local.Open(filepath.Join(t.TempDir(), local.DefaultFile), local.Options{Clock: func() time.Time { return now }})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

func remote(t *testing.T, url string) *toncenter.Chain {
	t.Helper()
	c, err := toncenter.New(url, tonchain.Mainnet, toncenter.Options{})
	require.NoError(t, err)
	return c
}

// faucetChain is a chain with a faucet: the local chain, or a remote one on `cocoon chain serve`.
type faucetChain interface {
	chain.Chain
	Faucet(ctx context.Context, to ton.AccountID, amount uint64) error
}

// outcome is what a scenario leaves on chain.
type outcome struct {
	Registry contracts.Registry
	Proxy    contracts.ProxyState
	Accounts map[ton.AccountID]chain.Account
}

// scenario funds wallets, deploys a registry and a proxy contract, tops up a client and submits
// a charged and an earned state, then reads everything back.
func scenario(t *testing.T, c faucetChain) outcome {
	t.Helper()
	require := require.New(t)
	ctx := context.Background()
	owner, operator, client, worker, payment := key(1), key(2), key(3), key(4), key(9)
	addr := map[string]ton.AccountID{}
	for name, k := range map[string]ed25519.PrivateKey{"owner": owner, "operator": operator, "client": client, "worker": worker} {
		a, err := c.WalletAddress(pub(k))
		require.NoError(err)
		require.NoError(c.Faucet(ctx, a, 100*ton1))
		addr[name] = a
	}
	params := contracts.DefaultParams()
	params.ClientCloseDelay = 0
	reg, err := chain.DeployRegistry(ctx, c, owner, contracts.Registry{Params: params}, ton1)
	require.NoError(err)
	r, err := chain.Registry(ctx, c, reg)
	require.NoError(err)
	cfg := contracts.ProxyConfig{Registry: reg, MinClientStake: r.Params.MinClientStake,
		ClientCloseDelay: r.Params.ClientCloseDelay, ProxyCloseDelay: r.Params.ProxyCloseDelay}
	proxy, err := chain.DeployProxy(ctx, c, operator, pub(payment), cfg, r.Params.MinProxyStake+contracts.OpFee)
	require.NoError(err)
	require.NoError(chain.TopUp(ctx, c, client, proxy, 5*ton1))
	charged, err := settle.Sign(settle.State{Proxy: proxy, Party: addr["client"], Kind: settle.KindClientCharged, Seqno: 1, Total: ton1}, payment)
	require.NoError(err)
	require.NoError(chain.SubmitState(ctx, c, operator, charged))
	earned, err := settle.Sign(settle.State{Proxy: proxy, Party: addr["worker"], Kind: settle.KindWorkerEarned, Seqno: 1, Total: ton1 / 2}, payment)
	require.NoError(err)
	require.NoError(chain.SubmitState(ctx, c, worker, earned))

	out := outcome{Accounts: map[ton.AccountID]chain.Account{}}
	out.Registry, err = chain.Registry(ctx, c, reg)
	require.NoError(err)
	out.Proxy, err = chain.Proxy(ctx, c, proxy)
	require.NoError(err)
	for _, id := range []ton.AccountID{reg, proxy, addr["owner"], addr["operator"], addr["client"], addr["worker"], {Address: [32]byte{0xee}}} {
		out.Accounts[id], err = c.Account(ctx, id)
		require.NoError(err)
	}
	return out
}

// TestRemoteMatchesLocal: the same deployments, deposits and states, sent through the toncenter
// client to a served local chain, leave what they leave on the local chain used directly.
func TestRemoteMatchesLocal(t *testing.T) {
	assert := assert.New(t)
	now := time.Now().Truncate(time.Second)
	direct := scenario(t, openLocal(t, now))
	served := scenario(t, remote(t, serve(t, openLocal(t, now), chainserve.Config{})))

	assert.Equal(direct.Registry, served.Registry)
	assert.Equal(direct.Proxy, served.Proxy)
	require.Len(t, served.Accounts, len(direct.Accounts))
	for id, want := range direct.Accounts {
		got := served.Accounts[id]
		assert.Equal(want.Status, got.Status, id.ToRaw())
		assert.Equal(want.Balance, got.Balance, id.ToRaw())
		assert.Equal(want.LastLT, got.LastLT, id.ToRaw())
		if want.Code != nil {
			wh, _ := want.Code.Hash()
			gh, _ := got.Code.Hash()
			assert.Equal(wh, gh, "code of %s", id.ToRaw())
		}
	}
	p := served.Proxy
	assert.Len(p.Clients, 1)
	for _, acc := range p.Clients {
		assert.Equal(uint64(ton1), acc.Charged)
	}
	for _, acc := range p.Workers {
		assert.Equal(uint64(ton1/2), acc.Paid)
	}
}

// TestTwoClientsShareServer: two clients, as two processes would hold them, see each other's
// deployments and send at the same time without losing a message.
func TestTwoClientsShareServer(t *testing.T) {
	require := require.New(t)
	ctx := context.Background()
	url := serve(t, openLocal(t, time.Now()), chainserve.Config{})
	a, b := remote(t, url), remote(t, url)

	owner := key(1)
	ownerAddr, err := a.WalletAddress(pub(owner))
	require.NoError(err)
	require.NoError(a.Faucet(ctx, ownerAddr, 10*ton1))
	reg, err := chain.DeployRegistry(ctx, a, owner, contracts.Registry{Params: contracts.DefaultParams()}, ton1)
	require.NoError(err)
	r, err := chain.Registry(ctx, b, reg)
	require.NoError(err, "b sees what a deployed")
	require.Equal(ownerAddr, r.Owner)

	// Each sends transfers from its own wallet, concurrently, to one account.
	sink := ton.AccountID{Address: [32]byte{0x51}}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for i, c := range []*toncenter.Chain{a, b} {
		k := key(byte(20 + i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := c.WalletAddress(pub(k))
			if err == nil {
				err = c.Faucet(ctx, w, 10*ton1)
			}
			for j := 0; err == nil && j < 3; j++ {
				err = chain.Transfer(ctx, c, k, sink, ton1)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(err)
	}
	for _, c := range []*toncenter.Chain{a, b} {
		bal, err := chain.Balance(ctx, c, sink)
		require.NoError(err)
		require.Equal(uint64(6*ton1), bal, "every transfer landed, seen alike by both")
	}
}

// TestServerRefusals: what the server refuses, with the status and a reason.
func TestServerRefusals(t *testing.T) {
	url := serve(t, openLocal(t, time.Now()), chainserve.Config{MaxBodyBytes: 1024, MaxFaucet: 5 * ton1})
	acct := "0:" + strings.Repeat("ab", 32)
	testCases := map[string]struct {
		method, path, ctype, body string
		wantStatus                int
		wantErr                   string
	}{
		"unknown path":      {method: "GET", path: "/api/v2/getBlockHeader", wantStatus: 404, wantErr: "no method"},
		"wrong method":      {method: "GET", path: toncenter.PathSendBoc, wantStatus: 405, wantErr: "takes POST"},
		"no address":        {method: "GET", path: toncenter.PathAddressInformation, wantStatus: 422, wantErr: "address: required"},
		"two addresses":     {method: "GET", path: toncenter.PathAddressInformation + "?address=" + acct + "&address=" + acct, wantStatus: 400, wantErr: "given 2 times"},
		"unknown parameter": {method: "GET", path: toncenter.PathAddressInformation + "?address=" + acct + "&addr=1", wantStatus: 400, wantErr: "unknown query parameter"},
		"bad address":       {method: "GET", path: toncenter.PathAddressInformation + "?address=nowhere", wantStatus: 422, wantErr: "address"},
		"not JSON type":     {method: "POST", path: toncenter.PathSendBoc, ctype: "text/plain", body: `{"boc":""}`, wantStatus: 415, wantErr: "application/json"},
		"too large":         {method: "POST", path: toncenter.PathSendBoc, body: `{"boc":"` + strings.Repeat("A", 2000) + `"}`, wantStatus: 413, wantErr: "larger than 1024"},
		"case-variant key":  {method: "POST", path: toncenter.PathSendBoc, body: `{"BOC":"te6c"}`, wantStatus: 400, wantErr: `unknown key "BOC"`},
		"duplicate key":     {method: "POST", path: toncenter.PathFaucet, body: `{"address":"` + acct + `","amount":"1","amount":"9"}`, wantStatus: 400, wantErr: "given twice"},
		"trailing data":     {method: "POST", path: toncenter.PathFaucet, body: `{"address":"` + acct + `","amount":"1"} {}`, wantStatus: 400, wantErr: "after the JSON object"},
		"not a BOC":         {method: "POST", path: toncenter.PathSendBoc, body: `{"boc":"AAAA"}`, wantStatus: 422, wantErr: "boc"},
		"faucet too much":   {method: "POST", path: toncenter.PathFaucet, body: `{"address":"` + acct + `","amount":"6000000000"}`, wantStatus: 422, wantErr: "at most 5000000000"},
		"faucet number":     {method: "POST", path: toncenter.PathFaucet, body: `{"address":"` + acct + `","amount":5}`, wantStatus: 400, wantErr: "amount"},
		"bad get method":    {method: "POST", path: toncenter.PathRunGetMethod, body: `{"address":"` + acct + `","method":"seq no","stack":[]}`, wantStatus: 422, wantErr: "letters, digits"},
		"bad stack":         {method: "POST", path: toncenter.PathRunGetMethod, body: `{"address":"` + acct + `","method":"seqno","stack":[["tvm.Cell","te6c"]]}`, wantStatus: 422, wantErr: "only numbers"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			req, err := http.NewRequestWithContext(context.Background(), tc.method, url+tc.path, strings.NewReader(tc.body))
			require.NoError(err)
			if tc.method == "POST" {
				req.Header.Set("Content-Type", "application/json")
			}
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(err)
			defer resp.Body.Close()
			assert.Equal(tc.wantStatus, resp.StatusCode)
			b, err := io.ReadAll(resp.Body)
			require.NoError(err)
			env, err := toncenter.ParseEnvelope(b)
			require.NoError(err, string(b))
			assert.False(env.OK)
			assert.Equal(tc.wantStatus, env.Code)
			assert.Contains(env.Error, tc.wantErr)
		})
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestFaucetOnlyOnServe: the faucet answers through the client; a service without one (as
// toncenter.com) is ErrNoFaucet, and a stopped service says to start `cocoon chain serve`.
func TestFaucetOnlyOnServe(t *testing.T) {
	require := require.New(t)
	ctx := context.Background()
	c := remote(t, serve(t, openLocal(t, time.Now()), chainserve.Config{}))
	to := ton.AccountID{Address: [32]byte{7}}
	require.NoError(c.Faucet(ctx, to, 3*ton1))
	bal, err := chain.Balance(ctx, c, to)
	require.NoError(err)
	require.Equal(uint64(3*ton1), bal)
	acc, err := c.Account(ctx, to)
	require.NoError(err)
	require.Equal(chain.StatusUninit, acc.Status, "minted, no code yet")
	acc, err = c.Account(ctx, ton.AccountID{Address: [32]byte{8}})
	require.NoError(err)
	require.Equal(chain.StatusNonexist, acc.Status)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(err)
	url := "http://" + ln.Addr().String()
	require.NoError(ln.Close())
	err = remote(t, url).Faucet(ctx, to, ton1)
	require.ErrorContains(err, "no chain service at "+url+": start `cocoon chain serve`")

	mux := http.NewServeMux() // a toncenter without cocoon's faucet
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	require.NoError(err)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	err = remote(t, "http://"+ln.Addr().String()).Faucet(ctx, to, ton1)
	require.True(errors.Is(err, toncenter.ErrNoFaucet), "%v", err)
}
