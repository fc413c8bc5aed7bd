// Package scripted is a scripted OpenAI-compatible engine over HTTP on
// loopback, streaming configured shapes, for tests and `cocoon bench`: it
// answers the OpenAI API the way vLLM does, byte for byte in shape. It is an
// ordinary package, not a test one, because the benchmark ships in the
// binary; so it links neither testing nor net/http/httptest.
//
// A streamed answer is vLLM's: a role chunk (chat only), Config.Chunks
// content chunks of Config.ChunkBytes bytes of text each (one token each, the
// last with finish_reason "length"), then — only when the request set
// stream_options.include_usage, as vLLM does — a usage chunk with empty
// choices, then "data: [DONE]". The defaults are the reference benchmark's
// fake engine: 50 chunks of 128 bytes and a usage line.
//
// The server records every completion request it receives ([Request]),
// including whether the engine saw it cancelled, and can be told to fail,
// stall, drop the connection mid-stream, pace chunks one by one, or be down:
//
//	eng := scripted.New(scripted.Config{Delay: time.Millisecond})
//	defer eng.Close()
//	... point the code under test at eng.URL ...
//	eng.Configure(func(c *scripted.Config) { c.Stall, c.StallAfter = true, 3 })
//	reqs, err := eng.Await(ctx, 1)
//	<-reqs[0].Cancelled()
package scripted

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of Config, those of the reference benchmark.
const (
	DefaultModel        = "scripted-model"
	DefaultChunks       = 50
	DefaultChunkBytes   = 128
	DefaultPromptTokens = 16
	created             = 1700000000
)

// Config is the engine's behaviour. Zero values take the defaults; change it
// at any time with Server.Configure (requests already running keep the
// configuration they started with).
type Config struct {
	// Model is the model name in answers and /v1/models. Default DefaultModel.
	Model string
	// Chunks is the number of content chunks (= completion tokens). Default
	// DefaultChunks.
	Chunks int
	// ChunkBytes is the length of each chunk's content text. Default
	// DefaultChunkBytes.
	ChunkBytes int
	// Delay is the pause before each data event (not before [DONE], which follows the last at once).
	Delay time.Duration
	// Step, if set, is received from before each data event is sent, so a
	// test can release the stream event by event (close it to let the rest
	// flow).
	Step <-chan struct{}
	// PromptTokens (default DefaultPromptTokens), CachedTokens and
	// ReasoningTokens are reported in the usage object; cached and reasoning
	// details are included only when non-zero, as vLLM does.
	PromptTokens, CachedTokens, ReasoningTokens int64

	// Status, if non-zero, answers every completion request with this status
	// and a vLLM error body.
	Status int
	// Stall stops the stream after StallAfter data events (0: before the
	// first, headers sent) and holds it until the client goes away.
	Stall      bool
	StallAfter int
	// Drop breaks the connection after DropAfter data events, without the
	// end of the chunked body.
	Drop      bool
	DropAfter int
	// NoDone ends the stream cleanly but without "data: [DONE]".
	NoDone bool
	// NoUsage leaves out usage even when asked for (and in non-streamed
	// answers).
	NoUsage bool
	// Down makes every endpoint, /health included, answer 503.
	Down bool
	// NoRecord stops keeping requests, for long benchmark runs; Await still
	// counts them.
	NoRecord bool
}

// Reference returns the configuration of the reference benchmark's fake
// engine: 50 chunks of 128 bytes and a usage line.
func Reference() Config {
	return Config{Model: DefaultModel, Chunks: DefaultChunks, ChunkBytes: DefaultChunkBytes, PromptTokens: DefaultPromptTokens}
}

func (c Config) withDefaults() Config {
	if c.Model == "" {
		c.Model = DefaultModel
	}
	if c.Chunks <= 0 {
		c.Chunks = DefaultChunks
	}
	if c.ChunkBytes <= 0 {
		c.ChunkBytes = DefaultChunkBytes
	}
	if c.PromptTokens <= 0 {
		c.PromptTokens = DefaultPromptTokens
	}
	return c
}

