package networkcmd

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"
	"go.uber.org/goleak"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/roles/node"
	"github.com/cocoon-network/cocoon/roles/node/nodetest"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/local"
	"github.com/cocoon-network/cocoon/settle/chaincmd"
	"github.com/cocoon-network/cocoon/settle/contracts"
	"github.com/cocoon-network/cocoon/settle/meter"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// proxyCheck checks what the survey found for one proxy.
type proxyCheck func(*assert.Assertions, Proxy)

// TestSurveyLocalNetwork: a registry on the local chain lists a proxy running in this process
// (with its meter, so it attests its payment key), an endpoint nothing listens on, and a third
// entry naming the running proxy's endpoint under another payment key. The first answers as
// listed, the second does not answer, the third answers with a key that is not its own.
func TestSurveyLocalNetwork(t *testing.T) {
	require := require.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), nodetest.Timescale(60*time.Second))
	defer cancel()
	data := t.TempDir()
	log := zerolog.New(zerolog.NewTestWriter(t))
	cfg := node.LoopbackConfig(data, "warn")
	ch, err := local.OpenDir(data, local.Options{})
	require.NoError(err)
	defer func() { require.NoError(ch.Close()) }()

	payKey, impostor := key(9), key(10)
	image := proxyImage(t, cfg)
	demo := func(proxies ...local.DemoProxy) local.Demo {
		d, err := local.SetupDemo(ctx, ch, local.DemoConfig{Owner: key(1), Proxies: proxies, Params: contracts.DefaultParams(),
			ProxyImages: [][32]byte{image}, Models: [][32]byte{{7}}})
		require.NoError(err)
		return d
	}
	// The ports are known only once the proxy listens: list it first, move it after.
	live := local.DemoProxy{Operator: key(2), PaymentKey: pub(payKey), WorkerEndpoint: "127.0.0.1:1"}
	d := demo(live)
	m, err := meter.New(ctx, ch, meter.Config{Contract: d.Proxy, Registry: d.Registry, PaymentKey: payKey,
		LedgerPath: filepath.Join(data, "ledger.db")}, log)
	require.NoError(err)
	defer func() { require.NoError(m.Close()) }()
	addr := runProxy(t, ctx, cfg, log, m)

	dead := local.DemoProxy{Operator: key(3), PaymentKey: pub(key(11)), WorkerEndpoint: deadEndpoint(t)}
	live.WorkerEndpoint, live.ClientEndpoint = "127.0.0.1:2", addr
	demo(live, dead)
	// The impostor's entry is one SetupDemo would refuse (a shared endpoint): the owner writes it.
	body, err := contracts.SetProxyBody(0, pub(impostor), &contracts.ProxyEntry{Key: pub(impostor), Contract: d.Proxy,
		WorkerEndpoint: "127.0.0.1:3", ClientEndpoint: addr})
	require.NoError(err)
	require.NoError(chain.Call(ctx, ch, key(1), d.Registry, 0, body))
	reg, err := chain.Registry(ctx, ch, d.Registry)
	require.NoError(err)

	n, err := Survey(ctx, ch, d.Registry, Options{AllowSimulated: true, SimDir: cfg.SimRoot(),
		Timeout: nodetest.Timescale(time.Second), Version: "test", Log: log})
	require.NoError(err)
	assert.Equal(t, d.Registry.ToRaw(), n.Registry)
	assert.Equal(t, reg.Version, n.Version)
	assert.Equal(t, contracts.DefaultParams().PricePerToken, n.Params.PricePerToken)
	assert.Equal(t, contracts.DefaultParams().CoefficientCap(), n.Params.CoefficientCap)
	assert.Equal(t, []string{hex.EncodeToString(image[:])}, n.ProxyImages)
	assert.Empty(t, n.WorkerImages)
	assert.Len(t, n.Models, 1)

	byKey := map[string]Proxy{}
	for _, p := range n.Proxies {
		byKey[p.PaymentKey] = p
	}
	require.Len(byKey, 3)
	testCases := map[string]struct {
		key   ed25519.PrivateKey
		check proxyCheck
	}{
		"running proxy": {key: payKey, check: func(a *assert.Assertions, p Proxy) {
			a.True(p.Answered, p.Error)
			a.Equal(addr, p.ClientEndpoint)
			a.Equal("127.0.0.1:2", p.WorkerEndpoint)
			a.Equal(d.Proxy.ToRaw(), p.Contract)
			a.Equal("simulated", p.Attestation)
			a.Equal(hex.EncodeToString(image[:]), p.ImageHash)
			a.True(p.ImageAllowed)
			a.True(p.PaymentKeyMatches)
			a.Empty(p.AttestedKey)
			a.True(p.SharedEndpoint, "the impostor lists its endpoint too")
		}},
		"nothing listening": {key: key(11), check: func(a *assert.Assertions, p Proxy) {
			a.False(p.Answered)
			a.NotEmpty(p.Error)
			a.Empty(p.Attestation)
			a.False(p.SharedEndpoint)
		}},
		"another proxy's endpoint": {key: impostor, check: func(a *assert.Assertions, p Proxy) {
			a.True(p.Answered, p.Error)
			a.False(p.PaymentKeyMatches)
			a.Equal(hex.EncodeToString(pub(payKey)), p.AttestedKey)
			a.True(p.SharedEndpoint)
		}},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			p, ok := byKey[hex.EncodeToString(pub(tc.key))]
			if assert.True(ok) {
				tc.check(assert, p)
			}
		})
	}
}

