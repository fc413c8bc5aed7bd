package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"
)

func TestExampleFiles(t *testing.T) {
	testCases := map[string]struct {
		role string
		want func(c *Config)
	}{
		"proxy.yaml": {role: "proxy", want: func(c *Config) {
			c.Data = "/var/lib/cocoon"
			c.Attestation.Policy = "/etc/cocoon/policy.json"
			c.Attestation.CertValidity = Duration(12 * time.Hour)
			c.Proxy.RequestTimeout = Duration(5 * time.Minute)
		}},
		"worker.yaml": {role: "worker", want: func(c *Config) {
			c.Data = "/var/lib/cocoon"
			c.Attestation.Policy = "/etc/cocoon/policy.json"
			c.Worker.Proxies = []string{"proxy1.example.net:4433", "proxy2.example.net:4433"}
			c.Worker.EngineURL = "http://127.0.0.1:8000"
			c.Worker.Model = "Qwen/Qwen3-8B"
			c.Worker.ModelDir = "/models/Qwen3-8B"
			c.Worker.MaxActive = 128
			c.Worker.OwnerAddress = mustAddress(t, "UQBdUltQlfyFQf9dg7K7eyFD4mWURM8hOgVQqMOq9tEGUXzh")
		}},
		"client.yaml": {role: "client", want: func(c *Config) {
			c.Data = "/var/lib/cocoon-client"
			c.Attestation.Policy = "/etc/cocoon/policy.json"
			c.Client.Proxies = []string{"proxy1.example.net:4433", "proxy2.example.net:4433"}
			c.Client.MaxCoefficient = 1500
			c.Client.RequestTimeout = Duration(2 * time.Minute)
		}},
		// The README's "Run the roles": one machine, simulated TDX, one shared development root.
		"sim-proxy.yaml": {role: "proxy", want: func(c *Config) {
			c.Data = "/tmp/cocoon-sim/proxy"
			c.Attestation.Simulated, c.Attestation.AllowSimulated = true, true
			c.Attestation.SimDir = "/tmp/cocoon-sim/tdx-sim"
			c.Proxy.Listen = "127.0.0.1:14433"
			c.Proxy.StatsListen = "127.0.0.1:19090"
		}},
		"sim-worker.yaml": {role: "worker", want: func(c *Config) {
			c.Data = "/tmp/cocoon-sim/worker"
			c.Attestation.Simulated, c.Attestation.AllowSimulated = true, true
			c.Attestation.SimDir = "/tmp/cocoon-sim/tdx-sim"
			c.Worker.Proxies = []string{"127.0.0.1:14433"}
			c.Worker.StatsListen = "127.0.0.1:19091"
		}},
		"sim-client.yaml": {role: "client", want: func(c *Config) {
			c.Data = "/tmp/cocoon-sim/client"
			c.Attestation.AllowSimulated = true
			c.Attestation.SimDir = "/tmp/cocoon-sim/tdx-sim"
			c.Client.Proxies = []string{"127.0.0.1:14433"}
			c.Client.Listen = "127.0.0.1:18080"
		}},
		"demo.yaml": {role: "worker", want: func(c *Config) {
			c.Data = "/tmp/cocoon-demo"
			c.Attestation.Simulated, c.Attestation.AllowSimulated = true, true
			c.Proxy.Listen = "127.0.0.1:4433"
			c.Worker.TokenDelay = Duration(15 * time.Millisecond)
		}},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			require := require.New(t)
			got, err := Load(filepath.Join("..", "testdata", "config", name))
			require.NoError(err)
			want := Defaults()
			tc.want(&want)
			require.Equal(want, got)
			require.NoError(got.Validate(tc.role))
		})
	}
}

