package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/roles/internal/bounds"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// kind is the OpenAI endpoint of a request.
type kind = wire.Kind

const (
	kindChat          = wire.Kind_KIND_CHAT
	kindCompletion    = wire.Kind_KIND_COMPLETION
	kindResponses     = wire.Kind_KIND_RESPONSES
	kindEmbeddings    = wire.Kind_KIND_EMBEDDINGS
	kindTranscription = wire.Kind_KIND_TRANSCRIPTION
)

// errRequestTimeout is the cause of a request context whose whole-request timeout expired.
var errRequestTimeout = errors.New("request timeout")

// auth requires the configured bearer token, compared in constant time.
func (c *Client) auth(h http.Handler) http.Handler {
	if c.cfg.APIToken == "" {
		return h
	}
	want := []byte("Bearer " + c.cfg.APIToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.authorized(w, r, want) {
			h.ServeHTTP(w, r)
		}
	})
}

// authorized reports whether r carries the bearer token want, and refuses it if not.
//
// The checks of every middleware are calls of their own, never inlined into the closure that
// calls the next handler: that closure stays on the stack while an answer streams, and a small
// frame lets the collector halve the goroutine's stack (see attempt).
//
//go:noinline
func (c *Client) authorized(w http.ResponseWriter, r *http.Request, want []byte) bool {
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) == 1 {
		return true
	}
	c.stats.outcome("unauthorized")
	w.Header().Set("WWW-Authenticate", `Bearer realm="cocoon"`)
	writeError(w, newError(http.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
		"missing or invalid API token: send Authorization: Bearer <token>"))
	return false
}

// request is what the client needs to know of an OpenAI request; the body itself goes on untouched.
type request struct {
	model        string
	stream       bool
	includeUsage bool
}

// parseRequest validates just enough of the body to route it and answer in the right shape. Every
// other field (tools, response_format, seed, logprobs…) is the engine's business.
func parseRequest(k kind, body []byte) (request, *apiError) {
	var req request
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		return req, errBadRequest("request body must be a JSON object")
	}
	present := func(name string) (json.RawMessage, bool) {
		raw, ok := obj[name]
		if !ok || string(raw) == "null" {
			return nil, false
		}
		return raw, true
	}
	raw, ok := present("model")
	if !ok || json.Unmarshal(raw, &req.model) != nil || req.model == "" {
		return req, errParam("model", "model: must be a non-empty string")
	}
	if raw, ok := present("stream"); ok && json.Unmarshal(raw, &req.stream) != nil {
		return req, errParam("stream", "stream: must be a boolean")
	}
	if raw, ok := present("stream_options"); ok {
		var so map[string]json.RawMessage
		if json.Unmarshal(raw, &so) != nil || so == nil {
			return req, errParam("stream_options", "stream_options: must be an object")
		}
		if raw, ok := so["include_usage"]; ok && string(raw) != "null" && json.Unmarshal(raw, &req.includeUsage) != nil {
			return req, errParam("stream_options.include_usage", "stream_options.include_usage: must be a boolean")
		}
	}
	switch k {
	case kindChat:
		raw, ok := present("messages")
		if !ok || !bytes.HasPrefix(bytes.TrimLeft(raw, " \t\r\n"), []byte{'['}) {
			return req, errParam("messages", "messages: must be an array")
		}
	case kindCompletion:
		if _, ok := present("prompt"); !ok {
			return req, errParam("prompt", "prompt: is required")
		}
	case kindResponses:
		if raw, ok := present("background"); ok && string(raw) == "true" {
			// Its answer would come later, on another request, which the network cannot meter.
			return req, errParam("background", "background: responses run in the background are not supported; leave background unset")
		}
	case kindEmbeddings:
		_, input := present("input")
		if _, messages := present("messages"); !input && !messages {
			return req, errParam("input", "input: is required")
		}
		if req.stream {
			return req, errParam("stream", "stream: embeddings are not streamed; leave stream unset")
		}
	}
	return req, nil
}

