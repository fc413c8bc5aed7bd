package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// HeaderSize is the size of a frame header: 4 length bytes and 1 type byte.
const HeaderSize = 5

// DefaultMaxFrameSize bounds one frame unless configured otherwise: large enough for long prompts,
// small enough that a hostile peer cannot make a node allocate much.
const DefaultMaxFrameSize = 8 << 20

// ErrFrameTooLarge is returned for a frame whose declared size exceeds the limit.
var ErrFrameTooLarge = errors.New("frame too large")

// ErrMalformedFrame is returned for a frame that cannot be a valid frame (zero length).
var ErrMalformedFrame = errors.New("malformed frame")

// AppendFrame appends a frame header for a payload of n bytes of type t.
func AppendFrame(dst []byte, t Type, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)+1))
	dst = append(dst, byte(t))
	return append(dst, payload...)
}

// FrameReader reads frames from a stream, reusing one buffer.
type FrameReader struct {
	r   io.Reader
	max int
	hdr [HeaderSize]byte
	buf []byte
}

// NewFrameReader reads frames of at most maxSize bytes (type and payload); 0 means DefaultMaxFrameSize.
func NewFrameReader(r io.Reader, maxSize int) *FrameReader {
	if maxSize <= 0 {
		maxSize = DefaultMaxFrameSize
	}
	return &FrameReader{r: r, max: maxSize}
}

// Next reads one frame. The payload is valid until the next call. At a clean end of stream between
// frames it returns io.EOF; inside a frame, io.ErrUnexpectedEOF.
func (f *FrameReader) Next() (Type, []byte, error) {
	if _, err := io.ReadFull(f.r, f.hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(f.hdr[:4]))
	if n == 0 {
		return 0, nil, ErrMalformedFrame
	}
	if n > f.max {
		return 0, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, f.max)
	}
	size := n - 1
	if cap(f.buf) < size {
		f.buf = make([]byte, size)
	}
	f.buf = f.buf[:size]
	if _, err := io.ReadFull(f.r, f.buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return Type(f.hdr[4]), f.buf, nil
}