// Request is one completion request the engine received.
type Request struct {
	Path   string
	Header http.Header
	Body   []byte

	seq int // 1-based arrival number

	cancelOnce sync.Once
	cancelled  chan struct{}
	done       chan struct{}
}

// Cancelled is closed when the engine saw the request cancelled (the client
// went away) before it finished answering.
func (r *Request) Cancelled() <-chan struct{} { return r.cancelled }

// Done is closed when the engine has finished with the request.
func (r *Request) Done() <-chan struct{} { return r.done }

// WasCancelled reports whether Cancelled is closed.
func (r *Request) WasCancelled() bool {
	select {
	case <-r.cancelled:
		return true
	default:
		return false
	}
}

// IncludeUsage reports whether the body set stream_options.include_usage.
func (r *Request) IncludeUsage() bool {
	var b struct {
		StreamOptions struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	_ = json.Unmarshal(r.Body, &b)
	return b.StreamOptions.IncludeUsage
}

func (r *Request) markCancelled() { r.cancelOnce.Do(func() { close(r.cancelled) }) }

// Server is the fake engine. URL is its base URL, e.g. for gpu.HTTPConfig.
type Server struct {
	URL string

	srv       *http.Server
	served    chan struct{} // closed when Serve has returned
	handlers  sync.WaitGroup
	mu        sync.Mutex
	cfg       Config
	reqs      []*Request
	count     int           // requests arrived, recorded or not
	arrived   chan struct{} // closed and replaced when a request arrives
	templates map[templateKey]*template
	closed    chan struct{} // releases stalled handlers on Close
	once      sync.Once
}

// New starts a fake engine on a loopback port. Close it when done. It
// panics if it cannot listen, as httptest.NewServer does: callers are tests
// and the benchmark, for which no loopback port is a broken machine.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg.withDefaults(), arrived: make(chan struct{}), closed: make(chan struct{}), served: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { s.serveCompletion(w, r, true) })
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) { s.serveCompletion(w, r, false) })
	mux.HandleFunc("GET /v1/models", s.serveModels)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		if s.config().Down {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("scripted: listen on loopback: %v", err))
	}
	// Count handlers so Close can wait for them: http.Server.Close closes
	// connections but does not wait for the handlers still running on them.
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		select {
		case <-s.closed: // Close is waiting: a late handler must not Add
			s.mu.Unlock()
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		default:
		}
		s.handlers.Add(1)
		s.mu.Unlock()
		defer s.handlers.Done()
		mux.ServeHTTP(w, r)
	})
	s.srv = &http.Server{Handler: counted, ReadHeaderTimeout: 10 * time.Second}
	s.URL = "http://" + ln.Addr().String()
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln) // always http.ErrServerClosed after Close
	}()
	return s
}

// Close stops the server, releasing stalled requests first, closes every
// connection and waits for the handlers to return.
func (s *Server) Close() {
	s.mu.Lock()
	s.once.Do(func() { close(s.closed) })
	s.mu.Unlock()
	_ = s.srv.Close()
	<-s.served
	s.handlers.Wait()
}

// Configure changes the configuration for requests that start afterwards.
func (s *Server) Configure(f func(*Config)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.cfg)
	s.cfg = s.cfg.withDefaults()
}

func (s *Server) config() Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// Requests returns the completion requests received so far, in order.
func (s *Server) Requests() []*Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Request(nil), s.reqs...)
}

// Count returns the number of completion requests received so far.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Await waits until at least n completion requests have arrived and returns
// the recorded ones, or returns ctx's error.
func (s *Server) Await(ctx context.Context, n int) ([]*Request, error) {
	for {
		s.mu.Lock()
		count, arrived := s.count, s.arrived
		s.mu.Unlock()
		if count >= n {
			return s.Requests(), nil
		}
		select {
		case <-arrived:
		case <-ctx.Done():
			return s.Requests(), fmt.Errorf("await %d engine requests (have %d): %w", n, count, ctx.Err())
		}
	}
}

