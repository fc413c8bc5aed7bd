package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The classification of every configuration field, by file key. README.md's "What the image hash
// measures" table says the same.
var (
	measuredEveryRole = []string{
		"attestation.simulated", "attestation.allow_simulated", "attestation.cert_validity",
		"payments.chain", "payments.network", "payments.registry",
	}
	measuredFor = map[string][]string{
		"proxy":  append(slices.Clone(measuredEveryRole), "proxy.max_attempts"),
		"worker": append(slices.Clone(measuredEveryRole), "worker.model", "worker.engine_url"),
		"client": append(slices.Clone(measuredEveryRole), "client.allowed_origins", "client.allowed_hosts"),
	}
	notMeasured = []string{
		"log_level", "data", "payments.registry_interval",
		"attestation.sim_dir", "attestation.policy", "attestation.collateral_url", "attestation.collateral_dir",
		"attestation.collateral_bundle", "attestation.offline",
		"proxy.listen", "proxy.stats_listen", "proxy.request_timeout", "proxy.stats_token",
		"worker.proxies", "worker.engine_api_key", "worker.model_dir", "worker.weights_digest", "worker.coefficient",
		"worker.max_active", "worker.owner_address", "worker.stats_listen", "worker.builtin_token_delay",
		"client.proxies", "client.listen", "client.api_token", "client.max_body_bytes", "client.max_coefficient",
		"client.request_timeout", "client.max_bodies_bytes", "client.max_connections", "client.max_proxies",
		"client.plaintext_dev", "client.receipts_kept",
		"payments.chain_data", "payments.ton_config", "payments.chain_url", "payments.chain_api_key", "payments.key", "payments.proxy_contract", "payments.submit_threshold",
		"payments.top_up_below", "payments.top_up_amount",
	}
)

// configField is one setting of Config reached by reflection.
type configField struct {
	key   string // file key, e.g. "worker.model"
	index []int  // reflect field index path from Config
}

// configFields lists every setting: the top-level scalars and each field of each section.
func configFields(t *testing.T) []configField {
	t.Helper()
	var out []configField
	top := reflect.TypeFor[Config]()
	for i := range top.NumField() {
		f := top.Field(i)
		name := yamlName(t, f)
		if f.Type.Kind() != reflect.Struct {
			out = append(out, configField{key: name, index: []int{i}})
			continue
		}
		for j := range f.Type.NumField() {
			sf := f.Type.Field(j)
			out = append(out, configField{key: name + "." + yamlName(t, sf), index: []int{i, j}})
		}
	}
	return out
}

func yamlName(t *testing.T, f reflect.StructField) string {
	t.Helper()
	tag := f.Tag.Get("yaml")
	require.NotEmpty(t, tag, "field %s has no yaml tag", f.Name)
	return tag
}

// change gives the field a different value, whatever its type.
func change(t *testing.T, v reflect.Value, key string) {
	t.Helper()
	switch {
	case v.Type() == reflect.TypeFor[Address]():
		a, err := ParseAddress("0:0000000000000000000000000000000000000000000000000000000000000007")
		require.NoError(t, err)
		v.Set(reflect.ValueOf(a))
	case v.Kind() == reflect.String:
		v.SetString(v.String() + "x-changed")
	case v.Kind() == reflect.Bool:
		v.SetBool(!v.Bool())
	case v.CanInt():
		v.SetInt(v.Int() + 1)
	case v.CanUint():
		v.SetUint(v.Uint() + 1)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		v.Set(reflect.Append(v, reflect.ValueOf("x-changed")))
	default:
		t.Fatalf("%s: teach change() to alter a %s", key, v.Type())
	}
}

