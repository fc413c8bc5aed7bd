package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// flag ties one command-line flag (and its COCOON_ environment variable) to the field it sets.
type flag struct {
	def   cli.Flag
	apply func(c *cli.Context, cfg *Config) error
}

func str(name, env, usage string, set func(*Config, string)) flag {
	return flag{
		def:   &cli.StringFlag{Name: name, Usage: usage, EnvVars: []string{env}},
		apply: func(c *cli.Context, cfg *Config) error { set(cfg, c.String(name)); return nil },
	}
}

func boolean(name, env, usage string, set func(*Config, bool)) flag {
	return flag{
		def:   &cli.BoolFlag{Name: name, Usage: usage, EnvVars: []string{env}},
		apply: func(c *cli.Context, cfg *Config) error { set(cfg, c.Bool(name)); return nil },
	}
}

func duration(name, env, usage string, set func(*Config, time.Duration)) flag {
	return flag{
		def:   &cli.DurationFlag{Name: name, Usage: usage, EnvVars: []string{env}},
		apply: func(c *cli.Context, cfg *Config) error { set(cfg, c.Duration(name)); return nil },
	}
}

func integer(name, env, usage string, set func(*Config, int64)) flag {
	return flag{
		def:   &cli.Int64Flag{Name: name, Usage: usage, EnvVars: []string{env}},
		apply: func(c *cli.Context, cfg *Config) error { set(cfg, c.Int64(name)); return nil },
	}
}

func list(name, env, usage string, set func(*Config, []string)) flag {
	return flag{
		def: &cli.StringFlag{Name: name, Usage: usage + " (comma-separated)", EnvVars: []string{env}},
		apply: func(c *cli.Context, cfg *Config) error {
			var out []string
			for _, p := range strings.Split(c.String(name), ",") {
				if p = strings.TrimSpace(p); p != "" {
					out = append(out, p)
				}
			}
			set(cfg, out)
			return nil
		},
	}
}

// address is a TON address flag, parsed once here.
func address(name, env, usage string, set func(*Config, Address)) flag {
	return flag{
		def: &cli.StringFlag{Name: name, Usage: usage, EnvVars: []string{env}},
		apply: func(c *cli.Context, cfg *Config) error {
			a, err := ParseAddress(c.String(name))
			if err != nil {
				return fmt.Errorf("--%s: %w", name, err)
			}
			set(cfg, a)
			return nil
		},
	}
}

func common() []flag {
	return []flag{
		str("log-level", "COCOON_LOG_LEVEL", "trace, debug, info, warn or error", func(c *Config, v string) { c.LogLevel = v }),
		str("data", "COCOON_DATA", "state directory", func(c *Config, v string) { c.Data = v }),
		boolean("sim", "COCOON_SIM", "simulated TDX: sign quotes with the development root of trust", func(c *Config, v bool) { c.Attestation.Simulated = v }),
		boolean("allow-simulated", "COCOON_ALLOW_SIMULATED", "accept peers with simulated TDX quotes", func(c *Config, v bool) { c.Attestation.AllowSimulated = v }),
		str("sim-dir", "COCOON_SIM_DIR", "development root of trust directory (default <data>/tdx-sim)", func(c *Config, v string) { c.Attestation.SimDir = v }),
		str("policy", "COCOON_POLICY", "attestation policy JSON file", func(c *Config, v string) { c.Attestation.Policy = v }),
		str("collateral-url", "COCOON_COLLATERAL_URL", "PCCS or Intel PCS base URL for real quotes' collateral", func(c *Config, v string) { c.Attestation.CollateralURL = v }),
		str("collateral-dir", "COCOON_COLLATERAL_DIR", "collateral cache directory (default <data>/collateral)", func(c *Config, v string) { c.Attestation.CollateralDir = v }),
		str("collateral-bundle", "COCOON_COLLATERAL_BUNDLE", "offline collateral bundle file", func(c *Config, v string) { c.Attestation.CollateralBundle = v }),
		str("chain", "COCOON_CHAIN", "payments: ton, local, toncenter, or empty for none", func(c *Config, v string) { c.Payments.Chain = v }),
		str("chain-url", "COCOON_CHAIN_URL", "payments: toncenter API base URL (`cocoon chain serve`, toncenter.com)", func(c *Config, v string) { c.Payments.ChainURL = v }),
		str("chain-api-key", "COCOON_CHAIN_API_KEY", "payments: toncenter API key (prefer the environment variable)", func(c *Config, v string) { c.Payments.ChainAPIKey = v }),
		str("chain-data", "COCOON_CHAIN_DATA", "payments: local chain file (default <data>/chain.db)", func(c *Config, v string) { c.Payments.ChainData = v }),
		str("ton-config", "COCOON_TON_CONFIG", "payments: TON global config file", func(c *Config, v string) { c.Payments.TONConfig = v }),
		str("network", "COCOON_TON_NETWORK", "payments: mainnet or testnet", func(c *Config, v string) { c.Payments.Network = v }),
		address("registry", "COCOON_REGISTRY", "payments: the registry contract: its lists decide whom this node trusts, and clients and workers find the proxies there", func(c *Config, v Address) { c.Payments.Registry = v }),
		duration("registry-interval", "COCOON_REGISTRY_INTERVAL", "payments: how often the registry is read", func(c *Config, v time.Duration) { c.Payments.RegistryInterval = Duration(v) }),
		str("key", "COCOON_KEY", "payments: payment key (proxy) or wallet key (client, worker)", func(c *Config, v string) { c.Payments.Key = v }),
		boolean("offline", "COCOON_OFFLINE", "never fetch collateral; use the cache and the bundle only", func(c *Config, v bool) { c.Attestation.Offline = v }),
	}
}

