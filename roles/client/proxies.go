package client

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/cocoon-network/cocoon/roles/internal/paysync"
	"github.com/cocoon-network/cocoon/roles/internal/proxyset"
	"github.com/cocoon-network/cocoon/roles/internal/redial"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// failPenalty is how long a proxy that failed a request goes to the back of the queue.
const failPenalty = 30 * time.Second

// ProxyTarget is a proxy the client may use: the endpoint to dial, the payment key the registry
// lists for it (nil for a proxy configured by hand) and a name for logs.
type ProxyTarget = proxyset.Target

// ErrPaymentKeyMismatch is a proxy that presents another payment key than the registry lists for
// its endpoint; the client sends it nothing and tries again slowly.
var ErrPaymentKeyMismatch = proxyset.ErrPaymentKeyMismatch

// member is a proxy in the client's set of connected proxies.
type member = proxyset.Member[*proxy]

// proxy is one proxy the client connects to and the state of our connection to it.
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
	inFlight    int           // requests under way on it, on every connection
	retired     bool          // out of the set: takes no new request
	idle        chan struct{} // once retired, closed when the last request ended

	// Connections beside conn, opened while every one was full (extra.go).
	loads      map[*transport.Conn]*connLoad // per live connection, and per gone one still carrying requests
	extra      []*transport.Conn
	perConn    int    // requests that fill a connection
	grow       func() // dials one more connection
	dialing    bool   // one more is being dialled
	growFailed time.Time
	room       chan struct{} // closed when a request ends or a connection comes up, for requests waiting for one
}

func newProxy(t ProxyTarget) *proxy { return &proxy{addr: t.Endpoint} }

// current returns the live connection, if any, and when the proxy last failed a request.
func (p *proxy) current() (*transport.Conn, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conn, p.lastFail
}

func (p *proxy) up(conn *transport.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.conn
	p.conn = conn
	if old != nil {
		p.forgetIfGone(old) // replaced while it drained
	}
	p.attestation = conn.Peer().Label()
	p.imageHash = conn.Peer().ImageHash.String()
	p.connectedAt = time.Now()
	p.rtt = 0
	p.lastErr = ""
	p.connects++
	p.wake()
}

// down records that conn (nil: the one being dialled) is gone, unless a replacement already took its place.
func (p *proxy) down(conn *transport.Conn, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != conn {
		return
	}
	p.conn = nil
	if conn != nil {
		p.forgetIfGone(conn)
	}
	p.wake()
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

// retire stops p taking requests and returns a channel closed once those under way ended.
func (p *proxy) retire() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.retired = true
	ch := make(chan struct{})
	if p.inFlight == 0 {
		close(ch)
		return ch
	}
	p.idle = ch
	return ch
}

// target is a proxy with the connection a request will use.
type target struct {
	p    *proxy
	conn *transport.Conn
}

// keep holds one connection to m's proxy until ctx ends (redial.Loop: backoff, replacement of a
// draining connection), keeping the proxy's state and waking waiting requests on every change.
// A proxy that does not present the payment key its target names is closed at once and dialled
// again only after the slow backoff.
func (c *Client) keep(ctx context.Context, m *member) {
	p := m.Value
	var extras sync.WaitGroup
	defer extras.Wait()
	p.setGrowth(c.streamsPerConn, func() { extras.Go(func() { c.extraConn(ctx, m) }) })
	defer p.setGrowth(c.streamsPerConn, nil) // before the Wait: none starts after it
	redial.Loop(ctx, p.addr, c.tc, c.backoff, c.log, func(ctx context.Context, conn *transport.Conn) {
		release := m.Hold()
		defer release()
		if err := proxyset.CheckPaymentKey(m.Target, conn.Peer()); err != nil {
			p.down(nil, err)
			c.noteRefusal(m, err)
			_ = conn.Close(wire.CodeProtocol, "payment key mismatch")
			m.Wait(ctx, c.refusalBackoff)
			return
		}
		c.noteRefusal(m, nil)
		p.up(conn)
		c.notify()
		lost := c.session(ctx, m, conn)
		p.down(conn, conn.Err())
		c.notify()
		if lost {
			c.reselectSoon()
		}
	}, redial.Hooks{DialFailed: func(err error) {
		p.down(nil, err)
		c.noteRefusal(m, err)
	}})
}

