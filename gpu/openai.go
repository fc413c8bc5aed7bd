package gpu

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cocoon-network/cocoon/settle"
)

// HTTPConfig configures an [HTTPEngine]. Zero values take the defaults below.
type HTTPConfig struct {
	// BaseURL is the engine's address, e.g. "http://127.0.0.1:8000". A
	// trailing "/v1" is accepted and ignored.
	BaseURL string
	// APIKey, if set, is sent as "Authorization: Bearer <key>" (vLLM
	// --api-key, llama.cpp --api-key).
	APIKey string
	// MaxConns is the number of keep-alive connections kept to the engine;
	// set it to the worker's concurrency. Default 256.
	MaxConns int
	// DialTimeout bounds connecting to the engine. Default 5s.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the engine's response
	// headers. A non-streaming answer only has headers once it is complete,
	// so this must exceed the longest generation. Default 10m.
	ResponseHeaderTimeout time.Duration
	// IdleTimeout bounds the silence between two reads of a streaming
	// answer, the wait for the first chunk after the headers included; the
	// request then fails with ErrStalled. Default 2m; negative disables it.
	IdleTimeout time.Duration
	// MaxEventSize bounds one SSE event. Default DefaultMaxEventSize.
	MaxEventSize int
	// MaxBodySize bounds a non-streaming answer. Default 64 MiB.
	MaxBodySize int
	// MaxErrorBody bounds the error body kept in an HTTPError. Default 64 KiB.
	MaxErrorBody int
	// Transport replaces the HTTP transport built from the settings above
	// (for tests and custom dialers).
	Transport http.RoundTripper
}

const (
	defaultMaxConns      = 256
	defaultDialTimeout   = 5 * time.Second
	defaultHeaderTimeout = 10 * time.Minute
	defaultIdleTimeout   = 2 * time.Minute
	defaultMaxBodySize   = 64 << 20
	defaultMaxErrorBody  = 64 << 10
	defaultHealthTimeout = 10 * time.Second
	// drainLimit is how much of a finished response we read to let the
	// connection go back to the keep-alive pool.
	drainLimit   = 4 << 10
	drainTimeout = time.Second
)

// HTTPEngine is an [Engine] that talks to an OpenAI-compatible HTTP engine
// (vLLM, SGLang, llama.cpp server, Ollama). It is safe for concurrent use.
type HTTPEngine struct {
	base    string
	auth    string
	cfg     HTTPConfig
	client  *http.Client
	own     *engineTransport // the transport the engine made, unless HTTPConfig.Transport replaced it
	readers sync.Pool        // *SSEReader, so steady streaming reuses buffers
}

var _ Engine = (*HTTPEngine)(nil)

// NewHTTP returns an engine for the OpenAI-compatible server at cfg.BaseURL.
func NewHTTP(cfg HTTPConfig) (*HTTPEngine, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse engine url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("engine url %q: want http(s)://host[:port]", cfg.BaseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("engine url %q: no query or fragment allowed", cfg.BaseURL)
	}
	base := strings.TrimSuffix(strings.TrimSuffix(u.String(), "/"), "/v1")
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = defaultMaxConns
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = defaultDialTimeout
	}
	if cfg.ResponseHeaderTimeout <= 0 {
		cfg.ResponseHeaderTimeout = defaultHeaderTimeout
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = defaultIdleTimeout
	}
	if cfg.MaxEventSize <= 0 {
		cfg.MaxEventSize = DefaultMaxEventSize
	}
	if cfg.MaxBodySize <= 0 {
		cfg.MaxBodySize = defaultMaxBodySize
	}
	if cfg.MaxErrorBody <= 0 {
		cfg.MaxErrorBody = defaultMaxErrorBody
	}
	rt := cfg.Transport
	var own *engineTransport
	if rt == nil {
		own = newEngineTransport(u, cfg)
		rt = own
	}
	e := &HTTPEngine{
		base: base,
		cfg:  cfg,
		// No overall timeout: streams last as long as the generation does.
		// Requests are bounded by their context, the header timeout and the
		// idle timeout.
		client: &http.Client{Transport: rt},
		own:    own,
	}
	if cfg.APIKey != "" {
		e.auth = "Bearer " + cfg.APIKey
	}
	return e, nil
}

// Close releases idle connections to the engine.
func (e *HTTPEngine) Close() {
	if e.own != nil {
		e.own.close()
	}
	e.client.CloseIdleConnections()
}

