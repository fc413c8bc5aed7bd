package transport

import (
	"github.com/quic-go/quic-go"

	"github.com/cocoon-network/cocoon/transport/burst"
)

// streamReader reads a QUIC stream a burst at a time once a read filled its buffer: it waits for
// data with a one-byte Peek, which holds no buffer, then takes everything QUIC already has for the
// stream in one Read (which does not wait once data is there). A stream held open and idle keeps
// no burst buffer, and a relay sees the whole burst as buffered (Stream.FrameBuffered), so it
// writes it out in one go. Frames that come one at a time are read directly, one Read each.
type streamReader struct {
	s     *quic.Stream
	spill burst.Buffer
	one   [1]byte
}

func (r *streamReader) Read(p []byte) (int, error) {
	if r.spill.Len() > 0 {
		return r.spill.Take(p)
	}
	if r.spill.Direct(p) {
		return r.spill.ReadDirect(p, r.s.Read)
	}
	if _, err := r.s.Peek(r.one[:]); err != nil {
		return 0, err
	}
	return r.spill.Fill(p, r.s.Read)
}
