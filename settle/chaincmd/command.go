package chaincmd

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tonkeeper/tongo/ton"
	"github.com/urfave/cli/v2"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/chains"
	"github.com/cocoon-network/cocoon/settle/chain/local"
	"github.com/cocoon-network/cocoon/settle/chain/tonchain"
	"github.com/cocoon-network/cocoon/settle/contracts"
	"github.com/cocoon-network/cocoon/settle/paystate"
)

// Command is `cocoon chain …`: wallet keys, the registry and proxy contracts, client deposits
// and worker payouts, on the local chain of `cocoon demo` or on TON. This file only maps
// arguments and flags onto the functions of go (settle/README.md, "Intended CLI").
//
// The chain flags (--data, --chain-data, --ton-config, --network, --chain-url, --chain-api-key,
// --key) are accepted both on
// `chain` itself and after any subcommand; the one given last on the command line wins, then the
// COCOON_* environment variable, then the default.
func Command() *cli.Command {
	return &cli.Command{
		Name:  "chain",
		Usage: "wallets, registry and proxy contracts, deposits and payouts (the demo's local chain by default, or TON)",
		Description: "Runs against the local chain in --data (default: the demo's; while a `cocoon demo` holds the chain\n" +
			"file, through the chain URL it wrote to demo.json), against TON with --ton-config and --network, or against\n" +
			"a toncenter API v2 service with --chain-url (`cocoon chain serve` sharing a local chain, or toncenter.com).\n" +
			"Amounts are decimal TON (1.5). Key files hold a hex seed or a 24-word mnemonic, mode 0600.",
		Flags: chainFlags(true, true),
		Subcommands: []*cli.Command{
			{
				Name:  "key",
				Usage: "wallet keys",
				Subcommands: []*cli.Command{{
					Name:      "new",
					Usage:     "write a new random wallet key (hex seed, mode 0600) and print its wallet addresses",
					ArgsUsage: "FILE",
					Action:    chainAction("key new", 1, "FILE", keyNew),
				}},
			},
			{
				Name:      "balance",
				Usage:     "print the wallet address and balance of --key",
				ArgsUsage: " ",
				Flags:     chainFlags(false, true),
				Action: chainAction("balance", 0, "", func(c *cli.Context) error {
					return withChainKey(c, func(ctx context.Context, ch chain.Chain, key ed25519.PrivateKey) error {
						return Balance(ctx, ch, c.App.Writer, chainPub(key))
					})
				}),
			},
			{
				Name:      "fund",
				Usage:     "mint test TON to the wallet of --key (local chain only: its faucet)",
				ArgsUsage: "AMOUNT",
				Flags:     chainFlags(false, true),
				Action: chainAction("fund", 1, "AMOUNT", func(c *cli.Context) error {
					amount, err := argTON(c, 0)
					if err != nil {
						return err
					}
					return withChainKey(c, func(ctx context.Context, ch chain.Chain, key ed25519.PrivateKey) error {
						return Fund(ctx, ch, c.App.Writer, chainPub(key), amount)
					})
				}),
			},
			registryCommand(),
			serveCommand(),
			{
				Name:  "proxy",
				Usage: "proxy contracts",
				Subcommands: []*cli.Command{
					{
						Name:      "deploy",
						Usage:     "deploy the proxy contract bound to a payment key, owned by the wallet of --key, with its stake",
						ArgsUsage: "REGISTRY PAYMENT-KEY-HEX",
						Flags: append(chainFlags(false, true),
							&cli.StringFlag{Name: "stake", Usage: "`TON` to stake (default: the registry minimum plus the contract fee)"}),
						Action: chainAction("proxy deploy", 2, "REGISTRY PAYMENT-KEY-HEX", proxyDeploy),
					},
					{
						Name:      "show",
						Usage:     "show a proxy contract: status, stakes, client funds; one party's account with --party",
						ArgsUsage: "PROXY-CONTRACT",
						Flags: append(chainFlags(false, false),
							&cli.StringFlag{Name: "party", Usage: "client or worker `ADDRESS` to show the account of"}),
						Action: chainAction("proxy show", 1, "PROXY-CONTRACT", func(c *cli.Context) error {
							proxy, err := argAccount(c, 0)
							if err != nil {
								return err
							}
							var party *ton.AccountID
							if s := c.String("party"); s != "" {
								a, err := parseAccount(s)
								if err != nil {
									return fmt.Errorf("--party: %w", err)
								}
								party = &a
							}
							return withChain(c, func(ctx context.Context, ch chain.Chain) error {
								return ShowProxy(ctx, ch, c.App.Writer, proxy, party)
							})
						}),
					},
				},
			},
			{
				Name:  "client",
				Usage: "a client's deposit on a proxy contract",
				Subcommands: []*cli.Command{
					{
						Name:      "top-up",
						Aliases:   []string{"topup"},
						Usage:     "deposit TON on a proxy contract from the wallet of --key (the stake fills first)",
						ArgsUsage: "PROXY-CONTRACT AMOUNT",
						Flags:     chainFlags(false, true),
						Action: chainAction("client top-up", 2, "PROXY-CONTRACT AMOUNT", func(c *cli.Context) error {
							proxy, err := argAccount(c, 0)
							if err != nil {
								return err
							}
							amount, err := argTON(c, 1)
							if err != nil {
								return err
							}
							return withChainKey(c, func(ctx context.Context, ch chain.Chain, key ed25519.PrivateKey) error {
								return TopUp(ctx, ch, c.App.Writer, key, proxy, amount)
							})
						}),
					},
					clientCall("withdraw", "close the account: balance and stake stay locked for the close delay (the proxy settles its last charges), then withdraw-stake takes back what is left", Withdraw),
					clientCall("withdraw-stake", "take back balance and stake, minus charges, once the close delay has passed", WithdrawStake),
				},
			},
			{
				Name:  "worker",
				Usage: "a worker's earnings",
				Subcommands: []*cli.Command{{
					Name:      "payout",
					Usage:     "submit a signed worker-earned state file; the proxy contract pays the worker the difference",
					ArgsUsage: "SIGNED-STATE-FILE",
					Flags:     chainFlags(false, true),
					Action: chainAction("worker payout", 1, "SIGNED-STATE-FILE", func(c *cli.Context) error {
						b, err := os.ReadFile(c.Args().First())
						if err != nil {
							return err
						}
						return withChainKey(c, func(ctx context.Context, ch chain.Chain, key ed25519.PrivateKey) error {
							return Payout(ctx, ch, c.App.Writer, key, b)
						})
					}),
				}},
			},
			{
				Name:  "submit",
				Usage: "submit the latest signed states a client or worker keeps in <data>/<role>-states to their proxy contracts",
				Description: "Each state names its proxy contract. A worker-earned state pays the worker; a client-charged\n" +
					"state moves the charge from the client's deposit to the proxy. States already on chain are\n" +
					"skipped. The wallet of --key (default <data>/keys/<role>-wallet.key) pays the gas.",
				ArgsUsage: " ",
				Flags: append(chainFlags(false, true),
					&cli.StringFlag{Name: "role", Usage: "`ROLE` whose states to submit: client or worker", Required: true}),
				Action: chainAction("submit", 0, "", submitAction),
			},
		},
	}
}