// TestEveryFieldClassified: every configuration field is either measured (for the roles listed)
// or not, and Digest agrees: changing a field changes a role's digest exactly when the field is
// measured for that role. A new field fails here until it is put in one of the lists, and in
// measure() if it is measured.
func TestEveryFieldClassified(t *testing.T) {
	fields := configFields(t)
	for _, f := range fields {
		inMeasured := false
		for _, keys := range measuredFor {
			inMeasured = inMeasured || slices.Contains(keys, f.key)
		}
		inNot := slices.Contains(notMeasured, f.key)
		require.True(t, inMeasured != inNot, "%s must be in exactly one of measuredFor and notMeasured (measured: %v, not measured: %v)", f.key, inMeasured, inNot)
	}
	var keys []string
	for _, f := range fields {
		keys = append(keys, f.key)
	}
	for _, k := range notMeasured {
		assert.Contains(t, keys, k, "notMeasured names a field that does not exist")
	}

	for role, measured := range measuredFor {
		for _, f := range fields {
			t.Run(role+"/"+f.key, func(t *testing.T) {
				base := Defaults()
				base.Payments.Chain = "ton" // so that payments.network decides something
				changed := base
				changed.Worker.Proxies = slices.Clone(base.Worker.Proxies)
				changed.Client.Proxies = slices.Clone(base.Client.Proxies)
				change(t, reflect.ValueOf(&changed).Elem().FieldByIndex(f.index), f.key)
				if slices.Contains(measured, f.key) {
					assert.NotEqual(t, base.Digest(role), changed.Digest(role), "%s is measured for %s", f.key, role)
				} else {
					assert.Equal(t, base.Digest(role), changed.Digest(role), "%s is not measured for %s", f.key, role)
				}
			})
		}
	}
}

func TestDigestIgnoresSecretsAndOtherRoles(t *testing.T) {
	a := Defaults()
	b := Defaults()
	b.Client.APIToken = "secret"
	b.Proxy.MaxAttempts = 1
	assert.Equal(t, a.Digest("client"), b.Digest("client"), "API token is not measured")
	assert.NotEqual(t, a.Digest("proxy"), b.Digest("proxy"))
	assert.NotEqual(t, a.Digest("proxy"), a.Digest("worker"))
}

// TestDigestSameAcrossMachines: two nodes that differ only in where they listen, whom they dial,
// where they keep state and their secrets have one digest; a measured difference gives another.
func TestDigestSameAcrossMachines(t *testing.T) {
	elsewhere := func(c *Config) {
		c.Data, c.LogLevel = "/srv/other", "debug"
		c.Attestation.SimDir, c.Attestation.CollateralDir = "/srv/other/sim", "/srv/other/collateral"
		c.Attestation.Policy = "/etc/other/policy.json"
		c.Proxy.Listen, c.Proxy.StatsListen, c.Proxy.StatsToken = "127.0.0.1:40001", "127.0.0.1:40002", "0123456789abcdef"
		c.Worker.Proxies, c.Worker.StatsListen = []string{"10.0.0.1:4433", "10.0.0.2:4433"}, "127.0.0.1:40003"
		c.Worker.EngineURL = "http://127.0.0.1:8001/v1"
		c.Client.Proxies, c.Client.Listen, c.Client.APIToken = []string{"10.0.0.1:4433"}, "127.0.0.1:40004", "token"
		c.Payments.ChainData, c.Payments.Key = "/srv/other/chain.db", "/srv/other/key"
	}
	all := []string{"proxy", "worker", "client"}
	testCases := map[string]struct {
		mutate func(*Config)
		differ []string // the roles whose digest changes
	}{
		"ports, peers, paths and secrets": {mutate: elsewhere},
		"allowed origins in another order": {mutate: func(c *Config) {
			c.Client.AllowedOrigins = []string{"https://b.example", "https://a.example", "https://a.example"}
		}},
		"allow simulated":     {mutate: func(c *Config) { elsewhere(c); c.Attestation.AllowSimulated = false }, differ: all},
		"certificate life":    {mutate: func(c *Config) { elsewhere(c); c.Attestation.CertValidity = Duration(time.Hour) }, differ: all},
		"payments on a chain": {mutate: func(c *Config) { elsewhere(c); c.Payments.Chain = "local" }, differ: all},
		"max attempts":        {mutate: func(c *Config) { elsewhere(c); c.Proxy.MaxAttempts = 5 }, differ: []string{"proxy"}},
		"model":               {mutate: func(c *Config) { elsewhere(c); c.Worker.Model = "other" }, differ: []string{"worker"}},
		"remote engine":       {mutate: func(c *Config) { elsewhere(c); c.Worker.EngineURL = "http://gpu.example:8000" }, differ: []string{"worker"}},
		"allowed hosts":       {mutate: func(c *Config) { elsewhere(c); c.Client.AllowedHosts = []string{"api.internal"} }, differ: []string{"client"}},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			a := Defaults()
			a.Attestation.Simulated, a.Attestation.AllowSimulated = true, true
			a.Worker.EngineURL = "http://localhost:8000"
			a.Client.AllowedOrigins = []string{"https://a.example", "https://b.example"}
			b := a
			tc.mutate(&b)
			for _, role := range all {
				if slices.Contains(tc.differ, role) {
					assert.NotEqual(t, a.Digest(role), b.Digest(role), role)
				} else {
					assert.Equal(t, a.Digest(role), b.Digest(role), role)
				}
			}
		})
	}
}

