// Package demo runs the whole network in one process for `cocoon demo`: proxies, workers and a
// client on loopback with simulated TDX, the built-in engine (or a given engine URL) and the
// local chain with a registry, each proxy's contract and funded client deposits. The registry
// lists the proxies at the ports they listen on and allows exactly the images and model the
// nodes present; workers and client find the proxies there. Every role runs the same code as on
// TON; only the chain and the root of trust differ. Setup (`cocoon demo setup`) lays the same
// network out on a `cocoon chain serve` for nodes that run as separate processes or containers.
package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/roles/client"
	"github.com/cocoon-network/cocoon/roles/internal/poll"
	"github.com/cocoon-network/cocoon/roles/node"
	"github.com/cocoon-network/cocoon/roles/proxy"
	"github.com/cocoon-network/cocoon/roles/worker"
	"github.com/cocoon-network/cocoon/settle/chain/chainserve"
	"github.com/cocoon-network/cocoon/settle/chain/local"
)

// samplePrompt is what the demo asks once everything is up.
const samplePrompt = "In two sentences: why run AI inference inside confidential VMs?"

// Options are what `cocoon demo` takes.
type Options struct {
	Engine      string        // OpenAI-compatible engine URL; empty: the built-in engine
	Model       string        // the model the workers serve
	Listen      string        // the client's OpenAI API address
	Data        string        // state directory (keys, chain, ledger, states)
	Once        bool          // return after the sample request
	TokenDelay  time.Duration // built-in engine: time per token
	LogLevel    string        // of the roles
	Version     string        // the software version the roles announce
	Proxies     int           // proxies to run; 0: 1
	Workers     int           // workers to run; 0: 1
	ChainListen string        // where to serve the local chain (toncenter API v2); "": not served
	LogFile     string        // where the roles log ("": the terminal), for the banner
}

// LogFile is the file in the data directory the roles log to unless --log-level is given.
const LogFile = "demo.log"

// OpenLog opens (appending) the demo's log file in the data directory, making the directory.
func OpenLog(data string) (*os.File, error) {
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, fmt.Errorf("demo: data directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(data, LogFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("demo: log file: %w", err)
	}
	return f, nil
}

// printBanner is the demo's first lines: what runs where, where it logs, and the one warning
// that matters, that nothing here rests on hardware.
func printBanner(out io.Writer, o Options, simDir string) {
	plural := func(n int, one, many string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %s", n, many)
	}
	logs := "logs here (--log-level " + o.LogLevel + ")"
	if o.LogFile != "" {
		logs = "logs in " + o.LogFile
	}
	fmt.Fprintf(out, "cocoon demo: %s, %s and a client on this machine; state in %s, %s\n",
		plural(o.Proxies, "proxy", "proxies"), plural(o.Workers, "worker", "workers"), o.Data, logs)
	fmt.Fprintf(out, "SIMULATED TDX: quotes are signed by the development root of trust in %s and prove nothing about hardware\n", simDir)
}

// URLs is written to DIR/demo.json so scripts and tests find each role.
type URLs struct {
	Client struct {
		API   string `json:"api"`
		Stats string `json:"stats"`
	} `json:"client"`
	// Proxy and Worker are the first of Proxies and Workers.
	Proxy   ProxyURLs    `json:"proxy"`
	Proxies []ProxyURLs  `json:"proxies"`
	Worker  WorkerURLs   `json:"worker"`
	Workers []WorkerURLs `json:"workers"`
	// Registry is the registry every node follows; Chain the URL the local chain is served at
	// (for `cocoon chain … --chain-url` and `cocoon network --chain-url`), when it is.
	Registry string `json:"registry"`
	Chain    string `json:"chain,omitempty"`
}

// ProxyURLs are one demo proxy's QUIC address and stats page.
type ProxyURLs struct {
	Address string `json:"address"`
	Stats   string `json:"stats"`
}

// WorkerURLs are one demo worker's stats page.
type WorkerURLs struct {
	Stats string `json:"stats"`
}