func registryCommand() *cli.Command {
	defaults := contracts.DefaultParams()
	return &cli.Command{
		Name:  "registry",
		Usage: "the registry contract: prices, allow-lists, listed proxies",
		Subcommands: []*cli.Command{
			{
				Name:      "show",
				Usage:     "show the registry: version, owner, prices, allow-lists, proxies",
				ArgsUsage: "REGISTRY",
				Flags:     chainFlags(false, false),
				Action: chainAction("registry show", 1, "REGISTRY", func(c *cli.Context) error {
					reg, err := argAccount(c, 0)
					if err != nil {
						return err
					}
					return withChain(c, func(ctx context.Context, ch chain.Chain) error {
						return ShowRegistry(ctx, ch, c.App.Writer, reg)
					})
				}),
			},
			{
				Name:      "deploy",
				Usage:     "deploy a registry owned by the wallet of --key (parameters not given: the defaults)",
				ArgsUsage: " ",
				Flags: append(append(chainFlags(false, true), paramFlags(&defaults)...),
					&cli.StringFlag{Name: "amount", Usage: "`TON` sent with the deploy (the registry's rent reserve)", Value: "1"}),
				Action: chainAction("registry deploy", 0, "", func(c *cli.Context) error {
					p := defaults
					if _, err := applyParams(c, &p); err != nil {
						return err
					}
					amount, err := settle.ParseTON(c.String("amount"))
					if err != nil {
						return fmt.Errorf("--amount: %w", err)
					}
					return withChainKey(c, func(ctx context.Context, ch chain.Chain, key ed25519.PrivateKey) error {
						_, err := DeployRegistry(ctx, ch, c.App.Writer, key, p, amount)
						return err
					})
				}),
			},
			{
				Name:      "set-params",
				Usage:     "change the registry's parameters (owner; parameters not given keep their value)",
				ArgsUsage: "REGISTRY",
				Flags:     append(chainFlags(false, true), paramFlags(nil)...),
				Action: chainAction("registry set-params", 1, "REGISTRY", func(c *cli.Context) error {
					reg, err := argAccount(c, 0)
					if err != nil {
						return err
					}
					return withChainKey(c, func(ctx context.Context, ch chain.Chain, key ed25519.PrivateKey) error {
						r, err := chain.Registry(ctx, ch, reg)
						if err != nil {
							return err
						}
						p := r.Params
						changed, err := applyParams(c, &p)
						if err != nil {
							return err
						}
						if !changed {
							return chainUsage("no parameter flag given (see --help)")
						}
						return SetParams(ctx, ch, c.App.Writer, key, reg, p)
					})
				}),
			},
			allowCommand("allow", true),
			allowCommand("disallow", false),
			{
				Name:  "set-proxy",
				Usage: "list a proxy (owner): its payment key, contract and QUIC endpoints (workers', then clients'; the same by default)",
				Description: "A proxy's worker endpoint is where workers connect, its client endpoint where clients do; one\n" +
					"host:port may serve both. Listing a payment key again replaces its entry (new ports, a new contract).",
				ArgsUsage: setProxyArgs,
				Flags:     chainFlags(false, true),
				Action: chainActionArgs("registry set-proxy", 4, 5, setProxyArgs, func(c *cli.Context) error {
					reg, err := argAccount(c, 0)
					if err != nil {
						return err
					}
					pay, err := parsePaymentKey(c.Args().Get(1))
					if err != nil {
						return err
					}
					contract, err := argAccount(c, 2)
					if err != nil {
						return err
					}
					entry := contracts.ProxyEntry{Key: pay, Contract: contract, WorkerEndpoint: c.Args().Get(3), ClientEndpoint: c.Args().Get(4)}
					if entry.ClientEndpoint == "" {
						entry.ClientEndpoint = entry.WorkerEndpoint
					}
					for _, ep := range []string{entry.WorkerEndpoint, entry.ClientEndpoint} {
						if err := checkEndpoint(ep); err != nil {
							return err
						}
					}
					return withChainKey(c, func(ctx context.Context, ch chain.Chain, key ed25519.PrivateKey) error {
						return SetProxy(ctx, ch, c.App.Writer, key, reg, pay, &entry)
					})
				}),
			},
			{
				Name:      "remove-proxy",
				Usage:     "remove a listed proxy (owner), by its payment key",
				ArgsUsage: "REGISTRY PAYMENT-KEY-HEX",
				Flags:     chainFlags(false, true),
				Action: chainAction("registry remove-proxy", 2, "REGISTRY PAYMENT-KEY-HEX", func(c *cli.Context) error {
					reg, err := argAccount(c, 0)
					if err != nil {
						return err
					}
					pay, err := parsePaymentKey(c.Args().Get(1))
					if err != nil {
						return err
					}
					return withChainKey(c, func(ctx context.Context, ch chain.Chain, key ed25519.PrivateKey) error {
						return SetProxy(ctx, ch, c.App.Writer, key, reg, pay, nil)
					})
				}),
			},
		},
	}
}

