package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/gpu/builtin"
	"github.com/cocoon-network/cocoon/roles/client"
	"github.com/cocoon-network/cocoon/roles/proxy"
	"github.com/cocoon-network/cocoon/roles/worker"
	"github.com/cocoon-network/cocoon/settle"
)

// newLogger writes readable lines to a terminal and JSON otherwise.
func newLogger(level string) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	var l zerolog.Logger
	if isatty.IsTerminal(os.Stderr.Fd()) {
		l = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly})
	} else {
		l = zerolog.New(os.Stderr)
	}
	return l.Level(lvl).With().Timestamp().Logger()
}

func proxyCommand() *cli.Command {
	return &cli.Command{
		Name:  "proxy",
		Usage: "run a proxy: route client requests to attested workers",
		Flags: config.Flags("proxy"),
		Action: func(c *cli.Context) error {
			cfg, err := config.FromCLI(c, "proxy")
			if err != nil {
				return err
			}
			log := newLogger(cfg.LogLevel)
			m, err := standaloneProxyPay(c.Context, cfg, log)
			if err != nil {
				return err
			}
			p, err := buildProxy(cfg, log, m)
			if err != nil {
				return err
			}
			return p.Run(c.Context)
		},
	}
}

// buildProxy builds a proxy; with m it meters and charges every request.
func buildProxy(cfg config.Config, log zerolog.Logger, m *proxyPay) (*proxy.Proxy, error) {
	log = log.With().Str("role", "proxy").Logger()
	var claims attest.Claims
	pc := proxy.Config{
		Listen: cfg.Proxy.Listen, StatsListen: cfg.Proxy.StatsListen,
		RequestTimeout: time.Duration(cfg.Proxy.RequestTimeout), MaxAttempts: cfg.Proxy.MaxAttempts,
	}
	if m != nil {
		// The payment key is named in the attested claims: clients and workers check the states
		// they receive against it, and the proxy contract is bound to it.
		pc.Payments = m.payments()
		claims.PaymentKey = pc.Payments.PaymentKey
	}
	tc, err := cfg.Transport(attest.RoleProxy, claims, version, log)
	if err != nil {
		return nil, err
	}
	return proxy.New(pc, tc, log)
}

func workerCommand() *cli.Command {
	return &cli.Command{
		Name:  "worker",
		Usage: "run a worker: serve a model from an inference engine to proxies",
		Flags: config.Flags("worker"),
		Action: func(c *cli.Context) error {
			cfg, err := config.FromCLI(c, "worker")
			if err != nil {
				return err
			}
			log := newLogger(cfg.LogLevel)
			pay, err := standaloneParty(c.Context, cfg, "worker", settle.KindWorkerEarned, log)
			if err != nil {
				return err
			}
			w, err := buildWorker(cfg, log, pay)
			if err != nil {
				return err
			}
			return w.Run(c.Context)
		},
	}
}

// engineFor returns the configured engine and the weights digest the worker announces.
func engineFor(cfg config.Config, log zerolog.Logger) (gpu.Engine, string, error) {
	wc := cfg.Worker
	digest := wc.WeightsDigest
	if wc.ModelDir != "" {
		log.Info().Str("dir", wc.ModelDir).Msg("computing weights digest")
		var last time.Time
		d, err := gpu.WeightsDigest(wc.ModelDir, func(done, total int64) {
			if time.Since(last) > 2*time.Second || done == total {
				last = time.Now()
				log.Info().Int64("done_mib", done>>20).Int64("total_mib", total>>20).Msg("weights digest")
			}
		})
		if err != nil {
			return nil, "", fmt.Errorf("worker.model_dir: %w", err)
		}
		digest = d
	}
	if wc.EngineURL == "" {
		if digest == "" {
			// The built-in engine has no weights; its digest names the engine and model.
			sum := sha256.Sum256([]byte("cocoon built-in engine/" + wc.Model))
			digest = "sha256:" + hex.EncodeToString(sum[:])
		}
		log.Info().Str("model", wc.Model).Msg("using the built-in engine")
		return builtin.New(builtin.Config{Model: wc.Model, TokenDelay: time.Duration(wc.TokenDelay)}), digest, nil
	}
	if digest == "" {
		return nil, "", fmt.Errorf("worker.weights_digest: required with engine_url (or set worker.model_dir)")
	}
	e, err := gpu.NewHTTP(gpu.HTTPConfig{BaseURL: wc.EngineURL, APIKey: wc.EngineAPIKey, MaxConns: wc.MaxActive})
	if err != nil {
		return nil, "", fmt.Errorf("worker.engine_url: %w", err)
	}
	return e, digest, nil
}

