package client

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cocoon-network/cocoon/roles/internal/proxyset"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// A proxy accepts transport.DefaultMaxStreams request streams at once per client connection, and
// a request over that waits in OpenStream for one to end. So while every connection to a proxy
// is full, the client opens one more beside it, up to maxExtraConns, and closes each once it has
// been idle for extraIdle. The proxy bounds them with its connections per address.
const (
	maxExtraConns    = 7
	defaultExtraIdle = 30 * time.Second
	// extraRetry is how long after a failed extra dial requests wait on the full connections
	// instead of dialling again.
	extraRetry = 5 * time.Second
)

// Why acquire found no connection: the proxy left the set, or its connection went down, since
// the request chose it.
var (
	errProxyRetired = errors.New("proxy left the set")
	errNoConn       = errors.New("proxy not connected")
)

// connLoad is what one connection to a proxy carries.
type connLoad struct {
	requests  int       // under way
	idleSince time.Time // when requests last fell to zero
}

// setGrowth is called by keep before the first connection: perConn requests fill a connection,
// and grow dials one more.
func (p *proxy) setGrowth(perConn int, grow func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.perConn, p.grow = perConn, grow
}

// acquire counts a request on p and returns the connection it goes on: the first, then each
// extra one, that has a free stream. While all are full it asks for one more connection and
// waits for it, or for a request to end; when no more may be opened it takes the least busy,
// whose OpenStream waits. It fails once p is retired (proxy left the set) or not connected.
func (p *proxy) acquire(ctx context.Context) (*transport.Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.retired {
			return nil, errProxyRetired
		}
		conn, n := p.leastBusy()
		if conn == nil {
			return nil, errNoConn
		}
		if n < p.perConn || !p.mayGrow() {
			p.take(conn)
			return conn, nil
		}
		if !p.dialing {
			p.dialing = true
			p.grow()
		}
		room := p.roomCh()
		p.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			p.mu.Lock()
			return nil, ctx.Err()
		}
		p.mu.Lock()
	}
}

// leastBusy returns the first live connection with a free stream, else the least busy one; nil
// when there is none. p.mu is held.
func (p *proxy) leastBusy() (*transport.Conn, int) {
	var best *transport.Conn
	bestN := 0
	consider := func(c *transport.Conn) bool {
		if c == nil || c.IsDraining() {
			return false
		}
		n := p.load(c).requests
		if best == nil || n < bestN {
			best, bestN = c, n
		}
		return n < p.perConn
	}
	if consider(p.conn) {
		return best, bestN
	}
	for _, c := range p.extra {
		if consider(c) {
			return c, p.load(c).requests
		}
	}
	if best == nil && p.conn != nil {
		// Every connection drains: the first one's replacement is on its way.
		best, bestN = p.conn, p.load(p.conn).requests
	}
	return best, bestN
}

// mayGrow reports whether one more connection may be dialled now. p.mu is held.
func (p *proxy) mayGrow() bool {
	return p.grow != nil && len(p.extra) < maxExtraConns && time.Since(p.growFailed) >= extraRetry
}

func (p *proxy) load(c *transport.Conn) *connLoad {
	l := p.loads[c]
	if l == nil {
		if p.loads == nil {
			p.loads = map[*transport.Conn]*connLoad{}
		}
		l = &connLoad{idleSince: time.Now()}
		p.loads[c] = l
	}
	return l
}

func (p *proxy) take(c *transport.Conn) {
	p.load(c).requests++
	p.inFlight++
}

// release ends a request acquire counted on c.
func (p *proxy) release(c *transport.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inFlight--
	if l := p.loads[c]; l != nil {
		l.requests--
		if l.requests == 0 {
			l.idleSince = time.Now()
			p.forgetIfGone(c)
		}
	}
	p.wake()
	if p.retired && p.inFlight == 0 && p.idle != nil {
		close(p.idle)
		p.idle = nil
	}
}

// forgetIfGone drops c's load once c is neither live nor carrying requests. p.mu is held.
func (p *proxy) forgetIfGone(c *transport.Conn) {
	if l := p.loads[c]; l != nil && l.requests == 0 && c != p.conn && !p.isExtra(c) {
		delete(p.loads, c)
	}
}

func (p *proxy) isExtra(c *transport.Conn) bool {
	for _, e := range p.extra {
		if e == c {
			return true
		}
	}
	return false
}

// roomCh is closed at the next change that may give a waiting request room. p.mu is held.
func (p *proxy) roomCh() <-chan struct{} {
	if p.room == nil {
		p.room = make(chan struct{})
	}
	return p.room
}

// wake lets the requests waiting for room look again. p.mu is held.
func (p *proxy) wake() {
	if p.room != nil {
		close(p.room)
		p.room = nil
	}
}

// grown records the end of an extra dial: conn, or nil when it failed.
func (p *proxy) grown(conn *transport.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dialing = false
	if conn == nil {
		p.growFailed = time.Now()
	} else {
		p.extra = append(p.extra, conn)
		p.load(conn)
	}
	p.wake()
}

// shed takes conn out of the extra connections if it carries nothing and has been idle for idle
// (or p is retired, or conn drains), and reports whether it did: conn may then be closed, as no
// request can pick it any more.
func (p *proxy) shed(conn *transport.Conn, idle time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.load(conn)
	if l.requests > 0 || !(p.retired || conn.IsDraining() || time.Since(l.idleSince) >= idle) {
		return false
	}
	p.dropExtra(conn)
	return true
}

// dropExtra forgets conn, an extra connection that closed or is closing. p.mu is held.
func (p *proxy) dropExtra(conn *transport.Conn) {
	for i, e := range p.extra {
		if e == conn {
			p.extra = append(p.extra[:i], p.extra[i+1:]...)
			break
		}
	}
	p.forgetIfGone(conn)
	p.wake()
}

// connCount is how many connections to p are live.
func (p *proxy) connCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.extra)
	if p.conn != nil {
		n++
	}
	return n
}

// extraConn dials one more connection to m's proxy for requests that find every connection full,
// and serves it until it has been idle for c.extraIdle, the proxy leaves the set, the connection
// ends or ctx does. Its payment states are taken as on the first connection.
func (c *Client) extraConn(ctx context.Context, m *member) {
	p := m.Value
	conn, err := transport.Dial(ctx, p.addr, c.tc)
	if err == nil {
		if err = proxyset.CheckPaymentKey(m.Target, conn.Peer()); err != nil {
			_ = conn.Close(wire.CodeProtocol, "payment key mismatch")
		}
	}
	if err != nil {
		p.grown(nil)
		if ctx.Err() == nil {
			c.log.Warn().Str("proxy", p.addr).Err(err).
				Msg("every connection to the proxy is full and another could not be opened: requests wait for a free stream")
		}
		return
	}
	release := m.Hold()
	defer release()
	p.grown(conn)
	c.log.Debug().Str("proxy", p.addr).Int("connections", p.connCount()).Msg("every connection was full: opened another")
	var wg sync.WaitGroup
	defer wg.Wait()
	c.takeStates(&wg, p, conn)
	t := time.NewTicker(max(c.extraIdle/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = conn.Close(wire.CodeShutdown, "client stopping")
			<-conn.Done()
			p.closed(conn)
			return
		case <-conn.Done():
			p.closed(conn)
			return
		case <-t.C:
			if p.shed(conn, c.extraIdle) {
				_ = conn.Close(wire.CodeShutdown, "idle")
				<-conn.Done()
				return
			}
		}
	}
}

// closed forgets conn, an extra connection that ended.
func (p *proxy) closed(conn *transport.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropExtra(conn)
}
