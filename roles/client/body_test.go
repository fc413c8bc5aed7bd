package client

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/transport"
)

// withClient adjusts the built client (its test-only tuning).
func withClient(f func(*Client)) harnessOption {
	return func(_ testing.TB, _ *Config, _ *transport.Config, c *Client) {
		if c != nil {
			f(c)
		}
	}
}

// dial opens a raw connection to the client's API; it is closed at the end of the test.
func (h *harness) dial(t testing.TB) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", h.c.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// postHead is the head of a chat completion whose body is declared but not yet sent.
func postHead(length int64) string {
	return "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
		"Content-Length: " + strconv.FormatInt(length, 10) + "\r\n\r\n"
}

// readResponse reads one answer from conn, failing the test if none comes within d.
func readResponse(t testing.TB, conn net.Conn, d time.Duration) (*http.Response, string) {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(d)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "no answer within %s", d)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	_ = resp.Body.Close()
	return resp, string(b)
}

// TestDeclaredBodyOverLimit: a Content-Length over the limit is refused before any of the body is
// read, so the app learns at once and no memory is set aside for it.
func TestDeclaredBodyOverLimit(t *testing.T) {
	testCases := map[string]struct{ length int64 }{
		"one byte over": {length: 1<<20 + 1},
		"far over":      {length: 1 << 40},
	}
	stub := newStub(t, answerStream)
	h := startClient(t, []*stubProxy{stub}, withConfig(func(c *Config) { c.MaxBodyBytes = 1 << 20 }))
	h.waitConnected(t, 1)
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			conn := h.dial(t)
			_, err := io.WriteString(conn, postHead(tc.length))
			require.NoError(err)
			resp, body := readResponse(t, conn, 5*time.Second)
			assert.Equal(http.StatusRequestEntityTooLarge, resp.StatusCode)
			var e openAIError
			require.NoError(json.Unmarshal([]byte(body), &e), body)
			assert.Equal("invalid_request_error", e.Error.Type)
			assert.Contains(e.Error.Message, "1 MiB")
			assert.Contains(e.Error.Message, "client.max_body_bytes")
			assert.Empty(stub.seen())
		})
	}
}

// TestBodiesBounded: many connections each uploading a large body slowly hold at most the body
// budget; the requests over it get 503 with Retry-After, and the admitted ones complete.
func TestBodiesBounded(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	const (
		conns     = 96
		bodySize  = 1 << 20
		budget    = 8 << 20
		admitted  = budget / bodySize
		firstPart = bodySize * 3 / 4
		heapBound = 40 << 20 // generous: admitted bodies plus their growth garbage come to ~16 MiB
	)
	stub := newStub(t, answerStream)
	h := startClient(t, []*stubProxy{stub},
		withConfig(func(c *Config) { c.MaxBodyBytes, c.MaxBodiesBytes = bodySize, budget }),
		withClient(func(c *Client) { c.bodyWait = 100 * time.Millisecond }))
	h.waitConnected(t, 1)

	// One valid JSON body of exactly bodySize bytes, shared read-only by every connection.
	prefix := `{"model":"m","messages":[],"pad":"`
	body := []byte(prefix + string(make([]byte, bodySize-len(prefix)-2)) + `"}`)
	for i := len(prefix); i < bodySize-2; i++ {
		body[i] = 'x'
	}

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		var ms runtime.MemStats
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > base && ms.HeapAlloc-base > peak.Load() {
				peak.Store(ms.HeapAlloc - base)
			}
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	})
	defer func() {
		close(stopSampling)
		sampler.Wait()
	}()

	type answer struct {
		status     int
		retryAfter string
		body       string
	}
	var (
		mu       sync.Mutex
		answers  []answer
		release  = make(chan struct{})
		writers  sync.WaitGroup
		readers  sync.WaitGroup
		answered = func() (refused, ok int) {
			mu.Lock()
			defer mu.Unlock()
			for _, a := range answers {
				switch a.status {
				case http.StatusServiceUnavailable:
					refused++
				case http.StatusOK:
					ok++
				}
			}
			return refused, ok
		}
	)
	for range conns {
		conn := h.dial(t)
		var gotAnswer atomic.Bool
		readers.Go(func() {
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				return
			}
			b, _ := io.ReadAll(resp.Body)
			gotAnswer.Store(true)
			mu.Lock()
			answers = append(answers, answer{resp.StatusCode, resp.Header.Get("Retry-After"), string(b)})
			mu.Unlock()
		})
		writers.Go(func() {
			if _, err := io.WriteString(conn, postHead(bodySize)); err != nil {
				return
			}
			// Slowly: the body in 64 KiB pieces, stalling before the last quarter until released.
			for off := 0; off < bodySize; off += 64 << 10 {
				if off == firstPart {
					<-release
				}
				if gotAnswer.Load() {
					return // refused: the rest of the body is not wanted
				}
				if _, err := conn.Write(body[off : off+64<<10]); err != nil {
					return
				}
			}
		})
	}
	defer func() {
		// Unblock every writer however the test ends.
		select {
		case <-release:
		default:
			close(release)
		}
		writers.Wait()
	}()

	// Every connection over the budget is answered, or the heap shows the bodies are not bounded.
	require.Eventually(func() bool {
		refused, _ := answered()
		return refused == conns-admitted || peak.Load() > heapBound
	}, 30*time.Second, 5*time.Millisecond, "the requests over the body budget were never refused")
	t.Logf("heap peak over the baseline with %d connections uploading %s bodies: %.1f MiB",
		conns, formatBytes(bodySize), float64(peak.Load())/(1<<20))
	require.LessOrEqual(peak.Load(), uint64(heapBound), "request bodies held memory beyond the budget")
	mu.Lock()
	for _, a := range answers {
		assert.Equal(http.StatusServiceUnavailable, a.status, a.body)
		assert.NotEmpty(a.retryAfter, "a refusal over the budget says when to retry")
		var e openAIError
		require.NoError(json.Unmarshal([]byte(a.body), &e), a.body)
		assert.Contains(e.Error.Message, "client.max_bodies_bytes")
	}
	mu.Unlock()

	// The admitted uploads finish and are answered.
	close(release)
	require.Eventually(func() bool {
		_, ok := answered()
		return ok == admitted
	}, 30*time.Second, 5*time.Millisecond, "the admitted requests did not complete")
	writers.Wait()
	readers.Wait()
	assert.Len(stub.seen(), admitted)
	require.Eventually(func() bool { return h.c.bodies.inUse(budget) == 0 }, 5*time.Second, 5*time.Millisecond,
		"every body's share of the budget is given back")
}