// boundsParams are the request members whose faults bounds.OfKind names first in its message.
var boundsParams = map[string]bool{"model": true, "stream": true, "max_tokens": true, "max_completion_tokens": true,
	"max_output_tokens": true, "n": true, "best_of": true, "prompt": true, "messages": true, "input": true, "tools": true}

func errParam(param, msg string) *apiError {
	e := errBadRequest(msg)
	e.param = param
	return e
}

// newRequestID names a request in headers and logs; it says nothing about the content.
func newRequestID() string { return "req_" + strings.ToLower(rand.Text()[:20]) }

func (c *Client) completionHandler(k kind) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.completionAllowed(w, r, k) {
			c.serveCompletion(w, r, k)
		}
	})
}

// completionAllowed refuses a request of kind k with the wrong method or content type.
//
//go:noinline
func (c *Client) completionAllowed(w http.ResponseWriter, r *http.Request, k kind) bool {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		c.stats.outcome("bad_request")
		writeError(w, newError(http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed",
			"use POST"))
		return false
	}
	if ct := r.Header.Get("Content-Type"); k == kindTranscription && !formBody(ct) {
		c.stats.outcome("bad_request")
		writeError(w, errFormContentType(ct))
		return false
	} else if k != kindTranscription && !jsonBody(ct) {
		c.stats.outcome("bad_request")
		writeError(w, errContentType(ct))
		return false
	}
	return true
}

func (c *Client) serveCompletion(w http.ResponseWriter, r *http.Request, k kind) {
	x := &call{c: c, w: w, id: requestID(w, r), kind: k, start: time.Now()}
	c.stats.begin()
	defer x.end()
	var apiErr *apiError
	if x.bodyHeld, apiErr = c.takeRequest(x, r); apiErr != nil {
		x.fail(apiErr)
		return
	}
	x.run(x.limit(r))
}

// limit gives the request its deadline, and returns the context that carries it. It is a call of
// its own so that its temporaries are off the stack while the answer streams (see attempt).
//
//go:noinline
func (x *call) limit(r *http.Request) context.Context {
	ctx, cancel := context.WithTimeoutCause(r.Context(), x.c.cfg.RequestTimeout, errRequestTimeout)
	x.cancel = cancel
	x.deadline, _ = ctx.Deadline()
	x.rc = http.NewResponseController(x.w)
	// An app that stops reading must not hold the handler past the request's own deadline; the
	// grace lets the timeout error itself still be written.
	_ = x.rc.SetWriteDeadline(x.deadline.Add(5 * time.Second))
	return ctx
}

// end releases what the request held once its answer is over, and counts it. It is the one
// deferred call of serveCompletion, whose frame stays on the stack while the answer streams (see
// attempt).
func (x *call) end() {
	if x.rc != nil {
		// net/http does not reset deadlines between requests on a kept-alive connection.
		_ = x.rc.SetWriteDeadline(time.Time{})
	}
	if x.cancel != nil {
		x.cancel()
	}
	x.c.bodies.give(x.bodyHeld)
	x.c.finish(x)
}

// takeRequest reads and checks the request, and decides its facts into x. held is what its body
// takes of c.bodies, which the caller gives back once done with the request. It is a call of its
// own so that its locals are off the stack while the answer streams (see attempt).
func (c *Client) takeRequest(x *call, r *http.Request) (held int64, apiErr *apiError) {
	body, held, apiErr := c.readBody(x.w, r)
	x.reqBytes = len(body)
	if apiErr != nil {
		return held, apiErr
	}
	var req request
	if x.kind == kindTranscription {
		// The form goes on written again, its boundary on its first line (gpu.Form.Encode).
		req, body, apiErr = parseTranscription(body, r.Header.Get("Content-Type"))
	} else {
		req, apiErr = parseRequest(x.kind, body)
	}
	if apiErr != nil {
		return held, apiErr
	}
	lim, err := bounds.OfKind(x.kind, body, "")
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), gpu.ErrBadRequest.Error()+": ")
		e := errBadRequest("request body: " + msg)
		if f, _, _ := strings.Cut(msg, " "); boundsParams[strings.TrimSuffix(f, ":")] {
			e.param = strings.TrimSuffix(f, ":")
		}
		return held, e
	}
	x.body, x.model, x.stream, x.includeUsage, x.bounds = body, req.model, req.stream, req.includeUsage, lim
	return held, nil
}