// Do sends req to the engine and streams its answer into sink.
//
// The endpoint is the request's kind. For a streaming chat or completion
// request the body gets stream_options.include_usage=true (merged into an
// existing stream_options object; every other field is kept byte for byte),
// each SSE data payload is one chunk, and the [DONE] marker is not passed on:
// a nil error means the stream ended with it. A streamed response (Responses
// API) is metered by its last event (response.completed, .incomplete or
// .failed), after which the stream may end without [DONE]; so is a streamed
// transcription by its transcript.text.done event (OpenAI's shape) or its
// usage chunk (vLLM's, which the form is made to ask for with
// stream_include_usage). Embeddings are never streamed. For a
// non-streaming request the whole JSON body is one chunk; it is withheld,
// with ErrNoUsage, if it has no usage, so that an unmetered answer is never
// released when it can be avoided.
//
// Errors: *HTTPError for a non-2xx answer (with NoEndpoint set, and OpenAI's
// answer for an unknown route, when the engine lacks the endpoint); ErrBadRequest for a body that is
// not a JSON object; ErrTruncated when the stream breaks off; ErrNoUsage;
// ErrEventTooLarge; ErrStalled; the context's error when ctx ends; the
// sink's error, wrapped.
func (e *HTTPEngine) Do(ctx context.Context, req Request, sink Sink) (settle.Usage, error) {
	// The steps are functions of their own: a stream's goroutine holds this frame while the engine
	// generates, and its stack halves at a collection only while it uses less than a quarter of it.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	hreq, err := e.newRequest(ctx, req)
	if err != nil {
		return settle.Usage{}, err
	}
	resp, err := e.client.Do(hreq)
	if err != nil {
		return settle.Usage{}, fmt.Errorf("engine request %s: %w", req.Kind, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return settle.Usage{}, e.refused(resp, req.Kind.Path())
	}
	if !req.Stream {
		return e.whole(resp.Body, req.Kind, sink)
	}
	return e.streamBody(ctx, cancel, resp.Body, req.Kind, sink)
}

// newRequest makes the engine's HTTP request for req.
func (e *HTTPEngine) newRequest(ctx context.Context, req Request) (*http.Request, error) {
	path := req.Kind.Path()
	if path == "" {
		return nil, fmt.Errorf("engine request: unknown kind %v", req.Kind)
	}
	body := req.Body
	contentType := cmp.Or(req.ContentType, "application/json")
	switch {
	case req.Stream && req.Kind == KindEmbeddings:
		return nil, fmt.Errorf("prepare engine request: %w: %s answers are not streamed", ErrBadRequest, req.Kind)
	case req.Stream && req.Kind == KindTranscription:
		// vLLM streams a transcription's usage only when the form asks for it.
		form, err := ParseForm(req.Body, req.ContentType)
		if err != nil {
			return nil, fmt.Errorf("prepare engine request: %w", err)
		}
		form.Set("stream_include_usage", "true")
		body, contentType = form.Encode()
	case req.Stream && req.Kind != KindResponses:
		// The Responses API streams its usage in the response.completed event unasked.
		var err error
		if body, _, err = withIncludeUsage(req.Body); err != nil {
			return nil, fmt.Errorf("prepare engine request: %w", err)
		}
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, e.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("engine request: %w", err)
	}
	hreq.Header.Set("Content-Type", contentType)
	if req.Stream {
		hreq.Header.Set("Accept", "text/event-stream")
	} else {
		hreq.Header.Set("Accept", "application/json")
	}
	if e.auth != "" {
		hreq.Header.Set("Authorization", e.auth)
	}
	return hreq, nil
}

// refused is the *HTTPError of an engine's answer that is not a success.
func (e *HTTPEngine) refused(resp *http.Response, path string) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, int64(e.cfg.MaxErrorBody)))
	if (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed) && !engineError(b) {
		// The engine has no such route (a web framework's own 404): answer as OpenAI does for
		// an unknown route, not with the framework's page.
		return &HTTPError{Status: http.StatusNotFound, Body: NoEndpoint(path), NoEndpoint: true}
	}
	return &HTTPError{Status: resp.StatusCode, Body: b}
}

// streamBody reads a streamed answer to its end, cancelling the request when the engine falls
// silent for the idle timeout, or when reading fails.
func (e *HTTPEngine) streamBody(ctx context.Context, cancel context.CancelCauseFunc, body io.Reader, kind Kind, sink Sink) (settle.Usage, error) {
	r := body
	if e.cfg.IdleTimeout > 0 {
		ir := &idleReader{r: body, d: e.cfg.IdleTimeout}
		ir.t = time.AfterFunc(ir.d, func() { cancel(ErrStalled) })
		defer ir.t.Stop()
		r = ir
	}
	u, err := e.stream(ctx, r, kind, sink)
	if err != nil {
		cancel(err) // stop the engine request before the body is closed
		return u, err
	}
	// Let the connection return to the pool: after [DONE] only the end of
	// the chunked body is left. An engine that holds the body open after
	// [DONE] must not hold up the answer, so the wait is short.
	t := time.AfterFunc(drainTimeout, func() { cancel(nil) })
	_, _ = io.CopyN(io.Discard, body, drainLimit)
	t.Stop()
	return u, nil
}

