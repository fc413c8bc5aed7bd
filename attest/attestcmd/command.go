package attestcmd

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/config"
)

// Command is `cocoon attest`: its subcommands cert, inspect, verify and collateral fetch, with
// their flags. version is the software version written into the claims of certificates it makes.
func Command(version string) *cli.Command {
	simDir := &cli.StringFlag{Name: "sim-dir", Usage: "development root of trust directory", Value: config.SimDir(), EnvVars: []string{"COCOON_SIM_DIR"}}
	return &cli.Command{
		Name:  "attest",
		Usage: "make, inspect and verify RA-TLS certificates and TDX quotes; fetch Intel collateral",
		Subcommands: []*cli.Command{
			{
				Name:      "cert",
				Usage:     "make an RA-TLS certificate and key (simulated TDX with --sim)",
				ArgsUsage: " ",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "sim", Usage: "sign the quote with the development root of trust (SIMULATED)"},
					&cli.StringFlag{Name: "role", Usage: "proxy, worker or client", Required: true},
					&cli.StringFlag{Name: "out", Usage: "directory for cert.pem and key.pem", Required: true},
					&cli.DurationFlag{Name: "validity", Usage: "certificate lifetime (at most 24h)", Value: time.Duration(config.Defaults().Attestation.CertValidity)},
					&cli.StringFlag{Name: "model", Usage: "worker: model name"},
					&cli.StringFlag{Name: "weights-digest", Usage: "worker: model weights digest"},
					simDir,
				},
				Action: func(c *cli.Context) error {
					role, err := attest.ParseRole(c.String("role"))
					if err != nil {
						return err
					}
					return runCert(CertOptions{
						Simulated: c.Bool("sim"), SimDir: c.String("sim-dir"), Role: role, Out: c.String("out"),
						Validity: c.Duration("validity"), Version: version,
						Model: c.String("model"), WeightsDigest: c.String("weights-digest"),
					}, c.App.Writer)
				},
			},
			{
				Name:      "inspect",
				Usage:     "show what a certificate or quote says: role, measurements, image hash, report-data check, validity; replay a CC event log",
				ArgsUsage: "FILE",
				Flags: []cli.Flag{simDir,
					&cli.StringFlag{Name: "event-log", Usage: "CC event log to replay against the RTMRs (e.g. /sys/firmware/acpi/tables/data/CCEL)"}},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return cli.Exit("attest inspect: want one FILE", 2)
					}
					return runInspect(c.Args().First(), InspectOptions{SimDir: c.String("sim-dir"), EventLog: c.String("event-log")}, c.App.Writer)
				},
			},
			{
				Name:      "verify",
				Usage:     "verify a certificate or quote against Intel collateral and a policy; exit 0 only when it passes",
				ArgsUsage: "QUOTE|CERT",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "policy", Usage: "JSON policy file", DefaultText: "any image, every role"},
					&cli.BoolFlag{Name: "allow-simulated", Usage: "accept quotes from the development root of trust"},
					&cli.StringFlag{Name: "collateral", Usage: "PCCS/PCS base URL, collateral directory or bundle file", DefaultText: "Intel PCS, cached"},
					&cli.BoolFlag{Name: "offline", Usage: "no network: collateral from --collateral only; without it, check the signature chain alone"},
					&cli.TimestampFlag{Name: "at", Usage: "verify at this time (RFC 3339)", Layout: "2006-01-02T15:04:05Z07:00", DefaultText: "now"},
					&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
					simDir,
				},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return cli.Exit("attest verify: want one QUOTE or CERT file", 2)
					}
					o := VerifyOptions{AllowSimulated: c.Bool("allow-simulated"), SimDir: c.String("sim-dir"),
						Collateral: c.String("collateral"), Offline: c.Bool("offline"), JSON: c.Bool("json")}
					if at := c.Timestamp("at"); at != nil {
						o.At = *at
					}
					if p := c.String("policy"); p != "" {
						pol, err := attest.LoadPolicy(p)
						if err != nil {
							return err
						}
						o.Policy = &pol
					}
					if err := runVerify(c.Args().First(), o, c.App.Writer); err != nil {
						return fmt.Errorf("attest verify: %w", err)
					}
					return nil
				},
			},
			{
				Name:  "collateral",
				Usage: "Intel collateral for verifying offline",
				Subcommands: []*cli.Command{{
					Name:      "fetch",
					Usage:     "fetch TCB info, QE identity and CRLs for a platform into a directory or bundle file (.json)",
					ArgsUsage: " ",
					Flags: []cli.Flag{
						&cli.StringFlag{Name: "quote", Usage: "quote or RA-TLS certificate of the platform"},
						&cli.StringFlag{Name: "fmspc", Usage: "the platform's FMSPC (6 bytes hex)"},
						&cli.StringFlag{Name: "out", Usage: "directory, or bundle file ending in .json", Required: true},
						&cli.StringFlag{Name: "collateral", Usage: "PCCS or PCS base URL", DefaultText: "Intel PCS"},
					},
					Action: func(c *cli.Context) error {
						return runCollateralFetch(CollateralFetchOptions{Quote: c.String("quote"), FMSPC: c.String("fmspc"),
							Out: c.String("out"), URL: c.String("collateral")}, c.App.Writer)
					},
				}},
			},
		},
	}
}
