package main

import (
	"context"
	"crypto/ed25519"
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
	"github.com/urfave/cli/v2"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/roles/client"
	"github.com/cocoon-network/cocoon/roles/proxy"
	"github.com/cocoon-network/cocoon/roles/worker"
	"github.com/cocoon-network/cocoon/settle/chaincmd"
)

// samplePrompt is what the demo asks once everything is up.
const samplePrompt = "In two sentences: why run AI inference inside confidential VMs?"

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run proxy, worker and client on this machine (simulated TDX, built-in engine) and ask one question",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "engine", Usage: "OpenAI-compatible engine URL for the worker (default: the built-in engine)", EnvVars: []string{"COCOON_ENGINE_URL"}},
			&cli.StringFlag{Name: "model", Usage: "model name", Value: "cocoon-builtin", EnvVars: []string{"COCOON_MODEL"}},
			&cli.StringFlag{Name: "listen", Usage: "the client's OpenAI API address", Value: "127.0.0.1:8080", EnvVars: []string{"COCOON_LISTEN"}},
			&cli.StringFlag{Name: "data", Usage: "state directory", Value: filepath.Join(config.StateDir(), "demo"), EnvVars: []string{"COCOON_DATA"}},
			&cli.BoolFlag{Name: "once", Usage: "exit after the sample request (status 0 only if it succeeded)"},
			&cli.DurationFlag{Name: "token-delay", Usage: "built-in engine: time per token", Value: 15 * time.Millisecond},
			&cli.StringFlag{Name: "log-level", Usage: "log level of the three roles", Value: "warn", EnvVars: []string{"COCOON_LOG_LEVEL"}},
		},
		Action: func(c *cli.Context) error {
			return runDemo(c.Context, demoOptions{
				engine: c.String("engine"), model: c.String("model"), listen: c.String("listen"), data: c.String("data"),
				once: c.Bool("once"), tokenDelay: c.Duration("token-delay"), logLevel: c.String("log-level"),
			}, c.App.Writer)
		},
	}
}

type demoOptions struct {
	engine, model, listen, data, logLevel string
	once                                  bool
	tokenDelay                            time.Duration
}

// loopbackConfig is every role on this machine with simulated TDX, each listening on a free
// loopback port (the client too, until the caller says otherwise).
func loopbackConfig(data, logLevel string) config.Config {
	cfg := config.Defaults()
	cfg.LogLevel, cfg.Data = logLevel, data
	cfg.Attestation.Simulated, cfg.Attestation.AllowSimulated = true, true
	cfg.Proxy.Listen, cfg.Proxy.StatsListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Worker.StatsListen, cfg.Client.Listen = "127.0.0.1:0", "127.0.0.1:0"
	return cfg
}

