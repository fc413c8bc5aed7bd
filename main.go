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
	"github.com/cocoon-network/cocoon/roles/client/receiptcmd"
	"github.com/cocoon-network/cocoon/roles/node"
	"github.com/cocoon-network/cocoon/roles/node/demo/democmd"
	"github.com/cocoon-network/cocoon/roles/node/doctorcmd"
	"github.com/cocoon-network/cocoon/roles/node/networkcmd"
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
			democmd.Command(version, newLogger),
			benchCommand(),
			attestcmd.Command(version),
			chaincmd.Command(),
			doctorcmd.Command(version),
			receiptcmd.Command(),
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
	// For `cocoon bench --cpuprofile`: the role's CPU profile, written when it stops.
	flags = append(flags, &cli.StringFlag{Name: "cpuprofile", Hidden: true})
	// For `cocoon bench --trace`: the role's execution trace, written when it stops.
	flags = append(flags, &cli.StringFlag{Name: "trace", Hidden: true})
	// For `cocoon bench`'s memory samples: collect garbage when the bench asks (bench.GCOnSignal).
	flags = append(flags, &cli.StringFlag{Name: "gc-on-signal", Hidden: true})
	// For `cocoon bench --memprofile`: heap and goroutine profiles after each of those collections.
	flags = append(flags, &cli.StringFlag{Name: "memprofile", Hidden: true})
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
			if p := c.String("cpuprofile"); p != "" {
				stop, err := bench.CPUProfile(p)
				if err != nil {
					return err
				}
				defer stop()
			}
			if p := c.String("trace"); p != "" {
				stop, err := bench.Trace(p)
				if err != nil {
					return err
				}
				defer stop()
			}
			if p := c.String("gc-on-signal"); p != "" {
				stop, err := bench.GCOnSignal(p, c.String("memprofile"))
				if err != nil {
					return err
				}
				defer stop()
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

// benchCommand maps the flags of `cocoon bench` to bench.Options; the benchmark is package bench.
func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure the cost of confidentiality: the engine directly vs client → proxy → worker → engine",
		Description: "Scenarios: default (30 streams of 50×128-byte chunks and a usage line, direct vs full path),\n" +
			"long-streams (memory per open stream), many-workers (proxy memory per worker connection),\n" +
			"handshake-storm (full attested handshakes per second on one proxy, then clients'), tokens (300 streams at 20 ms per token),\n" +
			"all (every figure of the relay's targets in one run). Linux only for CPU and RSS figures.",
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
			&cli.BoolFlag{Name: "payments", Usage: "default, tokens: payments on, on a local chain (`cocoon chain serve`)"},
			&cli.BoolFlag{Name: "plaintext-dev", Usage: "the client sends request bodies in clear (client.plaintext_dev)"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "every role writes its CPU profile to `DIR`/<part>-<role>.pprof"},
			&cli.IntFlag{Name: "repeat", Usage: "run the scenario `N` times (odd) and report the median of each figure"},
			&cli.StringFlag{Name: "against", Usage: "also run the scenario with the roles of the cocoon binary `BIN`, alternating, and show both side by side"},
			&cli.StringFlag{Name: "memprofile", Usage: "every role writes its heap and goroutine profiles to `DIR`/<part>-<role>-<n>.{heap,goroutine}.pprof at each memory sample"},
			&cli.StringFlag{Name: "trace", Usage: "every role writes its execution trace to `DIR`/<part>-<role>.trace"},
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
				Payments: c.Bool("payments"), PlaintextDev: c.Bool("plaintext-dev"), CPUProfileDir: c.String("cpuprofile"),
				MemProfileDir: c.String("memprofile"), TraceDir: c.String("trace"), Repeat: c.Int("repeat"), Against: c.String("against"),
				Bin: bin, Version: version, Progress: c.App.ErrWriter,
			}, c.App.Writer)
		},
	}
}
