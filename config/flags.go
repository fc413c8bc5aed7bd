package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// flag ties one command-line flag (and its COCOON_ environment variable) to the field of Config
// it sets. The field's value in Defaults() is the flag's Value, so --help shows the default the
// program uses; FromCLI applies a flag only when it was given (c.IsSet), so precedence does not
// depend on it.
type flag struct {
	def   cli.Flag
	apply func(c *cli.Context, cfg *Config) error
}

// defaults is Defaults(), for the Value of a flag.
func defaults() *Config {
	d := Defaults()
	return &d
}

func str(name, env, usage string, field func(*Config) *string) flag {
	return flag{
		def:   &cli.StringFlag{Name: name, Usage: usage, EnvVars: []string{env}, Value: *field(defaults())},
		apply: func(c *cli.Context, cfg *Config) error { *field(cfg) = c.String(name); return nil },
	}
}

func boolean(name, env, usage string, field func(*Config) *bool) flag {
	return flag{
		def:   &cli.BoolFlag{Name: name, Usage: usage, EnvVars: []string{env}, Value: *field(defaults())},
		apply: func(c *cli.Context, cfg *Config) error { *field(cfg) = c.Bool(name); return nil },
	}
}

func duration(name, env, usage string, field func(*Config) *Duration) flag {
	return flag{
		def:   &cli.DurationFlag{Name: name, Usage: usage, EnvVars: []string{env}, Value: time.Duration(*field(defaults()))},
		apply: func(c *cli.Context, cfg *Config) error { *field(cfg) = Duration(c.Duration(name)); return nil },
	}
}

// integer is a whole-number flag for a field of any integer type; a value the field cannot hold
// is refused rather than wrapped.
func integer[T ~int | ~int64 | ~uint32 | ~uint64](name, env, usage string, field func(*Config) *T) flag {
	return flag{
		def: &cli.Int64Flag{Name: name, Usage: usage, EnvVars: []string{env}, Value: int64(*field(defaults()))},
		apply: func(c *cli.Context, cfg *Config) error {
			v := c.Int64(name)
			t := T(v)
			if int64(t) != v || (v < 0) != (t < 0) {
				return fmt.Errorf("--%s %d: out of range for this setting", name, v)
			}
			*field(cfg) = t
			return nil
		},
	}
}

// list is a comma-separated list flag; its default is shown the way it is given.
func list(name, env, usage string, field func(*Config) *[]string) flag {
	return flag{
		def: &cli.StringFlag{Name: name, Usage: usage + " (comma-separated)", EnvVars: []string{env}, Value: strings.Join(*field(defaults()), ",")},
		apply: func(c *cli.Context, cfg *Config) error {
			var out []string
			for _, p := range strings.Split(c.String(name), ",") {
				if p = strings.TrimSpace(p); p != "" {
					out = append(out, p)
				}
			}
			*field(cfg) = out
			return nil
		},
	}
}

// address is a TON address flag, parsed once here.
func address(name, env, usage string, field func(*Config) *Address) flag {
	return flag{
		def: &cli.StringFlag{Name: name, Usage: usage, EnvVars: []string{env}, Value: field(defaults()).String()},
		apply: func(c *cli.Context, cfg *Config) error {
			a, err := ParseAddress(c.String(name))
			if err != nil {
				return fmt.Errorf("--%s: %w", name, err)
			}
			*field(cfg) = a
			return nil
		},
	}
}

// shows describes the default where the field's zero value stands for something derived
// ("<data>/tdx-sim"), shown as "(default: text)" in --help instead of the empty value.
func (f flag) shows(text string) flag {
	s, ok := f.def.(*cli.StringFlag)
	if !ok || s.Value != "" {
		// A description next to a real default would hide it: that is a bug here, not input.
		panic(fmt.Sprintf("config: --%s has a default of its own; it needs no description", f.def.Names()[0]))
	}
	s.DefaultText = text
	return f
}

