package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
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

// Payload reads grow by at most what already arrived, between these bounds: a peer that declares
// a large frame and sends nothing more makes the reader hold firstChunk bytes, not the frame.
const (
	firstChunk = 4 << 10
	maxChunk   = 64 << 10
)

// FrameReader reads frames from a stream. It checks the declared length against its limit, then
// grows its buffer only as payload bytes arrive, never to the declared length up front, so a peer
// pins only the memory it actually sent. The buffer is reused: it keeps what an earlier frame of
// this stream actually filled.
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

// errTooLarge is a call of its own: Next stays on the stack of every goroutine that waits for a
// frame, and the formatting's temporaries would make its frame twice as large.
//
//go:noinline
func errTooLarge(n uint32, limit int) error {
	return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, limit)
}

// Next reads one frame. The payload is valid until the next call. At a clean end of stream between
// frames it returns io.EOF; inside a frame, io.ErrUnexpectedEOF.
func (f *FrameReader) Next() (Type, []byte, error) {
	if _, err := io.ReadFull(f.r, f.hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(f.hdr[:4])
	if n == 0 {
		return 0, nil, ErrMalformedFrame
	}
	if uint64(n) > uint64(f.max) {
		return 0, nil, errTooLarge(n, f.max)
	}
	if err := f.payload(int(n) - 1); err != nil {
		return 0, nil, err
	}
	return Type(f.hdr[4]), f.buf, nil
}

// payload reads the size bytes after a frame's header into f.buf, growing it as FrameReader says.
// It is a call of its own: Next waits for the header on the stack of every goroutine that reads
// frames, and the loop's temporaries would double its frame.
//
//go:noinline
func (f *FrameReader) payload(size int) error {
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
			return err
		}
	}
	return nil
}
