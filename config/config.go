package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the one file format every role reads. Each role uses its own section and the shared
// ones; the others are ignored.
type Config struct {
	LogLevel    string      `yaml:"log_level" json:"log_level"`
	Data        string      `yaml:"data" json:"data"`
	Attestation Attestation `yaml:"attestation" json:"attestation"`
	Proxy       Proxy       `yaml:"proxy" json:"proxy"`
	Worker      Worker      `yaml:"worker" json:"worker"`
	Client      Client      `yaml:"client" json:"client"`
	Payments    Payments    `yaml:"payments" json:"payments"`
}

// Payments says where money settles. Without a chain, requests are served free (total_cost 0).
type Payments struct {
	// Chain is "" (no payments), "ton" (lite servers from TONConfig), "local" (a local chain file,
	// which one process at a time can open: single-host setups and tests) or "toncenter" (a
	// toncenter API v2 service at ChainURL: `cocoon chain serve`, which shares one local chain
	// between processes and containers, or toncenter.com).
	Chain     string `yaml:"chain" json:"chain"`
	ChainData string `yaml:"chain_data" json:"chain_data"` // local: the chain file; default <data>/chain.db
	TONConfig string `yaml:"ton_config" json:"ton_config"` // ton: global config file
	Network   string `yaml:"network" json:"network"`       // ton: mainnet or testnet; toncenter: default mainnet (the local chain's)
	ChainURL  string `yaml:"chain_url" json:"chain_url"`   // toncenter: base URL, e.g. http://127.0.0.1:8081 or https://testnet.toncenter.com
	// ChainAPIKey is sent to the toncenter service as X-API-Key (toncenter.com rate-limits
	// requests without one); never logged.
	ChainAPIKey string `yaml:"chain_api_key" json:"-"`
	// Key is the proxy's payment key, or the client's or worker's wallet key; default
	// <data>/keys/<role>.key, made on first use. A client's wallet key is also its certificate key:
	// that is how a proxy knows whose deposit pays.
	Key      string  `yaml:"key" json:"-"`
	Registry Address `yaml:"registry" json:"registry"` // proxy: the registry contract (prices)
	// RegistryInterval is how often the registry is read: a change on chain reaches new
	// handshakes and the proxy sets within it. Zero: 10s.
	RegistryInterval Duration `yaml:"registry_interval" json:"registry_interval"`
	ProxyContract    Address  `yaml:"proxy_contract" json:"proxy_contract"` // proxy: its own contract
	// SubmitThreshold: a client or worker submits its latest state once it is this many nanoTON
	// ahead of what the contract accepted; 0 leaves it to `cocoon chain submit`.
	SubmitThreshold uint64 `yaml:"submit_threshold" json:"submit_threshold"`
	// TopUpBelow: a client tops up its deposit in a proxy contract it uses once what is left there
	// (less charges signed but not yet on chain) falls below this many nanoTON; 0: never (top up
	// with `cocoon chain top-up`).
	TopUpBelow uint64 `yaml:"top_up_below" json:"top_up_below"`
	// TopUpAmount is how many nanoTON each automatic top-up deposits; required with TopUpBelow.
	TopUpAmount uint64 `yaml:"top_up_amount" json:"top_up_amount"`
}

// Attestation says how this node proves itself and whom it trusts.
type Attestation struct {
	// Simulated makes quotes with the development root of trust instead of the TDX guest device.
	Simulated bool `yaml:"simulated" json:"simulated"`
	// AllowSimulated accepts peers whose quotes rest on the development root of trust.
	AllowSimulated bool `yaml:"allow_simulated" json:"allow_simulated"`
	// SimDir is the development root of trust directory; empty: <data>/tdx-sim.
	SimDir string `yaml:"sim_dir" json:"sim_dir"`
	// Policy is a JSON policy file (allowed image hashes per role, model digests). Empty: any
	// attested image, with a warning at start-up.
	Policy string `yaml:"policy" json:"policy"`
	// CertValidity is the lifetime of this node's RA-TLS certificates (at most 24h).
	CertValidity Duration `yaml:"cert_validity" json:"cert_validity"`
	// CollateralURL is the PCCS (or Intel PCS) that serves TCB info, QE identity and CRLs for real
	// quotes; empty: Intel PCS.
	CollateralURL string `yaml:"collateral_url" json:"collateral_url"`
	// CollateralDir caches collateral on disk until its own next update; empty: <data>/collateral.
	CollateralDir string `yaml:"collateral_dir" json:"collateral_dir"`
	// CollateralBundle is an offline bundle from `cocoon attest collateral fetch`.
	CollateralBundle string `yaml:"collateral_bundle" json:"collateral_bundle"`
	// Offline never fetches collateral: only the cache and the bundle are used.
	Offline bool `yaml:"offline" json:"offline"`
}

// Proxy is the proxy's section.
type Proxy struct {
	Listen         string   `yaml:"listen" json:"listen"`
	StatsListen    string   `yaml:"stats_listen" json:"stats_listen"`
	RequestTimeout Duration `yaml:"request_timeout" json:"request_timeout"`
	MaxAttempts    int      `yaml:"max_attempts" json:"max_attempts"`
	// StatsToken shows per-client payments on the stats port to requests bearing
	// "Authorization: Bearer <token>"; loopback sees them without, everyone else aggregates only.
	StatsToken string `yaml:"stats_token" json:"-"`
}

