package doctor

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/sim"
	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/roles/node"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/chains"
	"github.com/cocoon-network/cocoon/settle/chain/local"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// newDoctor is a doctor for cfg as role with deps, the clock fixed at now unless deps says.
func newDoctor(t *testing.T, cfg config.Config, role string, deps Deps) *Doctor {
	t.Helper()
	if deps.Now == nil {
		deps.Now = func() time.Time { return now }
	}
	d, err := New(cfg, role, "test", deps)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func baseConfig(t *testing.T) config.Config {
	cfg := config.Defaults()
	cfg.Data = t.TempDir()
	return cfg
}

// checkCase is one run of one check: its status and words the line must hold.
type checkCase struct {
	cfg    func(*config.Config)
	role   string
	deps   Deps
	want   Status
	detail string
}

func runCases(t *testing.T, run func(*Doctor, context.Context) Result, cases map[string]checkCase) {
	t.Helper()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			cfg := baseConfig(t)
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			role := tc.role
			if role == "" {
				role = "worker"
			}
			r := run(newDoctor(t, cfg, role, tc.deps), t.Context())
			assert.Equal(tc.want, r.Status, r.String())
			assert.Contains(r.String(), tc.detail)
			if r.Status != OK {
				assert.Contains(r.String(), "; fix: ", "a warning or failure says what to do")
			}
			assert.NotContains(r.String(), "\n")
		})
	}
}

type stubQuoter struct{ err error }

func (q stubQuoter) Quote([64]byte) ([]byte, error) { return []byte("quote"), q.err }
func (stubQuoter) Interface() string                { return attest.InterfaceConfigFS }

func simRoot(t *testing.T) string {
	dir := t.TempDir()
	_, err := sim.Open(dir)
	require.NoError(t, err)
	return dir
}

func TestCheckTDX(t *testing.T) {
	root := simRoot(t)
	runCases(t, (*Doctor).checkTDX, map[string]checkCase{
		"simulated":                    {cfg: func(c *config.Config) { c.Attestation.Simulated, c.Attestation.SimDir = true, root }, want: Warn, detail: "quotes prove nothing about hardware"},
		"simulated, root not made yet": {cfg: func(c *config.Config) { c.Attestation.Simulated = true }, want: Warn, detail: "made on first start"},
		"a TD":                         {deps: Deps{TDX: func() (attest.Quoter, error) { return stubQuoter{}, nil }}, want: OK, detail: "TDX quotes from configfs-tsm"},
		"no TD":                        {deps: Deps{TDX: func() (attest.Quoter, error) { return nil, attest.ErrNoTDX }}, want: Fail, detail: "run the node in a TDX VM"},
		"no quote": {deps: Deps{TDX: func() (attest.Quoter, error) { return stubQuoter{err: errors.New("QGS unreachable")}, nil }},
			want: Fail, detail: "QGS unreachable"},
	})
}

// collateralGetter answers every URL with body, or err.
type collateralGetter struct {
	body string
	err  error
}

func (g collateralGetter) Get(string) (map[string][]string, []byte, error) {
	return nil, []byte(g.body), g.err
}

func qeIdentity(next time.Time) string {
	return fmt.Sprintf(`{"enclaveIdentity":{"nextUpdate":%q}}`, next.Format(time.RFC3339))
}

func TestCheckCollateral(t *testing.T) {
	root := simRoot(t)
	bundle := func(next time.Time) string {
		p := filepath.Join(t.TempDir(), "bundle.json")
		require.NoError(t, attest.WriteCollateralBundle(p, []*attest.CollateralEntry{{URL: "https://pcs/qe", Fetched: now, NextUpdate: next, Body: []byte("{}")}}))
		return p
	}
	fresh, stale := bundle(now.Add(24*time.Hour)), bundle(now.Add(-time.Hour))
	runCases(t, (*Doctor).checkCollateral, map[string]checkCase{
		"simulated":               {cfg: func(c *config.Config) { c.Attestation.Simulated, c.Attestation.SimDir = true, root }, want: OK, detail: "development root"},
		"client without the root": {role: "client", cfg: func(c *config.Config) { c.Attestation.AllowSimulated = true }, want: Fail, detail: "no development root"},
		"PCS answers":             {deps: Deps{Collateral: collateralGetter{body: qeIdentity(now.Add(time.Hour))}}, want: OK, detail: "answers: 1 response(s), current until"},
		"PCS expired":             {deps: Deps{Collateral: collateralGetter{body: qeIdentity(now.Add(-time.Hour))}}, want: Fail, detail: "expired"},
		"PCS unreachable":         {deps: Deps{Collateral: collateralGetter{err: errors.New("dial tcp: no route to host")}}, want: Fail, detail: "no route to host"},
		"fresh bundle":            {cfg: func(c *config.Config) { c.Attestation.CollateralBundle = fresh }, want: OK, detail: "current until"},
		"stale bundle":            {cfg: func(c *config.Config) { c.Attestation.CollateralBundle = stale }, want: Fail, detail: "cocoon attest collateral fetch"},
		"offline, no cache":       {cfg: func(c *config.Config) { c.Attestation.Offline = true }, want: Fail, detail: "collateral"},
	})
}