func TestValidateNamesTheField(t *testing.T) {
	testCases := map[string]struct {
		role   string
		mutate func(*Config)
		field  string
	}{
		"log level":      {role: "proxy", mutate: func(c *Config) { c.LogLevel = "loud" }, field: "log_level"},
		"proxy listen":   {role: "proxy", mutate: func(c *Config) { c.Proxy.Listen = "nowhere" }, field: "proxy.listen"},
		"attempts":       {role: "proxy", mutate: func(c *Config) { c.Proxy.MaxAttempts = 0 }, field: "proxy.max_attempts"},
		"stats token":    {role: "proxy", mutate: func(c *Config) { c.Proxy.StatsToken = "short" }, field: "proxy.stats_token"},
		"worker proxies": {role: "worker", mutate: func(c *Config) { c.Worker.Proxies = nil }, field: "worker.proxies"},
		"bad proxy":      {role: "worker", mutate: func(c *Config) { c.Worker.Proxies = []string{"a:1", "b"} }, field: "worker.proxies[1]"},
		"engine url":     {role: "worker", mutate: func(c *Config) { c.Worker.EngineURL = "ftp://x" }, field: "worker.engine_url"},
		"coefficient":    {role: "worker", mutate: func(c *Config) { c.Worker.Coefficient = 0 }, field: "worker.coefficient"},
		"max active":     {role: "worker", mutate: func(c *Config) { c.Worker.MaxActive = 0 }, field: "worker.max_active"},
		"digest twice":   {role: "worker", mutate: func(c *Config) { c.Worker.ModelDir, c.Worker.WeightsDigest = "/m", "sha256:x" }, field: "worker.weights_digest"},
		"client listen":  {role: "client", mutate: func(c *Config) { c.Client.Listen = "" }, field: "client.listen"},
		"body limit":     {role: "client", mutate: func(c *Config) { c.Client.MaxBodyBytes = 1 }, field: "client.max_body_bytes"},
		"bodies budget":  {role: "client", mutate: func(c *Config) { c.Client.MaxBodiesBytes = 1 << 20 }, field: "client.max_bodies_bytes"},
		"connections":    {role: "client", mutate: func(c *Config) { c.Client.MaxConnections = 0 }, field: "client.max_connections"},
		"max proxies":    {role: "client", mutate: func(c *Config) { c.Client.MaxProxies = -1 }, field: "client.max_proxies"},
		"top up floor only": {role: "client", mutate: func(c *Config) { c.Payments.Chain, c.Payments.TopUpBelow = "local", 1 },
			field: "payments.top_up_below and payments.top_up_amount"},
		"top up without a chain": {role: "client", mutate: func(c *Config) { c.Payments.TopUpBelow, c.Payments.TopUpAmount = 1, 2 },
			field: "payments.top_up_below: needs payments.chain"},
		"origin path":   {role: "client", mutate: func(c *Config) { c.Client.AllowedOrigins = []string{"https://a.example/app"} }, field: "client.allowed_origins[0]"},
		"host port":     {role: "client", mutate: func(c *Config) { c.Client.AllowedHosts = []string{"*", "a.example:80"} }, field: "client.allowed_hosts[1]"},
		"cert validity": {role: "client", mutate: func(c *Config) { c.Attestation.CertValidity = Duration(48 * time.Hour) }, field: "attestation.cert_validity"},
		"chain kind":    {role: "client", mutate: func(c *Config) { c.Payments.Chain = "remote" }, field: "payments.chain"},
		"chain url":     {role: "client", mutate: func(c *Config) { c.Payments.Chain = "toncenter" }, field: "payments.chain_url"},
		"chain url scheme": {role: "worker", mutate: func(c *Config) {
			c.Payments.Chain, c.Payments.ChainURL = "toncenter", "ftp://chain:8081"
		}, field: "payments.chain_url"},
		"chain url key": {role: "worker", mutate: func(c *Config) {
			c.Payments.Chain, c.Payments.ChainURL = "toncenter", "https://toncenter.com/?api_key=k"
		}, field: "payments.chain_url"},
		"chain network": {role: "worker", mutate: func(c *Config) {
			c.Payments.Chain, c.Payments.ChainURL, c.Payments.Network = "toncenter", "http://chain:8081", "moonnet"
		}, field: "payments.network"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			c := Defaults()
			tc.mutate(&c)
			err := c.Validate(tc.role)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.field)
		})
	}
}

func TestUnknownFieldRefused(t *testing.T) {
	var c Config
	err := Parse([]byte("proxy:\n  lisen: 1.2.3.4:5\n"), &c)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "lisen")
}