func roleFlags(role string) []flag {
	switch role {
	case "proxy":
		return []flag{
			str("listen", "COCOON_LISTEN", "QUIC address for workers and clients", func(c *Config, v string) { c.Proxy.Listen = v }),
			str("stats-listen", "COCOON_STATS_LISTEN", "HTTP address of /healthz, /stats, /jsonstats", func(c *Config, v string) { c.Proxy.StatsListen = v }),
			str("stats-token", "COCOON_STATS_TOKEN", "bearer token that shows per-client payments on the stats port (loopback sees them without)", func(c *Config, v string) { c.Proxy.StatsToken = v }),
			duration("request-timeout", "COCOON_REQUEST_TIMEOUT", "longest a request may take", func(c *Config, v time.Duration) { c.Proxy.RequestTimeout = Duration(v) }),
			address("proxy-contract", "COCOON_PROXY_CONTRACT", "payments: this proxy's contract address", func(c *Config, v Address) { c.Payments.ProxyContract = v }),
		}
	case "worker":
		return []flag{
			list("proxies", "COCOON_PROXIES", "proxy QUIC addresses", func(c *Config, v []string) { c.Worker.Proxies = v }),
			str("engine-url", "COCOON_ENGINE_URL", "OpenAI-compatible engine URL (empty: built-in engine)", func(c *Config, v string) { c.Worker.EngineURL = v }),
			str("engine-api-key", "COCOON_ENGINE_API_KEY", "engine API key", func(c *Config, v string) { c.Worker.EngineAPIKey = v }),
			str("model", "COCOON_MODEL", "model name served", func(c *Config, v string) { c.Worker.Model = v }),
			str("model-dir", "COCOON_MODEL_DIR", "model weights directory to digest", func(c *Config, v string) { c.Worker.ModelDir = v }),
			str("weights-digest", "COCOON_WEIGHTS_DIGEST", "model weights digest, if not computed from --model-dir", func(c *Config, v string) { c.Worker.WeightsDigest = v }),
			integer("coefficient", "COCOON_COEFFICIENT", "price coefficient (1000 = 1.0x)", func(c *Config, v int64) { c.Worker.Coefficient = uint32(v) }),
			integer("max-active", "COCOON_MAX_ACTIVE", "requests served at once", func(c *Config, v int64) { c.Worker.MaxActive = int(v) }),
			address("owner-address", "COCOON_OWNER_ADDRESS", "TON address that earns", func(c *Config, v Address) { c.Worker.OwnerAddress = v }),
			str("stats-listen", "COCOON_STATS_LISTEN", "HTTP address of /healthz, /stats, /jsonstats", func(c *Config, v string) { c.Worker.StatsListen = v }),
			integer("submit-threshold", "COCOON_SUBMIT_THRESHOLD", "payments: submit the earned state once it is this many nanoTON ahead", func(c *Config, v int64) { c.Payments.SubmitThreshold = uint64(v) }),
			duration("builtin-token-delay", "COCOON_BUILTIN_TOKEN_DELAY", "built-in engine: time per token", func(c *Config, v time.Duration) { c.Worker.TokenDelay = Duration(v) }),
		}
	case "client":
		return []flag{
			list("proxies", "COCOON_PROXIES", "proxy QUIC addresses", func(c *Config, v []string) { c.Client.Proxies = v }),
			str("listen", "COCOON_LISTEN", "HTTP address of the OpenAI-compatible API", func(c *Config, v string) { c.Client.Listen = v }),
			str("api-token", "COCOON_API_TOKEN", "bearer token required on /v1/*", func(c *Config, v string) { c.Client.APIToken = v }),
			integer("max-coefficient", "COCOON_MAX_COEFFICIENT", "highest worker price coefficient accepted (1000 = 1.0x; 0: any)", func(c *Config, v int64) { c.Client.MaxCoefficient = uint32(v) }),
			integer("max-body-bytes", "COCOON_MAX_BODY_BYTES", "request body limit", func(c *Config, v int64) { c.Client.MaxBodyBytes = v }),
			duration("request-timeout", "COCOON_REQUEST_TIMEOUT", "whole-request timeout", func(c *Config, v time.Duration) { c.Client.RequestTimeout = Duration(v) }),
			integer("max-bodies-bytes", "COCOON_MAX_BODIES_BYTES", "request bodies read or held at once, all connections together", func(c *Config, v int64) { c.Client.MaxBodiesBytes = v }),
			integer("max-connections", "COCOON_MAX_CONNECTIONS", "open API connections at once", func(c *Config, v int64) { c.Client.MaxConnections = int(v) }),
			list("allowed-origins", "COCOON_ALLOWED_ORIGINS", "web page origins allowed to call the API besides loopback (* for any)", func(c *Config, v []string) { c.Client.AllowedOrigins = v }),
			list("allowed-hosts", "COCOON_ALLOWED_HOSTS", "Host names the API answers to besides loopback and its listen address (* for any)", func(c *Config, v []string) { c.Client.AllowedHosts = v }),
			integer("submit-threshold", "COCOON_SUBMIT_THRESHOLD", "payments: submit the charged state once it is this many nanoTON ahead", func(c *Config, v int64) { c.Payments.SubmitThreshold = uint64(v) }),
			integer("max-proxies", "COCOON_MAX_PROXIES", "connect to at most this many proxies, those with the lowest round-trip time (0: all)", func(c *Config, v int64) { c.Client.MaxProxies = int(v) }),
			integer("top-up-below", "COCOON_TOP_UP_BELOW", "payments: top up the deposit in a proxy contract once less than this many nanoTON is left (0: never)", func(c *Config, v int64) { c.Payments.TopUpBelow = uint64(v) }),
			integer("top-up-amount", "COCOON_TOP_UP_AMOUNT", "payments: nanoTON each automatic top-up deposits", func(c *Config, v int64) { c.Payments.TopUpAmount = uint64(v) }),
		}
	}
	return nil
}

// Flags are the command-line flags of a role's command: --config plus every setting.
func Flags(role string) []cli.Flag {
	out := []cli.Flag{&cli.StringFlag{Name: "config", Usage: "YAML configuration file", EnvVars: []string{"COCOON_CONFIG"}}}
	for _, f := range append(common(), roleFlags(role)...) {
		out = append(out, f.def)
	}
	return out
}

// FromCLI builds a role's configuration: defaults, then the --config file, then COCOON_
// environment variables and flags (urfave/cli gives a flag precedence over its variable), then
// validation. A setting is applied only when it was given, so precedence is exactly that order.
func FromCLI(c *cli.Context, role string) (Config, error) {
	cfg, err := Load(c.String("config"))
	if err != nil {
		return cfg, err
	}
	for _, f := range append(common(), roleFlags(role)...) {
		if c.IsSet(f.def.Names()[0]) {
			if err := f.apply(c, &cfg); err != nil {
				return cfg, fmt.Errorf("%s configuration: %w", role, err)
			}
		}
	}
	if err := cfg.Validate(role); err != nil {
		return cfg, fmt.Errorf("%s configuration: %w", role, err)
	}
	return cfg, nil
}
