package gpu_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/gpu/builtin"
	"github.com/cocoon-network/cocoon/gpu/scripted"
	"github.com/cocoon-network/cocoon/settle"
)

// testTimeout bounds every wait in these tests, so a bug fails a test
// instead of hanging it.
const testTimeout = 10 * time.Second

func newEngine(t *testing.T, url string, mod ...func(*gpu.HTTPConfig)) *gpu.HTTPEngine {
	t.Helper()
	cfg := gpu.HTTPConfig{BaseURL: url}
	for _, m := range mod {
		m(&cfg)
	}
	e, err := gpu.NewHTTP(cfg)
	require.New(t).NoError(err)
	t.Cleanup(e.Close)
	return e
}

func newFake(t *testing.T, cfg scripted.Config) *scripted.Server {
	t.Helper()
	s := scripted.New(cfg)
	t.Cleanup(s.Close)
	return s
}

// collector is a Sink that keeps copies of the chunks.
type collector struct {
	chunks     []string
	usageChunk []bool
	err        error // returned from the sink after the chunks in errAfter
	errAfter   int
	onChunk    func(n int) // called after each chunk with the count so far
}

func (c *collector) sink(ch gpu.Chunk) error {
	if c.err != nil && len(c.chunks) == c.errAfter {
		return c.err
	}
	c.chunks = append(c.chunks, string(ch.Data))
	c.usageChunk = append(c.usageChunk, ch.Usage)
	if c.onChunk != nil {
		c.onChunk(len(c.chunks))
	}
	return nil
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

const chatBody = `{"model":"scripted-model","messages":[{"role":"user","content":"hello"}],"stream":true}`

func TestHTTPEngineStream(t *testing.T) {
	testCases := map[string]struct {
		cfg        scripted.Config
		kind       gpu.Kind
		body       string
		wantChunks int
		wantUsage  settle.Usage
	}{
		"chat, usage injected": {
			cfg:        scripted.Reference(),
			kind:       gpu.KindChat,
			body:       chatBody,
			wantChunks: 1 + 50 + 1,
			wantUsage:  settle.Usage{PromptTokens: 16, CompletionTokens: 50},
		},
		"chat, client asked for usage": {
			cfg:        scripted.Config{Chunks: 3},
			kind:       gpu.KindChat,
			body:       `{"messages":[],"stream":true,"stream_options":{"include_usage":true}}`,
			wantChunks: 1 + 3 + 1,
			wantUsage:  settle.Usage{PromptTokens: 16, CompletionTokens: 3},
		},
		"completion with cached and reasoning tokens": {
			cfg:        scripted.Config{Chunks: 5, PromptTokens: 100, CachedTokens: 64, ReasoningTokens: 2},
			kind:       gpu.KindCompletion,
			body:       `{"prompt":"x","stream":true,"stream_options":{"continuous_usage_stats":false}}`,
			wantChunks: 5 + 1,
			wantUsage:  settle.Usage{PromptTokens: 100, CachedTokens: 64, CompletionTokens: 5, ReasoningTokens: 2},
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			fake := newFake(t, tc.cfg)
			eng := newEngine(t, fake.URL+"/v1/", func(c *gpu.HTTPConfig) { c.APIKey = "secret" })
			var c collector
			u, err := eng.Do(ctxT(t), gpu.Request{Kind: tc.kind, Body: []byte(tc.body), Stream: true}, c.sink)
			require.NoError(err)
			assert.Equal(tc.wantUsage, u)
			require.Len(c.chunks, tc.wantChunks)
			for i, ch := range c.chunks {
				assert.True(json.Valid([]byte(ch)), "chunk %d", i)
				assert.Equal(i == len(c.chunks)-1, c.usageChunk[i], "chunk %d: only the last is the usage chunk", i)
			}
			reqs := fake.Requests()
			require.Len(reqs, 1)
			assert.Equal(tc.kind.Path(), reqs[0].Path)
			assert.True(reqs[0].IncludeUsage())
			assert.Equal("Bearer secret", reqs[0].Header.Get("Authorization"))
		})
	}
}

