package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cocoon-network/cocoon/roles/internal/paysync"
	"github.com/cocoon-network/cocoon/roles/internal/proxyset"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// errRegistrationRefused is a proxy that answered the worker's registration with an error.
var errRegistrationRefused = errors.New("proxy refused registration")

// session serves one proxy connection: registration on the control stream while the engine is
// healthy, and one goroutine per request stream. When the proxy leaves the set, the worker
// unregisters, takes no new request stream and closes the connection once the requests under way
// finish. A proxy without the payment key the registry lists, or that refuses the registration,
// is retried only after the slow backoff.
func (w *Worker) session(ctx context.Context, m *member, c *transport.Conn) {
	release := m.Hold()
	defer release()
	if err := proxyset.CheckPaymentKey(m.Target, c.Peer()); err != nil {
		w.noteRefusal(m, proxyset.Refusal(err), err)
		_ = c.Close(wire.CodeProtocol, "payment key mismatch")
		m.Wait(ctx, w.refusalBackoff)
		return
	}
	w.noteRefusal(m, "", nil)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// taking is the part of the session that takes new work: registration and request streams.
	taking, stopTaking := context.WithCancel(ctx)
	defer stopTaking()
	p := m.Value
	w.mu.Lock()
	p.conn, p.Connected, p.Attestation, p.Image = c, true, c.Peer().Label(), c.Peer().ImageHash.String()
	w.mu.Unlock()
	defer w.setProxy(p, c, func(p *proxyState) { p.conn, p.Connected, p.Registered = nil, false, false })

	var wg, requests sync.WaitGroup
	var refusal error
	wg.Go(func() {
		refusal = w.register(taking, m, c)
		select {
		case <-m.Retired():
		default:
			cancel()
		}
	})
	wg.Go(func() {
		for {
			s, err := c.AcceptStream(taking)
			if err != nil {
				if taking.Err() == nil {
					cancel()
				}
				return
			}
			requests.Go(func() { w.serve(ctx, c, s) })
		}
	})
	select {
	case <-ctx.Done():
	case <-c.Done():
	case <-m.Retired():
		stopTaking()
		finished := make(chan struct{})
		go func() {
			requests.Wait()
			close(finished)
		}()
		select {
		case <-finished:
		case <-ctx.Done():
		case <-c.Done():
		}
		// Linger briefly: closing at once would discard answer frames and the payment state for the
		// last request that the proxy has not acknowledged yet.
		linger := time.NewTimer(retireLinger)
		select {
		case <-linger.C:
		case <-ctx.Done():
		case <-c.Done():
		}
		linger.Stop()
		w.log.Info().Str("proxy", m.Target.Label()).Msg("proxy left the set: its requests finished, closing")
		_ = c.Close(wire.CodeShutdown, "proxy no longer listed")
	}
	cancel()
	wg.Wait()
	requests.Wait()
	if refusal != nil {
		w.noteRefusal(m, refusal.Error(), refusal)
		m.Wait(ctx, w.refusalBackoff)
	}
}

// register keeps the proxy's view of this worker in step with the engine's health until ctx ends
// or the proxy leaves the set (the worker then unregisters). It returns the proxy's refusal of
// the registration, if that is why it ended.
func (w *Worker) register(ctx context.Context, m *member, c *transport.Conn) error {
	p, addr := m.Value, m.Target.Endpoint
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
				w.setProxy(p, c, func(p *proxyState) { p.Registered = false })
			}
			if err != nil {
				return nil
			}
			registered = up
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.Done():
			return nil
		case <-m.Retired():
			if registered {
				_ = c.SendControl(&wire.Unregister{Reason: "proxy no longer listed for this worker"})
			}
			w.setProxy(p, c, func(p *proxyState) { p.Registered = false })
			return nil
		case <-changed:
		case msg, ok := <-c.Control():
			if !ok {
				return nil
			}
			if pay.Handle(msg) {
				continue
			}
			switch msg := msg.(type) {
			case *wire.Registered:
				w.setProxy(p, c, func(p *proxyState) { p.Registered = true })
				w.log.Info().Str("proxy", addr).Str("worker_id", msg.GetWorkerId()).Msg("registered")
			case *wire.Error:
				w.log.Error().Str("proxy", addr).Uint32("code", msg.GetCode()).Str("reason", msg.GetMessage()).Msg("proxy refused registration")
				return fmt.Errorf("%w: %s", errRegistrationRefused, msg.GetMessage())
			}
		}
	}
}

// retireLinger is how long a worker keeps the connection to a proxy that left its set open after
// the last request on it finished, so that the proxy receives the end of that answer and the
// worker its payment state.
const retireLinger = time.Second