func (s *Server) record(r *http.Request, body []byte) *Request {
	rec := &Request{Path: r.URL.Path, Header: r.Header.Clone(), Body: body, cancelled: make(chan struct{}), done: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count++
	rec.seq = s.count
	if !s.cfg.NoRecord {
		s.reqs = append(s.reqs, rec)
	}
	close(s.arrived)
	s.arrived = make(chan struct{})
	return rec
}

func (s *Server) serveModels(w http.ResponseWriter, _ *http.Request) {
	cfg := s.config()
	if cfg.Down {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"object":"list","data":[{"id":%s,"object":"model","created":%d,"owned_by":"vllm","root":%[1]s,"parent":null,"max_model_len":4096}]}`,
		quote(cfg.Model), created)
}

func vllmError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"object":"error","message":%s,"type":%s,"param":null,"code":%d}`,
		quote(msg), quote(strings.ReplaceAll(http.StatusText(status), " ", "")+"Error"), status)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func (s *Server) serveCompletion(w http.ResponseWriter, r *http.Request, chat bool) {
	var body bytes.Buffer
	_, rerr := body.ReadFrom(r.Body)
	rec := s.record(r, body.Bytes())
	defer close(rec.done)
	cfg := s.config()
	switch {
	case cfg.Down:
		vllmError(w, http.StatusServiceUnavailable, "engine is down")
		return
	case cfg.Status != 0:
		vllmError(w, cfg.Status, "scripted: configured failure")
		return
	case rerr != nil:
		vllmError(w, http.StatusBadRequest, "could not read body")
		return
	}
	var req struct {
		Stream        bool `json:"stream"`
		StreamOptions *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	if err := json.Unmarshal(rec.Body, &req); err != nil {
		vllmError(w, http.StatusBadRequest, "invalid JSON body")
		return
	}
	id := "cmpl-" + strconv.Itoa(rec.seq)
	if chat {
		id = "chat" + id
	}
	withUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage && !cfg.NoUsage
	tmpl := s.template(cfg, chat, withUsage)
	ctx := r.Context()
	// wait paces one data event and reports false (recording the
	// cancellation) when the client went away. The Delay is not waited before
	// [DONE] (delay false): engines write it right after the last event.
	wait := func(delay bool) bool {
		if cfg.Step != nil {
			select {
			case <-cfg.Step:
			case <-ctx.Done():
				rec.markCancelled()
				return false
			case <-s.closed:
				return false
			}
		}
		if cfg.Delay > 0 && delay {
			t := time.NewTimer(cfg.Delay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				rec.markCancelled()
				return false
			}
		}
		return true
	}
	stall := func() {
		select {
		case <-ctx.Done():
			rec.markCancelled()
		case <-s.closed:
		}
	}
	if !req.Stream {
		if cfg.Stall {
			stall()
			return
		}
		if !wait(true) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(idPrefix + id + string(tmpl.whole)))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	n := len(tmpl.events)
	if !cfg.NoDone {
		n++
	}
	line := make([]byte, 0, 1024)
	for i := range n {
		if cfg.Stall && i == cfg.StallAfter {
			stall()
			return
		}
		if cfg.Drop && i == cfg.DropAfter {
			panic(http.ErrAbortHandler) // closes the connection mid-body
		}
		if !wait(i < len(tmpl.events)) {
			return
		}
		line = append(line[:0], "data: "...)
		if i < len(tmpl.events) {
			line = append(append(append(line, idPrefix...), id...), tmpl.events[i]...)
		} else {
			line = append(line, "[DONE]"...)
		}
		line = append(line, "\n\n"...)
		if _, err := w.Write(line); err != nil {
			rec.markCancelled()
			return
		}
		if err := rc.Flush(); err != nil {
			rec.markCancelled()
			return
		}
	}
}

// answer builds vLLM's JSON, without the id.
type answer struct {
	cfg  Config
	chat bool
}

// template is the answer for one configuration and request shape.
type template struct {
	events [][]byte // streamed payloads after the id, without [DONE]
	whole  []byte   // non-streamed body after the id
}

type templateKey struct {
	model                                       string
	chunks, chunkBytes                          int
	promptTokens, cachedTokens, reasoningTokens int64
	noUsage, chat, withUsage                    bool
}

// template returns the cached answer, so that the fake engine costs little
// next to the code under test.
func (s *Server) template(cfg Config, chat, withUsage bool) *template {
	key := templateKey{cfg.Model, cfg.Chunks, cfg.ChunkBytes, cfg.PromptTokens, cfg.CachedTokens, cfg.ReasoningTokens, cfg.NoUsage, chat, withUsage}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.templates[key]; ok {
		return t
	}
	a := answer{cfg: cfg, chat: chat}
	t := &template{events: a.events(withUsage), whole: a.whole()}
	if s.templates == nil {
		s.templates = map[templateKey]*template{}
	}
	s.templates[key] = t
	return t
}

// head is what follows the id in every object; payloads are
// idPrefix + id + the rest, so that the rest can be built once per
// configuration.
func (a *answer) head(object string) string {
	return fmt.Sprintf(`","object":%s,"created":%d,"model":%s,`, quote(object), created, quote(a.cfg.Model))
}

const idPrefix = `{"id":"`

func (a *answer) content() string {
	const filler = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua "
	return quote(strings.Repeat(filler, a.cfg.ChunkBytes/len(filler)+1)[:a.cfg.ChunkBytes])
}

func (a *answer) usage() string {
	c := a.cfg
	completion := int64(c.Chunks)
	u := fmt.Sprintf(`"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d`, c.PromptTokens, c.PromptTokens+completion, completion)
	if c.CachedTokens != 0 {
		u += fmt.Sprintf(`,"prompt_tokens_details":{"cached_tokens":%d}`, c.CachedTokens)
	}
	if c.ReasoningTokens != 0 {
		u += fmt.Sprintf(`,"completion_tokens_details":{"reasoning_tokens":%d}`, c.ReasoningTokens)
	}
	return u + "}"
}

// events returns the data payloads of a stream, without [DONE].
func (a *answer) events(withUsage bool) [][]byte {
	var evs [][]byte
	content := a.content()
	if a.chat {
		head := a.head("chat.completion.chunk")
		evs = append(evs, []byte(head+`"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`))
		for i := range a.cfg.Chunks {
			finish := `null}]}`
			if i == a.cfg.Chunks-1 {
				finish = `"length","stop_reason":null}]}`
			}
			evs = append(evs, []byte(head+`"choices":[{"index":0,"delta":{"content":`+content+`},"logprobs":null,"finish_reason":`+finish))
		}
		if withUsage {
			evs = append(evs, []byte(head+`"choices":[],`+a.usage()+"}"))
		}
		return evs
	}
	head := a.head("text_completion")
	for i := range a.cfg.Chunks {
		finish := `null,"stop_reason":null}]}`
		if i == a.cfg.Chunks-1 {
			finish = `"length","stop_reason":null}]}`
		}
		evs = append(evs, []byte(head+`"choices":[{"index":0,"text":`+content+`,"logprobs":null,"finish_reason":`+finish))
	}
	if withUsage {
		evs = append(evs, []byte(head+`"choices":[],`+a.usage()+"}"))
	}
	return evs
}

// whole returns a non-streamed answer.
func (a *answer) whole() []byte {
	var text string
	if a.cfg.ChunkBytes*a.cfg.Chunks > 0 {
		var s string
		_ = json.Unmarshal([]byte(a.content()), &s)
		text = quote(strings.Repeat(s, a.cfg.Chunks))
	}
	usage := "," + a.usage()
	if a.cfg.NoUsage {
		usage = ""
	}
	if a.chat {
		return []byte(a.head("chat.completion") + `"choices":[{"index":0,"message":{"role":"assistant","reasoning_content":null,"content":` + text +
			`,"tool_calls":[]},"logprobs":null,"finish_reason":"length","stop_reason":null}]` + usage + `,"prompt_logprobs":null}`)
	}
	return []byte(a.head("text_completion") + `"choices":[{"index":0,"text":` + text +
		`,"logprobs":null,"finish_reason":"length","stop_reason":null,"prompt_logprobs":null}]` + usage + `}`)
}