func engine(t *testing.T, status int, body string) string {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/models" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return s.URL
}

func TestCheckEngine(t *testing.T) {
	serving := engine(t, 200, `{"data":[{"id":"llama"},{"id":"qwen"}]}`)
	locked := engine(t, 401, `{}`)
	noList := engine(t, 404, `not here`)
	gone := engine(t, 200, "")
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	gone = down.URL
	at := func(u, model string) func(*config.Config) {
		return func(c *config.Config) { c.Worker.EngineURL, c.Worker.Model = u, model }
	}
	runCases(t, (*Doctor).checkEngine, map[string]checkCase{
		"built-in":        {want: OK, detail: "built-in engine serves cocoon-builtin"},
		"serves it":       {cfg: at(serving, "qwen"), want: OK, detail: "answers and serves qwen"},
		"another model":   {cfg: at(serving, "mistral"), want: Fail, detail: "serves llama, qwen, not mistral"},
		"refuses the key": {cfg: at(locked, "qwen"), want: Fail, detail: "worker.engine_api_key"},
		"no list":         {cfg: at(noList, "qwen"), want: Warn, detail: "lists no models"},
		"down":            {cfg: at(gone, "qwen"), want: Fail, detail: "does not answer"},
	})
}

func TestCheckWeights(t *testing.T) {
	runCases(t, (*Doctor).checkWeights, map[string]checkCase{
		"built-in": {want: OK, detail: "(the built-in engine's)"},
		"given": {cfg: func(c *config.Config) {
			c.Worker.EngineURL, c.Worker.WeightsDigest = "http://e", "sha256:"+strings.Repeat("ab", 32)
		}, want: OK, detail: "worker.weights_digest"},
		"missing": {cfg: func(c *config.Config) { c.Worker.EngineURL = "http://e" }, want: Fail, detail: "required with engine_url"},
		"bad":     {cfg: func(c *config.Config) { c.Worker.EngineURL, c.Worker.WeightsDigest = "http://e", "sha256:zz" }, want: Fail, detail: "is not sha256:<64 hex>"},
		"model dir": {cfg: func(c *config.Config) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "model.safetensors"), []byte("weights"), 0o600))
			c.Worker.EngineURL, c.Worker.ModelDir = "http://e", dir
		}, want: OK, detail: "digest of "},
	})
}

