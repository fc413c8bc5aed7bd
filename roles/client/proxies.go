package client

import (
	"context"
	"sync"
	"time"

	"github.com/cocoon-network/cocoon/roles/internal/paysync"
	"github.com/cocoon-network/cocoon/roles/internal/redial"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// failPenalty is how long a proxy that failed a request goes to the back of the queue.
const failPenalty = 30 * time.Second

// proxy is one configured proxy and the state of our connection to it.
type proxy struct {
	addr string

	mu          sync.Mutex
	conn        *transport.Conn // nil while disconnected
	attestation string          // "tdx" or "simulated", from the verified certificate
	imageHash   string
	rtt         time.Duration
	connectedAt time.Time
	lastFail    time.Time // last request failure blamed on this proxy
	lastErr     string    // why the last dial or connection failed
	connects    uint64
}

func newProxy(addr string) *proxy { return &proxy{addr: addr} }

// current returns the live connection, if any, and when the proxy last failed a request.
func (p *proxy) current() (*transport.Conn, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conn, p.lastFail
}

func (p *proxy) up(conn *transport.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conn = conn
	p.attestation = conn.Peer().Label()
	p.imageHash = conn.Peer().ImageHash.String()
	p.connectedAt = time.Now()
	p.rtt = 0
	p.lastErr = ""
	p.connects++
}

// down records that conn (nil: the one being dialled) is gone, unless a replacement already took its place.
func (p *proxy) down(conn *transport.Conn, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != conn {
		return
	}
	p.conn = nil
	if err != nil {
		p.lastErr = err.Error()
	}
}

func (p *proxy) failed() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastFail = time.Now()
}

func (p *proxy) setRTT(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rtt = d
}

// target is a proxy with the connection a request will use.
type target struct {
	p    *proxy
	conn *transport.Conn
}

// keep holds one connection to p until ctx ends (redial.Loop: backoff, replacement of a draining
// connection), keeping p's state and waking waiting requests on every change.
func (c *Client) keep(ctx context.Context, p *proxy) {
	redial.Loop(ctx, p.addr, c.tc, c.backoff, c.log, func(ctx context.Context, conn *transport.Conn) {
		p.up(conn)
		c.notify()
		c.session(ctx, p, conn)
		p.down(conn, conn.Err())
		c.notify()
	}, redial.Hooks{DialFailed: func(err error) { p.down(nil, err) }})
}

// session watches a live connection until it ends or ctx does, measuring its round-trip time.
func (c *Client) session(ctx context.Context, p *proxy, conn *transport.Conn) {
	var wg sync.WaitGroup
	defer wg.Wait()
	// The proxy sends the new signed "charged" total after each request; keep the latest.
	pay := paysync.Start(c.cfg.States, conn.Peer().Claims.PaymentKey, conn, c.log.With().Str("proxy", p.addr).Logger())
	wg.Go(func() {
		for m := range conn.Control() {
			if !pay.Handle(m) {
				c.log.Debug().Str("proxy", p.addr).Type("message", m).Msg("ignored control message")
			}
		}
	})
	ping := func() {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if rtt, err := conn.Ping(pctx); err == nil {
			p.setRTT(rtt)
		}
	}
	ping()
	t := time.NewTicker(c.pingEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = conn.Close(wire.CodeShutdown, "client stopping")
			<-conn.Done()
			return
		case <-conn.Done():
			return
		case <-t.C:
			ping()
		}
	}
}

// notify wakes requests waiting for a proxy connection.
func (c *Client) notify() {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	close(c.connCh)
	c.connCh = make(chan struct{})
}

func (c *Client) changes() <-chan struct{} {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	return c.connCh
}

// candidates lists the connected proxies in the order a request tries them: round-robin, with
// proxies that failed recently moved to the back.
func (c *Client) candidates() []target {
	n := len(c.proxies)
	start := int(c.rr.Add(1) % uint64(n))
	var fresh, penalised []target
	for i := range n {
		p := c.proxies[(start+i)%n]
		conn, lastFail := p.current()
		if conn == nil {
			continue
		}
		if !lastFail.IsZero() && time.Since(lastFail) < failPenalty {
			penalised = append(penalised, target{p, conn})
		} else {
			fresh = append(fresh, target{p, conn})
		}
	}
	return append(fresh, penalised...)
}

// waitCandidates returns the candidates, waiting up to connectWait for a first connection so that
// requests arriving just after start-up or during a proxy restart do not fail at once.
func (c *Client) waitCandidates(ctx context.Context) []target {
	t := time.NewTimer(c.connectWait)
	defer t.Stop()
	for {
		ch := c.changes()
		if ts := c.candidates(); len(ts) > 0 {
			return ts
		}
		select {
		case <-ch:
		case <-t.C:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}
