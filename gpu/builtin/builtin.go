// Package builtin is cocoon's built-in inference engine: a small
// deterministic stand-in for a real model, for demos, tests and benchmarks.
//
// It speaks the OpenAI API exactly as an engine does (chat.completion,
// chat.completion.chunk and text_completion shapes, streaming with
// stream_options.include_usage, finish_reason "stop" or "length") and counts
// tokens for real with a simple documented tokenizer ([CountTokens]), so
// metering and payments can be exercised end to end without a GPU.
//
// The answer is derived from the prompt alone: the same messages (or prompt)
// always give the same text, a few sentences about how the answer was made
// (see corpus). It starts at a sentence chosen by the prompt's hash and runs
// to the end of the sentence in which it reaches Config.Tokens tokens (±20%,
// also chosen by the hash); max_tokens or max_completion_tokens cut it short
// with finish_reason "length".
//
// An [Engine] is both a [gpu.Engine] (in process) and an [http.Handler]
// serving /v1/chat/completions, /v1/completions, /v1/models and /health, so
// it can also run as a real HTTP engine.
package builtin

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/cocoon-network/cocoon/gpu"
)

// Defaults of Config.
const (
	DefaultModel     = "cocoon-builtin"
	DefaultTokens    = 40
	DefaultMaxTokens = 4096
	maxRequestBody   = 16 << 20
)

// Config configures an Engine. Zero values take the defaults.
type Config struct {
	// Model is the one model the engine serves. Default DefaultModel.
	Model string
	// TokenDelay is the time taken to "generate" each token.
	TokenDelay time.Duration
	// Tokens is the typical answer length. Default DefaultTokens.
	Tokens int
	// MaxTokens caps max_tokens so that a request cannot ask for unbounded
	// work. Default DefaultMaxTokens.
	MaxTokens int
	// Now gives the "created" timestamps. Default time.Now.
	Now func() time.Time
}

// Engine is the built-in engine. It is safe for concurrent use.
type Engine struct {
	cfg Config
	mux *http.ServeMux
	seq atomic.Uint64 // makes response ids unique
}

var (
	_ gpu.Engine   = (*Engine)(nil)
	_ http.Handler = (*Engine)(nil)
)

// New returns a built-in engine.
func New(cfg Config) *Engine {
	if cfg.Model == "" {
		cfg.Model = DefaultModel
	}
	if cfg.Tokens <= 0 {
		cfg.Tokens = DefaultTokens
	}
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = DefaultMaxTokens
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Engine{cfg: cfg, mux: http.NewServeMux()}
	e.mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		e.serveCompletion(w, r, gpu.KindChat)
	})
	e.mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) {
		e.serveCompletion(w, r, gpu.KindCompletion)
	})
	e.mux.HandleFunc("GET /v1/models", e.serveModels)
	e.mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	return e
}

// Model returns the name of the model the engine serves.
func (e *Engine) Model() string { return e.cfg.Model }

// Health implements gpu.Engine: the built-in engine is always up.
func (e *Engine) Health(ctx context.Context) error { return ctx.Err() }

// Do implements gpu.Engine in process. It behaves as gpu.HTTPEngine does in
// front of this engine's HTTP handler: streams always end with a usage chunk
// (marked UsageOnly unless the client asked for usage), a malformed request
// gives a *gpu.HTTPError with status 400 and OpenAI error JSON, and
// req.Stream (not the body) chooses streaming.
func (e *Engine) Do(ctx context.Context, req gpu.Request, sink gpu.Sink) (gpu.Usage, error) {
	j, aerr := e.parse(req.Kind, req.Body)
	if aerr != nil {
		return gpu.Usage{}, &gpu.HTTPError{Status: aerr.status, Body: aerr.body()}
	}
	if !req.Stream {
		b, err := e.whole(ctx, &j)
		if err != nil {
			return gpu.Usage{}, fmt.Errorf("builtin engine: %w", err)
		}
		if err := sink(gpu.Chunk{Data: b}); err != nil {
			return j.usage(), fmt.Errorf("builtin engine sink: %w", err)
		}
		return j.usage(), nil
	}
	asked := j.includeUsage
	j.includeUsage = true
	err := e.stream(ctx, &j, func(data []byte, usageChunk bool) error {
		return sink(gpu.Chunk{Data: data, UsageOnly: usageChunk && !asked})
	})
	if err != nil {
		return j.usage(), fmt.Errorf("builtin engine: %w", err)
	}
	return j.usage(), nil
}