func common() []flag {
	return []flag{
		str("log-level", "COCOON_LOG_LEVEL", "trace, debug, info, warn or error", func(c *Config) *string { return &c.LogLevel }),
		str("data", "COCOON_DATA", "state directory", func(c *Config) *string { return &c.Data }),
		boolean("sim", "COCOON_SIM", "simulated TDX: sign quotes with the development root of trust", func(c *Config) *bool { return &c.Attestation.Simulated }),
		boolean("allow-simulated", "COCOON_ALLOW_SIMULATED", "accept peers with simulated TDX quotes", func(c *Config) *bool { return &c.Attestation.AllowSimulated }),
		str("sim-dir", "COCOON_SIM_DIR", "development root of trust directory", func(c *Config) *string { return &c.Attestation.SimDir }).shows("<data>/tdx-sim"),
		str("policy", "COCOON_POLICY", "attestation policy JSON file", func(c *Config) *string { return &c.Attestation.Policy }).shows("none: any attested image, with a warning"),
		str("collateral-url", "COCOON_COLLATERAL_URL", "PCCS or Intel PCS base URL for real quotes' collateral", func(c *Config) *string { return &c.Attestation.CollateralURL }).shows("Intel PCS"),
		str("collateral-dir", "COCOON_COLLATERAL_DIR", "collateral cache directory", func(c *Config) *string { return &c.Attestation.CollateralDir }).shows("<data>/collateral"),
		str("collateral-bundle", "COCOON_COLLATERAL_BUNDLE", "offline collateral bundle file", func(c *Config) *string { return &c.Attestation.CollateralBundle }),
		str("chain", "COCOON_CHAIN", "payments: ton, local or toncenter", func(c *Config) *string { return &c.Payments.Chain }).shows("none: requests are free"),
		str("chain-url", "COCOON_CHAIN_URL", "payments: toncenter API base `URL` (that of cocoon chain serve, or toncenter.com)", func(c *Config) *string { return &c.Payments.ChainURL }),
		str("chain-api-key", "COCOON_CHAIN_API_KEY", "payments: toncenter API key (prefer the environment variable)", func(c *Config) *string { return &c.Payments.ChainAPIKey }),
		str("chain-data", "COCOON_CHAIN_DATA", "payments: local chain file", func(c *Config) *string { return &c.Payments.ChainData }).shows("<data>/chain.db"),
		str("ton-config", "COCOON_TON_CONFIG", "payments: TON global config file", func(c *Config) *string { return &c.Payments.TONConfig }),
		str("network", "COCOON_TON_NETWORK", "payments: mainnet or testnet", func(c *Config) *string { return &c.Payments.Network }),
		address("registry", "COCOON_REGISTRY", "payments: the registry contract: its lists decide whom this node trusts, and clients and workers find the proxies there", func(c *Config) *Address { return &c.Payments.Registry }),
		duration("registry-interval", "COCOON_REGISTRY_INTERVAL", "payments: how often the registry is read", func(c *Config) *Duration { return &c.Payments.RegistryInterval }),
		str("key", "COCOON_KEY", "payments: payment key (proxy) or wallet key (client, worker)", func(c *Config) *string { return &c.Payments.Key }).shows("<data>/keys/<role>.key"),
		boolean("offline", "COCOON_OFFLINE", "never fetch collateral; use the cache and the bundle only", func(c *Config) *bool { return &c.Attestation.Offline }),
	}
}

