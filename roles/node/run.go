package node

import (
	"context"
	"errors"
	"sync"

	"github.com/rs/zerolog"

	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain/chains"
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

// build runs f with a fresh node and chain set, closing what was opened if f fails.
func build(f func(n *Node, set *chains.Set) error) (*Node, error) {
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
	return build(func(n *Node, set *chains.Set) error {
		m, err := proxyMeter(ctx, set, cfg, log)
		if err != nil {
			return err
		}
		if m != nil {
			n.helpers = append(n.helpers, m.Run)
			n.closers = append(n.closers, m.Close)
		}
		p, err := BuildProxy(cfg, version, log, m)
		if err != nil {
			return err
		}
		n.role = p.Run
		return nil
	})
}

// Worker builds `cocoon worker`: the worker and, when payments are configured, its wallet's
// submitter.
func Worker(ctx context.Context, cfg config.Config, version string, log zerolog.Logger) (*Node, error) {
	return build(func(n *Node, set *chains.Set) error {
		pay, err := party(ctx, set, cfg, "worker", settle.KindWorkerEarned, log)
		if err != nil {
			return err
		}
		w, err := BuildWorker(cfg, version, log, pay)
		if err != nil {
			return err
		}
		n.role = w.Run
		if pay != nil {
			n.helpers = append(n.helpers, pay.Submitter.Run)
		}
		return nil
	})
}

// Client builds `cocoon client`: the client and, when payments are configured, its wallet's
// submitter.
func Client(ctx context.Context, cfg config.Config, version string, log zerolog.Logger) (*Node, error) {
	return build(func(n *Node, set *chains.Set) error {
		pay, err := party(ctx, set, cfg, "client", settle.KindClientCharged, log)
		if err != nil {
			return err
		}
		c, err := BuildClient(cfg, version, log, pay)
		if err != nil {
			return err
		}
		n.role = c.Run
		if pay != nil {
			n.helpers = append(n.helpers, pay.Submitter.Run)
		}
		return nil
	})
}