const setProxyArgs = "REGISTRY PAYMENT-KEY-HEX PROXY-CONTRACT WORKER-ENDPOINT [CLIENT-ENDPOINT]"

// checkEndpoint refuses what a registry entry cannot hold or a node cannot dial: anything but
// HOST:PORT in at most contracts.MaxEndpointLen bytes.
func checkEndpoint(ep string) error {
	host, port, err := net.SplitHostPort(ep)
	switch {
	case err != nil || host == "" || port == "":
		return chainUsage("endpoint %q is not HOST:PORT", ep)
	case len(ep) > contracts.MaxEndpointLen:
		return chainUsage("endpoint %q is longer than %d bytes", ep, contracts.MaxEndpointLen)
	}
	return nil
}

// allowCommand is `registry allow` (allowed) or `registry disallow`.
func allowCommand(name string, allowed bool) *cli.Command {
	verb := "add a hash to"
	if !allowed {
		verb = "remove a hash from"
	}
	const args = "REGISTRY proxy-image|worker-image|model HASH-HEX"
	return &cli.Command{
		Name:      name,
		Usage:     verb + " an allow-list (owner): proxy or worker image hashes, model weights digests",
		ArgsUsage: args,
		Flags:     chainFlags(false, true),
		Action: chainAction("registry "+name, 3, args, func(c *cli.Context) error {
			reg, err := argAccount(c, 0)
			if err != nil {
				return err
			}
			lists := map[string]contracts.List{"proxy-image": contracts.ListProxyImages,
				"worker-image": contracts.ListWorkerImages, "model": contracts.ListModels}
			list, ok := lists[c.Args().Get(1)]
			if !ok {
				return chainUsage("list %q: want proxy-image, worker-image or model", c.Args().Get(1))
			}
			hash, err := parseHashArg(c.Args().Get(2))
			if err != nil {
				return err
			}
			return withChainKey(c, func(ctx context.Context, ch chain.Chain, key ed25519.PrivateKey) error {
				return Allow(ctx, ch, c.App.Writer, key, reg, list, hash, allowed)
			})
		}),
	}
}

