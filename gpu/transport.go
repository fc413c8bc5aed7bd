package gpu

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"

	"github.com/cocoon-network/cocoon/transport/burst"
)

// engineTransport is the HTTP/1.1 client of the worker's engine. A request is written, and its
// answer read, on the caller's goroutine, over a keep-alive connection from a bounded pool.
//
// net/http's Transport keeps a reading and a writing goroutine and a 4 KiB buffer each way for
// every connection, and a worker holds one engine connection for every answer being generated,
// so those were most of what an open stream cost the worker. Here a connection keeps its read
// buffer only; a request is written through a pooled buffer. Requests and responses are written
// and parsed by net/http itself (Request.Write, ReadResponse).
//
// It never goes through an HTTP proxy from the environment: the engine is local, and prompts must
// not leave the confidential VM. It never asks for compression, which would make the engine
// buffer SSE chunks; the engine is on the same host or network anyway.
type engineTransport struct {
	addr          string // host:port
	tls           *tls.Config
	dialer        net.Dialer
	headerTimeout time.Duration
	maxIdle       int
	idleTimeout   time.Duration

	writers sync.Pool // *bufio.Writer: only while a request is being written

	mu     sync.Mutex
	idle   []*engineConn // oldest first
	closed bool
}

// Idle connections older than idleConnTimeout are closed rather than reused; the engine may have
// closed its end already. The read buffer is fitted to a token's event (a few hundred bytes):
// every open answer holds one for as long as it streams, and longer header lines and events
// are still read whole (header lines are joined; the event reader reads past the buffer).
const (
	idleConnTimeout = 90 * time.Second
	connReadBuffer  = 1 << 10
	connWriteBuffer = 4 << 10
)

// errStale is a reused connection that the engine closed before answering: the request is sent
// again on a new connection, once, as net/http does.
var errStale = errors.New("engine closed the kept-alive connection")

func newEngineTransport(u *url.URL, cfg HTTPConfig) *engineTransport {
	t := &engineTransport{
		addr:          u.Host,
		dialer:        net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second},
		headerTimeout: cfg.ResponseHeaderTimeout,
		maxIdle:       cfg.MaxConns,
		idleTimeout:   idleConnTimeout,
	}
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		t.addr = net.JoinHostPort(u.Hostname(), port)
	}
	if u.Scheme == "https" {
		t.tls = &tls.Config{ServerName: u.Hostname(), NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}
	}
	return t
}

// engineConn is one connection to the engine and its read buffer, which holds nothing between
// two exchanges.
//
// An engine writes every event of a stream on its own, and a worker busy with other answers
// finds several waiting: read through the 1 KiB buffer alone they cost a syscall per kilobyte.
// Once a read filled that buffer, a plain TCP connection is read with a raw read into a pooled
// burst buffer instead, borrowed only for the syscall and kept only while it holds unread bytes,
// so a waiting answer holds no more than before and a burst takes one syscall. A TLS connection
// is read through its own record buffer.
type engineConn struct {
	net.Conn
	raw       syscall.RawConn // nil: Conn is read with Read (rawConn)
	spill     burst.Buffer
	br        *bufio.Reader
	read      int64 // bytes read in the current exchange
	idleSince time.Time
}

func newEngineConn(nc net.Conn) *engineConn {
	c := &engineConn{Conn: nc, raw: rawConn(nc)}
	c.br = bufio.NewReaderSize(c, connReadBuffer)
	return c
}

func (c *engineConn) Read(p []byte) (int, error) {
	n, err := c.readBurst(p)
	c.read += int64(n)
	return n, err
}

func (c *engineConn) readBurst(p []byte) (int, error) {
	switch {
	case c.spill.Len() > 0:
		return c.spill.Take(p)
	case c.raw == nil:
		return c.Conn.Read(p)
	case c.spill.Direct(p):
		return c.spill.ReadDirect(p, c.Conn.Read)
	}
	return c.fillRaw(p)
}

// RoundTrip sends req on a kept-alive connection or a new one and returns the answer once its
// headers arrived. The body is read from the connection as the caller reads it; closing it
// returns the connection to the pool if the whole body was read, and closes it otherwise.
func (t *engineTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	for retried := false; ; retried = true {
		c, reused, err := t.conn(req.Context())
		if err != nil {
			closeRequestBody(req)
			return nil, err
		}
		resp, err := t.exchange(req, c)
		if err == nil {
			return resp, nil
		}
		_ = c.Close()
		if cerr := req.Context().Err(); cerr != nil {
			return nil, cerr
		}
		if !reused || !errors.Is(err, errStale) || retried || req.GetBody == nil {
			return nil, err
		}
		body, gerr := req.GetBody()
		if gerr != nil {
			return nil, err
		}
		again := *req
		again.Body = body
		req = &again
	}
}

