package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain/chains"
	"github.com/cocoon-network/cocoon/settle/paystate"
)

// Node is one role of a `cocoon proxy`, `worker` or `client` process together with what it
// settles through (the proxy's meter, a party's submitter) and the chains it opened.
type Node struct {
	role    func(context.Context) error
	helpers []func(context.Context) error // run beside the role and stop with it
	closers []func() error                // after everything stopped, last first
}

// Run runs the role and its helpers until ctx ends or the role stops, then stops the helpers,
// waits for them and closes what the node opened. It returns the role's error, or a helper's when
// a helper failed first.
func (n *Node) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(n.helpers))
	for i, h := range n.helpers {
		wg.Go(func() {
			if errs[i] = h(ctx); errs[i] != nil {
				cancel()
			}
		})
	}
	err := n.role(ctx)
	cancel()
	wg.Wait()
	err = errors.Join(append([]error{err}, errs...)...)
	return errors.Join(err, n.close())
}

func (n *Node) close() error {
	var errs []error
	for i := len(n.closers) - 1; i >= 0; i-- {
		errs = append(errs, n.closers[i]())
	}
	return errors.Join(errs...)
}

// build runs f with a fresh node and chain set, closing what was opened if f fails. The data
// directory is made first: keys, ledger and states live there.
func build(role string, cfg config.Config, f func(n *Node, set *chains.Set) error) (*Node, error) {
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	if err := checkPorts(role, cfg); err != nil {
		return nil, err
	}
	set := &chains.Set{}
	n := &Node{closers: []func() error{set.Close}}
	if err := f(n, set); err != nil {
		_ = n.close()
		return nil, err
	}
	return n, nil
}

// Proxy builds `cocoon proxy`: the proxy and, when payments are configured, its meter.
func Proxy(ctx context.Context, cfg config.Config, version string, log zerolog.Logger) (*Node, error) {
	return build("proxy", cfg, func(n *Node, set *chains.Set) error {
		m, err := proxyMeter(ctx, set, cfg, log)
		if err != nil {
			return err
		}
		if m != nil {
			n.helpers = append(n.helpers, m.Run)
			n.closers = append(n.closers, m.Close)
		}
		reg, err := openRegistry(ctx, set, cfg, log)
		if err != nil {
			return err
		}
		p, err := BuildProxy(cfg, version, log, m, reg)
		if err != nil {
			return err
		}
		n.role = p.Run
		if reg != nil {
			n.helpers = append(n.helpers, reg.Run)
		}
		return nil
	})
}

// Worker builds `cocoon worker`: the worker and, when payments are configured, its wallet's
// submitter; with a registry, the watch that gives it the registered proxies.
func Worker(ctx context.Context, cfg config.Config, version string, log zerolog.Logger) (*Node, error) {
	return build("worker", cfg, func(n *Node, set *chains.Set) error {
		pay, err := party(ctx, set, cfg, "worker", settle.KindWorkerEarned, log)
		if err != nil {
			return err
		}
		reg, err := openRegistry(ctx, set, cfg, log)
		if err != nil {
			return err
		}
		w, err := BuildWorker(cfg, version, log, pay, reg)
		if err != nil {
			return err
		}
		n.role = w.Run
		if pay != nil {
			n.helpers = append(n.helpers, pay.Submitter.Run)
		}
		if reg != nil {
			n.helpers = append(n.helpers, reg.Run)
		}
		return nil
	})
}

// Client builds `cocoon client`: the client and, when payments are configured, its wallet's
// submitter and top-ups; with a registry, the watch that gives it the registered proxies.
func Client(ctx context.Context, cfg config.Config, version string, log zerolog.Logger) (*Node, error) {
	return build("client", cfg, func(n *Node, set *chains.Set) error {
		pay, err := party(ctx, set, cfg, "client", settle.KindClientCharged, log)
		if err != nil {
			return err
		}
		reg, err := openRegistry(ctx, set, cfg, log)
		if err != nil {
			return err
		}
		c, err := BuildClient(cfg, version, log, pay, reg)
		if err != nil {
			return err
		}
		n.role = c.Run
		if pay != nil {
			n.helpers = append(n.helpers, pay.Submitter.Run, topUpper(cfg, pay, reg, log).Run)
		}
		if reg != nil {
			n.helpers = append(n.helpers, reg.Run)
		}
		return nil
	})
}

// checkPorts refuses, before anything starts, an address of role's that another process listens on.
func checkPorts(role string, cfg config.Config) error {
	type port struct{ flag, network, addr string }
	var ports []port
	switch role {
	case "proxy":
		ports = []port{{"--listen", "udp", cfg.Proxy.Listen}, {"--stats-listen", "tcp", cfg.Proxy.StatsListen}}
	case "worker":
		ports = []port{{"--stats-listen", "tcp", cfg.Worker.StatsListen}}
	case "client":
		ports = []port{{"--listen", "tcp", cfg.Client.Listen}}
	}
	for _, p := range ports {
		if p.addr == "" {
			continue
		}
		if err := CheckListen(p.flag, p.network, p.addr, "another `cocoon "+role+"`"); err != nil {
			return err
		}
	}
	return nil
}

// CheckListen reports, in one line that names flag and the fix, when addr cannot be listened on
// (network "tcp" or "udp"); who is what probably listens there already.
func CheckListen(flag, network, addr, who string) error {
	var err error
	if network == "udp" {
		var c net.PacketConn
		if c, err = net.ListenPacket(network, addr); err == nil {
			_ = c.Close()
		}
	} else {
		var l net.Listener
		if l, err = net.Listen(network, addr); err == nil {
			_ = l.Close()
		}
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s %s (%s): the port is in use (%s there?): stop it, or pick a free port with %s", flag, addr, strings.ToUpper(network), who, flag)
	}
	return fmt.Errorf("%s %s (%s): %s: give a HOST:PORT of this machine", flag, addr, strings.ToUpper(network), Cause(err))
}

// Cause is err's system-level reason on one line ("connect: connection refused").
func Cause(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// openRegistry reads the registry the payments section names (nil without one).
func openRegistry(ctx context.Context, set *chains.Set, cfg config.Config, log zerolog.Logger) (*Registry, error) {
	if !cfg.Payments.Registry.Set {
		return nil, nil
	}
	ch, err := openChain(ctx, set, cfg)
	if err != nil {
		return nil, err
	}
	reg := NewRegistry(ch, cfg.Payments.Registry.AccountID, time.Duration(cfg.Payments.RegistryInterval), log)
	if err := reg.Read(ctx); err != nil {
		return nil, fmt.Errorf("payments.registry %s: %w", cfg.Payments.Registry, err)
	}
	return reg, nil
}

// topUpInterval is how often a client checks its deposits against payments.top_up_below.
var topUpInterval = 30 * time.Second

// topUpper keeps the client's deposits above payments.top_up_below in every proxy contract it
// uses: those the registry lists, or, without a registry, those that signed it states.
func topUpper(cfg config.Config, pay *Party, reg *Registry, log zerolog.Logger) *paystate.TopUpper {
	contracts := func() []ton.AccountID {
		if reg != nil {
			r, _ := reg.current()
			return contractsOf(r)
		}
		var out []ton.AccountID
		for _, st := range pay.States.All() {
			out = append(out, st.State.Proxy)
		}
		return out
	}
	return &paystate.TopUpper{
		Chain: pay.Submitter.Chain, Key: pay.Key, Below: cfg.Payments.TopUpBelow, Amount: cfg.Payments.TopUpAmount,
		Every: topUpInterval, Contracts: contracts, Store: pay.States, Log: log,
	}
}