// TestNetworkCommand runs `cocoon network` against a local chain file listing a running proxy
// (without payments, so it attests no payment key) and an endpoint nothing listens on.
func TestNetworkCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), nodetest.Timescale(60*time.Second))
	defer cancel()
	data := t.TempDir()
	log := zerolog.New(zerolog.NewTestWriter(t))
	cfg := node.LoopbackConfig(data, "warn")
	addr := runProxy(t, ctx, cfg, log, nil)
	dead := deadEndpoint(t)
	ch, err := local.OpenDir(data, local.Options{})
	require.NoError(t, err)
	d, err := local.SetupDemo(ctx, ch, local.DemoConfig{Owner: key(1), Params: contracts.DefaultParams(), Proxies: []local.DemoProxy{
		{Operator: key(2), PaymentKey: pub(key(9)), WorkerEndpoint: addr},
		{Operator: key(2), PaymentKey: pub(key(10)), WorkerEndpoint: dead},
	}})
	require.NoError(t, err)
	require.NoError(t, ch.Close())
	reg := d.Registry.ToRaw()
	chainDB := filepath.Join(data, local.DefaultFile)
	timeout := nodetest.Timescale(time.Second).String()

	testCases := map[string]struct {
		args     []string
		env      string // $COCOON_REGISTRY
		wantCode int
		wantErr  string
		check    func(*assert.Assertions, string)
	}{
		"table": {args: []string{"--chain-data", chainDB, "--allow-simulated", "--sim-dir", cfg.SimRoot(), "--timeout", timeout, reg},
			check: func(a *assert.Assertions, out string) {
				a.Regexp(`registry\s+`+reg+` \(version \d+\)\n`, out)
				a.Contains(out, "clients pay 20 nanoTON, workers earn 16 nanoTON")
				a.Contains(out, "prompt 1x, cached prompt 0.25x, completion 4x, reasoning 4x")
				a.Regexp(`worker coefficient cap\s+4x\n`, out)
				a.Regexp(`proxy images\s+none allowed`, out)
				a.Contains(out, "proxies: 2 listed, 1 answered")
				a.Regexp(`\n\d\s+`+addr+`\s+`+addr+`\s+\d+ms\s+simulated\s+[0-9a-f]{16}… NOT ALLOWED\s+NOT AS LISTED\n`, out)
				a.Regexp(`\n\d\s+`+dead+`\s+`+dead+`\s+no\s+-\s+-\s+-\n`, out)
				a.Regexp(`\d  payment key `+hex.EncodeToString(pub(key(9)))+`  contract `+d.Proxies[0].ToRaw()+
					`\n   attests payment key none: clients and workers will not pay through it\n`, out)
				a.Regexp(`\d  payment key `+hex.EncodeToString(pub(key(10)))+`  contract \S+\n   no answer: dial `+dead, out)
			}},
		"json, registry from the environment": {args: []string{"--chain-data", chainDB, "--allow-simulated", "--sim-dir", cfg.SimRoot(), "--timeout", timeout, "--json"}, env: reg,
			check: func(a *assert.Assertions, out string) {
				var n Network
				a.NoError(json.Unmarshal([]byte(out), &n))
				a.Equal(reg, n.Registry)
				running, silent := at(n, addr), at(n, dead)
				a.True(running.Answered)
				a.Equal("simulated", running.Attestation)
				a.False(running.ImageAllowed)
				a.False(silent.Answered)
				a.NotEmpty(silent.Error)
			}},
		"simulated not allowed": {args: []string{"--chain-data", chainDB, "--sim-dir", cfg.SimRoot(), "--timeout", timeout, "--json", reg},
			check: func(a *assert.Assertions, out string) {
				var n Network
				a.NoError(json.Unmarshal([]byte(out), &n))
				running := at(n, addr)
				a.False(running.Answered, "a simulated proxy is refused")
				a.Contains(running.Error, "simulated TDX quote not allowed by policy")
				a.Contains(running.Error, "--allow-simulated accepts it")
			}},
		"no registry":          {args: []string{"--chain-data", chainDB}, wantCode: 2, wantErr: "want REGISTRY"},
		"two registries":       {args: []string{"--chain-data", chainDB, reg, reg}, wantCode: 2, wantErr: "want one REGISTRY"},
		"bad registry":         {args: []string{"--chain-data", chainDB, "nowhere"}, wantCode: 2, wantErr: `registry address "nowhere"`},
		"flag after argument":  {args: []string{reg, "--json"}, wantCode: 2, wantErr: "give the flags first"},
		"zero timeout":         {args: []string{"--chain-data", chainDB, "--timeout", "0s", reg}, wantCode: 2, wantErr: "--timeout 0s"},
		"no registry deployed": {args: []string{"--chain-data", chainDB, d.Proxies[0].ToRaw()}, wantCode: 1, wantErr: "read registry"},
		"no chain":             {args: []string{"--data", t.TempDir(), reg}, wantCode: 1, wantErr: "run `cocoon demo` once"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			t.Setenv("COCOON_REGISTRY", tc.env)
			out, err := runNetwork(ctx, tc.args...)
			assert.Equal(tc.wantCode, exitCode(err), "%v: %s", err, out)
			if tc.wantErr != "" {
				assert.ErrorContains(err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(assert, out)
			}
		})
	}
}