// TestHTTPEngineStreamsChunkByChunk proves that chunks reach the sink while
// the engine is still generating: the engine does not send chunk 2 until the
// sink has seen chunk 1.
func TestHTTPEngineStreamsChunkByChunk(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	step := make(chan struct{})
	fake := newFake(t, scripted.Config{Chunks: 3, Step: step})
	eng := newEngine(t, fake.URL)
	ctx := ctxT(t)
	firstSeen := make(chan struct{})
	c := collector{onChunk: func(n int) {
		if n == 1 {
			close(firstSeen)
		}
	}}
	go func() {
		select {
		case step <- struct{}{}: // release the first event only
		case <-ctx.Done():
			return
		}
		select {
		case <-firstSeen:
			close(step) // now let the rest flow
		case <-ctx.Done():
		}
	}()
	u, err := eng.Do(ctx, gpu.Request{Kind: gpu.KindChat, Body: []byte(chatBody), Stream: true}, c.sink)
	require.NoError(err, "the sink never saw chunk 1 before the engine sent chunk 2")
	assert.Len(c.chunks, 1+3+1)
	assert.Equal(uint64(3), u.CompletionTokens)
}

func TestHTTPEnginePassThrough(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	fake := newFake(t, scripted.Config{Chunks: 1})
	eng := newEngine(t, fake.URL)
	body := `{"model":"scripted-model","messages":[{"role":"user","content":"What's the weather?"}],` +
		`"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],` +
		`"tool_choice":"auto","response_format":{"type":"json_object"},"seed":42,"logprobs":true,"top_logprobs":2,` +
		`"user":"u-1","x_vendor_extension":{"nested":[1,2.50,"\u00e9"]},"stream":`
	for _, stream := range []bool{false, true} {
		b := body + strconv.FormatBool(stream) + "}"
		_, err := eng.Do(ctxT(t), gpu.Request{Kind: gpu.KindChat, Body: []byte(b), Stream: stream}, (&collector{}).sink)
		require.NoError(err)
	}
	reqs := fake.Requests()
	require.Len(reqs, 2)
	assert.Equal(body+"false}", string(reqs[0].Body), "non-streaming bodies are passed untouched")
	assert.Equal(body+`true,"stream_options":{"include_usage":true}}`, string(reqs[1].Body))
}

func TestHTTPEngineWhole(t *testing.T) {
	testCases := map[string]struct {
		cfg       scripted.Config
		kind      gpu.Kind
		wantUsage settle.Usage
		wantErr   error
	}{
		"chat": {
			cfg:       scripted.Config{Chunks: 4, PromptTokens: 10, CachedTokens: 3, ReasoningTokens: 1},
			kind:      gpu.KindChat,
			wantUsage: settle.Usage{PromptTokens: 10, CachedTokens: 3, CompletionTokens: 4, ReasoningTokens: 1},
		},
		"completion": {
			cfg:       scripted.Config{Chunks: 2},
			kind:      gpu.KindCompletion,
			wantUsage: settle.Usage{PromptTokens: 16, CompletionTokens: 2},
		},
		"no usage is withheld": {
			cfg:     scripted.Config{NoUsage: true},
			kind:    gpu.KindChat,
			wantErr: gpu.ErrNoUsage,
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			fake := newFake(t, tc.cfg)
			eng := newEngine(t, fake.URL)
			var c collector
			u, err := eng.Do(ctxT(t), gpu.Request{Kind: tc.kind, Body: []byte(`{"prompt":"x","messages":[]}`)}, c.sink)
			if tc.wantErr != nil {
				assert.ErrorIs(err, tc.wantErr)
				assert.Empty(c.chunks)
				return
			}
			assert.NoError(err)
			assert.Equal(tc.wantUsage, u)
			if assert.Len(c.chunks, 1) {
				assert.True(json.Valid([]byte(c.chunks[0])))
				assert.False(c.usageChunk[0], "a whole answer is no usage chunk")
			}
		})
	}
}