// clientCall is a client command on one proxy contract (withdraw, withdraw-stake).
func clientCall(name, usage string, f func(context.Context, chain.Chain, io.Writer, ed25519.PrivateKey, ton.AccountID) error) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     usage,
		ArgsUsage: "PROXY-CONTRACT",
		Flags:     chainFlags(false, true),
		Action: chainAction("client "+name, 1, "PROXY-CONTRACT", func(c *cli.Context) error {
			proxy, err := argAccount(c, 0)
			if err != nil {
				return err
			}
			return withChainKey(c, func(ctx context.Context, ch chain.Chain, key ed25519.PrivateKey) error {
				return f(ctx, ch, c.App.Writer, key, proxy)
			})
		}),
	}
}

// chainFlags are the flags that say which chain and wallet a command uses. On `chain` itself
// (global) they carry the defaults and environment variables; the copies on each subcommand only
// let them be written after it. Each call makes new flags: urfave/cli keeps state in them.
func chainFlags(global, withKey bool) []cli.Flag {
	defs := []struct{ name, usage, value, shown, env string }{
		{"data", "state `DIR` whose chain.db is the local chain", filepath.Join(config.StateDir(), "demo"), "", "COCOON_DATA"},
		{"chain-data", "local chain data `FILE`", "", "<data>/chain.db", "COCOON_CHAIN_DATA"},
		{"ton-config", "TON global config `FILE` (lite servers): use TON instead of the local chain", "", "", "COCOON_TON_CONFIG"},
		{"network", "`NETWORK` of --ton-config or --chain-url: mainnet or testnet (--chain-url: default mainnet)", "", "", "COCOON_TON_NETWORK"},
		{"chain-url", "toncenter API v2 base `URL` (`cocoon chain serve`, toncenter.com): use it instead of the local chain", "", "", "COCOON_CHAIN_URL"},
		{"chain-api-key", "API `KEY` for --chain-url, sent as X-API-Key (prefer the environment variable)", "", "", "COCOON_CHAIN_API_KEY"},
		{"key", "wallet key `FILE` (hex seed or 24-word mnemonic, mode 0600)", "", "", "COCOON_KEY"},
	}
	var fs []cli.Flag
	for _, d := range defs {
		if d.name == "key" && !withKey {
			continue
		}
		f := &cli.StringFlag{Name: d.name, Usage: d.usage, DefaultText: d.shown}
		shown := d.value + d.shown
		switch {
		case global:
			f.Value, f.EnvVars = d.value, []string{d.env}
		case shown != "":
			f.DefaultText = "$" + d.env + ", else " + shown
		default:
			f.DefaultText = "$" + d.env
		}
		fs = append(fs, f)
	}
	return fs
}