// demoURLs is written to DIR/demo.json so scripts and tests find each role.
type demoURLs struct {
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

func runDemo(ctx context.Context, o demoOptions, out io.Writer) error {
	if err := os.MkdirAll(o.data, 0o700); err != nil {
		return fmt.Errorf("demo: data directory: %w", err)
	}
	cfg := loopbackConfig(o.data, o.logLevel)
	cfg.Worker.EngineURL, cfg.Worker.Model, cfg.Worker.TokenDelay = o.engine, o.model, config.Duration(o.tokenDelay)
	if o.engine != "" {
		// A demo against a real engine has no weights directory to digest; name the engine instead.
		sum := sha256.Sum256([]byte("demo engine " + o.engine + " " + o.model))
		cfg.Worker.WeightsDigest = "sha256:" + hex.EncodeToString(sum[:])
	}
	cfg.Client.Listen = o.listen
	for _, role := range []string{"proxy", "worker", "client"} {
		if err := cfg.Validate(role); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	log := newLogger(cfg.LogLevel)
	fmt.Fprintf(out, "cocoon demo: proxy, worker and client on this machine (SIMULATED TDX; state in %s)\n", o.data)

	dn, err := startNetwork(ctx, cfg, o.data, log, out)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer dn.stop()
	m, p, w, cl, paddr, done := dn.money, dn.proxy, dn.worker, dn.client, dn.proxyAddr, dn.done
	var urls demoURLs
	caddr := cl.Addr()
	urls.Client.API = "http://" + caddr.String() + "/v1"
	urls.Client.Stats = "http://" + caddr.String() + "/stats"
	urls.Proxy.Address = paddr.String()
	urls.Proxy.Stats = "http://" + p.StatsAddr(ctx).String() + "/stats"
	urls.Worker.Stats = "http://" + w.StatsAddr(ctx).String() + "/stats"
	b, _ := json.MarshalIndent(urls, "", "  ")
	if err := os.WriteFile(filepath.Join(o.data, "demo.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("demo: write demo.json: %w", err)
	}

	fmt.Fprintf(out, "\n> %s\n\n", samplePrompt)
	askErr := client.Ask(ctx, client.AskOptions{ClientURL: "http://" + caddr.String(), Prompt: samplePrompt}, nil, out, out)
	if askErr == nil {
		// The signed states reach client and worker right after the answer; wait for them, then
		// settle on chain as either party may at any time.
		held := func() error {
			pay := m.proxy.payKey.Public().(ed25519.PublicKey)
			if _, ok := m.worker.states.Latest(pay); !ok {
				return errors.New("worker has no state yet")
			}
			if _, ok := m.client.states.Latest(pay); !ok {
				return errors.New("client has no state yet")
			}
			return nil
		}
		if err := pollUntil(ctx, time.Minute, done, held); err != nil {
			askErr = fmt.Errorf("payment states: %w", err)
		} else if err := m.settleOnChain(ctx, out); err != nil {
			askErr = fmt.Errorf("settle on chain: %w", err)
		}
	}
	fmt.Fprintf(out, "\nOpenAI base URL:  %s   (any API key; or none)\n", urls.Client.API)
	fmt.Fprintf(out, "Ask from a shell: cocoon ask --client http://%s \"your question\"\n", caddr)
	fmt.Fprintf(out, "Stats:            %s  %s  %s\n", urls.Client.Stats, urls.Proxy.Stats, urls.Worker.Stats)
	if o.once {
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

// demoNet is the three roles of the demo running in this process on the local chain.
type demoNet struct {
	money     *money
	proxy     *proxy.Proxy
	worker    *worker.Worker
	client    *client.Client
	proxyAddr net.Addr
	done      chan error // a role stopped
	stop      func()     // cancel the roles, wait for them, close the chain
}

// startNetwork sets up the local chain and starts proxy, worker and client, returning once the
// worker is registered and the client's deposit is credited.
func startNetwork(ctx context.Context, cfg config.Config, data string, log zerolog.Logger, out io.Writer) (dn *demoNet, err error) {
	ctx, cancel := context.WithCancel(ctx)
	var running sync.WaitGroup
	dn = &demoNet{done: make(chan error, 3)}
	stop := func() {
		cancel()
		running.Wait()
		if dn.money != nil {
			dn.money.close()
		}
	}
	dn.stop = stop
	defer func() {
		if err != nil {
			stop()
		}
	}()
	// The local chain: registry, the proxy's contract, funded wallets, the client's deposit.
	digest, err := attest.ExecutableDigest()
	if err != nil {
		return nil, err
	}
	proxyImage := attest.SimulatedMeasurements(digest, attest.RoleProxy, cfg.Digest("proxy"))
	workerImage := attest.SimulatedMeasurements(digest, attest.RoleWorker, cfg.Digest("worker"))
	_, weights, err := engineFor(cfg, zerolog.Nop())
	if err != nil {
		return nil, err
	}
	if dn.money, err = setupMoney(ctx, data, proxyImage.ImageHash(), workerImage.ImageHash(), weights); err != nil {
		return nil, err
	}
	m := dn.money
	m.proxy.watch(ctx, log)
	fmt.Fprintf(out, "Local chain: registry %s, proxy contract %s, client deposit %s TON\n",
		m.net.Registry.ToHuman(true, true), m.net.Proxy.ToHuman(true, true), chaincmd.FormatTON(demoDeposit))
	start := func(run func(context.Context) error) {
		running.Add(1)
		go func() {
			defer running.Done()
			dn.done <- run(ctx)
		}()
	}
	if dn.proxy, err = buildProxy(cfg, log, m.proxy); err != nil {
		return nil, err
	}
	start(dn.proxy.Run)
	// The proxy must listen before the others learn its (random) port.
	if dn.proxyAddr = dn.proxy.Addr(ctx); dn.proxyAddr == nil {
		return nil, fmt.Errorf("proxy did not start: %w", firstErr(dn.done))
	}
	cfg.Worker.Proxies, cfg.Client.Proxies = []string{dn.proxyAddr.String()}, []string{dn.proxyAddr.String()}
	if dn.worker, err = buildWorker(cfg, log, m.worker); err != nil {
		return nil, err
	}
	if dn.client, err = buildClient(cfg, log, m.client); err != nil {
		return nil, err
	}
	start(dn.worker.Run)
	start(dn.client.Run)
	workerRegistered := func() error {
		if dn.proxy.WorkerCount() == 0 {
			return errors.New("no worker registered yet")
		}
		return nil
	}
	if err := pollUntil(ctx, time.Minute, dn.done, workerRegistered); err != nil {
		return nil, fmt.Errorf("worker did not register: %w", err)
	}
	if err := pollUntil(ctx, time.Minute, dn.done, m.deposited); err != nil {
		return nil, fmt.Errorf("the client's deposit did not reach the proxy: %w", err)
	}
	return dn, nil
}
