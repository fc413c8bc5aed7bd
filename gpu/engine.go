// Package gpu is the worker's side of inference: it forwards OpenAI-style
// requests to a local inference engine, streams the answer back chunk by
// chunk and meters the token usage the engine reports.
//
// The [Engine] interface is what the worker role depends on. [HTTPEngine]
// talks to any OpenAI-compatible engine (vLLM, SGLang, llama.cpp server,
// Ollama); package builtin is a deterministic in-process engine for demos,
// tests and benchmarks, and package scripted is a vLLM look-alike HTTP
// server for tests and the benchmark. [WeightsDigest] computes the model
// digest a worker announces.
//
// Nothing in this package logs or formats prompt or completion text: error
// values carry sizes, counts and statuses only.
package gpu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/cocoon-network/cocoon/gpu/oaierr"
	"github.com/cocoon-network/cocoon/settle"
)

// Kind is the OpenAI endpoint a request is for.
type Kind int

const (
	// KindChat is /v1/chat/completions.
	KindChat Kind = iota
	// KindCompletion is /v1/completions.
	KindCompletion
	// KindResponses is /v1/responses (OpenAI's Responses API).
	KindResponses
	// KindEmbeddings is /v1/embeddings: no completion, usage is prompt tokens only.
	KindEmbeddings
	// KindTranscription is /v1/audio/transcriptions: a multipart/form-data body, never streamed
	// here.
	KindTranscription
)

// Path returns the engine URL path of the endpoint.
func (k Kind) Path() string {
	switch k {
	case KindChat:
		return "/v1/chat/completions"
	case KindCompletion:
		return "/v1/completions"
	case KindResponses:
		return "/v1/responses"
	case KindEmbeddings:
		return "/v1/embeddings"
	case KindTranscription:
		return "/v1/audio/transcriptions"
	default:
		return ""
	}
}

// String implements fmt.Stringer.
func (k Kind) String() string {
	switch k {
	case KindChat:
		return "chat"
	case KindCompletion:
		return "completion"
	case KindResponses:
		return "responses"
	case KindEmbeddings:
		return "embeddings"
	case KindTranscription:
		return "transcription"
	default:
		return fmt.Sprintf("Kind(%d)", int(k))
	}
}

// Request is one client request for the engine.
type Request struct {
	Kind Kind
	// Body is the client's JSON body. It is passed through untouched, except
	// that for streaming requests stream_options.include_usage is set to true
	// so that the engine reports usage (see [HTTPEngine.Do]).
	Body []byte
	// Stream is the request's "stream" field, already parsed by the caller.
	Stream bool
	// ContentType is the body's media type when it is not JSON: a transcription's
	// multipart/form-data with its boundary.
	ContentType string
}

// Chunk is one SSE `data:` payload (streaming) or the whole JSON body
// (non-streaming). The stream's final "[DONE]" is not a chunk: Do returning
// without error means the stream ended with it, and a relay adds it back.
type Chunk struct {
	// Data is only valid during the Sink call; callers copy it if they keep it.
	Data []byte
	// Usage marks the final usage chunk of a stream (choices empty, usage set), whether or not the
	// client asked for it: a relay that knows what the client asked decides from this alone.
	Usage bool
	// More is set when more of the answer was already read from the engine, so a relay can send
	// this chunk together with the next ones instead of one network write each.
	More bool
}

// Sink receives the chunks of an answer in order. An error stops the request.
type Sink func(Chunk) error

// Engine runs inference requests.
type Engine interface {
	// Do runs one request, calling sink for each chunk as the engine produces
	// it, and returns the usage as the engine reported it. It stops the engine request when ctx is
	// cancelled or sink returns an error. The usage is returned as far as it
	// is known even when err is not nil.
	Do(ctx context.Context, req Request, sink Sink) (settle.Usage, error)
	// Health reports whether the engine answers (used to register and
	// unregister the worker).
	Health(ctx context.Context) error
}

var (
	// ErrTruncated means the stream ended before the engine's [DONE] marker:
	// the engine or the connection to it failed mid-answer.
	ErrTruncated = errors.New("engine stream truncated")
	// ErrNoUsage means the engine's answer carried no usage object, so the
	// request cannot be metered.
	ErrNoUsage = errors.New("engine answer has no usage")
	// ErrEventTooLarge means one SSE event exceeded the configured maximum.
	ErrEventTooLarge = errors.New("sse event too large")
	// ErrBadRequest means the request body is not something the engine could
	// be asked (not a JSON object, or stream_options is not an object).
	// Callers answer the client with 400.
	ErrBadRequest = errors.New("bad request body")
	// ErrStalled means the engine sent nothing for longer than the idle
	// timeout in the middle of an answer.
	ErrStalled = errors.New("engine stalled")
)

// HTTPError is returned when the engine answered with a non-2xx status.
// Status and Body (the engine's error JSON, bounded) are meant to be passed to
// the client as they are. Error() does not include Body, because an engine's
// error message may quote the request.
type HTTPError struct {
	Status int
	Body   []byte
	// NoEndpoint says the engine does not serve the endpoint at all (its web framework answered
	// 404 or 405); Body is then OpenAI's answer for an unknown route (see [NoEndpoint]).
	NoEndpoint bool
}

// NoEndpoint is OpenAI's error answer for a route it does not serve, status 404, here for an
// engine that lacks the endpoint at path.
func NoEndpoint(path string) []byte {
	return (&oaierr.Error{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "unknown_url",
		Message: "unknown endpoint " + path + ": the model's engine does not serve it"}).JSON()
}

// engineError reports whether b is an engine's own error answer: a JSON object with an "error"
// member (OpenAI, llama.cpp) or a top-level "message" (vLLM's older ErrorResponse), not a web
// framework's page for a missing route ({"detail":"Not Found"}, or plain text).
func engineError(b []byte) bool {
	var v struct {
		Error   json.RawMessage `json:"error"`
		Message json.RawMessage `json:"message"`
	}
	return json.Unmarshal(b, &v) == nil && (len(v.Error) > 0 || len(v.Message) > 0)
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("engine answered %d %s (%d byte body)", e.Status, http.StatusText(e.Status), len(e.Body))
}