func TestHTTPEngineErrors(t *testing.T) {
	errSink := errors.New("client gone")
	testCases := map[string]struct {
		cfg        scripted.Config
		httpCfg    func(*gpu.HTTPConfig)
		body       string
		stream     bool
		sinkErr    error
		wantErr    error
		wantStatus int
		wantUsage  settle.Usage
		wantChunks int
	}{
		"engine error status": {
			cfg:        scripted.Config{Status: http.StatusServiceUnavailable},
			stream:     true,
			wantStatus: http.StatusServiceUnavailable,
		},
		"engine bad request, not streaming": {
			cfg:        scripted.Config{Status: http.StatusBadRequest},
			wantStatus: http.StatusBadRequest,
		},
		"connection dropped": {
			cfg:        scripted.Config{Chunks: 5, Drop: true, DropAfter: 3},
			stream:     true,
			wantErr:    gpu.ErrTruncated,
			wantChunks: 3,
		},
		"no DONE": {
			cfg:        scripted.Config{Chunks: 2, NoDone: true},
			stream:     true,
			wantErr:    gpu.ErrTruncated,
			wantChunks: 4,
			wantUsage:  settle.Usage{PromptTokens: 16, CompletionTokens: 2},
		},
		"no usage": {
			cfg:        scripted.Config{Chunks: 2, NoUsage: true},
			stream:     true,
			wantErr:    gpu.ErrNoUsage,
			wantChunks: 3,
		},
		"oversized event": {
			cfg:     scripted.Config{Chunks: 2, ChunkBytes: 4096},
			httpCfg: func(c *gpu.HTTPConfig) { c.MaxEventSize = 1024 },
			stream:  true,
			wantErr: gpu.ErrEventTooLarge,
			// The role chunk fits.
			wantChunks: 1,
		},
		"stalled engine": {
			cfg:        scripted.Config{Chunks: 5, Stall: true, StallAfter: 2},
			httpCfg:    func(c *gpu.HTTPConfig) { c.IdleTimeout = 50 * time.Millisecond },
			stream:     true,
			wantErr:    gpu.ErrStalled,
			wantChunks: 2,
		},
		"sink error": {
			cfg:        scripted.Config{Chunks: 5},
			stream:     true,
			sinkErr:    errSink,
			wantErr:    errSink,
			wantChunks: 2,
		},
		"not a JSON object": {
			body:    `["stream"]`,
			stream:  true,
			wantErr: gpu.ErrBadRequest,
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			fake := newFake(t, tc.cfg)
			var mods []func(*gpu.HTTPConfig)
			if tc.httpCfg != nil {
				mods = append(mods, tc.httpCfg)
			}
			eng := newEngine(t, fake.URL, mods...)
			body := tc.body
			if body == "" {
				body = chatBody
			}
			c := collector{err: tc.sinkErr, errAfter: 2}
			u, err := eng.Do(ctxT(t), gpu.Request{Kind: gpu.KindChat, Body: []byte(body), Stream: tc.stream}, c.sink)
			assert.Error(err)
			if tc.wantStatus != 0 {
				var he *gpu.HTTPError
				if assert.ErrorAs(err, &he) {
					assert.Equal(tc.wantStatus, he.Status)
					assert.Contains(string(he.Body), `"object":"error"`)
					assert.NotContains(err.Error(), "configured failure", "Error() must not carry the engine's message")
				}
			}
			if tc.wantErr != nil {
				assert.ErrorIs(err, tc.wantErr)
			}
			assert.Len(c.chunks, tc.wantChunks)
			assert.Equal(tc.wantUsage, u)
		})
	}
}

func TestHTTPEngineCancellationReachesEngine(t *testing.T) {
	testCases := map[string]struct {
		cfg    scripted.Config
		step   bool
		stream bool
		sink   func(cancel context.CancelFunc) gpu.Sink
		want   error
	}{
		"ctx cancelled mid-stream": {
			cfg:    scripted.Config{Chunks: 10, Stall: true, StallAfter: 2},
			stream: true,
			sink: func(cancel context.CancelFunc) gpu.Sink {
				n := 0
				return func(gpu.Chunk) error {
					if n++; n == 2 {
						cancel()
					}
					return nil
				}
			},
			want: context.Canceled,
		},
		"sink fails mid-stream": {
			cfg:    scripted.Config{Chunks: 10},
			step:   true,
			stream: true,
			sink: func(context.CancelFunc) gpu.Sink {
				return func(gpu.Chunk) error { return errors.New("relay closed") }
			},
		},
		"ctx cancelled while not streaming": {
			cfg: scripted.Config{Stall: true},
			sink: func(context.CancelFunc) gpu.Sink {
				return func(gpu.Chunk) error { return nil }
			},
			want: context.Canceled,
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			if tc.step {
				// One event (the role chunk) then hold: the sink's error,
				// not the end of the stream, must stop the request.
				step := make(chan struct{}, 1)
				step <- struct{}{}
				tc.cfg.Step = step
			}
			fake := newFake(t, tc.cfg)
			eng := newEngine(t, fake.URL)
			ctx, cancel := context.WithCancel(ctxT(t))
			defer cancel()
			if !tc.stream {
				go func() {
					if _, err := fake.Await(ctx, 1); err == nil {
						cancel()
					}
				}()
			}
			_, err := eng.Do(ctx, gpu.Request{Kind: gpu.KindChat, Body: []byte(chatBody), Stream: tc.stream}, tc.sink(cancel))
			require.Error(err)
			if tc.want != nil {
				assert.ErrorIs(err, tc.want)
			}
			reqs := fake.Requests()
			require.Len(reqs, 1)
			select {
			case <-reqs[0].Cancelled():
			case <-time.After(testTimeout):
				t.Fatal("the engine never saw the request cancelled")
			}
		})
	}
}

