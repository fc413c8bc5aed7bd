package gpu

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readAll returns the events of a stream and the error that ended it.
func readAll(r *SSEReader) ([]string, error) {
	var evs []string
	for {
		data, err := r.Next()
		if err != nil {
			return evs, err
		}
		evs = append(evs, string(data))
	}
}

func TestSSEReader(t *testing.T) {
	testCases := map[string]struct {
		in      string
		max     int
		want    []string
		wantErr error
	}{
		"vllm stream": {
			in:      "data: {\"a\":1}\n\ndata: {\"a\":2}\n\ndata: [DONE]\n\n",
			want:    []string{`{"a":1}`, `{"a":2}`},
			wantErr: io.EOF,
		},
		"no space after colon": {
			in:      "data:{\"a\":1}\n\ndata:[DONE]\n\n",
			want:    []string{`{"a":1}`},
			wantErr: io.EOF,
		},
		"only one space stripped": {
			in:      "data:  x\n\ndata: [DONE]\n\n",
			want:    []string{" x"},
			wantErr: io.EOF,
		},
		"multi-line data": {
			in:      "data: a\ndata: b\ndata:\n\ndata: [DONE]\n\n",
			want:    []string{"a\nb\n"},
			wantErr: io.EOF,
		},
		"comments, other fields and empty events": {
			in:      ": keep-alive\n\nevent: message\nid: 7\nretry: 10\ndata: x\n\n\n\ndata\n\nevent: only\n\ndata: [DONE]\n\n",
			want:    []string{"x"},
			wantErr: io.EOF,
		},
		"CRLF": {
			in:      "data: a\r\n\r\ndata: b\r\ndata: c\r\n\r\ndata: [DONE]\r\n\r\n",
			want:    []string{"a", "b\nc"},
			wantErr: io.EOF,
		},
		"bare CR": {
			in:      "data: a\r\rdata: [DONE]\r\r",
			want:    []string{"a"},
			wantErr: io.EOF,
		},
		"DONE with spaces": {
			in:      "data: x\n\ndata:  [DONE] \n\n",
			want:    []string{"x"},
			wantErr: io.EOF,
		},
		"ends without DONE": {
			in:      "data: a\n\n",
			want:    []string{"a"},
			wantErr: io.ErrUnexpectedEOF,
		},
		"ends inside a line": {
			in:      "data: a\n\ndata: {\"partial",
			want:    []string{"a"},
			wantErr: io.ErrUnexpectedEOF,
		},
		"last event without blank line": {
			in:      "data: a\n\ndata: [DONE]\n",
			want:    []string{"a"},
			wantErr: io.EOF,
		},
		"empty stream": {
			in:      "",
			wantErr: io.ErrUnexpectedEOF,
		},
		"event too large": {
			in:      "data: 0123456789\n\n",
			max:     8,
			wantErr: ErrEventTooLarge,
		},
		"multi-line event too large": {
			in:      "data: 01234\ndata: 56789\n\n",
			max:     10,
			wantErr: ErrEventTooLarge,
		},
		"line too large": {
			in:      ": " + strings.Repeat("x", 200) + "\n\n",
			max:     8,
			wantErr: ErrEventTooLarge,
		},
		"event at the limit": {
			in:      "data: 01234567\n\ndata: [DONE]\n\n",
			max:     8,
			want:    []string{"01234567"},
			wantErr: io.EOF,
		},
	}
	readers := map[string]func(string) io.Reader{
		"whole":    func(s string) io.Reader { return strings.NewReader(s) },
		"one byte": func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
		"half":     func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) },
	}
	for name, tc := range testCases {
		for rname, mk := range readers {
			t.Run(name+"/"+rname, func(t *testing.T) {
				assert := assert.New(t)
				r := NewSSEReader(mk(tc.in), tc.max)
				evs, err := readAll(r)
				assert.Equal(tc.want, evs)
				assert.ErrorIs(err, tc.wantErr)
				assert.Equal(errors.Is(tc.wantErr, io.EOF), r.Done())
				// Errors are sticky.
				_, err2 := r.Next()
				assert.ErrorIs(err2, tc.wantErr)
			})
		}
	}
}

