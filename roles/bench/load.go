package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/gpu/scripted"
	"github.com/cocoon-network/cocoon/roles/internal/bounds"
	"github.com/cocoon-network/cocoon/roles/internal/statsweb"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// requester runs one request and returns its time to first chunk and its chunk count.
type requester func(ctx context.Context) (ttfc time.Duration, chunks int, err error)

type sample struct {
	ttfc, total time.Duration
	chunks      int
}

type loadResult struct {
	samples      []sample
	errors       int
	warmupErrors int
	firstErr     error
	window       time.Duration
}

// runLoad runs c closed loops: each sends a request as soon as its previous one ended. Requests that
// start in the first warmup are not measured; loops start no request after warmup+d, and the window
// ends when the last measured request does. atStart runs when the measured window opens.
func runLoad(ctx context.Context, c int, warmup, d time.Duration, do requester, atStart func()) loadResult {
	begin := time.Now()
	t0, tEnd := begin.Add(warmup), begin.Add(warmup+d)
	var started sync.Once
	startWindow := func() {
		started.Do(func() {
			if atStart != nil {
				atStart()
			}
		})
	}
	timer := time.AfterFunc(warmup, startWindow)
	defer timer.Stop()
	var (
		mu  sync.Mutex
		res loadResult
		wg  sync.WaitGroup
	)
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []sample
			for range maxRequestsPerLoop {
				now := time.Now()
				if !now.Before(tEnd) || ctx.Err() != nil {
					break
				}
				rctx, cancel := context.WithTimeout(ctx, requestTimeout)
				ttfc, chunks, err := do(rctx)
				cancel()
				total := time.Since(now)
				measured := !now.Before(t0)
				if err != nil {
					mu.Lock()
					if measured {
						res.errors++
					} else {
						res.warmupErrors++
					}
					if res.firstErr == nil {
						res.firstErr = err
					}
					mu.Unlock()
					continue
				}
				if measured {
					local = append(local, sample{ttfc: ttfc, total: total, chunks: chunks})
				}
			}
			mu.Lock()
			res.samples = append(res.samples, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	startWindow() // for a run shorter than its warm-up
	res.window = max(time.Since(t0), 0)
	return res
}

func (r loadResult) stats() *targetStats {
	s := &targetStats{Requests: len(r.samples), Errors: r.errors, WarmupErrors: r.warmupErrors,
		FirstError: errString(r.firstErr), WindowS: r.window.Seconds()}
	if all := s.Requests + s.Errors + s.WarmupErrors; all > 0 {
		s.ErrorRate = float64(s.Errors+s.WarmupErrors) / float64(all)
	}
	if len(r.samples) == 0 || r.window <= 0 {
		return s
	}
	ttfc := make([]time.Duration, len(r.samples))
	total := make([]time.Duration, len(r.samples))
	chunks := 0
	for i, x := range r.samples {
		ttfc[i], total[i] = x.ttfc, x.total
		chunks += x.chunks
	}
	s.RPS = float64(len(r.samples)) / r.window.Seconds()
	s.ChunksPerS = float64(chunks) / r.window.Seconds()
	s.TTFCP50Ms, s.TTFCP99Ms = ms(statsweb.Percentile(ttfc, 0.5)), ms(statsweb.Percentile(ttfc, 0.99))
	s.LatencyP50Ms, s.LatencyP99Ms = ms(statsweb.Percentile(total, 0.5)), ms(statsweb.Percentile(total, 0.99))
	return s
}

// newLoadClient is an HTTP client for loopback load: no proxy from the environment, no
// compression, a kept-alive connection per concurrent stream.
func newLoadClient(c int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConns:        c + 16,
		MaxIdleConnsPerHost: c + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}}
}

// readerPool keeps SSE readers, with their buffers, from one request to the next: the load
// generator shares the CPUs with what it measures.
var readerPool = sync.Pool{New: func() any { return gpu.NewSSEReader(nil, 0) }}

// newFreshClient opens a new TCP connection for every request, as `hey -disable-keepalive` does.
func newFreshClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:              nil,
		DialContext:        (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		DisableKeepAlives:  true,
		DisableCompression: true,
	}}
}

// httpRequester posts a streamed chat request and reads every SSE event up to [DONE].
func httpRequester(hc *http.Client, url string, body []byte) requester {
	return httpGapRequester(hc, url, body, nil)
}

