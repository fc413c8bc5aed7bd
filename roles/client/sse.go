package client

import (
	"bytes"
	"fmt"
	"net/http"
)

// sseWriter writes Server-Sent Events exactly as OpenAI does and flushes as soon as no further
// event is already waiting, so every chunk reaches the app the moment it arrives from the proxy,
// and a burst of chunks that arrived together costs one write to the app instead of one each.
type sseWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf []byte
	n   int64 // bytes written, for logs and stats
	// pending reports that more of the answer has already arrived; nil: never.
	pending func() bool
}

func newSSEWriter(w http.ResponseWriter) *sseWriter {
	return &sseWriter{w: w, rc: http.NewResponseController(w)}
}

// data writes one event. A payload containing newlines becomes several data lines, which SSE
// readers join back with "\n"; engines never send that, but it must not break the framing.
func (s *sseWriter) data(p []byte) error {
	s.buf = s.buf[:0]
	for {
		line, rest, more := bytes.Cut(p, []byte{'\n'})
		s.buf = append(s.buf, "data: "...)
		s.buf = append(s.buf, bytes.TrimSuffix(line, []byte{'\r'})...)
		s.buf = append(s.buf, '\n')
		if !more {
			break
		}
		p = rest
	}
	s.buf = append(s.buf, '\n')
	n, err := s.w.Write(s.buf)
	s.n += int64(n)
	if err != nil {
		return fmt.Errorf("write event: %w", err)
	}
	if s.pending != nil && s.pending() {
		return nil // the next event follows at once; it flushes both
	}
	return s.flush()
}

func (s *sseWriter) flush() error {
	if err := s.rc.Flush(); err != nil {
		return fmt.Errorf("flush event: %w", err)
	}
	return nil
}

// doneEvent ends a successful stream.
var doneEvent = []byte("[DONE]")