func (e *HTTPEngine) stream(ctx context.Context, body io.Reader, kind Kind, sink Sink) (settle.Usage, error) {
	sr, _ := e.readers.Get().(*SSEReader)
	if sr == nil {
		sr = NewSSEReader(body, e.cfg.MaxEventSize)
	} else {
		sr.Reset(body)
	}
	defer func() {
		sr.Reset(nil)
		e.readers.Put(sr)
	}()
	var (
		usage    settle.Usage
		have     bool
		terminal bool // a Responses stream's last event arrived: it has no [DONE] marker
		chunks   int
	)
	for {
		data, err := sr.Next()
		if errors.Is(err, io.EOF) || (terminal && errors.Is(err, io.ErrUnexpectedEOF)) {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				// Our own cancellation (ctx ended, or the idle timer fired)
				// is the real cause of the read error.
				return usage, fmt.Errorf("read engine stream after %d chunks: %w", chunks, context.Cause(ctx))
			}
			if errors.Is(err, ErrEventTooLarge) {
				return usage, fmt.Errorf("read engine stream after %d chunks: %w", chunks, err)
			}
			return usage, fmt.Errorf("read engine stream after %d chunks: %w: %w", chunks, ErrTruncated, err)
		}
		var (
			u             settle.Usage
			ok, noChoices bool
		)
		switch kind {
		case KindResponses:
			// Every event is the app's; the usage is inside the last one.
			u, ok, terminal, err = responsesEvent(data)
		case KindTranscription:
			u, ok, noChoices, terminal, err = transcriptionEvent(data)
		default:
			u, ok, noChoices, err = parseUsage(data)
		}
		if err != nil {
			return usage, fmt.Errorf("read engine stream chunk %d: %w", chunks, err)
		}
		if ok {
			// Engines with continuous usage stats send running totals; the
			// last one is the answer's usage.
			usage, have = u, true
		}
		chunks++
		if err := sink(Chunk{Data: data, Usage: ok && noChoices, More: sr.Buffered()}); err != nil {
			return usage, fmt.Errorf("engine stream sink: %w", err)
		}
	}
	if !have {
		return usage, fmt.Errorf("read engine stream of %d chunks: %w", chunks, ErrNoUsage)
	}
	return usage, nil
}

func (e *HTTPEngine) whole(body io.Reader, kind Kind, sink Sink) (settle.Usage, error) {
	b, err := io.ReadAll(io.LimitReader(body, int64(e.cfg.MaxBodySize)+1))
	if err != nil {
		return settle.Usage{}, fmt.Errorf("read engine answer: %w: %w", ErrTruncated, err)
	}
	if len(b) > e.cfg.MaxBodySize {
		return settle.Usage{}, fmt.Errorf("read engine answer: larger than %d bytes", e.cfg.MaxBodySize)
	}
	u, ok, _, err := parseUsage(b)
	if err != nil {
		return settle.Usage{}, fmt.Errorf("read engine answer: %w", err)
	}
	if !ok && kind != KindTranscription {
		return settle.Usage{}, fmt.Errorf("read engine answer of %d bytes: %w", len(b), ErrNoUsage)
	}
	// A transcription whose engine counts no tokens (vLLM's and whisper-1's usage is
	// {"type":"duration","seconds":…}) is released with no usage: a metering proxy charges an
	// answer with content and no usage its whole reservation, so it still fails closed.
	if err := sink(Chunk{Data: b}); err != nil {
		return u, fmt.Errorf("engine answer sink: %w", err)
	}
	return u, nil
}

// Health reports whether the engine answers GET /health (vLLM, SGLang,
// llama.cpp) or, failing that, GET /v1/models (Ollama and others).
func (e *HTTPEngine) Health(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultHealthTimeout)
		defer cancel()
	}
	err := e.get(ctx, "/health")
	if err == nil {
		return nil
	}
	if err2 := e.get(ctx, "/v1/models"); err2 != nil {
		return fmt.Errorf("engine health: %w", errors.Join(err, err2))
	}
	return nil
}

func (e *HTTPEngine) get(ctx context.Context, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+path, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if e.auth != "" {
		req.Header.Set("Authorization", e.auth)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
	}
	return nil
}

// idleReader re-arms a timer on every read, so that a stream that goes
// silent is cancelled instead of holding a worker slot forever.
type idleReader struct {
	r io.Reader
	d time.Duration
	t *time.Timer
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.t.Reset(r.d)
	return n, err
}