// chainFlag is a chain flag's value: given after the subcommand, else as `chain` has it (given
// before the subcommand, from the environment, or the default).
func chainFlag(c *cli.Context, name string) string {
	for _, x := range c.Lineage() {
		if x.Command != nil && x.Command.Name == "chain" {
			return x.String(name)
		}
		if slices.Contains(x.LocalFlagNames(), name) {
			return x.String(name)
		}
	}
	return c.String(name)
}

// chainUsage is a bad command line: exit status 2. The caller wraps it, so urfave/cli does not
// exit the process itself and main maps the status.
func chainUsage(format string, args ...any) error {
	return cli.Exit(fmt.Sprintf(format, args...), 2)
}

// chainAction checks the number of arguments and prefixes errors with the command's name.
func chainAction(name string, nargs int, argsUsage string, f cli.ActionFunc) cli.ActionFunc {
	return chainActionArgs(name, nargs, nargs, argsUsage, f)
}

// chainActionArgs is chainAction for a command taking from minArgs to maxArgs arguments.
func chainActionArgs(name string, minArgs, maxArgs int, argsUsage string, f cli.ActionFunc) cli.ActionFunc {
	return func(c *cli.Context) error {
		// urfave/cli v2 stops reading flags at the first argument.
		for _, a := range c.Args().Slice() {
			if strings.HasPrefix(a, "-") {
				return fmt.Errorf("chain %s: %w", name, chainUsage("flag %s after an argument: give the flags first", a))
			}
		}
		if c.NArg() < minArgs || c.NArg() > maxArgs {
			if maxArgs == 0 {
				return fmt.Errorf("chain %s: %w", name, chainUsage("takes no arguments, got %q", c.Args().Slice()))
			}
			return fmt.Errorf("chain %s: %w", name, chainUsage("want %s", argsUsage))
		}
		if err := f(c); err != nil {
			return fmt.Errorf("chain %s: %w", name, err)
		}
		return nil
	}
}

// openChain opens the chain the flags name.
func openChain(c *cli.Context) (chain.Chain, func() error, error) {
	b := chains.Where{ConfigPath: chainFlag(c, "ton-config"), Network: tonchain.Network(chainFlag(c, "network")),
		URL: chainFlag(c, "chain-url"), APIKey: chainFlag(c, "chain-api-key")}
	chainData := chainFlag(c, "chain-data")
	switch {
	case b.URL != "" && (b.ConfigPath != "" || chainData != ""):
		return nil, nil, chainUsage("give one of --chain-data (local chain), --ton-config (TON) or --chain-url (a chain service), not two")
	case b.APIKey != "" && b.URL == "":
		return nil, nil, chainUsage("--chain-api-key needs --chain-url")
	case b.URL != "":
	case b.ConfigPath != "" && chainData != "":
		return nil, nil, chainUsage("give --chain-data (local chain) or --ton-config (TON), not both")
	case b.ConfigPath != "" && b.Network == "":
		return nil, nil, chainUsage("--ton-config needs --network mainnet or testnet")
	case b.ConfigPath == "" && b.Network != "":
		return nil, nil, chainUsage("--network needs --ton-config or --chain-url (the local chain has no network)")
	case b.ConfigPath == "":
		b.Local = chainData
		if b.Local == "" {
			b.Local = filepath.Join(chainFlag(c, "data"), local.DefaultFile)
			// Opening would make an empty chain there; only an explicit --chain-data may be new.
			if _, err := os.Stat(b.Local); errors.Is(err, os.ErrNotExist) {
				return nil, nil, fmt.Errorf("no local chain at %s: run `cocoon demo` once, or pass --chain-data FILE for a new one (or --ton-config, or --chain-url of a `cocoon chain serve`)", b.Local)
			}
		}
	}
	if b.Local != "" {
		if ch, closeChain, ok := viaServed(c, b.Local); ok {
			return ch, closeChain, nil
		}
	}
	ch, closeChain, err := chains.Open(c.Context, b)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return viaDemo(c, b.Local)
	}
	if err != nil {
		return nil, nil, err
	}
	return ch, closeChain, nil
}

