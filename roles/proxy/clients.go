package proxy

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// serveClient serves a client connection: one goroutine per stream.
func (p *Proxy) serveClient(ctx context.Context, c *transport.Conn) {
	p.stats.clients.Add(1)
	defer p.stats.clients.Add(-1)
	log := p.log.With().Str("client", c.RemoteAddr().String()).Logger()
	rq := requester{conn: c}
	if pm := p.cfg.Payments; pm != nil {
		acct, err := pm.Account(c.Peer().Claims.PublicKey)
		if err != nil {
			log.Warn().Err(err).Msg("no paying account for the client's key")
			_ = c.Close(wire.CodeBadRequest, "no paying account for this client key")
			return
		}
		rq.account = acct
		log = log.With().Str("account", acct.ToRaw()).Logger()
	}
	log.Info().Msg("client connected")
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for m := range c.Control() {
			ps, ok := m.(*wire.PaymentState)
			switch {
			case !ok:
			case len(ps.GetSigned()) == 0:
				// An empty state asks for the latest one.
				p.sendCurrent(c, rq.account, settle.KindClientCharged, log)
			default:
				if err := p.checkState(ps); err != nil {
					log.Warn().Err(err).Msg("client's payment state refused")
				}
			}
		}
	}()
	for {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rq
			r.stream = s
			p.serveStream(ctx, r)
		}()
	}
}

func (p *Proxy) serveStream(ctx context.Context, rq requester) {
	s := rq.stream
	// Once the stream's exchange is over nothing more is read from it (a sealed request's side stays
	// open for its answers to offers until then): the client's end of it, which may come after
	// the request frame, must not hold the stream and its slot open.
	defer s.CloseRead()
	t, payload, err := s.RecvFrame()
	if err != nil {
		s.Cancel(wire.CodeProtocol)
		return
	}
	m, err := wire.Unmarshal(t, payload)
	if err != nil {
		s.Cancel(wire.CodeProtocol)
		return
	}
	switch m := m.(type) {
	case *wire.Request:
		// Decoded once for the routing fields; the worker gets the payload as the client sent it.
		p.relay(ctx, rq, inbound{req: m, payload: bytes.Clone(payload)})
	case *wire.ModelsRequest:
		_ = s.Send(&wire.ModelsList{Models: p.reg.models()})
		_ = s.CloseSend()
	default:
		_ = s.Send(&wire.Error{Code: uint32(wire.CodeProtocol), Message: fmt.Sprintf("unexpected %T", m)})
		_ = s.CloseSend()
	}
}