// readBody reads the request body within the body limit, the body budget and the body deadline.
// held is what the body takes of c.bodies; the caller gives it back once done with the body.
func (c *Client) readBody(w http.ResponseWriter, r *http.Request) (body []byte, held int64, apiErr *apiError) {
	defer func() {
		if apiErr != nil {
			// Whatever is left of the body is not read: net/http would otherwise wait for it, with
			// no deadline, before it sends the refusal.
			w.Header().Set("Connection", "close")
		}
	}()
	limit := c.cfg.MaxBodyBytes
	tooLarge := newError(http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large",
		"request body is over the limit of "+formatBytes(limit)+": send less, or raise client.max_body_bytes")
	// Refused before a byte is read, and before anything is set aside for it.
	if r.ContentLength > limit {
		return nil, 0, tooLarge
	}
	size, declared := r.ContentLength, r.ContentLength >= 0
	if !declared {
		size = limit // chunked: it may be as large as the limit
	}
	waitCtx, cancel := context.WithTimeout(r.Context(), c.bodyWait)
	took := c.bodies.take(waitCtx, size)
	cancel()
	if !took {
		if r.Context().Err() != nil {
			return nil, 0, newError(statusClientClosed, "invalid_request_error", "cancelled", "the app went away")
		}
		w.Header().Set("Retry-After", "1")
		return nil, 0, newError(http.StatusServiceUnavailable, "server_error", "overloaded",
			"too many request bodies are being received at once (client.max_bodies_bytes is "+
				formatBytes(c.cfg.MaxBodiesBytes)+"): retry shortly, or raise client.max_bodies_bytes")
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(c.bodyRead))
	body, err := readBody(http.MaxBytesReader(w, r.Body, limit), size, declared)
	_ = rc.SetReadDeadline(time.Time{})
	if err == nil {
		// What the buffer did not grow to is free again at once.
		held = min(int64(cap(body)), size)
		c.bodies.give(size - held)
		return body, held, nil
	}
	c.bodies.give(size)
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr):
		return nil, 0, tooLarge
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, 0, newError(http.StatusRequestTimeout, "invalid_request_error", "request_timeout",
			"the request body did not arrive within "+c.bodyRead.String()+": send it faster, or send less")
	}
	return nil, 0, errBadRequest("could not read the request body")
}

// serveModels answers OpenAI's model list, merged across every connected proxy.
func (c *Client) serveModels(w http.ResponseWriter, r *http.Request) {
	models, apiErr := c.listModels(r.Context())
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	writeJSON(w, http.StatusOK, modelList{Object: "list", Data: models})
}

// serveModel answers OpenAI's model retrieval.
func (c *Client) serveModel(w http.ResponseWriter, r *http.Request) {
	models, apiErr := c.listModels(r.Context())
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	name := r.PathValue("model")
	for _, m := range models {
		if m.ID == name {
			writeJSON(w, http.StatusOK, m)
			return
		}
	}
	writeError(w, newError(http.StatusNotFound, "invalid_request_error", "model_not_found",
		"no connected proxy serves model "+name))
}

type modelList struct {
	Object string        `json:"object"`
	Data   []modelObject `json:"data"`
}