// withChain runs f on the chain the flags name and closes it.
func withChain(c *cli.Context, f func(context.Context, chain.Chain) error) (err error) {
	ch, closeChain, err := openChain(c)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := closeChain(); err == nil {
			err = cerr
		}
	}()
	return f(c.Context, ch)
}

// withChainKey is withChain with the wallet key of --key.
func withChainKey(c *cli.Context, f func(context.Context, chain.Chain, ed25519.PrivateKey) error) error {
	path := chainFlag(c, "key")
	if path == "" {
		return chainUsage("--key FILE is required (a wallet key; `cocoon chain key new FILE` makes one)")
	}
	return withKeyFile(c, path, f)
}

// withKeyFile is withChain with the wallet key in path.
func withKeyFile(c *cli.Context, path string, f func(context.Context, chain.Chain, ed25519.PrivateKey) error) error {
	key, err := chain.LoadKey(path)
	if err != nil {
		return err
	}
	return withChain(c, func(ctx context.Context, ch chain.Chain) error { return f(ctx, ch, key) })
}

func chainPub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

func keyNew(c *cli.Context) error {
	path := c.Args().First()
	key, err := chain.GenerateKey(path)
	if err != nil {
		return err
	}
	pub := chainPub(key)
	mainnet, err := tonchain.WalletAddress(pub, tonchain.Mainnet)
	if err != nil {
		return err
	}
	testnet, err := tonchain.WalletAddress(pub, tonchain.Testnet)
	if err != nil {
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "key written to %s (mode 0600; keep it secret)\n", path)
	fmt.Fprintf(w, "public key                      %s\n", hex.EncodeToString(pub))
	fmt.Fprintf(w, "wallet (mainnet, local chain)   %s  %s\n", mainnet.ToHuman(false, false), mainnet.ToRaw())
	fmt.Fprintf(w, "wallet (testnet)                %s  %s\n", testnet.ToHuman(false, true), testnet.ToRaw())
	return nil
}

func proxyDeploy(c *cli.Context) error {
	reg, err := argAccount(c, 0)
	if err != nil {
		return err
	}
	pay, err := parsePaymentKey(c.Args().Get(1))
	if err != nil {
		return err
	}
	var stake uint64
	if c.IsSet("stake") {
		if stake, err = settle.ParseTON(c.String("stake")); err != nil {
			return fmt.Errorf("--stake: %w", err)
		}
	}
	return withChainKey(c, func(ctx context.Context, ch chain.Chain, key ed25519.PrivateKey) error {
		if stake == 0 {
			r, err := chain.Registry(ctx, ch, reg)
			if err != nil {
				return err
			}
			stake = r.Params.MinProxyStake + contracts.OpFee
		}
		_, err := DeployProxy(ctx, ch, c.App.Writer, key, reg, pay, stake)
		return err
	})
}