func TestCheckListen(t *testing.T) {
	busy, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	runCases(t, (*Doctor).checkListen, map[string]checkCase{
		"free": {role: "proxy", cfg: func(c *config.Config) { c.Proxy.Listen = "127.0.0.1:0" }, want: OK, detail: "is free"},
		"busy": {role: "proxy", cfg: func(c *config.Config) { c.Proxy.Listen = busy.LocalAddr().String() }, want: Warn, detail: "in use"},
	})
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "timeout: no recent network activity" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestCheckProxies(t *testing.T) {
	peer := &attest.Peer{Quoted: true, Simulated: true}
	dial := func(bad map[string]error) Deps {
		return Deps{Dial: func(_ context.Context, ep string) (*attest.Peer, error) {
			if err, ok := bad[ep]; ok {
				return nil, err
			}
			return peer, nil
		}}
	}
	two := func(c *config.Config) { c.Worker.Proxies = []string{"a:1", "b:2"} }
	runCases(t, (*Doctor).checkProxies, map[string]checkCase{
		"all answer":  {cfg: two, deps: dial(nil), want: OK, detail: "2 of 2 from worker.proxies: attested QUIC handshake"},
		"one silent":  {cfg: two, deps: dial(map[string]error{"b:2": timeoutErr{}}), want: Warn, detail: "b:2: no answer over UDP"},
		"none answer": {cfg: two, deps: dial(map[string]error{"a:1": timeoutErr{}, "b:2": timeoutErr{}}), want: Fail, detail: "none of 2"},
		"refused handshake": {role: "client", cfg: func(c *config.Config) { c.Client.Proxies = []string{"a:1"} },
			deps: dial(map[string]error{"a:1": attest.ErrSimulatedNotAllowed}), want: Fail, detail: "answered over UDP, but the attested handshake failed"},
		"none listed": {cfg: func(c *config.Config) { c.Worker.Proxies = nil }, want: Fail, detail: "no proxies in worker.proxies"},
	})
}

func TestCheckClock(t *testing.T) {
	at := func(skew time.Duration) Deps {
		return Deps{ChainTime: func(context.Context, chains.Where) (time.Time, error) { return now.Add(-skew), nil }}
	}
	served := func(c *config.Config) { c.Payments.Chain, c.Payments.ChainURL = "toncenter", "http://127.0.0.1:1" }
	runCases(t, (*Doctor).checkClock, map[string]checkCase{
		"no chain":    {want: OK, detail: "no payments.chain"},
		"local chain": {cfg: func(c *config.Config) { c.Payments.Chain = "local" }, want: OK, detail: "this machine's time"},
		"in step":     {cfg: served, deps: at(2 * time.Second), want: OK, detail: "within 30s"},
		"drifting":    {cfg: served, deps: at(-time.Minute), want: Warn, detail: "-1m0s off"},
		"off":         {cfg: served, deps: at(10 * time.Minute), want: Fail, detail: "10m0s off"},
		"unknown": {cfg: served, deps: Deps{ChainTime: func(context.Context, chains.Where) (time.Time, error) { return time.Time{}, errors.New("refused") }},
			want: Warn, detail: "unknown"},
	})
}

func TestChainTimeFromService(t *testing.T) {
	s := httptest.NewServer(http.NotFoundHandler()) // Go's server dates every answer
	defer s.Close()
	got, err := chainTime(t.Context(), s.Client(), chains.Where{URL: s.URL})
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), got, 2*time.Second)
}

func TestCheckDisk(t *testing.T) {
	free := func(n uint64) Deps {
		return Deps{FreeBytes: func(string) (uint64, error) { return n, nil }}
	}
	runCases(t, (*Doctor).checkDisk, map[string]checkCase{
		"plenty": {role: "proxy", deps: free(20 << 30), want: OK, detail: "20 GiB free"},
		"low":    {role: "proxy", deps: free(500 << 20), want: Warn, detail: "500 MiB free"},
		"full":   {deps: free(10 << 20), want: Fail, detail: "below 100 MiB"},
		"unknown": {deps: Deps{FreeBytes: func(string) (uint64, error) { return 0, errors.New("ENOSYS") }},
			want: Warn, detail: "unknown"},
		"not made yet": {cfg: func(c *config.Config) { c.Data = filepath.Join(c.Data, "a", "b") }, want: OK, detail: "free on"},
	})
}

// network is a registry on a local chain listing one proxy, with a funded client deposit.
type network struct {
	chain    *local.Chain
	path     string
	demo     local.Demo
	client   string // the client's key file
	poor     string // a key whose wallet holds nothing
	image    attest.ImageHash
	weights  [32]byte
	openDeps Deps
}

