package proxy

import (
	"context"
	"fmt"
	"sync"

	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// serveClient serves a client connection: one goroutine per stream.
func (p *Proxy) serveClient(ctx context.Context, c *transport.Conn) {
	p.stats.clients.Add(1)
	defer p.stats.clients.Add(-1)
	p.log.Info().Str("client", c.RemoteAddr().String()).Msg("client connected")
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		// Clients send no control messages today; drain so the control stream never blocks.
		for range c.Control() {
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
			p.serveStream(ctx, s)
		}()
	}
}

func (p *Proxy) serveStream(ctx context.Context, s *transport.Stream) {
	m, err := s.Recv()
	if err != nil {
		s.Cancel(wire.CodeProtocol)
		return
	}
	switch m := m.(type) {
	case *wire.Request:
		p.relay(ctx, s, m)
	case *wire.ModelsRequest:
		_ = s.Send(&wire.ModelsList{Models: p.reg.models()})
		_ = s.CloseSend()
	default:
		_ = s.Send(&wire.Error{Code: uint32(wire.CodeProtocol), Message: fmt.Sprintf("unexpected %T", m)})
		_ = s.CloseSend()
	}
}