// at is the proxy n lists at client endpoint ep.
func at(n Network, ep string) Proxy {
	for _, p := range n.Proxies {
		if p.ClientEndpoint == ep {
			return p
		}
	}
	return Proxy{}
}

// runNetwork runs `cocoon network args…` as main wires it and returns what it printed.
func runNetwork(ctx context.Context, args ...string) (string, error) {
	app := &cli.App{Name: "cocoon", Version: "test", Commands: []*cli.Command{Command(chaincmd.ChainFlags(), chaincmd.WithChain)}}
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	err := app.RunContext(ctx, append([]string{"cocoon", "network"}, args...))
	return out.String(), err
}

// exitCode is the status main would exit with for err.
func exitCode(err error) int {
	var ec cli.ExitCoder
	switch {
	case errors.As(err, &ec):
		return ec.ExitCode()
	case err != nil:
		return 1
	}
	return 0
}

// runProxy runs a proxy on loopback until the test ends and returns its endpoint.
func runProxy(t *testing.T, ctx context.Context, cfg config.Config, log zerolog.Logger, m *meter.Meter) string {
	t.Helper()
	p, err := node.BuildProxy(cfg, "test", log, m, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { assert.NoError(t, p.Run(ctx)) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	a := p.Addr(ctx)
	require.NotNil(t, a, "the proxy did not start")
	return a.String()
}

// proxyImage is the image hash a simulated proxy built from cfg attests.
func proxyImage(t *testing.T, cfg config.Config) [32]byte {
	t.Helper()
	digest, err := attest.ExecutableDigest()
	require.NoError(t, err)
	m := attest.SimulatedMeasurements(digest, attest.RoleProxy, cfg.Digest("proxy"))
	return m.ImageHash()
}

// deadEndpoint is a loopback UDP endpoint nothing listens on.
func deadEndpoint(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	ep := c.LocalAddr().String()
	require.NoError(t, c.Close())
	return ep
}

func key(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s)
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// TestCheck: what a dial's outcome says about a listed proxy, without a network.
func TestCheck(t *testing.T) {
	listed := contracts.ProxyEntry{Key: pub(key(9)), WorkerEndpoint: "10.0.0.1:4433", ClientEndpoint: "proxy.example:443"}
	reg := contracts.Registry{ProxyImages: [][32]byte{{1}}, Proxies: []contracts.ProxyEntry{listed}}
	testCases := map[string]struct {
		peer *attest.Peer
		err  error
		want Proxy
	}{
		"tdx, allowed, as listed": {
			peer: &attest.Peer{Quoted: true, ImageHash: attest.ImageHash{1}, Claims: &attest.Claims{PaymentKey: pub(key(9))}},
			want: Proxy{Answered: true, DialMillis: 12, Attestation: "tdx", ImageHash: attest.ImageHash{1}.String(), ImageAllowed: true, PaymentKeyMatches: true},
		},
		"simulated, image not allowed, another key": {
			peer: &attest.Peer{Quoted: true, Simulated: true, ImageHash: attest.ImageHash{2}, Claims: &attest.Claims{PaymentKey: pub(key(8))}},
			want: Proxy{Answered: true, DialMillis: 12, Attestation: "simulated", ImageHash: attest.ImageHash{2}.String(),
				AttestedKey: hex.EncodeToString(pub(key(8)))},
		},
		"no payment key attested": {
			peer: &attest.Peer{Quoted: true, ImageHash: attest.ImageHash{1}, Claims: &attest.Claims{}},
			want: Proxy{Answered: true, DialMillis: 12, Attestation: "tdx", ImageHash: attest.ImageHash{1}.String(), ImageAllowed: true},
		},
		"refused as simulated": {
			err:  fmt.Errorf("dial proxy.example:443: %w", attest.ErrSimulatedNotAllowed),
			want: Proxy{Error: "dial proxy.example:443: " + attest.ErrSimulatedNotAllowed.Error() + " (--allow-simulated accepts it)"},
		},
		"no answer": {
			err:  errors.New("dial proxy.example:443: timeout: no recent network activity"),
			want: Proxy{Error: "dial proxy.example:443: timeout: no recent network activity"},
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			var got Proxy
			check(&got, reg, listed, tc.peer, tc.err, 12*time.Millisecond)
			assert.Equal(t, tc.want, got)
		})
	}
}