func newNetwork(t *testing.T) *network {
	require := require.New(t)
	ctx := t.Context()
	dir := t.TempDir()
	n := &network{path: filepath.Join(dir, local.DefaultFile)}
	ch, err := local.Open(n.path, local.Options{})
	require.NoError(err)
	t.Cleanup(func() { _ = ch.Close() })
	n.chain = ch
	key := func(name string) ed25519.PrivateKey {
		k, err := node.KeyIn(dir, name)
		require.NoError(err)
		return k
	}
	client := key("client-wallet")
	n.client, n.poor = filepath.Join(dir, "client-wallet.key"), filepath.Join(dir, "poor.key")
	key("poor")
	_, _ = rand.Read(n.image[:])
	cfg := config.Defaults()
	_, digest, err := node.Engine(cfg, zerolog.Nop())
	require.NoError(err)
	n.weights, err = parseDigest(digest)
	require.NoError(err)
	n.demo, err = local.SetupDemo(ctx, ch, local.DemoConfig{
		Owner: key("owner"), Params: contracts.DefaultParams(), Fund: []ed25519.PublicKey{client.Public().(ed25519.PublicKey)},
		Proxies:     []local.DemoProxy{{Operator: key("operator"), PaymentKey: key("payment").Public().(ed25519.PublicKey), WorkerEndpoint: "127.0.0.1:1"}},
		ProxyImages: [][32]byte{n.image}, WorkerImages: [][32]byte{n.image}, Models: [][32]byte{n.weights},
	})
	require.NoError(err)
	require.NoError(chain.TopUp(ctx, ch, client, n.demo.Proxy, 2_000_000_000))
	n.openDeps = Deps{
		OpenChain: func(context.Context, chains.Where) (chain.Chain, func() error, error) {
			return ch, func() error { return nil }, nil
		},
		ImageHash: func(config.Config, attest.Role) (attest.ImageHash, bool, error) { return n.image, true, nil },
	}
	return n
}

// on is a configuration on n's chain and registry with the wallet key in keyFile.
func (n *network) on(keyFile string) func(*config.Config) {
	return func(c *config.Config) {
		c.Payments = config.Payments{Chain: "local", ChainData: n.path, Key: keyFile,
			Registry: config.Address{AccountID: n.demo.Registry, Set: true}, ProxyContract: config.Address{AccountID: n.demo.Proxy, Set: true}}
	}
}

func (n *network) deps(image *attest.ImageHash) Deps {
	d := n.openDeps
	if image != nil {
		d.ImageHash = func(config.Config, attest.Role) (attest.ImageHash, bool, error) { return *image, false, nil }
	}
	return d
}

func TestChecksOnTheChain(t *testing.T) {
	n := newNetwork(t)
	other := attest.ImageHash{1}
	otherModel := func(c *config.Config) {
		n.on(n.client)(c)
		c.Worker.EngineURL, c.Worker.WeightsDigest = "http://e", "sha256:"+strings.Repeat("cd", 32)
	}
	noRegistry := func(c *config.Config) { n.on(n.client)(c); c.Payments.Registry = config.Address{} }
	missing := func(c *config.Config) {
		n.on(n.client)(c)
		c.Payments.Registry = config.Address{AccountID: n.demo.Proxy, Set: true}
	}
	cases := map[string]struct {
		check func(*Doctor, context.Context) Result
		checkCase
	}{
		"registry read":      {(*Doctor).checkRegistry, checkCase{cfg: n.on(n.client), deps: n.deps(nil), want: OK, detail: "version"}},
		"registry unread":    {(*Doctor).checkRegistry, checkCase{cfg: missing, deps: n.deps(nil), want: Fail, detail: "payments.registry"}},
		"no registry":        {(*Doctor).checkRegistry, checkCase{cfg: noRegistry, deps: n.deps(nil), want: OK, detail: "no payments.registry"}},
		"image listed":       {(*Doctor).checkImage, checkCase{cfg: n.on(n.client), deps: n.deps(nil), want: OK, detail: "on the registry's worker-image list"}},
		"proxy image listed": {(*Doctor).checkImage, checkCase{role: "proxy", cfg: n.on(n.client), deps: n.deps(nil), want: OK, detail: "proxy-image list"}},
		"image not listed":   {(*Doctor).checkImage, checkCase{cfg: n.on(n.client), deps: n.deps(&other), want: Fail, detail: "cocoon chain registry allow"}},
		"model listed":       {(*Doctor).checkModel, checkCase{cfg: n.on(n.client), deps: n.deps(nil), want: OK, detail: "on the registry's model list"}},
		"model not listed":   {(*Doctor).checkModel, checkCase{cfg: otherModel, deps: n.deps(nil), want: Fail, detail: "not on the registry's model list"}},
		"wallet funded":      {(*Doctor).checkWallet, checkCase{role: "client", cfg: n.on(n.client), deps: n.deps(nil), want: OK, detail: "TON"}},
		"wallet empty":       {(*Doctor).checkWallet, checkCase{cfg: n.on(n.poor), deps: n.deps(nil), want: Warn, detail: "holds 0 TON"}},
		"proxy's wallet":     {(*Doctor).checkWallet, checkCase{role: "proxy", cfg: n.on(n.poor), deps: n.deps(nil), want: Warn, detail: "settlement of client charges"}},
		"no wallet key":      {(*Doctor).checkWallet, checkCase{cfg: n.on(""), deps: n.deps(nil), want: Warn, detail: "made on first start"}},
		"deposit":            {(*Doctor).checkDeposit, checkCase{role: "client", cfg: n.on(n.client), deps: n.deps(nil), want: OK, detail: "0.98 TON left (stake 1 TON)"}},
		"no deposit":         {(*Doctor).checkDeposit, checkCase{role: "client", cfg: n.on(n.poor), deps: n.deps(nil), want: Fail, detail: "cocoon chain client top-up"}},
		"proxy stake":        {(*Doctor).checkDeposit, checkCase{role: "proxy", cfg: n.on(""), deps: n.deps(nil), want: OK, detail: "active: stake"}},
		"no proxy contract": {(*Doctor).checkDeposit, checkCase{role: "proxy", cfg: func(c *config.Config) { n.on("")(c); c.Payments.ProxyContract = config.Address{} },
			deps: n.deps(nil), want: Fail, detail: "cocoon chain proxy deploy"}},
		"registry proxies": {(*Doctor).checkProxies, checkCase{cfg: n.on(n.client), deps: func() Deps {
			d := n.deps(nil)
			d.Dial = func(_ context.Context, ep string) (*attest.Peer, error) {
				if ep != "127.0.0.1:1" {
					return nil, fmt.Errorf("dialled %s", ep)
				}
				return &attest.Peer{Quoted: true}, nil
			}
			return d
		}(), want: OK, detail: "1 of 1 from the registry"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			runCases(t, tc.check, map[string]checkCase{name: tc.checkCase})
		})
	}
}