// httpGapRequester is httpRequester that also hands gaps each request's time between
// consecutive events.
func httpGapRequester(hc *http.Client, url string, body []byte, gaps *gapRecorder) requester {
	return func(ctx context.Context) (time.Duration, int, error) {
		start := time.Now()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return 0, 0, fmt.Errorf("new request: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return 0, 0, fmt.Errorf("post: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			return 0, 0, fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
		}
		sr := readerPool.Get().(*gpu.SSEReader)
		sr.Reset(resp.Body)
		defer func() {
			sr.Reset(nil)
			readerPool.Put(sr)
		}()
		var between []time.Duration
		if gaps != nil {
			between = gaps.buffer()
		}
		ttfc, chunks, err := readStreamGaps(sr, start, &between)
		if gaps != nil {
			gaps.add(between)
		}
		if err != nil {
			return ttfc, chunks, err
		}
		// Read to the end so the connection is reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return ttfc, chunks, nil
	}
}

// readStream reads events up to [DONE]: the time from start to the first one and how many came
// before [DONE]. An error event or an end without [DONE] is an error.
func readStream(sr *gpu.SSEReader, start time.Time) (time.Duration, int, error) {
	return readStreamGaps(sr, start, nil)
}

// readStreamGaps is readStream that appends the time between consecutive events to *gaps, when
// gaps is not nil.
func readStreamGaps(sr *gpu.SSEReader, start time.Time, gaps *[]time.Duration) (time.Duration, int, error) {
	var ttfc time.Duration
	last := start
	for chunks := 0; ; chunks++ {
		data, err := sr.Next()
		now := time.Now()
		if chunks == 0 && ttfc == 0 && (err == nil || errors.Is(err, io.EOF)) {
			ttfc = now.Sub(start)
		}
		if gaps != nil && err == nil && chunks > 0 {
			*gaps = append(*gaps, now.Sub(last))
		}
		last = now
		switch {
		case errors.Is(err, io.EOF):
			return ttfc, chunks, nil
		case errors.Is(err, io.ErrUnexpectedEOF):
			return ttfc, chunks, fmt.Errorf("stream ended without [DONE] after %d chunks", chunks)
		case err != nil:
			return ttfc, chunks, fmt.Errorf("read stream after %d chunks: %w", chunks, err)
		case bytes.HasPrefix(data, []byte(`{"error"`)):
			return ttfc, chunks, fmt.Errorf("error event after %d chunks: %.200s", chunks, bytes.TrimSpace(data))
		}
	}
}

var requestSeq atomic.Int64

// quicRequester sends the request to a proxy as a client does, over an attested stream, and reads
// every chunk up to Done.
func quicRequester(conn *transport.Conn, body []byte) requester {
	lim, limErr := bounds.Of(body)
	return func(ctx context.Context) (time.Duration, int, error) {
		if limErr != nil {
			return 0, 0, fmt.Errorf("bench request body: %w", limErr)
		}
		start := time.Now()
		s, err := conn.OpenStream(ctx)
		if err != nil {
			return 0, 0, err
		}
		stop := context.AfterFunc(ctx, func() { s.Cancel(wire.CodeCancelled) })
		defer stop()
		// The body asks for usage (chatRequestBody), so the request frame says so, as a client's does.
		req := &wire.Request{Id: "bench-" + strconv.FormatInt(requestSeq.Add(1), 10), Kind: wire.Kind_KIND_CHAT,
			Model: scripted.DefaultModel, Stream: true, IncludeUsage: true, Body: body, Bounds: lim,
			TimeoutMs: uint64(requestTimeout.Milliseconds())}
		if err := s.Send(req); err != nil {
			return 0, 0, err
		}
		if err := s.CloseSend(); err != nil {
			return 0, 0, fmt.Errorf("close send: %w", err)
		}
		var ttfc time.Duration
		chunks := 0
		for range 10_000_000 {
			t, payload, err := s.RecvFrame()
			if err != nil {
				return ttfc, chunks, fmt.Errorf("receive after %d chunks: %w", chunks, err)
			}
			switch t {
			case wire.TypeResponseHead:
			case wire.TypeChunk, wire.TypeUsageChunk:
				if chunks == 0 {
					ttfc = time.Since(start)
				}
				chunks++
			case wire.TypeDone:
				// The proxy closes its side after Done: read that end so the stream is released.
				if _, _, err := s.RecvFrame(); !errors.Is(err, io.EOF) {
					return ttfc, chunks, fmt.Errorf("after done: want end of stream, got %v", err)
				}
				return ttfc, chunks, nil
			case wire.TypeError:
				m, err := wire.Unmarshal(t, payload)
				if err != nil {
					return ttfc, chunks, err
				}
				e := m.(*wire.Error)
				return ttfc, chunks, fmt.Errorf("proxy error code %d: %s", e.GetCode(), e.GetMessage())
			default:
				return ttfc, chunks, fmt.Errorf("unexpected frame type %d", t)
			}
		}
		return ttfc, chunks, errors.New("stream too long")
	}
}

func waitGroupTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