// paramFlags set registry parameters; only the flags given change anything. Their help shows
// def, the values used when a flag is not given, or "unchanged" when def is nil.
func paramFlags(def *contracts.RegistryParams) []cli.Flag {
	show := func(v any) string {
		if def == nil {
			return "unchanged"
		}
		return fmt.Sprint(v)
	}
	var p contracts.RegistryParams
	if def != nil {
		p = *def
	}
	delay := func(s uint32) time.Duration { return time.Duration(s) * time.Second }
	return []cli.Flag{
		&cli.Uint64Flag{Name: "price-per-token", Usage: "nanoTON per adjusted token, paid by clients", DefaultText: show(p.PricePerToken)},
		&cli.Uint64Flag{Name: "worker-fee-per-token", Usage: "nanoTON per adjusted token, earned by workers", DefaultText: show(p.WorkerFeePerToken)},
		&cli.Uint64Flag{Name: "mult-prompt", Usage: "prompt token multiplier (10000 = 1x)", DefaultText: show(p.PromptMult)},
		&cli.Uint64Flag{Name: "mult-cached", Usage: "cached prompt token multiplier (10000 = 1x)", DefaultText: show(p.CachedPromptMult)},
		&cli.Uint64Flag{Name: "mult-completion", Usage: "completion token multiplier (10000 = 1x)", DefaultText: show(p.CompletionMult)},
		&cli.Uint64Flag{Name: "mult-reasoning", Usage: "reasoning token multiplier (10000 = 1x)", DefaultText: show(p.ReasoningMult)},
		&cli.StringFlag{Name: "min-proxy-stake", Usage: "`TON` a proxy contract must stake", DefaultText: show(settle.FormatTON(p.MinProxyStake))},
		&cli.StringFlag{Name: "min-client-stake", Usage: "`TON` of each client deposit held as stake", DefaultText: show(settle.FormatTON(p.MinClientStake))},
		&cli.DurationFlag{Name: "client-close-delay", Usage: "how long a closing client's balance and stake stay locked (whole seconds)", DefaultText: show(delay(p.ClientCloseDelay))},
		&cli.DurationFlag{Name: "proxy-close-delay", Usage: "how long a closing proxy's stake stays locked (whole seconds)", DefaultText: show(delay(p.ProxyCloseDelay))},
		&cli.Uint64Flag{Name: "max-coefficient", Usage: "highest worker price coefficient a proxy may accept (1000 = 1x)", DefaultText: show(p.MaxCoefficient)},
	}
}

// applyParams overrides p with the parameter flags given, and reports whether any was.
func applyParams(c *cli.Context, p *contracts.RegistryParams) (bool, error) {
	changed := false
	for name, dst := range map[string]*uint64{"price-per-token": &p.PricePerToken, "worker-fee-per-token": &p.WorkerFeePerToken} {
		if c.IsSet(name) {
			*dst, changed = c.Uint64(name), true
		}
	}
	for name, dst := range map[string]*uint32{"mult-prompt": &p.PromptMult, "mult-cached": &p.CachedPromptMult,
		"mult-completion": &p.CompletionMult, "mult-reasoning": &p.ReasoningMult, "max-coefficient": &p.MaxCoefficient} {
		if c.IsSet(name) {
			v := c.Uint64(name)
			if v > math.MaxUint32 {
				return false, chainUsage("--%s %d is too large", name, v)
			}
			if name == "max-coefficient" && v == 0 {
				return false, chainUsage("--max-coefficient 0: want at least 1 (%d = 1x)", settle.CoefficientOne)
			}
			*dst, changed = uint32(v), true
		}
	}
	for name, dst := range map[string]*uint64{"min-proxy-stake": &p.MinProxyStake, "min-client-stake": &p.MinClientStake} {
		if c.IsSet(name) {
			v, err := settle.ParseTON(c.String(name))
			if err != nil {
				return false, fmt.Errorf("--%s: %w", name, err)
			}
			*dst, changed = v, true
		}
	}
	for name, dst := range map[string]*uint32{"client-close-delay": &p.ClientCloseDelay, "proxy-close-delay": &p.ProxyCloseDelay} {
		if c.IsSet(name) {
			d := c.Duration(name)
			if d < 0 || d%time.Second != 0 || d/time.Second > math.MaxUint32 {
				return false, chainUsage("--%s %s: want whole seconds, at least 0", name, d)
			}
			*dst, changed = uint32(d/time.Second), true
		}
	}
	return changed, nil
}

func argAccount(c *cli.Context, i int) (ton.AccountID, error) { return parseAccount(c.Args().Get(i)) }

func parseAccount(s string) (ton.AccountID, error) {
	a, err := ton.ParseAccountID(s)
	if err != nil {
		return ton.AccountID{}, chainUsage("address %q: %v", s, err)
	}
	return a, nil
}

func argTON(c *cli.Context, i int) (uint64, error) {
	v, err := settle.ParseTON(c.Args().Get(i))
	if err != nil {
		return 0, chainUsage("%v", err)
	}
	return v, nil
}