func TestEngineLocation(t *testing.T) {
	testCases := map[string]struct {
		url  string
		want string
	}{
		"built in":            {url: "", want: "builtin"},
		"loopback ip":         {url: "http://127.0.0.1:8000", want: "loopback"},
		"loopback other port": {url: "https://127.0.0.2:9000/v1", want: "loopback"},
		"localhost":           {url: "http://LocalHost:8000", want: "loopback"},
		"ipv6 loopback":       {url: "http://[::1]:8000", want: "loopback"},
		"remote":              {url: "http://GPU.example:8000/v1", want: "remote http://gpu.example:8000"},
		"remote another port": {url: "http://gpu.example:8001", want: "remote http://gpu.example:8001"},
		"not a url (refused)": {url: "gpu", want: "remote gpu"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, engineLocation(tc.url))
		})
	}
}

// TestReadmeSaysWhatIsMeasured: README.md's "What the image hash measures" table names every
// field once, with the roles it is measured for ("yes": every role) or "no".
func TestReadmeSaysWhatIsMeasured(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	require.NoError(t, err)
	_, section, found := strings.Cut(string(b), "## What the image hash measures\n")
	require.True(t, found, "README.md has the section")
	section, _, _ = strings.Cut(section, "\n## ")
	key := regexp.MustCompile("`([a-z_]+(?:\\.[a-z_]+)?)`")
	said := map[string]string{} // field → "yes", "no" or a role
	for _, line := range strings.Split(section, "\n") {
		cols := strings.Split(line, "|")
		if len(cols) < 4 || !strings.HasPrefix(line, "| `") {
			continue
		}
		word, _, _ := strings.Cut(strings.TrimSpace(cols[2]), " ")
		word = strings.TrimSuffix(word, ",")
		for _, m := range key.FindAllStringSubmatch(cols[1], -1) {
			assert.NotContains(t, said, m[1], "%s is in the table twice", m[1])
			said[m[1]] = word
		}
	}
	for _, f := range configFields(t) {
		var want []string
		for _, role := range []string{"proxy", "worker", "client"} {
			if slices.Contains(measuredFor[role], f.key) {
				want = append(want, role)
			}
		}
		switch {
		case len(want) == 0:
			assert.Equal(t, "no", said[f.key], f.key)
		case len(want) == 3:
			assert.Equal(t, "yes", said[f.key], f.key)
		default:
			assert.Equal(t, strings.Join(want, ","), said[f.key], f.key)
		}
		delete(said, f.key)
	}
	assert.Empty(t, said, "the table names fields that do not exist")
}