// noteRefusal records why m's proxy refused us or we it (err nil or not a refusal: it did not), and
// logs each new reason once. Refusals by our own attestation policy are logged by redial.
func (c *Client) noteRefusal(m *member, err error) {
	reason := proxyset.Refusal(err)
	if !m.Refused(reason) || reason == "" {
		return
	}
	c.reselectSoon()
	if errors.Is(err, transport.ErrPeerRefused) {
		return
	}
	c.log.Error().Str("proxy", m.Target.Label()).Str("endpoint", m.Target.Endpoint).Str("reason", reason).
		Msg("proxy not used: refused; retrying slowly")
}

// session watches a live connection until it ends, ctx does or the proxy leaves the set,
// measuring its round-trip time. It reports whether the connection was lost (not ended by us).
func (c *Client) session(ctx context.Context, m *member, conn *transport.Conn) (lost bool) {
	p := m.Value
	var wg sync.WaitGroup
	defer wg.Wait()
	c.takeStates(&wg, p, conn)
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
	retired, leaving := m.Retired(), false
	for {
		select {
		case <-ctx.Done():
			_ = conn.Close(wire.CodeShutdown, "client stopping")
			<-conn.Done()
			return false
		case <-conn.Done():
			return !leaving
		case <-retired:
			// Out of the set: no new requests; those under way finish, then the connection closes.
			retired, leaving = nil, true
			idle := p.retire()
			c.notify()
			wg.Go(func() {
				select {
				case <-idle:
				case <-conn.Done():
				}
				_ = conn.Close(wire.CodeShutdown, "proxy no longer used")
			})
			c.log.Info().Str("proxy", m.Target.Label()).Msg("proxy leaves the set: closing once its requests finish")
		case <-t.C:
			ping()
		}
	}
}

// takeStates keeps the newest signed "charged" total the proxy sends on conn, which it does after
// the requests it charges, until conn's control stream ends.
func (c *Client) takeStates(wg *sync.WaitGroup, p *proxy, conn *transport.Conn) {
	pay := paysync.Start(c.cfg.States, conn.Peer().Claims.PaymentKey, conn, c.log.With().Str("proxy", p.addr).Logger())
	wg.Go(func() {
		for msg := range conn.Control() {
			if !pay.Handle(msg) {
				c.log.Debug().Str("proxy", p.addr).Type("message", msg).Msg("ignored control message")
			}
		}
	})
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

// candidates lists the connected proxies in the order a request tries them: fewest requests under
// way first, round-robin among equals, with proxies that failed recently moved to the back.
func (c *Client) candidates() []target {
	members := c.set.Members()
	n := len(members)
	if n == 0 {
		return nil
	}
	start := int(c.rr.Add(1) % uint64(n))
	type ranked struct {
		target
		penalised bool
		inFlight  int
	}
	var rs []ranked
	for i := range n {
		p := members[(start+i)%n].Value
		p.mu.Lock()
		conn, lastFail, inFlight, retired := p.conn, p.lastFail, p.inFlight, p.retired
		p.mu.Unlock()
		if conn == nil || retired {
			continue
		}
		rs = append(rs, ranked{target{p, conn}, !lastFail.IsZero() && time.Since(lastFail) < failPenalty, inFlight})
	}
	slices.SortStableFunc(rs, func(a, b ranked) int {
		if a.penalised != b.penalised {
			if a.penalised {
				return 1
			}
			return -1
		}
		return a.inFlight - b.inFlight
	})
	out := make([]target, len(rs))
	for i, r := range rs {
		out[i] = r.target
	}
	return out
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
