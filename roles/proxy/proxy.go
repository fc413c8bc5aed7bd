package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// Config is what a proxy needs to know, already validated by config.
type Config struct {
	Listen      string // QUIC address for workers and clients
	StatsListen string // HTTP address of /healthz, /stats, /jsonstats; empty: none
	// StatsToken, when set, shows per-client payments on the stats port to requests bearing
	// "Authorization: Bearer <token>"; requests from loopback see them without. Everyone else
	// sees aggregates only.
	StatsToken     string
	RequestTimeout time.Duration // longest a request may take; zero: 10m
	MaxAttempts    int           // workers tried before the first byte of an answer; zero: 3
	// Payments meters and charges every request; nil serves without charging (total_cost 0).
	Payments *Payments
}

// Proxy routes requests from clients to workers.
type Proxy struct {
	cfg Config
	tc  transport.Config
	log zerolog.Logger

	reg    *registry
	stats  counters
	halted halt
	states *stateSender

	ready     chan struct{}
	addr      net.Addr
	statsAddr net.Addr
}

// New checks cfg and returns a proxy.
func New(cfg Config, tc transport.Config, log zerolog.Logger) (*Proxy, error) {
	if cfg.Listen == "" {
		return nil, errors.New("proxy: listen: required")
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Minute
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	p := &Proxy{cfg: cfg, tc: tc, log: log.With().Str("component", "proxy").Logger(),
		reg: newRegistry(), ready: make(chan struct{})}
	p.tc.OnHandshake = p.stats.handshakes.Also(tc.OnHandshake)
	if p.tc.Conns == nil {
		p.tc.Conns = new(transport.Conns)
	}
	p.states = newStateSender(p.log)
	return p, nil
}

// Addr waits until the proxy listens and returns its QUIC address.
func (p *Proxy) Addr(ctx context.Context) net.Addr {
	select {
	case <-p.ready:
		return p.addr
	case <-ctx.Done():
		return nil
	}
}

// StatsAddr waits until the proxy listens and returns its stats HTTP address (nil if none).
func (p *Proxy) StatsAddr(ctx context.Context) net.Addr {
	select {
	case <-p.ready:
		return p.statsAddr
	case <-ctx.Done():
		return nil
	}
}

// Run serves until ctx ends; it returns nil then.
func (p *Proxy) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l, err := transport.Listen(p.cfg.Listen, p.tc)
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	defer l.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	p.addr = l.Addr()
	// Certificates are short-lived: replace ours before it expires; live connections are unaffected.
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = p.tc.Identity.Run(ctx, p.log)
	}()
	if p.cfg.StatsListen != "" {
		a, err := p.serveStats(ctx, &wg, p.cfg.StatsListen)
		if err != nil {
			return err
		}
		p.statsAddr = a
	}
	close(p.ready)
	p.log.Info().Str("listen", p.addr.String()).Msg("proxy started")
	for {
		c, err := l.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("proxy: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close(wire.CodeShutdown, "proxy stopping")
			switch c.Peer().Claims.Role {
			case attest.RoleWorker:
				p.serveWorker(ctx, c)
			case attest.RoleClient:
				p.serveClient(ctx, c)
			default:
				p.log.Warn().Str("role", string(c.Peer().Claims.Role)).Msg("peer role not served here")
			}
		}()
	}
}
