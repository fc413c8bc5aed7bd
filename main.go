// Command cocoon runs a node of the cocoon confidential inference network: a client, a proxy or a
// worker, or all three on one machine for a demo; and the operator tools around them. This
// package is the command line and nothing else: roles/node builds the roles from the
// configuration, and each command hands its work to the package that does it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/cocoon-network/cocoon/attest/attestcmd"
	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/roles/bench"
	"github.com/cocoon-network/cocoon/roles/client"
	"github.com/cocoon-network/cocoon/roles/node"
	"github.com/cocoon-network/cocoon/roles/node/demo"
	"github.com/cocoon-network/cocoon/roles/node/networkcmd"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chaincmd"
)

// version is stamped at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newApp().RunContext(ctx, os.Args)
	stop()
	os.Exit(exitCode(os.Stderr, err))
}

// exitCode prints err to w as one line, prefixed with "cocoon:", and maps it to the process exit
// status.
func exitCode(w io.Writer, err error) int {
	if err == nil {
		return 0
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(w, "cocoon:", msg)
		}
		return ec.ExitCode()
	}
	fmt.Fprintln(w, "cocoon:", err)
	return 1
}

// flagLine is urfave/cli's line for a flag in --help, with "(required)" after the usage of a
// flag that must be given, so the mark comes from Required itself.
func flagLine(f cli.Flag) string {
	line := defaultFlagLine(f)
	if r, ok := f.(cli.RequiredFlag); !ok || !r.IsRequired() {
		return line
	}
	if i := strings.LastIndex(line, " [$"); i >= 0 { // before the environment variable
		return line[:i] + " (required)" + line[i:]
	}
	return line + " (required)"
}

var defaultFlagLine = cli.FlagStringer

func newApp() *cli.App {
	cli.FlagStringer = flagLine
	return &cli.App{
		Name:                 "cocoon",
		Usage:                "confidential compute open network for AI inference",
		Version:              version,
		EnableBashCompletion: true,
		// Errors, cli.Exit ones included, come back to main, which prints them with the
		// "cocoon:" prefix and maps them to the exit status (exitCode).
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			roleCommand("proxy", "run a proxy: route client requests to attested workers", node.Proxy),
			roleCommand("worker", "run a worker: serve a model from an inference engine to proxies", node.Worker),
			roleCommand("client", "run a client: an OpenAI-compatible API on localhost backed by attested proxies", node.Client),
			askCommand(),
			demoCommand(),
			benchCommand(),
			attestcmd.Command(version),
			chaincmd.Command(),
			networkcmd.Command(chaincmd.ChainFlags(), chaincmd.WithChain),
			{
				Name:  "version",
				Usage: "print the version",
				Action: func(c *cli.Context) error {
					fmt.Fprintln(c.App.Writer, version)
					return nil
				},
			},
		},
	}
}

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

// roleCommand is `cocoon proxy`, `worker` or `client`: load the configuration, build the node,
// run it. A proxy or worker given --print-image prints the image hash it would present instead.
func roleCommand(role, usage string, build func(context.Context, config.Config, string, zerolog.Logger) (*node.Node, error)) *cli.Command {
	flags := config.Flags(role)
	if role != "client" {
		flags = append(flags, &cli.BoolFlag{Name: "print-image", Usage: "print the image hash this " + role + " presents (simulated: computed; in a TD: read from its quote) and exit"})
	}
	return &cli.Command{
		Name:  role,
		Usage: usage,
		Flags: flags,
		Action: func(c *cli.Context) error {
			cfg, err := config.FromCLI(c, role)
			if err != nil {
				return err
			}
			if c.Bool("print-image") {
				return node.PrintImage(c.App.Writer, cfg, role)
			}
			n, err := build(c.Context, cfg, version, newLogger(cfg.LogLevel))
			if err != nil {
				return err
			}
			return n.Run(c.Context)
		},
	}
}

