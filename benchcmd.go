package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cocoon-network/cocoon/roles/bench"
)

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
			&cli.DurationFlag{Name: "duration", Usage: "measured time per target (default: per scenario)"},
			&cli.DurationFlag{Name: "warmup", Usage: "unmeasured time before each target (default: per scenario)"},
			&cli.IntFlag{Name: "concurrency", Usage: "concurrent streams, open streams, worker connections or dialers (default: per scenario)"},
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
