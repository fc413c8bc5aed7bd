// Package doctorcmd is the `cocoon doctor` command: the configuration flags of a role mapped onto
// roles/node/doctor, which checks what that node needs, one line per check.
package doctorcmd

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/roles/node/doctor"
)

var roles = []string{"proxy", "worker", "client"}

// Command is `cocoon doctor`; version is what the node announces in the handshakes it tries.
func Command(version string) *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "check what a node needs: quotes, collateral, engine, weights, registry, proxies over UDP, balances, clock, disk",
		Description: "Takes the configuration the role would run with (--config and the role's flags) and prints one line\n" +
			"per check: ok, warn or fail, and the fix. Exits 0 only if nothing fails. It reads the chain and makes\n" +
			"a handshake with each proxy the node would use; it changes nothing, and makes no keys.",
		ArgsUsage: " ",
		Flags:     flags(),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return cli.Exit(fmt.Sprintf("doctor: takes no arguments, got %q", c.Args().Slice()), 2)
			}
			role := c.String("role")
			if !slices.Contains(roles, role) {
				return cli.Exit(fmt.Sprintf("doctor: --role %q: want proxy, worker or client", role), 2)
			}
			if err := onlyRoleFlags(c, role); err != nil {
				return err
			}
			cfg, err := config.FromCLI(c, role)
			if err != nil {
				return fmt.Errorf("doctor: %w", err)
			}
			d, err := doctor.New(cfg, role, version, doctor.Deps{})
			if err != nil {
				return fmt.Errorf("doctor: %w", err)
			}
			defer func() { _ = d.Close() }()
			from := "defaults and flags"
			if f := c.String("config"); f != "" {
				from = f
			}
			fmt.Fprintf(c.App.Writer, "cocoon doctor: %s (%s)\n", role, from)
			failed := doctor.Report(c.App.Writer, d.Run(c.Context))
			if len(failed) > 0 {
				return cli.Exit(fmt.Sprintf("doctor: %d check(s) failed (%s): apply the fixes above, then rerun", len(failed), strings.Join(failed, ", ")), 1)
			}
			return nil
		},
	}
}

// flags are --role and every role's configuration flags, each name once (the roles share most).
func flags() []cli.Flag {
	out := []cli.Flag{&cli.StringFlag{Name: "role", Usage: "`ROLE` to check: proxy, worker or client", Value: "worker", EnvVars: []string{"COCOON_ROLE"}}}
	first := map[string]cli.Flag{}
	for _, role := range roles {
		for _, f := range config.Flags(role) {
			name := f.Names()[0]
			if g, ok := first[name]; ok {
				if value(g) != value(f) {
					perRole(g) // --listen: the proxy's QUIC address, the client's API
				}
				continue
			}
			first[name] = f
			out = append(out, f)
		}
	}
	return out
}

func value(f cli.Flag) string {
	if d, ok := f.(cli.DocGenerationFlag); ok {
		return d.GetValue()
	}
	return ""
}

// perRole makes --help say a flag's default depends on --role (FromCLI applies a flag only when
// given, so the default used is the role's own).
func perRole(f cli.Flag) {
	const text = "the role's"
	switch f := f.(type) {
	case *cli.StringFlag:
		f.DefaultText = text
	case *cli.DurationFlag:
		f.DefaultText = text
	case *cli.Int64Flag:
		f.DefaultText = text
	case *cli.BoolFlag:
		f.DefaultText = text
	}
}

// onlyRoleFlags refuses a flag given that the role does not read (another role's), which would
// otherwise be ignored.
func onlyRoleFlags(c *cli.Context, role string) error {
	own := map[string]bool{"role": true}
	for _, f := range config.Flags(role) {
		own[f.Names()[0]] = true
	}
	for _, name := range c.LocalFlagNames() {
		if !own[name] && c.IsSet(name) {
			return cli.Exit(fmt.Sprintf("doctor: --%s is not a %s setting: leave it out, or pass the --role it belongs to", name, role), 2)
		}
	}
	return nil
}