// exchange writes req on c and reads the answer's headers.
func (t *engineTransport) exchange(req *http.Request, c *engineConn) (*http.Response, error) {
	c.read = 0
	// The request's end closes the connection, which ends a write or read blocked on it.
	stop := context.AfterFunc(req.Context(), func() { _ = c.Conn.Close() })
	bw, _ := t.writers.Get().(*bufio.Writer)
	if bw == nil {
		bw = bufio.NewWriterSize(c, connWriteBuffer)
	} else {
		bw.Reset(c)
	}
	err := req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	t.writers.Put(bw)
	if err != nil {
		stop()
		return nil, fmt.Errorf("write engine request: %w: %w", errStale, err)
	}
	if t.headerTimeout > 0 {
		_ = c.SetReadDeadline(time.Now().Add(t.headerTimeout))
	}
	var resp *http.Response
	for {
		resp, err = http.ReadResponse(c.br, req)
		// An informational answer (100 Continue, 103 Early Hints) comes before the real one.
		if err != nil || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	switch {
	case err == nil:
	case c.read == 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)):
		stop()
		return nil, fmt.Errorf("read engine answer: %w: %w", errStale, err)
	case isTimeout(err):
		stop()
		return nil, fmt.Errorf("read engine answer: no response headers within %s: %w", t.headerTimeout, err)
	default:
		stop()
		return nil, fmt.Errorf("read engine answer: %w", err)
	}
	resp.Body = &engineBody{ctx: req.Context(), t: t, c: c, body: resp.Body, stop: stop, keep: !resp.Close && !req.Close, eof: resp.Body == http.NoBody}
	return resp, nil
}

// conn takes the most recently used idle connection that is not too old, or dials a new one.
func (t *engineTransport) conn(ctx context.Context) (c *engineConn, reused bool, err error) {
	t.mu.Lock()
	for n := len(t.idle); n > 0; n = len(t.idle) {
		c = t.idle[n-1]
		t.idle[n-1] = nil
		t.idle = t.idle[:n-1]
		if time.Since(c.idleSince) < t.idleTimeout {
			t.mu.Unlock()
			return c, true, nil
		}
		_ = c.Close()
	}
	t.mu.Unlock()
	nc, err := t.dialer.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, false, fmt.Errorf("dial engine: %w", err)
	}
	if t.tls != nil {
		tc := tls.Client(nc, t.tls)
		hctx, cancel := context.WithTimeout(ctx, t.dialer.Timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = nc.Close()
			return nil, false, fmt.Errorf("engine TLS handshake: %w", err)
		}
		nc = tc
	}
	return newEngineConn(nc), false, nil
}

// put keeps c for the next request, unless the pool is full or closed.
func (t *engineTransport) put(c *engineConn) {
	c.idleSince = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	// The oldest are first: drop those too old to be used.
	for len(t.idle) > 0 && time.Since(t.idle[0].idleSince) >= t.idleTimeout {
		_ = t.idle[0].Close()
		t.idle = t.idle[1:]
	}
	if t.closed || len(t.idle) >= t.maxIdle {
		_ = c.Close()
		return
	}
	t.idle = append(t.idle, c)
}

// CloseIdleConnections closes the connections kept for later requests (http.Client.CloseIdleConnections).
func (t *engineTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, c := range idle {
		_ = c.Close()
	}
}

// close closes the idle connections and keeps none from now on.
func (t *engineTransport) close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.CloseIdleConnections()
}

// engineBody is an answer's body: read from its connection, which goes back to the pool once the
// body was read to its end and closed.
type engineBody struct {
	ctx  context.Context // the request's
	t    *engineTransport
	c    *engineConn
	body io.ReadCloser
	stop func() bool
	keep bool // the answer allows the connection to be used again
	eof  bool
	done bool
}

func (b *engineBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, errors.New("read engine answer: body closed")
	}
	n, err := b.body.Read(p)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		b.eof = true
	case b.ctx.Err() != nil:
		// The request's end closed the connection: that is the cause, not the closed connection.
		return n, context.Cause(b.ctx)
	}
	return n, err
}

// Close never reads what is left of the body (a stream may never end): a body not read to its
// end closes its connection.
func (b *engineBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	if !b.stop() {
		return nil // the request's end closed the connection already
	}
	if b.eof && b.keep && b.c.br.Buffered() == 0 && b.c.spill.Len() == 0 {
		b.t.put(b.c)
		return nil
	}
	return b.c.Close()
}

func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