// buildWorker builds a worker; with m it earns into m's wallet and keeps its states.
func buildWorker(cfg config.Config, log zerolog.Logger, m *partyPay) (*worker.Worker, error) {
	log = log.With().Str("role", "worker").Logger()
	engine, digest, err := engineFor(cfg, log)
	if err != nil {
		return nil, err
	}
	wc := cfg.Worker
	tc, err := cfg.Transport(attest.RoleWorker, attest.Claims{Model: wc.Model, WeightsDigest: digest}, version, log)
	if err != nil {
		return nil, err
	}
	c := worker.Config{
		Proxies: wc.Proxies, Model: wc.Model, WeightsDigest: digest, Coefficient: wc.Coefficient,
		MaxActive: wc.MaxActive, OwnerAddress: wc.OwnerAddress, StatsListen: wc.StatsListen,
	}
	if m != nil {
		c.OwnerAddress, c.States = m.account.ToRaw(), m.states
	}
	return worker.New(c, engine, tc, log)
}

func clientCommand() *cli.Command {
	return &cli.Command{
		Name:  "client",
		Usage: "run a client: an OpenAI-compatible API on localhost backed by attested proxies",
		Flags: config.Flags("client"),
		Action: func(c *cli.Context) error {
			cfg, err := config.FromCLI(c, "client")
			if err != nil {
				return err
			}
			log := newLogger(cfg.LogLevel)
			pay, err := standaloneParty(c.Context, cfg, "client", settle.KindClientCharged, log)
			if err != nil {
				return err
			}
			cl, err := buildClient(cfg, log, pay)
			if err != nil {
				return err
			}
			return cl.Run(c.Context)
		},
	}
}

// buildClient builds a client; with m it pays from m's wallet, whose key is also its certificate
// key, and keeps its states.
func buildClient(cfg config.Config, log zerolog.Logger, m *partyPay) (*client.Client, error) {
	log = log.With().Str("role", "client").Logger()
	var keys []ed25519.PrivateKey
	if m != nil {
		keys = append(keys, m.key)
	}
	tc, err := cfg.Transport(attest.RoleClient, attest.Claims{}, version, log, keys...)
	if err != nil {
		return nil, err
	}
	cc := cfg.Client
	c := client.Config{
		Proxies: cc.Proxies, Listen: cc.Listen, APIToken: cc.APIToken, MaxBodyBytes: cc.MaxBodyBytes,
		MaxCoefficient: cc.MaxCoefficient, RequestTimeout: time.Duration(cc.RequestTimeout),
	}
	if m != nil {
		c.States = m.states
	}
	return client.New(c, tc, log)
}

func askCommand() *cli.Command {
	return &cli.Command{
		Name:      "ask",
		Usage:     "ask a question through a running client and stream the answer",
		ArgsUsage: "PROMPT (or - to read stdin)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "client", Usage: "client API URL", Value: "http://127.0.0.1:8080", EnvVars: []string{"COCOON_CLIENT"}},
			&cli.StringFlag{Name: "model", Usage: "model (default: the first one offered)", EnvVars: []string{"COCOON_MODEL"}},
			&cli.StringFlag{Name: "system", Usage: "system prompt"},
			&cli.IntFlag{Name: "max-tokens", Usage: "most completion tokens"},
			&cli.BoolFlag{Name: "json", Usage: "print the raw answer JSON"},
			&cli.StringFlag{Name: "api-token", Usage: "client API bearer token", EnvVars: []string{"COCOON_API_TOKEN"}},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("ask: want one PROMPT argument (or - for stdin)", 2)
			}
			return client.Ask(c.Context, client.AskOptions{
				ClientURL: c.String("client"), Model: c.String("model"), System: c.String("system"),
				MaxTokens: c.Int("max-tokens"), JSON: c.Bool("json"), Prompt: c.Args().First(), APIToken: c.String("api-token"),
			}, os.Stdin, c.App.Writer, c.App.ErrWriter)
		},
	}
}
