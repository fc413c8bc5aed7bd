package worker

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// multiModelEngine is an OpenAI-compatible engine serving two models (as Ollama does, or vLLM
// with a LoRA adapter): it answers with whichever model the body names, reading the body the way
// a Python engine does (exact keys, the last of duplicate keys wins, escapes decoded).
type multiModelEngine struct {
	*httptest.Server
	mu     sync.Mutex
	served []string                     // the model of every completion the engine ran
	bodies []map[string]json.RawMessage // every body it ran, as it read it
}

func newMultiModelEngine(t *testing.T, models ...string) *multiModelEngine {
	e := &multiModelEngine{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		var body map[string]json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, `{"error":"bad json"}`, http.StatusBadRequest)
			return
		}
		var model string
		var stream bool
		_ = json.Unmarshal(body["model"], &model)
		_ = json.Unmarshal(body["stream"], &stream)
		known := false
		for _, m := range models {
			known = known || m == model
		}
		if !known {
			http.Error(w, `{"error":"no such model"}`, http.StatusNotFound)
			return
		}
		e.mu.Lock()
		e.served = append(e.served, model)
		e.bodies = append(e.bodies, body)
		e.mu.Unlock()
		usage := `"usage":{"prompt_tokens":3,"completion_tokens":1}`
		if !stream {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"x"}}],%s}`, model, usage)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: {\"model\":%q,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n", model)
		fmt.Fprintf(w, "data: {\"model\":%q,\"choices\":[],%s}\n\ndata: [DONE]\n\n", model, usage)
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *multiModelEngine) models() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.served...)
}

// A request routed (and charged) as the worker's attested model is served as that model or
// refused, whatever its body says: the body is what the engine acts on.
func TestBodyAgreesWithRoute(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	testCases := map[string]struct {
		body     string
		stream   bool // the wire field
		wantCode wire.Type
	}{
		"routed model":                     {body: `{"model":"test-model",` + msgs + `}`, wantCode: wire.TypeDone},
		"routed model, streamed":           {body: `{"model":"test-model","stream":true,` + msgs + `}`, stream: true, wantCode: wire.TypeDone},
		"other model":                      {body: `{"model":"other-model",` + msgs + `}`, wantCode: wire.TypeError},
		"other model, streamed":            {body: `{"model":"other-model","stream":true,` + msgs + `}`, stream: true, wantCode: wire.TypeError},
		"duplicate model, last is other":   {body: `{"model":"test-model",` + msgs + `,"model":"other-model"}`, wantCode: wire.TypeError},
		"duplicate model, last is routed":  {body: `{"model":"other-model",` + msgs + `,"model":"test-model"}`, wantCode: wire.TypeDone},
		"escaped key names other model":    {body: `{"model":"test-model","mod\u0065l":"other-model",` + msgs + `}`, wantCode: wire.TypeError},
		"MODEL is another key":             {body: `{"model":"test-model","MODEL":"other-model",` + msgs + `}`, wantCode: wire.TypeDone},
		"only MODEL":                       {body: `{"MODEL":"test-model",` + msgs + `}`, wantCode: wire.TypeError},
		"no model":                         {body: `{` + msgs + `}`, wantCode: wire.TypeError},
		"model not a string":               {body: `{"model":["test-model"],` + msgs + `}`, wantCode: wire.TypeError},
		"body streams, wire does not":      {body: `{"model":"test-model","stream":true,` + msgs + `}`, wantCode: wire.TypeError},
		"wire streams, body does not":      {body: `{"model":"test-model",` + msgs + `}`, stream: true, wantCode: wire.TypeError},
		"wire streams, body says false":    {body: `{"model":"test-model","stream":false,` + msgs + `}`, stream: true, wantCode: wire.TypeError},
		"duplicate stream, last disagrees": {body: `{"model":"test-model","stream":false,` + msgs + `,"stream":true}`, wantCode: wire.TypeError},
		"STREAM is another key":            {body: `{"model":"test-model","STREAM":true,` + msgs + `}`, wantCode: wire.TypeDone},
		"stream null":                      {body: `{"model":"test-model","stream":null,` + msgs + `}`, wantCode: wire.TypeDone},
		"stream not a boolean":             {body: `{"model":"test-model","stream":"yes",` + msgs + `}`, wantCode: wire.TypeError},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			eng := newMultiModelEngine(t, "test-model", "other-model")
			e, err := gpu.NewHTTP(gpu.HTTPConfig{BaseURL: eng.URL})
			require.NoError(err)
			c := startWorker(t, newStubProxy(t), e, 2)
			expectRegister(t, c, 2)
			_, read := request(t, c, tc.body, tc.stream)
			r := read()
			for _, m := range eng.models() {
				assert.Equal("test-model", m, "the engine served another model than the one routed and charged")
			}
			if tc.wantCode == wire.TypeDone {
				require.Nil(r.err)
				require.NotNil(r.done)
				assert.Equal([]string{"test-model"}, eng.models())
				return
			}
			require.NotNil(r.err, "a body that disagrees with the request is refused")
			assert.Equal(uint32(wire.CodeBadRequest), r.err.GetCode(), r.err.GetMessage())
			assert.Nil(r.done)
			assert.Empty(eng.models(), "nothing reached the engine")
		})
	}
}

// The engine runs a request with exactly the limits the proxy reserved it for: the body's own
// limits, their duplicates and engine-specific spellings give way; without a reservation the body
// goes as it came.
func TestEngineObeysReservation(t *testing.T) {
	const msgs = `"model":"test-model","messages":[{"role":"user","content":"hi"}]`
	testCases := map[string]struct {
		kind     wire.Kind
		body     string
		limit, n uint64 // reserved for
		want     map[string]string
	}{
		"limit lowered, case variant kept": {body: `{` + msgs + `,"MAX_TOKENS":1,"max_tokens":99999}`, limit: 2000, n: 1,
			want: map[string]string{"max_tokens": "2000", "max_completion_tokens": "2000", "n": "1", "MAX_TOKENS": "1"}},
		"limit set when absent": {body: `{` + msgs + `}`, limit: 4096, n: 1,
			want: map[string]string{"max_tokens": "4096", "max_completion_tokens": "4096", "n": "1"}},
		"n forced, duplicates and n_predict dropped": {body: `{` + msgs + `,"n":1,"n":64,"max_tokens":10,"n_predict":-1}`, limit: 10, n: 8,
			want: map[string]string{"max_tokens": "10", "max_completion_tokens": "10", "n": "8"}},
		"completion sets max_tokens": {kind: wire.Kind_KIND_COMPLETION, body: `{"model":"test-model","prompt":["a","b"],"max_tokens":5}`, limit: 5, n: 2,
			want: map[string]string{"max_tokens": "5", "n": "2"}},
		"no reservation: as sent": {body: `{` + msgs + `,"max_tokens":99999}`,
			want: map[string]string{"max_tokens": "99999"}},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			eng := newMultiModelEngine(t, "test-model")
			e, err := gpu.NewHTTP(gpu.HTTPConfig{BaseURL: eng.URL})
			require.NoError(err)
			c := startWorker(t, newStubProxy(t), e, 2)
			expectRegister(t, c, 2)
			kind := cmp.Or(tc.kind, wire.Kind_KIND_CHAT)
			_, read := send(t, c, bounded(&wire.Request{Id: "r", Kind: kind, Model: "test-model", Body: []byte(tc.body),
				ReservedCompletionTokens: tc.limit, ReservedChoices: tc.n}))
			r := read()
			require.Nil(r.err)
			require.NotNil(r.done)
			eng.mu.Lock()
			defer eng.mu.Unlock()
			require.Len(eng.bodies, 1)
			got := map[string]string{}
			for k, v := range eng.bodies[0] {
				if k != "model" && k != "messages" && k != "prompt" && k != "stream_options" {
					got[k] = string(v)
				}
			}
			assert.Equal(tc.want, got)
		})
	}
}