func TestSSEReaderReadError(t *testing.T) {
	assert := assert.New(t)
	boom := errors.New("boom")
	r := NewSSEReader(io.MultiReader(strings.NewReader("data: a\n\ndata: b"), iotest.ErrReader(boom)), 0)
	evs, err := readAll(r)
	assert.Equal([]string{"a"}, evs)
	assert.ErrorIs(err, boom)
	assert.False(r.Done())
}

func TestSSEReaderReset(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	r := NewSSEReader(strings.NewReader("data: a\n\ndata: [DONE]\n\n"), 0)
	evs, err := readAll(r)
	require.ErrorIs(err, io.EOF)
	assert.Equal([]string{"a"}, evs)
	r.Reset(strings.NewReader("data: b\n\n"))
	assert.False(r.Done())
	evs, err = readAll(r)
	assert.ErrorIs(err, io.ErrUnexpectedEOF)
	assert.Equal([]string{"b"}, evs)
}

// vllmStream is a stream shaped like vLLM's: a role chunk, content chunks,
// a usage chunk and [DONE].
func vllmStream(chunks int) []byte {
	var b bytes.Buffer
	head := `{"id":"chatcmpl-0123456789abcdef","object":"chat.completion.chunk","created":1700000000,"model":"meta-llama/Llama-3.1-8B-Instruct",`
	b.WriteString("data: " + head + `"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}` + "\n\n")
	for i := range chunks {
		fmt.Fprintf(&b, "data: %s\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%s\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n", head, strings.Repeat(string(rune('a'+i%26)), 128))
	}
	b.WriteString("data: " + head + `"choices":[],"usage":{"prompt_tokens":16,"total_tokens":66,"completion_tokens":50,"prompt_tokens_details":{"cached_tokens":8}}}` + "\n\n")
	b.WriteString("data: [DONE]\n\n")
	return b.Bytes()
}

// naiveSSE is a straightforward reference parser for FuzzSSE.
func naiveSSE(in string) (evs []string, done bool) {
	in = strings.ReplaceAll(in, "\r\n", "\n")
	in = strings.ReplaceAll(in, "\r", "\n")
	lines := strings.Split(in, "\n")
	lines = lines[:len(lines)-1] // a partial last line is dropped
	var data []string
	dispatch := func() bool {
		d := strings.Join(data, "\n")
		data = nil
		if d == "" {
			return false
		}
		if strings.TrimSpace(d) == "[DONE]" {
			done = true
			return true
		}
		evs = append(evs, d)
		return false
	}
	for _, l := range lines {
		if l == "" {
			if dispatch() {
				return evs, true
			}
			continue
		}
		if l[0] == ':' {
			continue
		}
		field, value, found := strings.Cut(l, ":")
		if found {
			value = strings.TrimPrefix(value, " ")
		}
		if field == "data" {
			data = append(data, value)
		}
	}
	dispatch()
	return evs, done
}