type modelObject struct {
	ID             string `json:"id"`
	Object         string `json:"object"`
	Created        int64  `json:"created"`
	OwnedBy        string `json:"owned_by"`
	Workers        uint32 `json:"workers"`
	MinCoefficient uint32 `json:"min_coefficient"`
	MaxCoefficient uint32 `json:"max_coefficient"`
}

// modelsTimeout bounds one proxy's answer to a model list request.
const modelsTimeout = 10 * time.Second

// listModels asks every connected proxy for its models and merges the answers. A proxy that fails
// is left out; only when all fail is the request an error.
func (c *Client) listModels(ctx context.Context) ([]modelObject, *apiError) {
	targets := c.waitCandidates(ctx)
	if len(targets) == 0 {
		return nil, errNoProxy()
	}
	type answer struct {
		list *wire.ModelsList
		err  *apiError
	}
	answers := make([]answer, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			list, err := c.proxyModels(ctx, t)
			if err != nil {
				lvl := zerolog.DebugLevel
				if c.modelsWarn.allow() {
					lvl = zerolog.WarnLevel
				}
				c.log.WithLevel(lvl).Str("proxy", t.p.addr).Str("error", err.msg).Msg("model list failed")
			}
			answers[i] = answer{list, err}
		})
	}
	wg.Wait()

	merged := map[string]*modelObject{}
	var lastErr *apiError
	ok := false
	for _, a := range answers {
		if a.err != nil {
			lastErr = pickError(lastErr, a.err)
			continue
		}
		ok = true
		for _, m := range a.list.GetModels() {
			o := merged[m.GetName()]
			if o == nil {
				o = &modelObject{ID: m.GetName(), Object: "model", Created: c.started.Unix(), OwnedBy: "cocoon"}
				merged[m.GetName()] = o
			}
			o.Workers += m.GetWorkers()
			if m.GetMinCoefficient() > 0 && (o.MinCoefficient == 0 || m.GetMinCoefficient() < o.MinCoefficient) {
				o.MinCoefficient = m.GetMinCoefficient()
			}
			o.MaxCoefficient = max(o.MaxCoefficient, m.GetMaxCoefficient())
		}
	}
	if !ok {
		return nil, lastErr
	}
	out := make([]modelObject, 0, len(merged))
	for _, o := range merged {
		out = append(out, *o)
	}
	slices.SortFunc(out, func(a, b modelObject) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// proxyModels runs one ModelsRequest stream.
func (c *Client) proxyModels(ctx context.Context, t target) (*wire.ModelsList, *apiError) {
	ctx, cancel := context.WithTimeout(ctx, modelsTimeout)
	defer cancel()
	s, err := t.conn.OpenStream(ctx)
	if err != nil {
		return nil, newError(http.StatusBadGateway, "server_error", "upstream_error", "proxy connection failed")
	}
	stop := context.AfterFunc(ctx, func() { s.Cancel(wire.CodeCancelled) })
	defer stop()
	if err := s.Send(&wire.ModelsRequest{}); err != nil {
		return nil, newError(http.StatusBadGateway, "server_error", "upstream_error", "proxy connection failed")
	}
	_ = s.CloseSend()
	m, err := s.Recv()
	if err != nil {
		if ctx.Err() != nil {
			return nil, errTimeout()
		}
		if code, ok := transport.ErrorCode(err); ok {
			return nil, errFromCode(code, "proxy refused the model list")
		}
		return nil, newError(http.StatusBadGateway, "server_error", "upstream_error", "proxy connection failed")
	}
	switch m := m.(type) {
	case *wire.ModelsList:
		drain(s)
		return m, nil
	case *wire.Error:
		drain(s)
		return nil, errFromWire(m)
	}
	s.Cancel(wire.CodeProtocol)
	return nil, newError(http.StatusBadGateway, "server_error", "upstream_error", "proxy sent an unexpected message")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, newError(http.StatusInternalServerError, "server_error", "internal_error", "encode answer"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return itoa(n>>20) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return itoa(n>>10) + " KiB"
	}
	return itoa(n) + " bytes"
}