// Run starts the network, asks the sample question, settles the signed states on the local
// chain and, unless o.Once, serves until ctx ends.
func Run(ctx context.Context, o Options, log zerolog.Logger, out io.Writer) error {
	if err := os.MkdirAll(o.Data, 0o700); err != nil {
		return fmt.Errorf("demo: data directory: %w", err)
	}
	o.Proxies, o.Workers = max(o.Proxies, 1), max(o.Workers, 1)
	cfg := node.LoopbackConfig(o.Data, o.LogLevel)
	cfg.Worker.EngineURL, cfg.Worker.Model, cfg.Worker.TokenDelay = o.Engine, o.Model, config.Duration(o.TokenDelay)
	if o.Engine != "" {
		// A demo against a real engine has no weights directory to digest; name the engine instead.
		sum := sha256.Sum256([]byte("demo engine " + o.Engine + " " + o.Model))
		cfg.Worker.WeightsDigest = "sha256:" + hex.EncodeToString(sum[:])
	}
	cfg.Client.Listen = o.Listen
	if err := preflight(ctx, o); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	printBanner(out, o, cfg.SimRoot())

	dn, err := StartNetwork(ctx, cfg, Size{Proxies: o.Proxies, Workers: o.Workers}, o.Data, o.Version, log, out)
	if err != nil {
		return fmt.Errorf("demo: %w", startError(o, err))
	}
	defer dn.stop()
	m, cl, done := dn.Money, dn.Client, dn.done
	var urls URLs
	caddr := cl.Addr()
	urls.Client.API = "http://" + caddr.String() + "/v1"
	urls.Client.Stats = "http://" + caddr.String() + "/stats"
	stats := []string{urls.Client.Stats}
	for i, p := range dn.Proxies {
		u := ProxyURLs{Address: dn.ProxyAddrs[i].String(), Stats: "http://" + p.StatsAddr(ctx).String() + "/stats"}
		urls.Proxies, stats = append(urls.Proxies, u), append(stats, u.Stats)
	}
	for _, w := range dn.Workers {
		u := WorkerURLs{Stats: "http://" + w.StatsAddr(ctx).String() + "/stats"}
		urls.Workers, stats = append(urls.Workers, u), append(stats, u.Stats)
	}
	urls.Proxy, urls.Worker = urls.Proxies[0], urls.Workers[0]
	urls.Registry = m.Net.Registry.ToHuman(true, false)
	if o.ChainListen != "" {
		ln, err := net.Listen("tcp", o.ChainListen)
		if err != nil {
			return fmt.Errorf("demo: --chain-listen %s: %s: pick a free port (127.0.0.1:0 for any), or \"\" not to serve the chain", o.ChainListen, node.Cause(err))
		}
		urls.Chain = "http://" + ln.Addr().String()
		dn.serve(func(ctx context.Context) error {
			return chainserve.New(m.Chain, chainserve.Config{}, log).Serve(ctx, ln)
		})
		// `cocoon chain` and `cocoon doctor` cannot open the locked chain file: they read
		// this URL beside it and come here.
		remove, err := local.WriteServedURL(filepath.Join(o.Data, local.DefaultFile), urls.Chain)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		defer func() { _ = remove() }()
	}
	b, _ := json.MarshalIndent(urls, "", "  ")
	if err := os.WriteFile(filepath.Join(o.Data, "demo.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("demo: write demo.json: %w", err)
	}

	fmt.Fprintf(out, "\n> %s\n\n", samplePrompt)
	askErr := client.Ask(ctx, client.AskOptions{ClientURL: "http://" + caddr.String(), Prompt: samplePrompt}, nil, out, out)
	if askErr == nil {
		// The signed states reach client and worker right after the answer; wait for them, then
		// settle on chain as either party may at any time.
		if err := poll.Until(ctx, time.Minute, done, m.held); err != nil {
			askErr = fmt.Errorf("payment states: %w", err)
		} else if err := m.settleOnChain(ctx, out); err != nil {
			askErr = fmt.Errorf("settle on chain: %w", err)
		}
	}
	fmt.Fprintf(out, "\nOpenAI base URL:  %s   (any API key; or none)\n", urls.Client.API)
	fmt.Fprintf(out, "Ask from a shell: cocoon ask --client http://%s \"your question\"\n", caddr)
	fmt.Fprintf(out, "Stats:            %s\n", strings.Join(stats, "  "))
	if urls.Chain != "" {
		fmt.Fprintf(out, "The network:      cocoon network --allow-simulated --sim-dir %s --chain-url %s %s\n", cfg.SimRoot(), urls.Chain, urls.Registry)
	}
	if o.Once {
		if askErr != nil {
			return fmt.Errorf("demo: sample request failed: %w", askErr)
		}
		return nil
	}
	if askErr != nil {
		fmt.Fprintf(out, "sample request failed: %v\n", askErr)
	}
	fmt.Fprintln(out, "Serving until interrupted (Ctrl-C).")
	select {
	case <-ctx.Done():
		return nil
	case err := <-done:
		return err
	}
}

func firstErr(done <-chan error) error {
	select {
	case err := <-done:
		return err
	default:
		return errors.New("cancelled")
	}
}

// Size is how many proxies and workers a demo network runs.
type Size struct{ Proxies, Workers int }

// Network is the roles of the demo running in this process on the local chain. The workers and
// the client find the proxies through the registry, and every node trusts the images and models
// it lists, as on TON.
type Network struct {
	Money      *Money
	Registry   *node.Registry
	Proxies    []*proxy.Proxy
	ProxyAddrs []net.Addr
	Workers    []*worker.Worker
	Client     *client.Client
	// Proxy and Worker are the first of Proxies and Workers.
	Proxy  *proxy.Proxy
	Worker *worker.Worker
	done   chan error // a role (or a meter) stopped
	serve  func(run func(context.Context) error)
	stop   func() // cancel the roles, wait for them, close the chain
}

// Start is StartNetwork with one proxy and one worker.
func Start(ctx context.Context, cfg config.Config, data, version string, log zerolog.Logger, out io.Writer) (*Network, error) {
	return StartNetwork(ctx, cfg, Size{Proxies: 1, Workers: 1}, data, version, log, out)
}

// StartNetwork sets up the local chain and starts the proxies, then lists them in the registry
// at the ports they listen on, then starts the workers and the client, which find them there. It
// returns once every worker is registered with every proxy and each has seen the client's deposit.
func StartNetwork(ctx context.Context, cfg config.Config, size Size, data, version string, log zerolog.Logger, out io.Writer) (*Network, error) {
	ctx, cancel := context.WithCancel(ctx)
	var running sync.WaitGroup
	// The role goroutines and stop keep this pointer, never a return value: on an error the
	// caller gets nil while they may still be sending their result.
	dn := &Network{done: make(chan error, 4+2*size.Proxies+size.Workers)}
	dn.serve = func(run func(context.Context) error) {
		running.Go(func() { dn.done <- run(ctx) })
	}
	dn.stop = func() {
		cancel()
		running.Wait()
		if dn.Money != nil {
			dn.Money.close()
		}
	}
	if err := dn.start(ctx, cfg, size, data, version, log, out); err != nil {
		dn.stop()
		return nil, err
	}
	return dn, nil
}

// start does StartNetwork's work on dn; on an error the caller stops what it started.
func (dn *Network) start(ctx context.Context, cfg config.Config, size Size, data, version string, log zerolog.Logger, out io.Writer) error {
	start := dn.serve
	// The local chain: registry, the proxies' contracts, funded wallets, the client's deposits.
	m, err := setupMoney(ctx, data, &cfg, size.Proxies, size.Workers, log)
	if err != nil {
		return err
	}
	dn.Money = m
	for _, role := range []string{"proxy", "worker", "client"} {
		if err := cfg.Validate(role); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "Local chain:     registry %s, proxy contract(s) %s\n", m.Net.Registry.ToHuman(true, true), m.addresses())
	printDeposits(out, m.deposits)
	dn.Registry = node.NewRegistry(m.Chain, m.Net.Registry, time.Duration(cfg.Payments.RegistryInterval), log)
	if err := dn.Registry.Read(ctx); err != nil {
		return err
	}
	var endpoints []string
	for i, mt := range m.Meters {
		start(mt.Run)
		pc := cfg
		pc.Payments.ProxyContract.AccountID = m.Net.Proxies[i]
		p, err := node.BuildProxy(pc, version, log, mt, dn.Registry)
		if err != nil {
			return err
		}
		start(p.Run)
		// The proxy must listen before the others learn its (random) port.
		addr := p.Addr(ctx)
		if addr == nil {
			return fmt.Errorf("proxy %d did not start: %w", i+1, firstErr(dn.done))
		}
		dn.Proxies, dn.ProxyAddrs, endpoints = append(dn.Proxies, p), append(dn.ProxyAddrs, addr), append(endpoints, addr.String())
	}
	if err := m.listProxies(ctx, endpoints); err != nil {
		return err
	}
	if err := dn.Registry.Read(ctx); err != nil {
		return err
	}
	start(dn.Registry.Run)
	cfg.Worker.Proxies, cfg.Client.Proxies = nil, nil
	for _, wp := range m.workers {
		w, err := node.BuildWorker(cfg, version, log, wp, dn.Registry)
		if err != nil {
			return err
		}
		dn.Workers = append(dn.Workers, w)
	}
	if dn.Client, err = node.BuildClient(cfg, version, log, m.client, dn.Registry); err != nil {
		return err
	}
	for _, w := range dn.Workers {
		start(w.Run)
	}
	start(dn.Client.Run)
	dn.Proxy, dn.Worker = dn.Proxies[0], dn.Workers[0]
	workersRegistered := func() error {
		for i, p := range dn.Proxies {
			if n := p.WorkerCount(); n < len(dn.Workers) {
				return fmt.Errorf("proxy %d has %d of %d workers registered", i+1, n, len(dn.Workers))
			}
		}
		return nil
	}
	if err := poll.Until(ctx, time.Minute, dn.done, workersRegistered); err != nil {
		return fmt.Errorf("workers did not register: %w", err)
	}
	if err := poll.Until(ctx, time.Minute, dn.done, m.deposited); err != nil {
		return fmt.Errorf("the client's deposit did not reach the proxies: %w", err)
	}
	return nil
}
