package worker

import (
	"context"
	"sync"

	"github.com/cocoon-network/cocoon/roles/internal/paysync"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// session serves one proxy connection: registration on the control stream while the engine is
// healthy, and one goroutine per request stream.
func (w *Worker) session(ctx context.Context, addr string, c *transport.Conn) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w.mu.Lock()
	p := w.proxies[addr]
	p.conn, p.Connected, p.Attestation, p.Image = c, true, c.Peer().Label(), c.Peer().ImageHash.String()
	w.mu.Unlock()
	defer w.setProxy(addr, c, func(p *proxyState) { p.conn, p.Connected, p.Registered = nil, false, false })

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(2)
	go func() {
		defer wg.Done()
		w.register(ctx, addr, c)
		cancel()
	}()
	go func() {
		defer wg.Done()
		for {
			s, err := c.AcceptStream(ctx)
			if err != nil {
				cancel()
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.serve(ctx, c, s)
			}()
		}
	}()
	select {
	case <-ctx.Done():
	case <-c.Done():
	}
	cancel()
}

// register keeps the proxy's view of this worker in step with the engine's health.
func (w *Worker) register(ctx context.Context, addr string, c *transport.Conn) {
	pay := paysync.Start(w.cfg.States, c.Peer().Claims.PaymentKey, c, w.log.With().Str("proxy", addr).Logger())
	registered := false
	for {
		changed := w.healthChanged()
		up := w.healthy.Load()
		if up != registered {
			var err error
			if up {
				err = c.SendControl(&wire.Register{Model: w.cfg.Model, WeightsDigest: w.cfg.WeightsDigest,
					Coefficient: w.cfg.Coefficient, MaxActive: uint32(w.cfg.MaxActive), OwnerAddress: w.cfg.OwnerAddress})
			} else {
				err = c.SendControl(&wire.Unregister{Reason: "engine not answering"})
				w.setProxy(addr, c, func(p *proxyState) { p.Registered = false })
			}
			if err != nil {
				return
			}
			registered = up
		}
		select {
		case <-ctx.Done():
			return
		case <-c.Done():
			return
		case <-changed:
		case m, ok := <-c.Control():
			if !ok {
				return
			}
			if pay.Handle(m) {
				continue
			}
			switch m := m.(type) {
			case *wire.Registered:
				w.setProxy(addr, c, func(p *proxyState) { p.Registered = true })
				w.log.Info().Str("proxy", addr).Str("worker_id", m.GetWorkerId()).Msg("registered")
			case *wire.Error:
				w.log.Error().Str("proxy", addr).Uint32("code", m.GetCode()).Str("reason", m.GetMessage()).Msg("proxy refused registration")
				return
			}
		}
	}
}