func TestHTTPEngineHealth(t *testing.T) {
	assert := assert.New(t)
	fake := newFake(t, scripted.Config{})
	eng := newEngine(t, fake.URL)
	ctx := ctxT(t)
	assert.NoError(eng.Health(ctx))
	fake.Configure(func(c *scripted.Config) { c.Down = true })
	assert.Error(eng.Health(ctx))
	fake.Configure(func(c *scripted.Config) { c.Down = false })
	assert.NoError(eng.Health(ctx))

	// An engine without /health (Ollama) is healthy when /v1/models answers.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"data":[]}`)) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	assert.NoError(newEngine(t, srv.URL).Health(ctx))

	srv.Close()
	assert.Error(newEngine(t, srv.URL).Health(ctx))
}

func TestNewHTTP(t *testing.T) {
	testCases := map[string]struct {
		url     string
		wantErr bool
	}{
		"plain":        {url: "http://127.0.0.1:8000"},
		"with v1":      {url: "http://127.0.0.1:8000/v1/"},
		"https":        {url: "https://engine.internal"},
		"empty":        {url: "", wantErr: true},
		"no scheme":    {url: "127.0.0.1:8000", wantErr: true},
		"wrong scheme": {url: "ftp://x", wantErr: true},
		"query":        {url: "http://x/?a=1", wantErr: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			e, err := gpu.NewHTTP(gpu.HTTPConfig{BaseURL: tc.url})
			if tc.wantErr {
				assert.Error(err)
				return
			}
			assert.NoError(err)
			e.Close()
		})
	}
}

// TestHTTPEngineAgainstBuiltin runs the HTTP engine against the built-in
// engine's handler and checks it agrees with the built-in engine in process.
func TestHTTPEngineAgainstBuiltin(t *testing.T) {
	testCases := map[string]struct {
		kind gpu.Kind
		body string
	}{
		"chat": {
			kind: gpu.KindChat,
			body: `{"model":"cocoon-builtin","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Why is the sky blue?"}],"max_tokens":30}`,
		},
		"chat, usage asked": {
			kind: gpu.KindChat,
			body: `{"messages":[{"role":"user","content":[{"type":"text","text":"Hi!"}]}],"stream_options":{"include_usage":true}}`,
		},
		"completion": {
			kind: gpu.KindCompletion,
			body: `{"prompt":"Once upon a time,","max_tokens":7}`,
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			be := builtin.New(builtin.Config{})
			srv := httptest.NewServer(be)
			t.Cleanup(srv.Close)
			eng := newEngine(t, srv.URL)
			ctx := ctxT(t)
			for _, stream := range []bool{false, true} {
				body := []byte(tc.body)
				if stream {
					body = append(bytes.TrimSuffix(body, []byte("}")), `,"stream":true}`...)
				}
				req := gpu.Request{Kind: tc.kind, Body: body, Stream: stream}
				var overHTTP, inProc collector
				u1, err := eng.Do(ctx, req, overHTTP.sink)
				require.NoError(err)
				u2, err := be.Do(ctx, req, inProc.sink)
				require.NoError(err)
				assert.Equal(u1, u2)
				assert.Positive(u1.PromptTokens)
				assert.Positive(u1.CompletionTokens)
				assert.Equal(len(overHTTP.chunks), len(inProc.chunks))
				assert.Equal(overHTTP.usageChunk, inProc.usageChunk)
				assert.Equal(text(t, overHTTP.chunks), text(t, inProc.chunks))
			}
		})
	}
}

// text reassembles the answer text from chunks of any OpenAI shape.
func text(t *testing.T, chunks []string) string {
	var b strings.Builder
	for _, c := range chunks {
		var v struct {
			Choices []struct {
				Text    string `json:"text"`
				Delta   struct{ Content string }
				Message struct{ Content string }
			} `json:"choices"`
		}
		require.New(t).NoError(json.Unmarshal([]byte(c), &v))
		for _, ch := range v.Choices {
			b.WriteString(ch.Text + ch.Delta.Content + ch.Message.Content)
		}
	}
	return b.String()
}

// BenchmarkHTTPEngine streams the reference benchmark's answer (50 chunks of
// 128 bytes and a usage line) from scripted through the HTTP engine.
func BenchmarkHTTPEngine(b *testing.B) {
	fake := scripted.New(scripted.Reference())
	defer fake.Close()
	eng, err := gpu.NewHTTP(gpu.HTTPConfig{BaseURL: fake.URL})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	req := gpu.Request{Kind: gpu.KindChat, Body: []byte(chatBody), Stream: true}
	sink := func(gpu.Chunk) error { return nil }
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := eng.Do(context.Background(), req, sink); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