func roleFlags(role string) []flag {
	switch role {
	case "proxy":
		return []flag{
			str("listen", "COCOON_LISTEN", "QUIC address for workers and clients", func(c *Config) *string { return &c.Proxy.Listen }),
			str("stats-listen", "COCOON_STATS_LISTEN", "HTTP address of /healthz, /stats, /jsonstats", func(c *Config) *string { return &c.Proxy.StatsListen }),
			str("stats-token", "COCOON_STATS_TOKEN", "bearer token that shows per-client payments on the stats port (loopback sees them without)", func(c *Config) *string { return &c.Proxy.StatsToken }),
			duration("request-timeout", "COCOON_REQUEST_TIMEOUT", "longest a request may take", func(c *Config) *Duration { return &c.Proxy.RequestTimeout }),
			address("proxy-contract", "COCOON_PROXY_CONTRACT", "payments: this proxy's contract address", func(c *Config) *Address { return &c.Payments.ProxyContract }),
		}
	case "worker":
		return []flag{
			list("proxies", "COCOON_PROXIES", "proxy QUIC addresses", func(c *Config) *[]string { return &c.Worker.Proxies }),
			str("engine-url", "COCOON_ENGINE_URL", "OpenAI-compatible engine URL", func(c *Config) *string { return &c.Worker.EngineURL }).shows("the built-in engine"),
			str("engine-api-key", "COCOON_ENGINE_API_KEY", "engine API key", func(c *Config) *string { return &c.Worker.EngineAPIKey }),
			str("model", "COCOON_MODEL", "model name served", func(c *Config) *string { return &c.Worker.Model }),
			str("model-dir", "COCOON_MODEL_DIR", "model weights directory to digest", func(c *Config) *string { return &c.Worker.ModelDir }),
			str("weights-digest", "COCOON_WEIGHTS_DIGEST", "model weights digest, if not computed from --model-dir", func(c *Config) *string { return &c.Worker.WeightsDigest }),
			integer("coefficient", "COCOON_COEFFICIENT", "price coefficient (1000 = 1.0x)", func(c *Config) *uint32 { return &c.Worker.Coefficient }),
			integer("max-active", "COCOON_MAX_ACTIVE", "requests served at once", func(c *Config) *int { return &c.Worker.MaxActive }),
			address("owner-address", "COCOON_OWNER_ADDRESS", "TON address that earns", func(c *Config) *Address { return &c.Worker.OwnerAddress }),
			str("stats-listen", "COCOON_STATS_LISTEN", "HTTP address of /healthz, /stats, /jsonstats", func(c *Config) *string { return &c.Worker.StatsListen }),
			integer("submit-threshold", "COCOON_SUBMIT_THRESHOLD", "payments: submit the earned state once it is this many nanoTON ahead (0: never; cocoon chain submit does it)", func(c *Config) *uint64 { return &c.Payments.SubmitThreshold }),
			duration("builtin-token-delay", "COCOON_BUILTIN_TOKEN_DELAY", "built-in engine: time per token", func(c *Config) *Duration { return &c.Worker.TokenDelay }),
		}
	case "client":
		return []flag{
			list("proxies", "COCOON_PROXIES", "proxy QUIC addresses", func(c *Config) *[]string { return &c.Client.Proxies }),
			str("listen", "COCOON_LISTEN", "HTTP address of the OpenAI-compatible API", func(c *Config) *string { return &c.Client.Listen }),
			str("api-token", "COCOON_API_TOKEN", "bearer token required on /v1/*", func(c *Config) *string { return &c.Client.APIToken }).shows("none: no token asked"),
			integer("max-coefficient", "COCOON_MAX_COEFFICIENT", "highest worker price coefficient accepted (1000 = 1.0x; 0: any)", func(c *Config) *uint32 { return &c.Client.MaxCoefficient }),
			integer("max-body-bytes", "COCOON_MAX_BODY_BYTES", "request body limit", func(c *Config) *int64 { return &c.Client.MaxBodyBytes }),
			duration("request-timeout", "COCOON_REQUEST_TIMEOUT", "whole-request timeout", func(c *Config) *Duration { return &c.Client.RequestTimeout }),
			integer("max-bodies-bytes", "COCOON_MAX_BODIES_BYTES", "request bodies read or held at once, all connections together", func(c *Config) *int64 { return &c.Client.MaxBodiesBytes }),
			integer("max-connections", "COCOON_MAX_CONNECTIONS", "open API connections at once", func(c *Config) *int { return &c.Client.MaxConnections }),
			list("allowed-origins", "COCOON_ALLOWED_ORIGINS", "web page origins allowed to call the API besides loopback (* for any)", func(c *Config) *[]string { return &c.Client.AllowedOrigins }).shows("none: pages on loopback only"),
			list("allowed-hosts", "COCOON_ALLOWED_HOSTS", "Host names the API answers to besides loopback and its listen address (* for any)", func(c *Config) *[]string { return &c.Client.AllowedHosts }).shows("none: localhost, loopback IPs, the listen address"),
			integer("submit-threshold", "COCOON_SUBMIT_THRESHOLD", "payments: submit the charged state once it is this many nanoTON ahead (0: never; cocoon chain submit does it)", func(c *Config) *uint64 { return &c.Payments.SubmitThreshold }),
			boolean("plaintext-dev", "COCOON_PLAINTEXT_DEV", "DEVELOPMENT ONLY: send request bodies to the proxy in clear instead of sealed to the worker", func(c *Config) *bool { return &c.Client.PlaintextDev }),
			integer("receipts-kept", "COCOON_RECEIPTS_KEPT", "answers whose receipts are kept, to serve at /v1/cocoon/receipts/{id}", func(c *Config) *int { return &c.Client.ReceiptsKept }),
			integer("max-proxies", "COCOON_MAX_PROXIES", "connect to at most this many proxies, those with the lowest round-trip time (0: all)", func(c *Config) *int { return &c.Client.MaxProxies }),
			integer("top-up-below", "COCOON_TOP_UP_BELOW", "payments: top up the deposit in a proxy contract once less than this many nanoTON is left (0: never)", func(c *Config) *uint64 { return &c.Payments.TopUpBelow }),
			integer("top-up-amount", "COCOON_TOP_UP_AMOUNT", "payments: nanoTON each automatic top-up deposits", func(c *Config) *uint64 { return &c.Payments.TopUpAmount }),
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