// fromArgs runs a role's command line through FromCLI.
func fromArgs(role string, args ...string) (Config, error) {
	var got Config
	app := &cli.App{
		Flags: Flags(role),
		Action: func(c *cli.Context) error {
			var err error
			got, err = FromCLI(c, role)
			return err
		},
	}
	err := app.Run(append([]string{"cocoon"}, args...))
	return got, err
}

// TestPrecedence: defaults, then file, then environment, then flags.
func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(file, []byte("worker:\n  model: from-file\n  max_active: 7\n  coefficient: 1100\n"), 0o600))
	t.Setenv("COCOON_MODEL", "from-env")
	t.Setenv("COCOON_MAX_ACTIVE", "9")

	got, err := fromArgs("worker", "--config", file, "--max-active", "11")
	require.NoError(t, err)
	assert.Equal(t, "from-env", got.Worker.Model, "environment beats file")
	assert.Equal(t, 11, got.Worker.MaxActive, "flag beats environment")
	assert.Equal(t, uint32(1100), got.Worker.Coefficient, "file beats default")
	assert.Equal(t, Defaults().Worker.StatsListen, got.Worker.StatsListen, "default stays")
}

// TestClientProtectionFlags: the client's browser and memory protections are set from flags and
// environment like every setting.
func TestClientProtectionFlags(t *testing.T) {
	t.Setenv("COCOON_ALLOWED_HOSTS", "api.internal, cocoon.lan")
	got, err := fromArgs("client", "--allowed-origins", "https://app.example.com,*",
		"--max-bodies-bytes", "8388608", "--max-connections", "64")
	require.NoError(t, err)
	assert.Equal(t, []string{"https://app.example.com", "*"}, got.Client.AllowedOrigins)
	assert.Equal(t, []string{"api.internal", "cocoon.lan"}, got.Client.AllowedHosts)
	assert.Equal(t, int64(8<<20), got.Client.MaxBodiesBytes)
	assert.Equal(t, 64, got.Client.MaxConnections)
	assert.Equal(t, Defaults().Client.MaxBodyBytes, got.Client.MaxBodyBytes)
}

// TestAddressesParsedOnce: a TON address is parsed where it is read, so a bad one is refused
// there with the field named, and a good one reaches the roles as an account.
func TestAddressesParsedOnce(t *testing.T) {
	const raw = "0:0000000000000000000000000000000000000000000000000000000000000001"
	testCases := map[string]struct {
		yaml    string
		args    []string
		wantErr string
	}{
		"file":            {yaml: "payments:\n  chain: local\n  registry: " + raw + "\n  proxy_contract: " + raw + "\n"},
		"flags":           {yaml: "payments:\n  chain: local\n", args: []string{"--registry", raw, "--proxy-contract", raw}},
		"bad in the file": {yaml: "payments:\n  registry: nope\n", wantErr: `line 2: "nope" is not a TON address`},
		"bad flag":        {yaml: "payments:\n  chain: local\n", args: []string{"--registry", "nope"}, wantErr: `--registry: "nope" is not a TON address`},
		"missing":         {yaml: "payments:\n  chain: local\n", wantErr: "payments.registry: required"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			require := require.New(t)
			file := filepath.Join(t.TempDir(), "c.yaml")
			require.NoError(os.WriteFile(file, []byte(tc.yaml), 0o600))
			var got Config
			app := &cli.App{
				Flags: Flags("proxy"),
				Action: func(c *cli.Context) error {
					var err error
					got, err = FromCLI(c, "proxy")
					return err
				},
			}
			err := app.Run(append([]string{"cocoon", "--config", file}, tc.args...))
			if tc.wantErr != "" {
				require.ErrorContains(err, tc.wantErr)
				return
			}
			require.NoError(err)
			require.True(got.Payments.Registry.Set)
			require.Equal(raw, got.Payments.Registry.ToRaw())
			require.Equal(raw, got.Payments.ProxyContract.String())
		})
	}
}

func mustAddress(t *testing.T, s string) Address {
	a, err := ParseAddress(s)
	require.NoError(t, err)
	return a
}