func askCommand() *cli.Command {
	return &cli.Command{
		Name:      "ask",
		Usage:     "ask a question through a running client and stream the answer",
		ArgsUsage: "PROMPT... (or - to read stdin)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "client", Usage: "client API `URL` (http://HOST:PORT, or HOST:PORT)", Value: client.DefaultClientURL, EnvVars: []string{"COCOON_CLIENT"}},
			&cli.StringFlag{Name: "model", Usage: "model", DefaultText: "the first one offered", EnvVars: []string{"COCOON_MODEL"}},
			&cli.StringFlag{Name: "system", Usage: "system prompt"},
			&cli.IntFlag{Name: "max-tokens", Usage: "most completion tokens", DefaultText: "the engine's"},
			&cli.BoolFlag{Name: "json", Usage: "print the raw answer JSON, tool calls included"},
			&cli.StringFlag{Name: "api-token", Usage: "client API bearer token", EnvVars: []string{"COCOON_API_TOKEN"}},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return cli.Exit("ask: no question: give it as arguments (cocoon ask why is the sky blue), or - to read it from stdin", 2)
			}
			return client.Ask(c.Context, client.AskOptions{
				ClientURL: c.String("client"), Model: c.String("model"), System: c.String("system"),
				MaxTokens: c.Int("max-tokens"), JSON: c.Bool("json"), Prompt: strings.Join(c.Args().Slice(), " "), APIToken: c.String("api-token"),
			}, c.App.Reader, c.App.Writer, c.App.ErrWriter)
		},
	}
}

func demoCommand() *cli.Command {
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
			&cli.StringFlag{Name: "log-level", Usage: "log level of the roles", Value: "warn", EnvVars: []string{"COCOON_LOG_LEVEL"}},
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
			return demo.Run(c.Context, o, newLogger(o.LogLevel), c.App.Writer)
		},
		Subcommands: []*cli.Command{demoSetupCommand()},
	}
}

// demoSetupCommand is `cocoon demo setup`: the demo's network laid out on a `cocoon chain serve`
// for nodes that run as separate processes or containers (docker-compose.yml).
func demoSetupCommand() *cli.Command {
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

// benchCommand maps the flags of `cocoon bench` to bench.Options; the benchmark is package bench.
func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure the cost of confidentiality: the engine directly vs client → proxy → worker → engine",
		Description: "Scenarios: default (30 streams of 50×128-byte chunks and a usage line, direct vs full path),\n" +
			"long-streams (memory per open stream), many-workers (proxy memory per worker connection),\n" +
			"handshake-storm (full attested handshakes per second on one proxy). Linux only for CPU and RSS figures.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "scenario", Usage: strings.Join(bench.Scenarios(), ", "), Value: bench.DefaultScenario},
			&cli.DurationFlag{Name: "duration", Usage: "measured time per target", DefaultText: "per scenario"},
			&cli.DurationFlag{Name: "warmup", Usage: "unmeasured time before each target", DefaultText: "per scenario"},
			&cli.IntFlag{Name: "concurrency", Usage: "concurrent streams, open streams, worker connections or dialers", DefaultText: "per scenario"},
			&cli.IntFlag{Name: "chunks", Usage: "engine: content chunks per answer", Value: bench.DefaultChunks},
			&cli.IntFlag{Name: "chunk-bytes", Usage: "engine: bytes of text per chunk", Value: bench.DefaultChunkBytes},
			&cli.DurationFlag{Name: "chunk-delay", Usage: "engine: pause before each event"},
			&cli.IntFlag{Name: "open-at-once", Usage: "long-streams: requests being set up at the same time", Value: bench.DefaultOpenAtOnce},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object instead of tables"},
		},
		Action: func(c *cli.Context) error {
			bin, err := os.Executable()
			if err != nil {
				return fmt.Errorf("bench: find own binary: %w", err)
			}
			return bench.Run(c.Context, bench.Options{
				Scenario: c.String("scenario"), Duration: c.Duration("duration"), Warmup: c.Duration("warmup"),
				Concurrency: c.Int("concurrency"), Chunks: c.Int("chunks"), ChunkBytes: c.Int("chunk-bytes"),
				ChunkDelay: c.Duration("chunk-delay"), OpenAtOnce: c.Int("open-at-once"), JSON: c.Bool("json"),
				Bin: bin, Version: version, Progress: c.App.ErrWriter,
			}, c.App.Writer)
		},
	}
}
