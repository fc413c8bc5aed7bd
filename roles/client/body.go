package client

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
)

// budget bounds the bytes of request bodies being read or held, all connections together: each
// request takes its declared length (the body limit when undeclared) before it reads a byte, and
// gives it back when it is done with the body.
type budget struct {
	mu      sync.Mutex
	free    int64
	changed chan struct{} // closed and replaced whenever bytes are given back
}

func newBudget(n int64) *budget { return &budget{free: n, changed: make(chan struct{})} }

// take waits until n bytes are free or ctx ends; it reports whether it took them.
func (b *budget) take(ctx context.Context, n int64) bool {
	for {
		b.mu.Lock()
		if b.free >= n {
			b.free -= n
			b.mu.Unlock()
			return true
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return false
		}
	}
}

func (b *budget) give(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.free += n
	close(b.changed)
	b.changed = make(chan struct{})
}

// inUse is how many bytes are taken, for stats.
func (b *budget) inUse(total int64) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return total - b.free
}

// readBody reads r to its end. A declared length (the budget took it already) is allocated at
// once, so the body costs exactly that; an undeclared one grows as bytes arrive, never beyond size.
// r must end by size: a Content-Length body does, a http.MaxBytesReader fails past its limit.
func readBody(r io.Reader, size int64, declared bool) ([]byte, error) {
	if declared {
		buf := make([]byte, size)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return buf, atEnd(r)
	}
	buf := make([]byte, 0, min(size, 16<<10))
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) >= size {
				return buf, atEnd(r)
			}
			buf = slices.Grow(buf, int(min(int64(cap(buf)), size-int64(len(buf)))))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// atEnd checks that r has nothing more to give.
func atEnd(r io.Reader) error {
	var probe [1]byte
	switch _, err := io.ReadFull(r, probe[:]); err {
	case io.EOF:
		return nil
	case nil:
		return errors.New("request body longer than its length")
	default:
		return err
	}
}

// limitListener accepts at most n connections at a time; further ones wait in the kernel's queue
// until one closes (golang.org/x/net/netutil.LimitListener, without the dependency).
type limitListener struct {
	net.Listener
	slots chan struct{}
	done  chan struct{}
	once  sync.Once
}

func newLimitListener(l net.Listener, n int) *limitListener {
	return &limitListener{Listener: l, slots: make(chan struct{}, n), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