// Worker is the worker's section.
type Worker struct {
	Proxies []string `yaml:"proxies" json:"proxies"`
	// EngineURL is the OpenAI-compatible engine (vLLM, SGLang, llama.cpp, Ollama); empty: the
	// built-in engine.
	EngineURL    string `yaml:"engine_url" json:"engine_url"`
	EngineAPIKey string `yaml:"engine_api_key" json:"-"`
	Model        string `yaml:"model" json:"model"`
	// ModelDir is the weights directory to digest; WeightsDigest may be given instead.
	ModelDir      string   `yaml:"model_dir" json:"model_dir"`
	WeightsDigest string   `yaml:"weights_digest" json:"weights_digest"`
	Coefficient   uint32   `yaml:"coefficient" json:"coefficient"`
	MaxActive     int      `yaml:"max_active" json:"max_active"`
	OwnerAddress  Address  `yaml:"owner_address" json:"owner_address"`
	StatsListen   string   `yaml:"stats_listen" json:"stats_listen"`
	TokenDelay    Duration `yaml:"builtin_token_delay" json:"builtin_token_delay"`
}

// Client is the client's section.
type Client struct {
	Proxies        []string `yaml:"proxies" json:"proxies"`
	Listen         string   `yaml:"listen" json:"listen"`
	APIToken       string   `yaml:"api_token" json:"-"`
	MaxBodyBytes   int64    `yaml:"max_body_bytes" json:"max_body_bytes"`
	MaxCoefficient uint32   `yaml:"max_coefficient" json:"max_coefficient"`
	RequestTimeout Duration `yaml:"request_timeout" json:"request_timeout"`
	// MaxBodiesBytes bounds the request bodies read or held at once, all connections together.
	MaxBodiesBytes int64 `yaml:"max_bodies_bytes" json:"max_bodies_bytes"`
	// MaxConnections bounds the API's open connections; more wait to be accepted.
	MaxConnections int `yaml:"max_connections" json:"max_connections"`
	// AllowedOrigins are the web page origins ("https://app.example.com", or "*" for any) allowed
	// to call the API from a browser, besides pages on loopback; a request from any other page is refused.
	AllowedOrigins []string `yaml:"allowed_origins" json:"allowed_origins"`
	// AllowedHosts are the Host names ("api.internal", or "*" for any) the API answers to besides
	// loopback and its own address: any other name may be DNS rebinding.
	AllowedHosts []string `yaml:"allowed_hosts" json:"allowed_hosts"`
	// MaxProxies is how many of the known proxies (configured and registered) the client connects
	// to at once: those with the lowest measured round-trip time, re-chosen as proxies come, go or
	// fail. 0: all of them.
	MaxProxies int `yaml:"max_proxies" json:"max_proxies"`
	// PlaintextDev sends request bodies to the proxy in clear, so the proxy can read prompts and
	// answers. For development only: by default the client seals each body to the attested worker
	// the proxy offers, and refuses workers that name no HPKE key.
	PlaintextDev bool `yaml:"plaintext_dev" json:"plaintext_dev"`
	// ReceiptsKept is how many answers' receipts the client keeps, to serve by request id
	// (GET /v1/cocoon/receipts/{id}); the oldest go first.
	ReceiptsKept int `yaml:"receipts_kept" json:"receipts_kept"`
}

// Duration is a time.Duration written as "10s", "5m" in files.
type Duration time.Duration

// UnmarshalYAML parses "10s"-style durations.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Defaults are the values before any file, environment or flag.
func Defaults() Config {
	return Config{
		LogLevel: "info",
		Data:     StateDir(),
		Attestation: Attestation{
			CertValidity: Duration(24 * time.Hour),
		},
		Payments: Payments{RegistryInterval: Duration(10 * time.Second)},
		Proxy: Proxy{
			Listen:         "0.0.0.0:4433",
			StatsListen:    "127.0.0.1:9090",
			RequestTimeout: Duration(10 * time.Minute),
			MaxAttempts:    3,
		},
		Worker: Worker{
			Proxies:     []string{"127.0.0.1:4433"},
			Model:       "cocoon-builtin",
			Coefficient: 1000,
			MaxActive:   64,
			StatsListen: "127.0.0.1:9091",
		},
		Client: Client{
			Proxies:        []string{"127.0.0.1:4433"},
			Listen:         "127.0.0.1:8080",
			MaxBodyBytes:   4 << 20,
			MaxCoefficient: 2000, // 2.0x list price: a client pays more only if it says so
			RequestTimeout: Duration(10 * time.Minute),
			MaxBodiesBytes: 64 << 20,
			MaxConnections: 10000,
			ReceiptsKept:   1000,
		},
	}
}

// Load reads a YAML file over the defaults. Unknown fields are errors, so a typo is not ignored.
func Load(path string) (Config, error) {
	c := Defaults()
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read config: %w", err)
	}
	if err := Parse(b, &c); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes YAML into c, keeping what the YAML leaves out.
func Parse(b []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	// An empty file decodes to io.EOF: it leaves the defaults.
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// SimRoot is the development root of trust directory in effect.
func (c *Config) SimRoot() string {
	if c.Attestation.SimDir != "" {
		return c.Attestation.SimDir
	}
	return c.Data + "/tdx-sim"
}
