// Package chains opens the chain a node settles on, the local chain (the real contracts in
// tongo's TVM emulator, one file), TON through its lite servers, or a toncenter API v2 service
// (`cocoon chain serve` sharing a local chain between processes, or toncenter.com), and shares each open chain
// within a process: a local chain file can be opened only once, and the demo and the tests run
// several roles in one process. It sits above settle/chain, settle/chain/local and
// settle/chain/tonchain and settle/chain/toncenter because it is the one place that chooses
// between them.
package chains

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/local"
	"github.com/cocoon-network/cocoon/settle/chain/toncenter"
	"github.com/cocoon-network/cocoon/settle/chain/tonchain"
)

// Where says which chain to open: the toncenter API at URL, TON from ConfigPath on Network, or
// the local chain in Local.
type Where struct {
	Local      string           // path of the local chain's data file; used when URL and ConfigPath are empty
	ConfigPath string           // TON global config file: selects the lite-server chain
	Network    tonchain.Network // mainnet or testnet, with ConfigPath; with URL, empty is mainnet (the local chain's)
	URL        string           // toncenter API v2 base URL (`cocoon chain serve`, toncenter.com)
	APIKey     string           // with URL: sent as X-API-Key, never shown
}

// Open opens the chain w names; close it when done.
func Open(ctx context.Context, w Where) (chain.Chain, func() error, error) {
	if w.URL != "" {
		if w.ConfigPath != "" || w.Local != "" {
			return nil, nil, errors.New("open chain: a chain URL and a local data file or TON config file given; give one")
		}
		network := w.Network
		if network == "" {
			network = tonchain.Mainnet
		}
		c, err := toncenter.New(w.URL, network, toncenter.Options{APIKey: w.APIKey})
		if err != nil {
			return nil, nil, err
		}
		return c, func() error { return nil }, nil
	}
	if w.ConfigPath != "" {
		if _, err := w.Network.GlobalID(); err != nil {
			return nil, nil, err
		}
		c, err := tonchain.Dial(ctx, w.ConfigPath, w.Network)
		if err != nil {
			return nil, nil, err
		}
		return c, func() error { return nil }, nil
	}
	if w.Local == "" {
		return nil, nil, errors.New("open chain: neither a local data file, a TON config file nor a chain URL given")
	}
	c, err := local.Open(w.Local, local.Options{})
	if err != nil {
		return nil, nil, err
	}
	return c, c.Close, nil
}

// Set shares one open chain per Where. Its owner closes it once every role using it stopped.
type Set struct {
	mu     sync.Mutex
	open   map[Where]chain.Chain
	closes []func() error
}

// Open returns the chain w names, opening it on first use.
func (s *Set) Open(ctx context.Context, w Where) (chain.Chain, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.open[w]; ok {
		return c, nil
	}
	c, closeChain, err := Open(ctx, w)
	if err != nil {
		return nil, fmt.Errorf("open chain: %w", err)
	}
	if s.open == nil {
		s.open = map[Where]chain.Chain{}
	}
	s.open[w] = c
	s.closes = append(s.closes, closeChain)
	return c, nil
}

// Close closes every chain the set opened; the set may be used again afterwards.
func (s *Set) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, c := range s.closes {
		errs = append(errs, c())
	}
	s.open, s.closes = nil, nil
	return errors.Join(errs...)
}