func parsePaymentKey(s string) (ed25519.PublicKey, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, chainUsage("payment key %q: want %d bytes in hex", s, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// parseHashArg reads 32 bytes of hex, with an optional sha256: prefix (as model digests are written).
func parseHashArg(s string) ([32]byte, error) {
	var h [32]byte
	b, err := hex.DecodeString(strings.TrimPrefix(s, "sha256:"))
	if err != nil || len(b) != len(h) {
		return h, chainUsage("hash %q: want 32 bytes in hex", s)
	}
	copy(h[:], b)
	return h, nil
}

func submitAction(c *cli.Context) error {
	kinds := map[string]settle.Kind{"client": settle.KindClientCharged, "worker": settle.KindWorkerEarned}
	role := c.String("role")
	kind, ok := kinds[role]
	if !ok {
		return chainUsage("--role %q: want client or worker", role)
	}
	data := chainFlag(c, "data")
	keyFile := chainFlag(c, "key")
	if keyFile == "" {
		// The demo keeps the role's wallet key next to its states.
		keyFile = filepath.Join(data, "keys", role+"-wallet.key")
	}
	dir := filepath.Join(data, role+"-states")
	return withKeyFile(c, keyFile, func(ctx context.Context, ch chain.Chain, key ed25519.PrivateKey) error {
		return submitStates(ctx, ch, c.App.Writer, key, dir, kind)
	})
}

// submitStates submits every signed state of kind kept in dir (as settle/paystate keeps them)
// to the proxy contract it names, skipping those already on chain, and prints what moved.
func submitStates(ctx context.Context, ch chain.Chain, w io.Writer, key ed25519.PrivateKey, dir string, kind settle.Kind) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.state"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no signed states in %s (the %s keeps them there when it runs with payments, as in `cocoon demo`)", dir, kindRole(kind))
	}
	var failed []error
	for _, f := range files {
		if err := submitState(ctx, ch, w, key, f, kind); err != nil {
			fmt.Fprintf(w, "%s: not submitted: %v\n", filepath.Base(f), err)
			failed = append(failed, fmt.Errorf("%s: %w", filepath.Base(f), err))
		}
	}
	switch len(failed) {
	case 0:
		return nil
	case 1:
		return failed[0]
	default:
		return fmt.Errorf("%d of %d states not submitted; first: %w", len(failed), len(files), failed[0])
	}
}

// kindRole names the party a state of kind k pays or charges.
func kindRole(k settle.Kind) string {
	if k == settle.KindWorkerEarned {
		return "worker"
	}
	return "client"
}

func submitState(ctx context.Context, ch chain.Chain, w io.Writer, key ed25519.PrivateKey, file string, kind settle.Kind) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	s, err := settle.ParseSignedState(b)
	if err != nil {
		return err
	}
	st := s.State
	if st.Kind != kind {
		return fmt.Errorf("%w: a %s state among the %s's", settle.ErrStateRefused, st.Kind, kindRole(kind))
	}
	var walletBefore uint64
	if kind == settle.KindWorkerEarned {
		if walletBefore, err = chain.Balance(ctx, ch, st.Party); err != nil {
			return err
		}
	}
	r, err := paystate.Submit(ctx, ch, key, s)
	if err != nil {
		return err
	}
	if r.Skipped {
		fmt.Fprintf(w, "%s %s: seqno %d already settled on proxy contract %s (seqno %d, total %s TON)\n",
			kindRole(kind), st.Party.ToRaw(), st.Seqno, st.Proxy.ToRaw(), r.Seqno, settle.FormatTON(r.Before.Settled))
		return nil
	}
	moved := settle.FormatTON(r.After.Settled - r.Before.Settled)
	if kind == settle.KindWorkerEarned {
		walletAfter, err := chain.Balance(ctx, ch, st.Party)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "worker %s: paid %s TON by proxy contract %s (seqno %d, total paid %s TON); wallet %s → %s TON\n",
			st.Party.ToRaw(), moved, st.Proxy.ToRaw(), st.Seqno, settle.FormatTON(r.After.Settled),
			settle.FormatTON(walletBefore), settle.FormatTON(walletAfter))
		return nil
	}
	fmt.Fprintf(w, "client %s: %s TON charged to proxy contract %s (seqno %d, total charged %s TON); deposit left %s TON, stake %s TON\n",
		st.Party.ToRaw(), moved, st.Proxy.ToRaw(), st.Seqno, settle.FormatTON(r.After.Settled),
		settle.FormatTON(r.After.Balance), settle.FormatTON(r.After.Stake))
	return nil
}