// TestUndeclaredBody: a chunked body (no Content-Length) is held to the same limit, and its
// share of the budget is what it grew to.
func TestUndeclaredBody(t *testing.T) {
	testCases := map[string]struct {
		pad        int
		wantStatus int
	}{
		"within the limit": {pad: 10, wantStatus: http.StatusOK},
		"over the limit":   {pad: 4096, wantStatus: http.StatusRequestEntityTooLarge},
	}
	stub := newStub(t, answerStream)
	h := startClient(t, []*stubProxy{stub}, withConfig(func(c *Config) { c.MaxBodyBytes = 1024 }))
	h.waitConnected(t, 1)
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			body := `{"model":"m","messages":[],"pad":"` + strings.Repeat("x", tc.pad) + `"}`
			// A reader of unknown length makes net/http send the body chunked.
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.url+"/v1/chat/completions",
				io.MultiReader(strings.NewReader(body)))
			require.NoError(err)
			req.Header.Set("Content-Type", "application/json")
			resp, err := h.http.Do(req)
			require.NoError(err)
			got := readAll(t, resp.Body)
			_ = resp.Body.Close()
			assert.Zero(req.ContentLength, "length unknown: sent chunked")
			assert.Equal(tc.wantStatus, resp.StatusCode, got)
			assert.Equal(int64(0), h.c.bodies.inUse(h.c.cfg.MaxBodiesBytes), "the budget is whole again")
		})
	}
}

// TestConnectionLimit: connections over the limit wait to be accepted until one closes.
func TestConnectionLimit(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	stub := newStub(t, answerStream)
	h := startClient(t, []*stubProxy{stub}, withConfig(func(c *Config) { c.MaxConnections = 2 }))
	h.waitConnected(t, 1)
	const get = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
	var held []net.Conn
	for range 2 {
		conn := h.dial(t)
		_, err := io.WriteString(conn, get)
		require.NoError(err)
		resp, _ := readResponse(t, conn, 5*time.Second)
		require.Equal(http.StatusOK, resp.StatusCode)
		held = append(held, conn) // kept alive: each holds its place
	}
	third := h.dial(t)
	_, err := io.WriteString(third, get)
	require.NoError(err)
	require.NoError(third.SetReadDeadline(time.Now().Add(300 * time.Millisecond)))
	_, err = third.Read(make([]byte, 1))
	var ne net.Error
	require.ErrorAs(err, &ne, "a third connection is served while two are open")
	assert.True(ne.Timeout())

	require.NoError(held[0].Close())
	resp, _ := readResponse(t, third, 5*time.Second)
	assert.Equal(http.StatusOK, resp.StatusCode, "served once a place is free")
}

// TestSlowBodyCut: an app that trickles its body is cut off at the body deadline, not held forever.
func TestSlowBodyCut(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	stub := newStub(t, answerStream)
	h := startClient(t, []*stubProxy{stub}, withClient(func(c *Client) { c.bodyRead = 200 * time.Millisecond }))
	h.waitConnected(t, 1)
	conn := h.dial(t)
	_, err := fmt.Fprint(conn, postHead(1000), `{"model":`)
	require.NoError(err)
	resp, body := readResponse(t, conn, 5*time.Second)
	assert.Equal(http.StatusRequestTimeout, resp.StatusCode, body)
	var e openAIError
	require.NoError(json.Unmarshal([]byte(body), &e), body)
	assert.Contains(e.Error.Message, "did not arrive")
	assert.Empty(stub.seen())
}
