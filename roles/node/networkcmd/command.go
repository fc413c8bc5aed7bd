package networkcmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"github.com/tonkeeper/tongo/ton"
	"github.com/urfave/cli/v2"

	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
)

// WithChain runs f on the chain the chain flags of c name, then closes it (chaincmd.WithChain).
type WithChain func(c *cli.Context, f func(context.Context, chain.Chain) error) error

// DefaultTimeout is how long `cocoon network` waits for each proxy to answer.
const DefaultTimeout = 5 * time.Second

// Command is `cocoon network [flags] REGISTRY`. chainFlags and withChain name and open the chain
// it reads: main passes chaincmd.ChainFlags() and chaincmd.WithChain, so that it takes the chain
// flags of `cocoon chain` and opens the chain the same way (only main imports command packages).
func Command(chainFlags []cli.Flag, withChain WithChain) *cli.Command {
	flags := append([]cli.Flag{
		&cli.BoolFlag{Name: "allow-simulated", Usage: "accept proxies attested by the development root of trust (SIMULATED)"},
		&cli.StringFlag{Name: "sim-dir", Usage: "development root of trust `DIR`", Value: config.SimDir(), EnvVars: []string{"COCOON_SIM_DIR"}},
		&cli.StringFlag{Name: "collateral", Usage: "PCCS or Intel PCS base `URL` for TDX collateral (default: Intel PCS, cached)"},
		&cli.DurationFlag{Name: "timeout", Usage: "how long each proxy may take to answer", Value: DefaultTimeout},
		&cli.BoolFlag{Name: "json", Usage: "print the network as JSON"},
	}, chainFlags...)
	return &cli.Command{
		Name:  "network",
		Usage: "show the live network from its registry: proxies and whether they answer, allowed images and models, prices",
		Description: "Reads the registry REGISTRY (default $COCOON_REGISTRY) on the chain the chain flags name, as\n" +
			"`cocoon chain` does, and dials every listed proxy's client endpoint as a client would: an attested\n" +
			"QUIC handshake, closed once both ends are verified. A proxy answers when the handshake completes;\n" +
			"its attestation (tdx or simulated), image hash, whether the registry allows that image and whether\n" +
			"it attests the payment key the registry lists for it are shown. Proxies of any image are dialled:\n" +
			"the registry's verdict is reported, not required. The exit status is 0 whenever the registry was read.",
		ArgsUsage: "REGISTRY",
		Flags:     flags,
		Action: func(c *cli.Context) error {
			if err := run(c, withChain); err != nil {
				return fmt.Errorf("network: %w", err)
			}
			return nil
		},
	}
}

func run(c *cli.Context, withChain WithChain) error {
	registry, err := registryArg(c)
	if err != nil {
		return err
	}
	timeout := c.Duration("timeout")
	if timeout <= 0 {
		return cli.Exit(fmt.Sprintf("--timeout %s: want more than 0", timeout), 2)
	}
	o := Options{AllowSimulated: c.Bool("allow-simulated"), SimDir: c.String("sim-dir"), Collateral: c.String("collateral"),
		Timeout: timeout, Version: c.App.Version, Log: zerolog.Nop()}
	var n Network
	err = withChain(c, func(ctx context.Context, ch chain.Chain) error {
		n, err = Survey(ctx, ch, registry, o)
		return err
	})
	if err != nil {
		return err
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(n)
	}
	return Print(c.App.Writer, n)
}

// registryArg is the one REGISTRY argument, or $COCOON_REGISTRY without one.
func registryArg(c *cli.Context) (ton.AccountID, error) {
	args := c.Args().Slice()
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			return ton.AccountID{}, cli.Exit(fmt.Sprintf("flag %s after an argument: give the flags first", a), 2)
		}
	}
	s := os.Getenv("COCOON_REGISTRY")
	switch {
	case len(args) == 1:
		s = args[0]
	case len(args) > 1:
		return ton.AccountID{}, cli.Exit(fmt.Sprintf("want one REGISTRY, got %q", args), 2)
	case s == "":
		return ton.AccountID{}, cli.Exit("want REGISTRY (the registry contract's address; `cocoon demo` prints the demo's) or $COCOON_REGISTRY", 2)
	}
	a, err := ton.ParseAccountID(s)
	if err != nil {
		return ton.AccountID{}, cli.Exit(fmt.Sprintf("registry address %q: %v", s, err), 2)
	}
	return a, nil
}