// TestChainThroughServedURL: a local chain held by a process that serves it is read through the
// URL it recorded; held without one, the check says so.
func TestChainThroughServedURL(t *testing.T) {
	n := newNetwork(t)
	var opened []chains.Where
	deps := n.deps(nil)
	deps.OpenChain = func(_ context.Context, w chains.Where) (chain.Chain, func() error, error) {
		opened = append(opened, w)
		return n.chain, func() error { return nil }, nil
	}
	remove, err := local.WriteServedURL(n.path, "http://127.0.0.1:9")
	require.NoError(t, err)
	defer func() { require.NoError(t, remove()) }()
	cfg := baseConfig(t)
	n.on(n.client)(&cfg)
	r := newDoctor(t, cfg, "client", deps).checkRegistry(t.Context())
	assert.Equal(t, OK, r.Status, r.String())
	assert.Contains(t, r.Detail, "read through http://127.0.0.1:9")
	assert.Equal(t, []chains.Where{{URL: "http://127.0.0.1:9"}}, opened)
}

func TestRunAndReport(t *testing.T) {
	assert := assert.New(t)
	cfg := baseConfig(t)
	cfg.Attestation.Simulated, cfg.Attestation.AllowSimulated, cfg.Attestation.SimDir = true, true, simRoot(t)
	d := newDoctor(t, cfg, "worker", Deps{
		Dial:      func(context.Context, string) (*attest.Peer, error) { return nil, timeoutErr{} },
		FreeBytes: func(string) (uint64, error) { return 50 << 30, nil },
	})
	rs := d.Run(t.Context())
	var names []string
	for _, r := range rs {
		names = append(names, r.Check)
	}
	assert.Equal([]string{"tdx", "collateral", "engine", "weights", "registry", "image", "model", "proxies", "wallet", "clock", "disk"}, names)
	var b strings.Builder
	failed := Report(&b, rs)
	assert.Equal([]string{"proxies"}, failed)
	assert.Contains(b.String(), "ok    wallet      no payments.chain: this worker runs without payments\n")
	assert.Contains(b.String(), "\n9 ok, 1 warn, 1 fail\n")
}

func FuzzParseModels(f *testing.F) {
	f.Add([]byte(`{"data":[{"id":"llama"}]}`))
	f.Add([]byte(`{"data":[]}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		models, err := parseModels(b)
		if err == nil && len(models) == 0 {
			t.Fatal("no error and no models")
		}
		for _, m := range models {
			if m == "" {
				t.Fatal("an empty model id")
			}
		}
	})
}
