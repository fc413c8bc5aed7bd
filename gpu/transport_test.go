package gpu_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/settle"
)

// rawEngine is an engine on a plain TCP listener: serve answers each request that arrives on
// connection number conn (from 1), as raw bytes, and reports whether to read the next request
// on the same connection. It returns the engine's URL and the count of connections accepted.
func rawEngine(t *testing.T, serve func(conn int, w io.Writer, req *http.Request) (more bool)) (string, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var (
		conns atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		open  []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n := int(conns.Add(1))
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					if !serve(n, c, req) {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range open {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "http://" + l.Addr().String(), &conns
}

// sseAnswer is a whole streamed chat answer of one token and its usage, chunked, kept alive.
func sseAnswer(extraHeaders string) string {
	events := []string{
		`data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}` + "\n\n",
		`data: {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}}` + "\n\n",
		"data: [DONE]\n\n",
	}
	var b strings.Builder
	b.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n" + extraHeaders + "\r\n")
	for _, e := range events {
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(e), e)
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

var oneToken = settle.Usage{PromptTokens: 2, CompletionTokens: 1}

func chat(t *testing.T, e *gpu.HTTPEngine) (settle.Usage, error) {
	t.Helper()
	var c collector
	return e.Do(ctxT(t), gpu.Request{Kind: gpu.KindChat, Body: []byte(chatBody), Stream: true}, c.sink)
}

// TestEngineConnectionReused: answers read to their end leave their connection for the next
// request, also after an informational answer before the real one.
func TestEngineConnectionReused(t *testing.T) {
	url, conns := rawEngine(t, func(_ int, w io.Writer, req *http.Request) bool {
		_, _ = io.WriteString(w, "HTTP/1.1 100 Continue\r\n\r\n"+sseAnswer(""))
		return true
	})
	e := newEngine(t, url)
	for range 5 {
		u, err := chat(t, e)
		require.NoError(t, err)
		assert.Equal(t, oneToken, u)
	}
	assert.EqualValues(t, 1, conns.Load())
}

// TestEngineClosedKeptConnection: an engine that closes a kept-alive connection without saying
// so (it restarted, or its idle timeout passed) costs the next request nothing: it is sent again,
// once, on a new connection.
func TestEngineClosedKeptConnection(t *testing.T) {
	url, conns := rawEngine(t, func(_ int, w io.Writer, _ *http.Request) bool {
		_, _ = io.WriteString(w, sseAnswer(""))
		return false // closes the connection after one answer that let it be kept
	})
	e := newEngine(t, url)
	for i := range 3 {
		u, err := chat(t, e)
		require.NoError(t, err, "request %d", i)
		assert.Equal(t, oneToken, u)
	}
	assert.EqualValues(t, 3, conns.Load())
}

// TestEngineConnectionNotReused: a connection goes back to the pool only when its answer was read
// to the end, allowed it, and left nothing after it.
func TestEngineConnectionNotReused(t *testing.T) {
	testCases := map[string]string{
		"engine says close":       sseAnswer("Connection: close\r\n"),
		"bytes after the answer":  sseAnswer("") + "HTTP/1.1 200 OK\r\n",
		"body left unread (size)": "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("x", 100000),
	}
	for name, answer := range testCases {
		t.Run(name, func(t *testing.T) {
			url, conns := rawEngine(t, func(_ int, w io.Writer, _ *http.Request) bool {
				_, _ = io.WriteString(w, answer)
				return true
			})
			e := newEngine(t, url, func(c *gpu.HTTPConfig) { c.MaxErrorBody = 10 })
			for range 2 {
				_, _ = chat(t, e)
			}
			assert.EqualValues(t, 2, conns.Load())
		})
	}
}

// TestEngineNoHeaders: an engine that takes the request and never answers fails it once the
// header timeout passes, with an error that says so.
func TestEngineNoHeaders(t *testing.T) {
	release := make(chan struct{})
	url, _ := rawEngine(t, func(int, io.Writer, *http.Request) bool {
		<-release
		return false
	})
	t.Cleanup(func() { close(release) })
	e := newEngine(t, url, func(c *gpu.HTTPConfig) { c.ResponseHeaderTimeout = 50 * time.Millisecond })
	_, err := chat(t, e)
	require.ErrorContains(t, err, "no response headers within 50ms")
}

// TestEngineIdleConnectionsBounded: at most MaxConns connections wait for the next request.
func TestEngineIdleConnectionsBounded(t *testing.T) {
	var (
		arrived  sync.WaitGroup
		requests atomic.Int64
	)
	arrived.Add(3)
	url, conns := rawEngine(t, func(_ int, w io.Writer, _ *http.Request) bool {
		if requests.Add(1) <= 3 {
			arrived.Done()
			arrived.Wait() // three requests at once: three connections
		}
		_, _ = io.WriteString(w, sseAnswer(""))
		return true
	})
	e := newEngine(t, url, func(c *gpu.HTTPConfig) { c.MaxConns = 1 })
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			_, err := chat(t, e)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	require.EqualValues(t, 3, conns.Load())
	// One of the three was kept: three requests in a row use it and open none.
	for range 3 {
		_, err := chat(t, e)
		require.NoError(t, err)
	}
	assert.EqualValues(t, 3, conns.Load())
}

// TestEngineLinesBeyondReadBuffer: the connection's read buffer is fitted to a token's event
// (1 KiB), not to the longest line: a 6 KiB header and a 6 KiB event still arrive whole.
func TestEngineLinesBeyondReadBuffer(t *testing.T) {
	long := strings.Repeat("x", 6<<10)
	url, _ := rawEngine(t, func(_ int, w io.Writer, _ *http.Request) bool {
		event := `data: {"choices":[{"index":0,"delta":{"content":"` + long + `"}}]}` + "\n\n"
		answer := sseAnswer("X-Engine-Note: " + long + "\r\n")
		head, rest, _ := strings.Cut(answer, "\r\n\r\n")
		_, _ = fmt.Fprintf(w, "%s\r\n\r\n%x\r\n%s\r\n%s", head, len(event), event, rest)
		return true
	})
	e := newEngine(t, url)
	var c collector
	u, err := e.Do(ctxT(t), gpu.Request{Kind: gpu.KindChat, Body: []byte(chatBody), Stream: true}, c.sink)
	require.NoError(t, err)
	assert.Equal(t, oneToken, u)
	assert.Contains(t, strings.Join(c.chunks, ""), long)
}