// Print writes n for people: the registry's parameters and lists, then a table of the proxies
// and, below it, each proxy's payment key and contract and why it did not answer.
func Print(w io.Writer, n Network) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := n.Params
	fmt.Fprintf(tw, "registry\t%s (version %d)\n", n.Registry, n.Version)
	fmt.Fprintf(tw, "owner\t%s\n", n.Owner)
	fmt.Fprintf(tw, "price per adjusted token\tclients pay %d nanoTON, workers earn %d nanoTON\n", p.PricePerToken, p.WorkerFeePerToken)
	fmt.Fprintf(tw, "token multipliers\tprompt %s, cached prompt %s, completion %s, reasoning %s\n",
		times(p.PromptMult, settle.MultiplierOne), times(p.CachedPromptMult, settle.MultiplierOne),
		times(p.CompletionMult, settle.MultiplierOne), times(p.ReasoningMult, settle.MultiplierOne))
	capNote := ""
	if p.MaxCoefficient == 0 {
		capNote = " (not set: list price only)"
	}
	fmt.Fprintf(tw, "worker coefficient cap\t%s%s\n", times(p.CoefficientCap, settle.CoefficientOne), capNote)
	fmt.Fprintf(tw, "minimum stakes\tproxy %s TON, client %s TON\n", settle.FormatTON(p.MinProxyStake), settle.FormatTON(p.MinClientStake))
	fmt.Fprintf(tw, "close delays\tclient %s, proxy %s\n", seconds(p.ClientCloseDelay), seconds(p.ProxyCloseDelay))
	for _, l := range []struct {
		name string
		list []string
	}{{"proxy images", n.ProxyImages}, {"worker images", n.WorkerImages}, {"models", n.Models}} {
		if len(l.list) == 0 {
			fmt.Fprintf(tw, "%s\tnone allowed\n", l.name)
		}
		for i, h := range l.list {
			name := l.name
			if i > 0 {
				name = ""
			}
			fmt.Fprintf(tw, "%s\t%s\n", name, h)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(n.Proxies) == 0 {
		_, err := fmt.Fprintln(w, "\nno proxies listed")
		return err
	}
	answered := 0
	for _, px := range n.Proxies {
		if px.Answered {
			answered++
		}
	}
	fmt.Fprintf(w, "\nproxies: %d listed, %d answered\n", len(n.Proxies), answered)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tCLIENT ENDPOINT\tWORKER ENDPOINT\tANSWER\tATTESTATION\tIMAGE\tPAYMENT KEY")
	for i, px := range n.Proxies {
		answer, attestation, image, key := "no", "-", "-", "-"
		if px.Answered {
			answer, attestation = fmt.Sprintf("%dms", px.DialMillis), px.Attestation
			image = short(px.ImageHash) + " " + verdict(px.ImageAllowed, "allowed", "NOT ALLOWED")
			key = verdict(px.PaymentKeyMatches, "as listed", "NOT AS LISTED")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", i+1, px.ClientEndpoint, px.WorkerEndpoint, answer, attestation, image, key)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for i, px := range n.Proxies {
		fmt.Fprintf(w, "%d  payment key %s  contract %s\n", i+1, px.PaymentKey, px.Contract)
		if px.Error != "" {
			fmt.Fprintf(w, "   no answer: %s\n", px.Error)
		}
		if px.Answered && !px.PaymentKeyMatches {
			attested := px.AttestedKey
			if attested == "" {
				attested = "none"
			}
			fmt.Fprintf(w, "   attests payment key %s: clients and workers will not pay through it\n", attested)
		}
		if px.SharedEndpoint {
			fmt.Fprintf(w, "   another listed proxy has one of its endpoints: nobody can tell which payment key belongs there\n")
		}
	}
	return nil
}

// times shows a fixed-point factor (one = 1x) as 0.25x, 4x.
func times(v, one uint32) string {
	return fmt.Sprintf("%gx", float64(v)/float64(one))
}

func seconds(s uint32) string { return (time.Duration(s) * time.Second).String() }

// short is the start of a long hex string, enough to tell values apart in a table.
func short(h string) string {
	if len(h) <= 16 {
		return h
	}
	return h[:16] + "…"
}

func verdict(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}
