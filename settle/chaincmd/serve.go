package chaincmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"
	"github.com/tonkeeper/tongo/ton"
	"github.com/urfave/cli/v2"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/chains"
	"github.com/cocoon-network/cocoon/settle/chain/chainserve"
	"github.com/cocoon-network/cocoon/settle/chain/local"
	"github.com/cocoon-network/cocoon/settle/chain/toncenter"
)

// DefaultServeListen is where `cocoon chain serve` listens unless told otherwise.
const DefaultServeListen = "127.0.0.1:8081"

// serveCommand is `cocoon chain serve`: the local chain as a service for other processes.
func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve the local chain to other processes and containers (toncenter API v2, with a faucet) until stopped",
		Description: "Holds the local chain file (--data's chain.db, or --chain-data; made if missing) and answers\n" +
			"toncenter's API v2 (getAddressInformation, runGetMethod, sendBoc, sendBocReturnHash) and\n" +
			"POST " + toncenter.PathFaucet + ". Roles reach it with payments.chain toncenter and payments.chain_url,\n" +
			"`cocoon chain` commands with --chain-url. Listen on 0.0.0.0 only on a private network: the faucet\n" +
			"mints to anyone.",
		ArgsUsage: " ",
		Flags: append(chainFlags(false, false),
			&cli.StringFlag{Name: "listen", Usage: "`HOST:PORT` to serve on (0.0.0.0:8081 in a container network)", Value: DefaultServeListen, EnvVars: []string{"COCOON_CHAIN_LISTEN"}},
			&cli.StringFlag{Name: "log-level", Usage: "trace, debug, info, warn or error", Value: "info", EnvVars: []string{"COCOON_LOG_LEVEL"}}),
		Action: chainAction("serve", 0, "", serve),
	}
}

func serve(c *cli.Context) error {
	for _, name := range []string{"ton-config", "network", "chain-url", "chain-api-key", "key"} {
		if chainFlag(c, name) != "" {
			return chainUsage("--%s does not apply: serve runs the local chain (unset it, or $COCOON_* for it)", name)
		}
	}
	level, err := zerolog.ParseLevel(c.String("log-level"))
	if err != nil || c.String("log-level") == "" {
		return chainUsage("--log-level %q: want trace, debug, info, warn or error", c.String("log-level"))
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: c.App.ErrWriter, NoColor: true}).Level(level).With().Timestamp().Logger()
	path := chainFlag(c, "chain-data")
	if path == "" {
		dir := chainFlag(c, "data")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
		path = filepath.Join(dir, local.DefaultFile)
	}
	ch, err := local.Open(path, local.Options{})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return lockedError(path)
	}
	if err != nil {
		return err
	}
	defer ch.Close()
	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return fmt.Errorf("listen on %s: %w (another `cocoon chain serve` there? pick another --listen)", c.String("listen"), err)
	}
	// Other processes cannot open the locked file: they read the URL beside it and come here.
	remove, err := local.WriteServedURL(path, "http://"+ln.Addr().String())
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer func() { _ = remove() }()
	fmt.Fprintf(c.App.Writer, "serving the local chain %s at http://%s (toncenter API v2; faucet POST %s); stop with Ctrl-C\n",
		path, ln.Addr(), toncenter.PathFaucet)
	return chainserve.New(ch, chainserve.Config{}, log).Serve(c.Context, ln)
}

// lockedError is the local chain held by another process.
func lockedError(path string) error {
	return fmt.Errorf("the local chain %s is locked by another process (a running `cocoon demo` or `cocoon chain serve` holds it): stop the demo first, or reach the serve with --chain-url, then retry", path)
}

// viaServed opens the chain served at the URL a process holding the local chain file at path
// recorded beside it (`cocoon chain serve`, `cocoon demo`), when it answers; ok is false when
// none is recorded or it does not answer (a process killed outright leaves its record behind).
func viaServed(c *cli.Context, path string) (ch chain.Chain, closeChain func() error, ok bool) {
	u := local.ServedURL(path)
	if u == "" {
		return nil, nil, false
	}
	ch, closeChain, err := chains.Open(c.Context, chains.Where{URL: u})
	if err != nil {
		return nil, nil, false
	}
	ctx, cancel := context.WithTimeout(c.Context, 2*time.Second)
	defer cancel()
	if _, err := ch.Account(ctx, ton.AccountID{}); err != nil {
		_ = closeChain()
		return nil, nil, false
	}
	fmt.Fprintf(c.App.ErrWriter, "cocoon: the local chain %s is held by a running `cocoon demo` or `cocoon chain serve`; using the chain it serves at %s\n", path, u)
	return ch, closeChain, true
}

// demoFile is where `cocoon demo` writes its URLs, next to its chain; the chain URL is its
// "chain" field.
const demoFile = "demo.json"

// viaDemo opens the chain a running `cocoon demo` serves when it holds the local chain at path:
// the demo writes the URL to demo.json beside the chain file. It says so on stderr. A demo that
// does not serve its chain, or whose URL does not answer, is an error naming the fix.
func viaDemo(c *cli.Context, path string) (chain.Chain, func() error, error) {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(path), demoFile))
	if err != nil {
		return nil, nil, lockedError(path)
	}
	var urls struct {
		Chain string `json:"chain"`
	}
	if err := json.Unmarshal(b, &urls); err != nil {
		return nil, nil, lockedError(path)
	}
	if urls.Chain == "" {
		return nil, nil, fmt.Errorf("the local chain %s is held by a running `cocoon demo` that does not serve it (--chain-listen \"\"): stop the demo, or run it with --chain-listen and pass --chain-url <the URL it prints>", path)
	}
	held := fmt.Errorf("the local chain %s is held by a running `cocoon demo`; pass --chain-url <the URL it printed> (or stop the demo)", path)
	ch, closeChain, err := chains.Open(c.Context, chains.Where{URL: urls.Chain})
	if err != nil {
		return nil, nil, held
	}
	ctx, cancel := context.WithTimeout(c.Context, 5*time.Second)
	defer cancel()
	if _, err := ch.Account(ctx, ton.AccountID{}); err != nil {
		_ = closeChain()
		return nil, nil, fmt.Errorf("the local chain %s is held by a running `cocoon demo`, and the chain URL in its %s (%s) does not answer: stop the demo, or pass --chain-url <the URL it printed>", path, demoFile, urls.Chain)
	}
	fmt.Fprintf(c.App.ErrWriter, "cocoon: the local chain %s is held by a running `cocoon demo`; using the chain it serves at %s\n", path, urls.Chain)
	return ch, closeChain, nil
}
