// Package demo runs the whole network in one process for `cocoon demo`: a proxy, a worker and a
// client on loopback with simulated TDX, the built-in engine (or a given engine URL) and the
// local chain with a registry, the proxy's contract and a funded client deposit. Every role runs
// the same code as on TON; only the chain and the root of trust differ.
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
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/roles/client"
	"github.com/cocoon-network/cocoon/roles/internal/poll"
	"github.com/cocoon-network/cocoon/roles/node"
	"github.com/cocoon-network/cocoon/roles/proxy"
	"github.com/cocoon-network/cocoon/roles/worker"
	"github.com/cocoon-network/cocoon/settle"
)

// samplePrompt is what the demo asks once everything is up.
const samplePrompt = "In two sentences: why run AI inference inside confidential VMs?"

// Options are what `cocoon demo` takes.
type Options struct {
	Engine     string        // OpenAI-compatible engine URL; empty: the built-in engine
	Model      string        // the model the worker serves
	Listen     string        // the client's OpenAI API address
	Data       string        // state directory (keys, chain, ledger, states)
	Once       bool          // return after the sample request
	TokenDelay time.Duration // built-in engine: time per token
	LogLevel   string        // of the three roles
	Version    string        // the software version the roles announce
}

// URLs is written to DIR/demo.json so scripts and tests find each role.
type URLs struct {
	Client struct {
		API   string `json:"api"`
		Stats string `json:"stats"`
	} `json:"client"`
	Proxy struct {
		Address string `json:"address"`
		Stats   string `json:"stats"`
	} `json:"proxy"`
	Worker struct {
		Stats string `json:"stats"`
	} `json:"worker"`
}

// Run starts the network, asks the sample question, settles the signed states on the local
// chain and, unless o.Once, serves until ctx ends.
func Run(ctx context.Context, o Options, log zerolog.Logger, out io.Writer) error {
	if err := os.MkdirAll(o.Data, 0o700); err != nil {
		return fmt.Errorf("demo: data directory: %w", err)
	}
	cfg := node.LoopbackConfig(o.Data, o.LogLevel)
	cfg.Worker.EngineURL, cfg.Worker.Model, cfg.Worker.TokenDelay = o.Engine, o.Model, config.Duration(o.TokenDelay)
	if o.Engine != "" {
		// A demo against a real engine has no weights directory to digest; name the engine instead.
		sum := sha256.Sum256([]byte("demo engine " + o.Engine + " " + o.Model))
		cfg.Worker.WeightsDigest = "sha256:" + hex.EncodeToString(sum[:])
	}
	cfg.Client.Listen = o.Listen
	for _, role := range []string{"proxy", "worker", "client"} {
		if err := cfg.Validate(role); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	fmt.Fprintf(out, "cocoon demo: proxy, worker and client on this machine (SIMULATED TDX; state in %s)\n", o.Data)

	dn, err := Start(ctx, cfg, o.Data, o.Version, log, out)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer dn.stop()
	m, p, w, cl, paddr, done := dn.Money, dn.Proxy, dn.Worker, dn.Client, dn.ProxyAddr, dn.done
	var urls URLs
	caddr := cl.Addr()
	urls.Client.API = "http://" + caddr.String() + "/v1"
	urls.Client.Stats = "http://" + caddr.String() + "/stats"
	urls.Proxy.Address = paddr.String()
	urls.Proxy.Stats = "http://" + p.StatsAddr(ctx).String() + "/stats"
	urls.Worker.Stats = "http://" + w.StatsAddr(ctx).String() + "/stats"
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
	fmt.Fprintf(out, "Stats:            %s  %s  %s\n", urls.Client.Stats, urls.Proxy.Stats, urls.Worker.Stats)
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

// Network is the three roles of the demo running in this process on the local chain.
type Network struct {
	Money     *Money
	Proxy     *proxy.Proxy
	Worker    *worker.Worker
	Client    *client.Client
	ProxyAddr net.Addr
	done      chan error // a role (or the meter) stopped
	stop      func()     // cancel the roles, wait for them, close the chain
}

// Start sets up the local chain and starts proxy, worker and client, returning once the
// worker is registered and the client's deposit is credited.
func Start(ctx context.Context, cfg config.Config, data, version string, log zerolog.Logger, out io.Writer) (dn *Network, err error) {
	ctx, cancel := context.WithCancel(ctx)
	var running sync.WaitGroup
	dn = &Network{done: make(chan error, 4)}
	stop := func() {
		cancel()
		running.Wait()
		if dn.Money != nil {
			dn.Money.close()
		}
	}
	dn.stop = stop
	defer func() {
		if err != nil {
			stop()
		}
	}()
	// The local chain: registry, the proxy's contract, funded wallets, the client's deposit.
	proxyImage, err := node.SimulatedMeasurements(cfg, attest.RoleProxy)
	if err != nil {
		return nil, err
	}
	workerImage, err := node.SimulatedMeasurements(cfg, attest.RoleWorker)
	if err != nil {
		return nil, err
	}
	_, weights, err := node.Engine(cfg, zerolog.Nop())
	if err != nil {
		return nil, err
	}
	if dn.Money, err = setupMoney(ctx, data, proxyImage.ImageHash(), workerImage.ImageHash(), weights, log); err != nil {
		return nil, err
	}
	m := dn.Money
	fmt.Fprintf(out, "Local chain: registry %s, proxy contract %s, client deposit %s TON\n",
		m.Net.Registry.ToHuman(true, true), m.Net.Proxy.ToHuman(true, true), settle.FormatTON(deposit))
	start := func(run func(context.Context) error) {
		running.Go(func() { dn.done <- run(ctx) })
	}
	start(m.Meter.Run)
	if dn.Proxy, err = node.BuildProxy(cfg, version, log, m.Meter, nil); err != nil {
		return nil, err
	}
	start(dn.Proxy.Run)
	// The proxy must listen before the others learn its (random) port.
	if dn.ProxyAddr = dn.Proxy.Addr(ctx); dn.ProxyAddr == nil {
		return nil, fmt.Errorf("proxy did not start: %w", firstErr(dn.done))
	}
	cfg.Worker.Proxies, cfg.Client.Proxies = []string{dn.ProxyAddr.String()}, []string{dn.ProxyAddr.String()}
	if dn.Worker, err = node.BuildWorker(cfg, version, log, m.worker, nil); err != nil {
		return nil, err
	}
	if dn.Client, err = node.BuildClient(cfg, version, log, m.client, nil); err != nil {
		return nil, err
	}
	start(dn.Worker.Run)
	start(dn.Client.Run)
	workerRegistered := func() error {
		if dn.Proxy.WorkerCount() == 0 {
			return errors.New("no worker registered yet")
		}
		return nil
	}
	if err := poll.Until(ctx, time.Minute, dn.done, workerRegistered); err != nil {
		return nil, fmt.Errorf("worker did not register: %w", err)
	}
	if err := poll.Until(ctx, time.Minute, dn.done, m.deposited); err != nil {
		return nil, fmt.Errorf("the client's deposit did not reach the proxy: %w", err)
	}
	return dn, nil
}
