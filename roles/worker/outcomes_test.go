package worker

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/gpu/builtin"
	"github.com/cocoon-network/cocoon/roles/internal/bounds"
	"github.com/cocoon-network/cocoon/roles/internal/redial"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// logBuffer keeps what the worker logs, for the test to read while the worker runs.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runLogged runs a worker in front of engine whose log the test reads.
func runLogged(t *testing.T, engine gpu.Engine) (*Worker, *transport.Conn, *logBuffer) {
	t.Helper()
	sp, logs := newStubProxy(t), &logBuffer{}
	claims := attesttest.Claims(attest.RoleWorker)
	w, err := New(Config{Proxies: []string{sp.l.Addr().String()}, Model: claims.Model, WeightsDigest: claims.WeightsDigest,
		MaxActive: 4, HealthInterval: 20 * time.Millisecond, Backoff: redial.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}},
		engine, tconfig(t, attest.RoleWorker), zerolog.New(io.MultiWriter(zerolog.NewTestWriter(t), logs)))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	c := <-sp.conns
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		_ = c.Close(0, "")
	})
	expectRegister(t, c, 4)
	return w, c, logs
}

// pydanticRefusal is how vLLM refuses a request field, quoting the value it refused.
const pydanticRefusal = `{"error":{"message":"[{'type': 'int_parsing', 'loc': ('body', 'n'), 'msg': 'Input should be a valid integer', 'input': 'SECRET PROMPT'}]","type":"BadRequestError","param":"n","code":400}}`

// TestCallerMistakes: a request refused for the caller's own fault (a 4xx from the engine, a
// route the engine lacks, a body beyond its bounds) is refused, not failed, in the worker's
// stats, and the log says why in the engine's words, without anything the engine quoted.
func TestCallerMistakes(t *testing.T) {
	model := attesttest.Claims(attest.RoleWorker).Model
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
		case "/v1/chat/completions":
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(pydanticRefusal))
		case "/v1/responses":
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"error":{"message":"CUDA out of memory"}}`))
		default:
			http.NotFound(w, r) // no such route: Go's own 404 page
		}
	}))
	t.Cleanup(srv.Close)
	eng, err := gpu.NewHTTP(gpu.HTTPConfig{BaseURL: srv.URL})
	require.NoError(t, err)
	w, c, logs := runLogged(t, eng)
	chatBody := `{"model":"` + model + `","messages":[{"role":"user","content":"SECRET PROMPT"}],"temperature":"x"}`

	// The engine refuses the request: a client error.
	_, read := send(t, c, &wire.Request{Id: "bad", Kind: wire.Kind_KIND_CHAT, Model: model, Body: []byte(chatBody)})
	r := read()
	require.NotNil(t, r.err)
	assert.Equal(t, uint32(http.StatusBadRequest), r.err.GetHttpStatus())
	assert.Equal(t, uint32(wire.CodeBadRequest), r.err.GetCode())
	assert.JSONEq(t, pydanticRefusal, string(r.err.GetBody()), "the app gets the engine's answer as it is")

	// The engine has no such endpoint: OpenAI's answer for an unknown route.
	_, read = send(t, c, &wire.Request{Id: "emb", Kind: wire.Kind_KIND_EMBEDDINGS, Model: model, Body: []byte(`{"model":"` + model + `","input":"x"}`)})
	r = read()
	require.NotNil(t, r.err)
	assert.Equal(t, uint32(http.StatusNotFound), r.err.GetHttpStatus())
	assert.Contains(t, string(r.err.GetBody()), `"code":"unknown_url"`)

	// A metered body beyond the bounds its cost was reserved for.
	body := `{"model":"` + model + `","messages":[{"role":"user","content":"much longer than declared"}]}`
	b, err := bounds.Of([]byte(body))
	require.NoError(t, err)
	b.BodyBytes = 10
	_, read = send(t, c, &wire.Request{Id: "big", Kind: wire.Kind_KIND_CHAT, Model: model, Body: []byte(body), Bounds: b, ReservedCompletionTokens: 5, ReservedChoices: 1})
	r = read()
	require.NotNil(t, r.err)
	assert.Equal(t, uint32(wire.CodeBadRequest), r.err.GetCode())
	assert.Contains(t, r.err.GetMessage(), "reserved for 10")

	// The engine's own failure is one.
	_, read = send(t, c, &wire.Request{Id: "oom", Kind: wire.Kind_KIND_RESPONSES, Model: model, Body: []byte(`{"model":"` + model + `","input":"x"}`)})
	require.NotNil(t, read().err)

	assert.Equal(t, int64(3), w.stats.refused.Load(), "the caller's mistakes")
	assert.Equal(t, int64(1), w.stats.failed.Load(), "the engine's failure")
	log := logs.String()
	assert.Contains(t, log, `"reason":"[{'type': 'int_parsing', 'loc': ('body', 'n'), 'msg': 'Input should be a valid integer', …"`)
	assert.Contains(t, log, `"param":"n","code":"400"`)
	assert.Contains(t, log, `"no_endpoint":true`)
	assert.Contains(t, log, "reserved for 10")
	assert.NotContains(t, log, "SECRET PROMPT")
	assert.NotContains(t, log, "much longer")
	assert.Equal(t, 1, strings.Count(log, "engine request failed"))
}

// TestServeTranscription: a transcription's form is routed by its model field, and the engine
// reads it by the boundary on its first line (a form the client wrote again).
func TestServeTranscription(t *testing.T) {
	model := attesttest.Claims(attest.RoleWorker).Model
	w, c, _ := runLogged(t, builtin.New(builtin.Config{Model: model}))
	form := func(model string) []byte {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		require.NoError(t, mw.WriteField("model", model))
		fw, err := mw.CreateFormFile("file", "a.wav")
		require.NoError(t, err)
		_, _ = fw.Write(bytes.Repeat([]byte{1}, 3000))
		require.NoError(t, mw.Close())
		return buf.Bytes()
	}
	request := func(body []byte) reply {
		b, err := bounds.OfKind(wire.Kind_KIND_TRANSCRIPTION, body, "")
		require.NoError(t, err)
		_, read := send(t, c, &wire.Request{Id: "t", Kind: wire.Kind_KIND_TRANSCRIPTION, Model: model, Body: body, Bounds: b,
			ReservedCompletionTokens: 448, ReservedChoices: 1})
		return read()
	}
	r := request(form(model))
	require.Nil(t, r.err)
	require.NotNil(t, r.done)
	assert.Equal(t, uint64(3), r.done.GetUsage().GetPromptTokens(), "3000 bytes of audio")
	assert.Positive(t, r.done.GetUsage().GetCompletionTokens())

	r = request(form("other-model"))
	require.NotNil(t, r.err)
	assert.Contains(t, r.err.GetMessage(), `names model "other-model"`)
	assert.Equal(t, int64(1), w.stats.refused.Load())
}
