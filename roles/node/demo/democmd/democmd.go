// Package democmd is the `cocoon demo` command: its flags mapped onto roles/node/demo, which runs
// the network in one process or lays it out on a served chain (`cocoon demo setup`).
package democmd

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/roles/node/demo"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// Command is `cocoon demo` and `cocoon demo setup`. newLogger makes the roles' logger for a log
// level (main's, so that the demo logs like every other command).
func Command(version string, newLogger func(level string) zerolog.Logger) *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run proxies, workers and a client on this machine (simulated TDX, built-in engine) and ask one question",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "engine", Usage: "OpenAI-compatible engine URL for the workers", DefaultText: "the built-in engine", EnvVars: []string{"COCOON_ENGINE_URL"}},
			&cli.StringFlag{Name: "model", Usage: "model name", Value: config.Defaults().Worker.Model, EnvVars: []string{"COCOON_MODEL"}},
			&cli.StringFlag{Name: "listen", Usage: "the client's OpenAI API address", Value: config.Defaults().Client.Listen, EnvVars: []string{"COCOON_LISTEN"}},
			&cli.StringFlag{Name: "data", Usage: "state directory", Value: filepath.Join(config.StateDir(), "demo"), EnvVars: []string{"COCOON_DATA"}},
			&cli.BoolFlag{Name: "once", Usage: "exit after the sample request (status 0 only if it succeeded)"},
			&cli.DurationFlag{Name: "token-delay", Usage: "built-in engine: time per token", Value: 15 * time.Millisecond},
			&cli.StringFlag{Name: "log-level", Usage: "log level of the roles, logged here; not given: warn and above to <data>/" + demo.LogFile, Value: "warn", EnvVars: []string{"COCOON_LOG_LEVEL"}},
			&cli.IntFlag{Name: "proxies", Usage: "proxies to run, each listed in the registry at its port", Value: 1},
			&cli.IntFlag{Name: "workers", Usage: "workers to run, each finding the proxies in the registry", Value: 1},
			&cli.StringFlag{Name: "chain-listen", Usage: "`HOST:PORT` to serve the local chain on while the demo runs, for `cocoon chain … --chain-url` and `cocoon network --chain-url` (\"\": not served)", Value: "127.0.0.1:0"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return cli.Exit(fmt.Sprintf("demo: unknown subcommand %q (see cocoon demo --help)", c.Args().First()), 2)
			}
			for _, name := range []string{"proxies", "workers"} {
				if n := c.Int(name); n < 1 || n > 16 {
					return cli.Exit(fmt.Sprintf("demo: --%s %d: want 1 to 16", name, n), 2)
				}
			}
			o := demo.Options{
				Engine: c.String("engine"), Model: c.String("model"), Listen: c.String("listen"), Data: c.String("data"),
				Once: c.Bool("once"), TokenDelay: c.Duration("token-delay"), LogLevel: c.String("log-level"), Version: version,
				Proxies: c.Int("proxies"), Workers: c.Int("workers"), ChainListen: c.String("chain-listen"),
			}
			log := newLogger(o.LogLevel)
			if !c.IsSet("log-level") {
				// The roles' warnings (simulated TDX, no policy file) are said once in the banner;
				// the details go to a file unless --log-level asks for them here.
				f, err := demo.OpenLog(o.Data)
				if err != nil {
					return err
				}
				defer f.Close()
				log, o.LogFile = zerolog.New(f).Level(zerolog.WarnLevel).With().Timestamp().Logger(), f.Name()
			}
			return demo.Run(c.Context, o, log, c.App.Writer)
		},
		Subcommands: []*cli.Command{setupCommand()},
	}
}

// setupCommand is `cocoon demo setup`: the demo's network laid out on a `cocoon chain serve`
// for nodes that run as separate processes or containers (docker-compose.yml).
func setupCommand() *cli.Command {
	return &cli.Command{
		Name:  "setup",
		Usage: "lay a development network out on a `cocoon chain serve`: keys, registry, proxy contracts, allowed images, client deposit",
		Description: "DEVELOPMENT ONLY: every key derives from --seed, which is public, so anyone may spend these wallets\n" +
			"and change this registry; the allowed images are those of simulated TDX. The registry allows exactly\n" +
			"the images a proxy and workers of this binary present with --sim --allow-simulated, payments.chain\n" +
			"toncenter and this registry (and each --model), lists each --proxy with its contract, funds the\n" +
			"client's wallet and deposits with every proxy. The addresses follow from the seed, so a compose file\n" +
			"can name them; --print shows them without touching a chain. It may run at every start.",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "chain-url", Usage: "`URL` of the `cocoon chain serve`", Required: true, EnvVars: []string{"COCOON_CHAIN_URL"}},
			&cli.StringFlag{Name: "keys", Usage: "`DIR` the keys are written to (registry-owner, proxy-operator, proxy-payment, client-wallet, worker-wallet; -2… for more proxies)", Value: "keys"},
			&cli.StringFlag{Name: "seed", Usage: "public `TEXT` every key derives from", Value: demo.DefaultSeed},
			&cli.StringSliceFlag{Name: "proxy", Usage: "a proxy's `ENDPOINT` (workers', optionally \",clients'\"), once per proxy", Value: cli.NewStringSlice("127.0.0.1:4433")},
			&cli.StringSliceFlag{Name: "model", Usage: "a `MODEL` the workers serve, once per model", Value: cli.NewStringSlice("cocoon-builtin")},
			&cli.StringFlag{Name: "engine-url", Usage: "the workers' engine `URL`", DefaultText: "the built-in engine"},
			&cli.StringFlag{Name: "weights-digest", Usage: "the workers' weights `DIGEST`, with --engine-url"},
			&cli.StringFlag{Name: "deposit", Usage: "`TON` the client keeps deposited with each proxy", Value: "2"},
			&cli.BoolFlag{Name: "print", Usage: "print the registry and proxy contract addresses and exit"},
		},
		Action: func(c *cli.Context) error {
			amount, err := settle.ParseTON(c.String("deposit"))
			if err != nil {
				return cli.Exit("demo setup: --deposit: "+err.Error(), 2)
			}
			o := demo.SetupOptions{
				ChainURL: c.String("chain-url"), Keys: c.String("keys"), Seed: c.String("seed"), Proxies: c.StringSlice("proxy"),
				Models: c.StringSlice("model"), EngineURL: c.String("engine-url"), WeightsDigest: c.String("weights-digest"), Deposit: amount,
			}
			if c.Bool("print") {
				l, err := demo.PlanSetup(o)
				if err != nil {
					return fmt.Errorf("demo setup: %w", err)
				}
				fmt.Fprintf(c.App.Writer, "registry        %s\n", l.Registry.ToHuman(true, false))
				for i, a := range l.Contracts {
					fmt.Fprintf(c.App.Writer, "proxy contract  %s  at %s\n", a.ToHuman(true, false), o.Proxies[i])
				}
				return nil
			}
			_, err = demo.Setup(c.Context, o, func(format string, args ...any) { fmt.Fprintf(c.App.Writer, format, args...) })
			if err != nil {
				return fmt.Errorf("demo setup: %w", err)
			}
			return nil
		},
	}
}