func FuzzSSE(f *testing.F) {
	f.Add(vllmStream(3))
	f.Add([]byte("data: a\r\n\r\ndata:b\rdata: c\r\r: x\n\ndata: [DONE]\n\n"))
	f.Add([]byte("data\n\ndata:\ndata:\n\nid: 1\nevent: e\ndata: x"))
	f.Add([]byte("data: " + strings.Repeat("y", 300) + "\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 256
		wantEvs, wantDone := naiveSSE(string(in))
		tooLarge := false
		for _, e := range wantEvs {
			tooLarge = tooLarge || len(e) > limit
		}
		for _, r := range []io.Reader{bytes.NewReader(in), iotest.OneByteReader(bytes.NewReader(in))} {
			sr := NewSSEReader(r, limit)
			evs, err := readAll(sr)
			for _, e := range evs {
				if len(e) > limit {
					t.Fatalf("event of %d bytes over the %d limit", len(e), limit)
				}
			}
			if errors.Is(err, ErrEventTooLarge) {
				continue // the naive parser has no limit; lines can be long too
			}
			if tooLarge {
				t.Fatalf("no ErrEventTooLarge for an event over the limit")
			}
			if !slicesEqual(evs, wantEvs) {
				t.Fatalf("events %q, want %q", evs, wantEvs)
			}
			if sr.Done() != wantDone {
				t.Fatalf("done %v, want %v", sr.Done(), wantDone)
			}
			if wantDone != errors.Is(err, io.EOF) || (!wantDone && !errors.Is(err, io.ErrUnexpectedEOF)) {
				t.Fatalf("err %v with done %v", err, wantDone)
			}
		}
	})
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// BenchmarkSSE reads a vLLM stream of 50 tokens; "buffered" also asks after each event whether
// the next one has already arrived, as the worker's relay does.
func BenchmarkSSE(b *testing.B) {
	for _, buffered := range []bool{false, true} {
		b.Run(map[bool]string{false: "next", true: "buffered"}[buffered], func(b *testing.B) {
			stream := vllmStream(50)
			src := bytes.NewReader(stream)
			r := NewSSEReader(src, 0)
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			for b.Loop() {
				src.Reset(stream)
				r.Reset(src)
				n := 0
				for {
					if _, err := r.Next(); err != nil {
						break
					}
					n++
					if buffered {
						_ = r.Buffered()
					}
				}
				if n != 52 {
					b.Fatalf("%d events", n)
				}
			}
		})
	}
}

// TestSSEBufferedWholeEvent: Buffered is true only when a whole next event has been read; a part
// of one (the engine's next token not yet written) would make a relay hold the event it has.
func TestSSEBufferedWholeEvent(t *testing.T) {
	testCases := map[string]struct {
		rest string
		want bool
	}{
		"nothing":                {rest: "", want: false},
		"part of the next event": {rest: "data: {\"b\"", want: false},
		"next data line, no end": {rest: "data: {\"b\":1}\n", want: false},
		"whole next event":       {rest: "data: {\"b\":1}\n\n", want: true},
		"whole, CRLF":            {rest: "data: {\"b\":1}\r\n\r\n", want: true},
		"a comment only":         {rest: ": keep-alive\n\n", want: false},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			r := NewSSEReader(strings.NewReader("data: {\"a\":1}\n\n"+tc.rest), 0)
			ev, err := r.Next()
			require.NoError(t, err)
			assert.JSONEq(t, `{"a":1}`, string(ev))
			assert.Equal(t, tc.want, r.Buffered())
		})
	}
}

// FuzzSSEBuffered: Buffered agrees with a plain reading of the rule (a whole event with data
// lines is read), whatever the bytes and wherever the reads split them.
func FuzzSSEBuffered(f *testing.F) {
	f.Add([]byte("data: a\r\n\r\ndata: b\n\n"))
	f.Add([]byte("data: a\rdata: b\r\r"))
	f.Add([]byte(": c\n\ndata\r\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		sr := NewSSEReader(iotest.HalfReader(bytes.NewReader(in)), 0)
		for range 64 {
			want := bufferedRule(sr.buf[sr.start:sr.end], sr.skipLF)
			if got := sr.Buffered(); got != want {
				t.Fatalf("Buffered %v over %q (skip LF %v), want %v", got, sr.buf[sr.start:sr.end], sr.skipLF, want)
			}
			if _, err := sr.Next(); err != nil {
				return
			}
		}
	})
}

// bufferedRule is Buffered's rule spelled out: lines end at CR, LF or CRLF; a blank line after a
// data line ends an event.
func bufferedRule(b []byte, skipLF bool) bool {
	if skipLF && len(b) > 0 && b[0] == '\n' {
		b = b[1:]
	}
	hasData := false
	for len(b) > 0 {
		i := bytes.IndexAny(b, "\r\n")
		if i < 0 {
			return false
		}
		line := b[:i]
		if b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n' {
			i++
		}
		b = b[i+1:]
		if len(line) == 0 && hasData {
			return true
		}
		hasData = hasData || bytes.HasPrefix(line, []byte("data"))
	}
	return false
}
