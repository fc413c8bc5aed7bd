// Package burst reads everything a connection has already received in one call, through a
// buffer borrowed from a pool only while it holds bytes not yet read.
//
// A reader that waits for data holds a buffer the whole time it waits. For a stream held open
// mid-answer that is memory per open stream, so the roles read through small buffers (1 KiB),
// and a burst of chunks that arrived together then takes one read call, and one syscall or one
// lock of QUIC's stream, per kilobyte. A Buffer lets the wait happen without a buffer and the
// read that follows take the whole burst.
//
// Only once a read filled what its caller asked for, though: data that comes a little at a time
// (tokens as an engine spaces them) is read straight into the caller's buffer, which costs one
// read as before, where the wait and the pooled read would cost two.
//
// It imports nothing of cocoon, so that gpu (the engine's connections) uses it as transport does.
package burst

import "sync"

// Size is the buffer a read borrows: what a burst of a few dozen chunks fills. A caller asking for
// this much or more reads into its own buffer instead.
const Size = 16 << 10

var pool = sync.Pool{New: func() any { b := make([]byte, Size); return &b }}

// Buffer keeps what one read took beyond what its caller asked for. The zero value is empty and
// holds no memory. Not safe for concurrent use.
type Buffer struct {
	box  *[]byte // from pool, while rest is not empty
	rest []byte  // read, not yet taken
	err  error   // returned with the last of rest
	// more: the last read filled what its caller asked for, so more is probably waiting.
	more bool
}

// Direct reports whether a read into p should go straight into p, with ReadDirect: nothing is
// kept, and either the last read did not fill its caller's buffer or p is as large as a burst
// buffer. Otherwise the read should wait for data holding no buffer, then Fill.
func (b *Buffer) Direct(p []byte) bool {
	return len(b.rest) == 0 && (!b.more || len(p) >= Size)
}

// ReadDirect reads into p with read and notes whether it filled p.
func (b *Buffer) ReadDirect(p []byte, read func([]byte) (int, error)) (int, error) {
	n, err := read(p)
	b.more = len(p) > 0 && n == len(p)
	return n, err
}

// Len is the number of bytes read and not yet taken.
func (b *Buffer) Len() int { return len(b.rest) }

// Take copies what is kept into p. Once nothing is left, the buffer goes back to the pool and
// the error of the read that filled it, if any, is returned.
func (b *Buffer) Take(p []byte) (int, error) {
	n := copy(p, b.rest)
	b.rest = b.rest[n:]
	if len(b.rest) > 0 {
		return n, nil
	}
	err := b.err
	b.release()
	return n, err
}

// Fill calls read once, with a buffer of Size bytes from the pool, copies what it read into p
// and keeps the rest for Take. A read that returns nothing gives the buffer back at once, so a
// read that has to wait can be retried without holding it. The Buffer must be empty.
func (b *Buffer) Fill(p []byte, read func([]byte) (int, error)) (int, error) {
	box := pool.Get().(*[]byte)
	n, err := read(*box)
	if n <= 0 {
		pool.Put(box)
		return 0, err
	}
	b.more = n >= len(p) // a direct read would have filled p
	b.box, b.rest, b.err = box, (*box)[:n], err
	return b.Take(p)
}

// Release gives the buffer back and drops what it kept.
func (b *Buffer) Release() { b.release() }

func (b *Buffer) release() {
	if b.box != nil {
		pool.Put(b.box)
	}
	b.box, b.rest, b.err = nil, nil, nil
}
