package builtin

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/gpu/oaierr"
	"github.com/cocoon-network/cocoon/settle"
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
	e.routes()
	return e
}

// Model returns the name of the model the engine serves.
func (e *Engine) Model() string { return e.cfg.Model }

// Health implements gpu.Engine: the built-in engine is always up.
func (e *Engine) Health(ctx context.Context) error { return ctx.Err() }

// Do implements gpu.Engine in process. It behaves as gpu.HTTPEngine does in
// front of this engine's HTTP handler: streams always end with a usage chunk
// (marked Usage), a malformed request
// gives a *gpu.HTTPError with status 400 and OpenAI error JSON, and
// req.Stream (not the body) chooses streaming.
func (e *Engine) Do(ctx context.Context, req gpu.Request, sink gpu.Sink) (settle.Usage, error) {
	if req.Stream && req.Kind == gpu.KindEmbeddings {
		return settle.Usage{}, fmt.Errorf("builtin engine: %w: %s answers are not streamed", gpu.ErrBadRequest, req.Kind)
	}
	if req.Kind == gpu.KindEmbeddings {
		b, u, aerr := e.embed(req.Body)
		if aerr != nil {
			return settle.Usage{}, &gpu.HTTPError{Status: aerr.Status, Body: aerr.JSON()}
		}
		if err := sink(gpu.Chunk{Data: b}); err != nil {
			return u, fmt.Errorf("builtin engine sink: %w", err)
		}
		return u, nil
	}
	var (
		j    job
		aerr *oaierr.Error
	)
	if req.Kind == gpu.KindTranscription {
		j, aerr = e.parseTranscription(req.Body, req.ContentType)
	} else {
		j, aerr = e.parse(req.Kind, req.Body)
	}
	if aerr != nil {
		return settle.Usage{}, &gpu.HTTPError{Status: aerr.Status, Body: aerr.JSON()}
	}
	if !req.Stream {
		b, err := e.answer(ctx, &j)
		if err != nil {
			return settle.Usage{}, fmt.Errorf("builtin engine: %w", err)
		}
		if err := sink(gpu.Chunk{Data: b}); err != nil {
			return j.usage(), fmt.Errorf("builtin engine sink: %w", err)
		}
		return j.usage(), nil
	}
	var err error
	switch j.kind {
	case gpu.KindResponses:
		// Every event is the app's: the usage travels in the last one, not in a usage chunk.
		err = e.streamResponse(ctx, &j, func(_ string, data []byte) error { return sink(gpu.Chunk{Data: data}) })
	case gpu.KindTranscription:
		err = e.streamTranscript(ctx, &j, func(data []byte) error { return sink(gpu.Chunk{Data: data}) })
	default:
		j.includeUsage = true
		err = e.stream(ctx, &j, func(data []byte, usageChunk bool) error {
			return sink(gpu.Chunk{Data: data, Usage: usageChunk})
		})
	}
	if err != nil {
		return j.usage(), fmt.Errorf("builtin engine: %w", err)
	}
	return j.usage(), nil
}

// answer is the non-streamed answer to j.
func (e *Engine) answer(ctx context.Context, j *job) ([]byte, error) {
	switch j.kind {
	case gpu.KindResponses:
		return e.wholeResponse(ctx, j)
	case gpu.KindTranscription:
		return e.transcript(ctx, j)
	}
	return e.whole(ctx, j)
}
