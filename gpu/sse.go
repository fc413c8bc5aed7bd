package gpu

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxEventSize bounds one SSE event. An engine chunk is a few hundred
// bytes; a megabyte leaves room for large tool-call or logprobs chunks while
// keeping a misbehaving engine from growing our buffers without bound.
const DefaultMaxEventSize = 1 << 20

const sseInitialBuffer = 1 << 10

var doneMarker = []byte("[DONE]")

// SSEReader reads the data payloads of a Server-Sent Events stream as
// OpenAI-compatible engines send them. It handles "data:" with or without a
// space, multi-line data (joined with "\n"), comments, CR, LF and CRLF line
// ends, events split across reads and the final "[DONE]" event. Fields other
// than data (event, id, retry) are ignored, since OpenAI streams do not use
// them.
//
// Buffers are reused from event to event, so a steady stream allocates
// nothing; they grow as needed up to the maximum event size.
type SSEReader struct {
	r      io.Reader
	max    int
	buf    []byte // buf[start:end] is read but not yet parsed
	start  int
	end    int
	data   []byte // data of the event being assembled
	rerr   error  // error from r, returned once buffered lines are used up
	err    error  // sticky error returned by Next
	skipLF bool   // the last line ended with a CR at the end of the buffer
	done   bool
}

// NewSSEReader returns a reader of r's events. maxEvent bounds the size of one
// event's data (and of any single line); zero or less means
// DefaultMaxEventSize.
func NewSSEReader(r io.Reader, maxEvent int) *SSEReader {
	if maxEvent <= 0 {
		maxEvent = DefaultMaxEventSize
	}
	return &SSEReader{r: r, max: maxEvent}
}

// Reset makes the reader read from r as if it were new, keeping its buffers.
func (s *SSEReader) Reset(r io.Reader) {
	*s = SSEReader{r: r, max: s.max, buf: s.buf[:0], data: s.data[:0]}
}

// Buffered reports whether a whole next event, data lines and the blank line that ends it, was
// already read: Next will return it without another read from the engine. A relay then holds the
// event it has and sends both together; a part of the next event does not count, or the relay
// would hold a lone token until the engine's next one.
func (s *SSEReader) Buffered() bool {
	b := s.buf[s.start:s.end]
	if s.skipLF && len(b) > 0 && b[0] == '\n' {
		b = b[1:]
	}
	hasData := false
	for len(b) > 0 {
		i := lineEnd(b)
		if i < 0 {
			return false // a line not yet ended
		}
		line := b[:i]
		if b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n' {
			i++
		}
		b = b[i+1:]
		switch {
		case len(line) == 0:
			if hasData {
				return true
			}
		case bytes.HasPrefix(line, []byte("data")):
			hasData = true
		}
	}
	return false
}

// lineEnd is the index of the first CR or LF in b, or -1: what bytes.IndexAny(b, "\r\n") says,
// with two vectorised byte searches instead of a loop over every byte, as it runs for every
// event a relay forwards.
func lineEnd(b []byte) int {
	lf := bytes.IndexByte(b, '\n')
	scan := b
	if lf >= 0 {
		scan = b[:lf]
	}
	if cr := bytes.IndexByte(scan, '\r'); cr >= 0 {
		return cr
	}
	return lf
}

// Done reports whether the stream ended with the [DONE] event.
func (s *SSEReader) Done() bool { return s.done }

// Next returns the data of the next event. The slice is valid until the next
// call. After the [DONE] event Next returns io.EOF; if the stream ends without
// it Next returns io.ErrUnexpectedEOF. An event or line larger than the
// maximum gives an error wrapping ErrEventTooLarge. Errors are sticky.
func (s *SSEReader) Next() ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	s.data = s.data[:0]
	hasData := false
	for {
		line, err := s.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				// Be lenient with an engine that closes the stream right after
				// a complete data line without the blank line that ends the
				// event: the lines are complete, so the event is too.
				if hasData && len(s.data) > 0 {
					return s.dispatch()
				}
				err = io.ErrUnexpectedEOF
			}
			s.err = err
			return nil, err
		}
		if len(line) == 0 {
			if hasData && len(s.data) > 0 {
				return s.dispatch()
			}
			// An event without data is not dispatched (as in the SSE spec).
			hasData = false
			s.data = s.data[:0]
			continue
		}
		if line[0] == ':' {
			continue // comment, e.g. a keep-alive
		}
		field, value := line, line[len(line):]
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		if string(field) != "data" {
			continue
		}
		extra := len(value)
		if hasData {
			extra++
		}
		if len(s.data)+extra > s.max {
			s.err = fmt.Errorf("read sse event: %w (over %d bytes)", ErrEventTooLarge, s.max)
			return nil, s.err
		}
		if hasData {
			s.data = append(s.data, '\n')
		}
		s.data = append(s.data, value...)
		hasData = true
	}
}

func (s *SSEReader) dispatch() ([]byte, error) {
	if bytes.Equal(bytes.TrimSpace(s.data), doneMarker) {
		s.done = true
		s.err = io.EOF
		return nil, io.EOF
	}
	return s.data, nil
}

// readLine returns the next line without its terminator, valid until the
// next call. It returns io.EOF (or r's error) when no complete line is left;
// a partial last line is dropped, as the SSE spec says.
func (s *SSEReader) readLine() ([]byte, error) {
	for {
		if s.skipLF && s.start < s.end {
			if s.buf[s.start] == '\n' {
				s.start++
			}
			s.skipLF = false
		}
		b := s.buf[s.start:s.end]
		if i := lineEnd(b); i >= 0 {
			s.start += i + 1
			if b[i] == '\r' {
				if i+1 < len(b) {
					if b[i+1] == '\n' {
						s.start++
					}
				} else {
					s.skipLF = true // CR at the end of what we have: a following LF belongs to it
				}
			}
			return b[:i], nil
		}
		if s.rerr != nil {
			return nil, s.rerr
		}
		if err := s.fill(); err != nil {
			return nil, err
		}
	}
}

// fill reads more input, compacting and growing the buffer as needed.
func (s *SSEReader) fill() error {
	if s.start > 0 {
		n := copy(s.buf[:cap(s.buf)], s.buf[s.start:s.end])
		s.start, s.end = 0, n
	}
	// A line may hold a whole event plus its field name and line end.
	limit := s.max + 64
	if s.end == cap(s.buf) {
		if cap(s.buf) >= limit {
			s.err = fmt.Errorf("read sse line: %w (over %d bytes)", ErrEventTooLarge, s.max)
			return s.err
		}
		size := max(2*cap(s.buf), sseInitialBuffer)
		size = min(size, limit)
		nb := make([]byte, size)
		copy(nb, s.buf[:s.end])
		s.buf = nb
	}
	s.buf = s.buf[:cap(s.buf)]
	for range 100 {
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		if err != nil {
			if !errors.Is(err, io.EOF) {
				err = fmt.Errorf("read sse stream: %w", err)
			}
			s.rerr = err
			return nil
		}
		if n > 0 {
			return nil
		}
	}
	s.rerr = io.ErrNoProgress
	return nil
}
