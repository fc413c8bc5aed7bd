package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/cocoon-network/cocoon/transport/wire"
)

// Payload reads grow by at most what already arrived, between these bounds: a peer that declares
// a large frame and sends nothing more makes the reader hold firstChunk bytes, not the frame.
const (
	firstChunk = 4 << 10
	maxChunk   = 64 << 10
)

// frameReader reads the frames of wire/frame.go. It checks the declared length against its
// limit, then grows its buffer only as payload bytes arrive, never to the declared length up
// front. The buffer is reused: it keeps what an earlier frame of this stream actually filled.
type frameReader struct {
	r   io.Reader
	max int
	hdr [wire.HeaderSize]byte
	buf []byte
}

// next reads one frame; the payload is valid until the next call. At a clean end of stream
// between frames it returns io.EOF; inside a frame, io.ErrUnexpectedEOF.
func (f *frameReader) next() (wire.Type, []byte, error) {
	if _, err := io.ReadFull(f.r, f.hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(f.hdr[:4])
	if n == 0 {
		return 0, nil, wire.ErrMalformedFrame
	}
	if uint64(n) > uint64(f.max) {
		return 0, nil, fmt.Errorf("%w: %d bytes, limit %d", wire.ErrFrameTooLarge, n, f.max)
	}
	size := int(n) - 1
	f.buf = f.buf[:0]
	for len(f.buf) < size {
		step := min(size-len(f.buf), max(firstChunk, min(len(f.buf), maxChunk)))
		f.buf = slices.Grow(f.buf, step)
		got, err := io.ReadFull(f.r, f.buf[len(f.buf):len(f.buf)+step])
		f.buf = f.buf[:len(f.buf)+got]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, err
		}
	}
	return wire.Type(f.hdr[4]), f.buf, nil
}