// ServeHTTP implements http.Handler.
func (e *Engine) ServeHTTP(w http.ResponseWriter, r *http.Request) { e.mux.ServeHTTP(w, r) }

func (e *Engine) serveModels(w http.ResponseWriter, _ *http.Request) {
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	b, _ := json.Marshal(struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{"list", []model{{e.cfg.Model, "model", e.cfg.Now().Unix(), "cocoon"}}})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (e *Engine) serveCompletion(w http.ResponseWriter, r *http.Request, kind gpu.Kind) {
	body, err := readBody(w, r)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, &apiError{status: http.StatusRequestEntityTooLarge, msg: "request body too large"})
			return
		}
		writeError(w, badRequest("could not read request body"))
		return
	}
	j, aerr := e.parse(kind, body)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	if !j.stream {
		b, err := e.whole(r.Context(), &j)
		if err != nil {
			return // the client went away
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	var line []byte
	send := func(data []byte) error {
		line = append(append(append(line[:0], "data: "...), data...), "\n\n"...)
		if _, err := w.Write(line); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := e.stream(r.Context(), &j, func(data []byte, _ bool) error { return send(data) }); err != nil {
		return
	}
	_ = send([]byte("[DONE]"))
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
}

// CountTokens is the built-in engine's tokenizer: every maximal run of
// letters and digits is one token, and so is every other character that is
// not white space.
func CountTokens(s string) int {
	n := 0
	inWord := false
	for _, r := range s {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if !inWord {
				n++
			}
			inWord = true
		case unicode.IsSpace(r):
			inWord = false
		default:
			n++
			inWord = false
		}
	}
	return n
}

// job is a parsed request.
type job struct {
	kind         gpu.Kind
	stream       bool
	includeUsage bool
	promptTokens int64
	seed         uint64
	start        int    // index in the corpus of the answer's first token
	length       int    // tokens to produce
	finish       string // "stop" or "length"
	produced     int    // tokens produced so far
	id           string
	created      int64
	model        []byte // JSON-quoted model name
}

func (j *job) usage() gpu.Usage {
	return gpu.Usage{PromptTokens: j.promptTokens, CompletionTokens: int64(j.produced)}
}

type apiRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	MaxTokens           *int64          `json:"max_tokens"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens"`
	N                   *int64          `json:"n"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

func (e *Engine) parse(kind gpu.Kind, body []byte) (job, *apiError) {
	var req apiRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return job{}, badRequest("request body is not valid JSON for this endpoint")
	}
	if req.Model != "" && req.Model != e.cfg.Model {
		return job{}, &apiError{
			status: http.StatusNotFound, typ: "invalid_request_error", param: "model", code: "model_not_found",
			msg: fmt.Sprintf("The model `%s` does not exist.", req.Model),
		}
	}
	if req.N != nil && *req.N != 1 {
		return job{}, &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", param: "n", msg: "only n=1 is supported"}
	}
	h := fnv.New64a()
	var frame [8]byte
	write := func(s string) {
		binary.BigEndian.PutUint64(frame[:], uint64(len(s)))
		h.Write(frame[:])
		h.Write([]byte(s))
	}
	var prompt int
	switch kind {
	case gpu.KindChat:
		if len(req.Messages) == 0 {
			return job{}, &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", param: "messages", msg: "messages must be a non-empty array"}
		}
		for _, m := range req.Messages {
			text, ok := contentText(m.Content)
			if !ok {
				return job{}, &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", param: "messages", msg: "message content must be a string or an array of content parts"}
			}
			write(m.Role)
			write(text)
			prompt += CountTokens(text)
		}
	case gpu.KindCompletion:
		text, ok := promptText(req.Prompt)
		if !ok {
			return job{}, &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", param: "prompt", msg: "prompt must be a string or an array of one string"}
		}
		write(text)
		prompt = CountTokens(text)
	default:
		return job{}, badRequest("unknown endpoint")
	}
	limit := int64(e.cfg.MaxTokens)
	param, maxTok := "max_tokens", req.MaxTokens
	if req.MaxCompletionTokens != nil {
		param, maxTok = "max_completion_tokens", req.MaxCompletionTokens
	}
	if maxTok != nil {
		if *maxTok < 1 {
			return job{}, &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", param: param, msg: param + " must be at least 1"}
		}
		limit = min(limit, *maxTok)
	}
	seed := h.Sum64()
	first := starts[seed%uint64(len(starts))]
	natural := sentenceEnd(first, e.cfg.Tokens-e.cfg.Tokens/5+int(seed%uint64(2*(e.cfg.Tokens/5)+1)))
	j := job{
		start:        first,
		kind:         kind,
		stream:       req.Stream,
		includeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage,
		promptTokens: int64(prompt),
		seed:         seed,
		length:       natural,
		finish:       "stop",
		created:      e.cfg.Now().Unix(),
	}
	if int64(natural) > limit {
		j.length, j.finish = int(limit), "length"
	}
	prefix := "chatcmpl-"
	if kind == gpu.KindCompletion {
		prefix = "cmpl-"
	}
	j.id = fmt.Sprintf("%s%016x%08x", prefix, seed, e.seq.Add(1))
	j.model, _ = json.Marshal(e.cfg.Model)
	return j, nil
}

// contentText returns the text of a chat message's content: a string, null
// (an assistant message with tool calls) or an array of parts, of which the
// text parts count.
func contentText(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", false
	}
	var out []byte
	for _, p := range parts {
		if p.Type == "text" {
			if len(out) > 0 {
				out = append(out, '\n')
			}
			out = append(out, p.Text...)
		}
	}
	return string(out), true
}

func promptText(raw json.RawMessage) (string, bool) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true
	}
	var ss []string
	if err := json.Unmarshal(raw, &ss); err == nil && len(ss) == 1 {
		return ss[0], true
	}
	return "", false
}

// corpus is what the built-in engine says: a few sentences about where the answer came from, so
// that a demo reads sensibly. An answer starts at a sentence picked by the prompt's hash and
// walks on, wrapping around. Every word and every punctuation mark is one token for CountTokens.
const corpus = "This answer comes from the built-in demo engine of cocoon. " +
	"Your prompt was decrypted only inside attested code: the proxy and the worker run in confidential VMs, " +
	"and each proved its image with a TDX quote in the TLS handshake. " +
	"Nobody in between, not the GPU owner and not the cloud host, can read the prompt or this answer. " +
	"The tokens were counted by the attested worker and charged in TON, and the worker earns its fee. " +
	"Point a worker at vLLM, SGLang, llama.cpp or Ollama to get answers from a real model. "

// The corpus as tokens, precomputed as text and as JSON strings: the first token of each
// whitespace-separated word carries the space before it, the rest of the word (punctuation, or
// the part after a hyphen) does not. starts are the indices where sentences begin.
var (
	rawTokens    []string
	quotedTokens [][]byte
	starts       []int
)

func init() {
	sentenceStart := true
	for _, field := range strings.Fields(corpus) {
		if sentenceStart {
			starts = append(starts, len(rawTokens))
		}
		first := true
		for f := field; f != ""; {
			// A token is a run of letters and digits, or one other character (as CountTokens counts).
			n := strings.IndexFunc(f, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
			if n == 0 {
				n = 1
			} else if n < 0 {
				n = len(f)
			}
			text := f[:n]
			if first {
				text = " " + text
			}
			q, _ := json.Marshal(text)
			rawTokens = append(rawTokens, text)
			quotedTokens = append(quotedTokens, q)
			f, first = f[n:], false
		}
		sentenceStart = strings.HasSuffix(field, ".")
	}
}

// sentenceEnd is the length of an answer that starts at start and runs on to the end of the
// sentence in which it reaches at least target tokens.
func sentenceEnd(start, target int) int {
	n := max(target, 1)
	for strings.TrimSpace(rawTokens[(start+n-1)%len(rawTokens)]) != "." {
		n++
	}
	return n
}

// splitmix64 steps the answer's pseudo-random sequence.
func splitmix64(x *uint64) uint64 {
	*x += 0x9e3779b97f4a7c15
	z := *x
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// tokens produces the answer's tokens, as JSON strings and as text, pacing
// them by the token delay and stopping when ctx ends.
func (e *Engine) tokens(ctx context.Context, j *job, yield func(q []byte, text string) error) error {
	var timer *time.Timer
	if e.cfg.TokenDelay > 0 {
		timer = time.NewTimer(e.cfg.TokenDelay)
		defer timer.Stop()
	}
	for i := range j.length {
		if timer != nil {
			if i > 0 {
				timer.Reset(e.cfg.TokenDelay)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-timer.C:
			}
		} else if err := ctx.Err(); err != nil {
			return err
		}
		k := (j.start + i) % len(rawTokens)
		q, text := quotedTokens[k], rawTokens[k]
		if i == 0 {
			// The first token of an answer has no leading space.
			text = strings.TrimPrefix(text, " ")
			q, _ = json.Marshal(text)
		}
		j.produced++
		if err := yield(q, text); err != nil {
			return err
		}
	}
	return nil
}

// appendHead appends the fields every response object starts with.
func appendHead(b []byte, j *job, object string) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, j.id...)
	b = append(b, `","object":"`...)
	b = append(b, object...)
	b = append(b, `","created":`...)
	b = strconv.AppendInt(b, j.created, 10)
	b = append(b, `,"model":`...)
	b = append(b, j.model...)
	return append(b, `,"system_fingerprint":"fp_cocoon"`...)
}

func appendUsage(b []byte, j *job) []byte {
	b = append(b, `"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, j.promptTokens, 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, int64(j.produced), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, j.promptTokens+int64(j.produced), 10)
	return append(b, `,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}`...)
}

// stream produces the data payloads of a streamed answer; usageChunk marks
// the final usage chunk. The [DONE] marker is the caller's.
func (e *Engine) stream(ctx context.Context, j *job, emit func(data []byte, usageChunk bool) error) error {
	object, openChoice := "chat.completion.chunk", `,"choices":[{"index":0,"delta":`
	if j.kind == gpu.KindCompletion {
		object, openChoice = "text_completion", `,"choices":[{"index":0,"text":`
	}
	tail := func(b []byte, finish string) []byte {
		if j.kind == gpu.KindChat {
			b = append(b, '}')
		}
		b = append(b, `,"logprobs":null,"finish_reason":`...)
		b = append(b, finish...)
		b = append(b, "}]"...)
		if j.includeUsage {
			b = append(b, `,"usage":null`...)
		}
		return append(b, '}')
	}
	buf := make([]byte, 0, 512)
	if j.kind == gpu.KindChat {
		buf = appendHead(buf[:0], j, object)
		buf = append(buf, openChoice...)
		buf = append(buf, `{"role":"assistant","content":""`...)
		if err := emit(tail(buf, "null"), false); err != nil {
			return err
		}
	}
	err := e.tokens(ctx, j, func(q []byte, _ string) error {
		buf = appendHead(buf[:0], j, object)
		buf = append(buf, openChoice...)
		if j.kind == gpu.KindChat {
			buf = append(buf, `{"content":`...)
		}
		buf = append(buf, q...)
		return emit(tail(buf, "null"), false)
	})
	if err != nil {
		return err
	}
	buf = appendHead(buf[:0], j, object)
	buf = append(buf, openChoice...)
	if j.kind == gpu.KindChat {
		buf = append(buf, '{')
	} else {
		buf = append(buf, `""`...)
	}
	if err := emit(tail(buf, `"`+j.finish+`"`), false); err != nil {
		return err
	}
	if !j.includeUsage {
		return nil
	}
	buf = appendHead(buf[:0], j, object)
	buf = append(buf, `,"choices":[],`...)
	buf = appendUsage(buf, j)
	return emit(append(buf, '}'), true)
}

// whole produces a non-streamed answer.
func (e *Engine) whole(ctx context.Context, j *job) ([]byte, error) {
	var text []byte
	err := e.tokens(ctx, j, func(_ []byte, s string) error {
		text = append(text, s...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	qtext, _ := json.Marshal(string(text))
	var b []byte
	if j.kind == gpu.KindChat {
		b = appendHead(b, j, "chat.completion")
		b = append(b, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
		b = append(b, qtext...)
		b = append(b, `,"refusal":null},"logprobs":null,"finish_reason":"`...)
	} else {
		b = appendHead(b, j, "text_completion")
		b = append(b, `,"choices":[{"index":0,"text":`...)
		b = append(b, qtext...)
		b = append(b, `,"logprobs":null,"finish_reason":"`...)
	}
	b = append(b, j.finish...)
	b = append(b, `"}],`...)
	b = appendUsage(b, j)
	return append(b, '}'), nil
}

// apiError is an OpenAI error answer.
type apiError struct {
	status int
	typ    string
	param  string
	code   string
	msg    string
}

func badRequest(msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", msg: msg}
}

func (a *apiError) body() []byte {
	type detail struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}
	d := detail{Message: a.msg, Type: a.typ}
	if d.Type == "" {
		d.Type = "invalid_request_error"
	}
	if a.param != "" {
		d.Param = &a.param
	}
	if a.code != "" {
		d.Code = &a.code
	}
	b, _ := json.Marshal(struct {
		Error detail `json:"error"`
	}{d})
	return b
}

func writeError(w http.ResponseWriter, a *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body())
}
