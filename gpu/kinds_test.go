package gpu_test

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/gpu/builtin"
	"github.com/cocoon-network/cocoon/settle"
)

// engineAt is an HTTPEngine in front of handler.
func engineAt(t *testing.T, handler http.HandlerFunc) *gpu.HTTPEngine {
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return newEngine(t, srv.URL)
}

// responsesStream is a Responses API stream as OpenAI and vLLM send it: named events, usage in
// the last one, and no [DONE].
const responsesStream = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"usage\":null}}\n\n" +
	"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi \\\"usage\\\"\"}\n\n" +
	"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"status\":\"completed\",\"usage\":{\"input_tokens\":7,\"input_tokens_details\":{\"cached_tokens\":2},\"output_tokens\":3,\"output_tokens_details\":{\"reasoning_tokens\":1},\"total_tokens\":10}}}\n\n"

func TestHTTPEngineKinds(t *testing.T) {
	testCases := map[string]struct {
		kind        gpu.Kind
		stream      bool
		contentType string
		answer      string // the engine's answer body
		answerType  string
		wantPath    string
		wantUsage   settle.Usage
		wantChunks  int
		// wantUsageChunk: the last chunk is the usage the worker asked for, which the app gets
		// only if it asked too.
		wantUsageChunk bool
		wantErr        error
	}{
		"responses": {
			kind: gpu.KindResponses, answer: `{"object":"response","usage":{"input_tokens":5,"output_tokens":4,"output_tokens_details":{"reasoning_tokens":2}}}`,
			wantPath: "/v1/responses", wantUsage: settle.Usage{PromptTokens: 5, CompletionTokens: 4, ReasoningTokens: 2}, wantChunks: 1,
		},
		"responses streamed, no [DONE]": {
			kind: gpu.KindResponses, stream: true, answer: responsesStream, answerType: "text/event-stream",
			wantPath: "/v1/responses", wantUsage: settle.Usage{PromptTokens: 7, CachedTokens: 2, CompletionTokens: 3, ReasoningTokens: 1}, wantChunks: 3,
		},
		"responses stream cut before its last event": {
			kind: gpu.KindResponses, stream: true, answer: responsesStream[:strings.Index(responsesStream, "event: response.completed")], answerType: "text/event-stream",
			wantPath: "/v1/responses", wantErr: gpu.ErrTruncated, wantChunks: 2,
		},
		"embeddings": {
			kind: gpu.KindEmbeddings, answer: `{"object":"list","data":[],"usage":{"prompt_tokens":9,"total_tokens":9}}`,
			wantPath: "/v1/embeddings", wantUsage: settle.Usage{PromptTokens: 9}, wantChunks: 1,
		},
		"embeddings without usage": {
			kind: gpu.KindEmbeddings, answer: `{"object":"list","data":[]}`, wantPath: "/v1/embeddings", wantErr: gpu.ErrNoUsage,
		},
		"transcription with tokens": {
			kind: gpu.KindTranscription, contentType: "multipart/form-data; boundary=b",
			answer:   `{"text":"hi","usage":{"type":"tokens","input_tokens":30,"output_tokens":2,"total_tokens":32}}`,
			wantPath: "/v1/audio/transcriptions", wantUsage: settle.Usage{PromptTokens: 30, CompletionTokens: 2}, wantChunks: 1,
		},
		"transcription with a duration only is released unmetered": {
			kind: gpu.KindTranscription, contentType: "multipart/form-data; boundary=b",
			answer: `{"text":"hi","usage":{"type":"duration","seconds":3}}`, wantPath: "/v1/audio/transcriptions", wantChunks: 1,
		},
		"transcription streamed as vLLM does": {
			kind: gpu.KindTranscription, stream: true, contentType: "multipart/form-data; boundary=b", answerType: "text/event-stream",
			answer: "data: {\"object\":\"transcription.chunk\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n" +
				"data: {\"object\":\"transcription.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n",
			wantPath: "/v1/audio/transcriptions", wantUsage: settle.Usage{PromptTokens: 20, CompletionTokens: 1}, wantChunks: 2, wantUsageChunk: true,
		},
		"transcription streamed as OpenAI does, no [DONE]": {
			kind: gpu.KindTranscription, stream: true, contentType: "multipart/form-data; boundary=b", answerType: "text/event-stream",
			answer: "data: {\"type\":\"transcript.text.delta\",\"delta\":\"hi\"}\n\n" +
				"data: {\"type\":\"transcript.text.done\",\"text\":\"hi\",\"usage\":{\"type\":\"tokens\",\"input_tokens\":20,\"output_tokens\":1}}\n\n",
			wantPath: "/v1/audio/transcriptions", wantUsage: settle.Usage{PromptTokens: 20, CompletionTokens: 1}, wantChunks: 2,
		},
		"streamed embeddings": {kind: gpu.KindEmbeddings, stream: true, wantErr: gpu.ErrBadRequest},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			var gotPath, gotType, gotForm string
			eng := engineAt(t, func(w http.ResponseWriter, r *http.Request) {
				gotPath, gotType = r.URL.Path, r.Header.Get("Content-Type")
				b, _ := io.ReadAll(r.Body)
				gotForm = string(b)
				w.Header().Set("Content-Type", cmpOr(tc.answerType, "application/json"))
				_, _ = w.Write([]byte(tc.answer))
			})
			c := &collector{}
			body := []byte(`{}`)
			if tc.kind == gpu.KindTranscription {
				body = []byte("--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n--b--\r\n")
			}
			u, err := eng.Do(ctxT(t), gpu.Request{Kind: tc.kind, Body: body, Stream: tc.stream, ContentType: tc.contentType}, c.sink)
			if tc.wantErr != nil {
				assert.ErrorIs(err, tc.wantErr)
			} else {
				assert.NoError(err)
				assert.Equal(tc.wantUsage, u)
				assert.Equal(tc.wantPath, gotPath)
				if !tc.stream || tc.kind != gpu.KindTranscription {
					assert.Equal(cmpOr(tc.contentType, "application/json"), gotType)
				}
			}
			assert.Len(c.chunks, tc.wantChunks)
			if tc.wantUsageChunk {
				assert.Equal([]bool{false, true}, c.usageChunk)
				assert.Contains(gotForm, "stream_include_usage", "vLLM streams usage only when asked")
			} else {
				assert.NotContains(c.usageChunk, true, "every Responses event and whole answer is the app's")
			}
			if tc.kind == gpu.KindResponses && tc.stream && tc.wantErr == nil {
				assert.Contains(c.chunks[2], `"response.completed"`, "the last event goes to the app with its usage")
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestHTTPEngineNoEndpoint: an engine whose web framework has no such route (404 or 405 with its
// own page) is answered as OpenAI answers an unknown route; an engine's own 404 passes as it is.
func TestHTTPEngineNoEndpoint(t *testing.T) {
	testCases := map[string]struct {
		status     int
		body       string
		noEndpoint bool
	}{
		"FastAPI 404":        {status: 404, body: `{"detail":"Not Found"}`, noEndpoint: true},
		"405":                {status: 405, body: `{"detail":"Method Not Allowed"}`, noEndpoint: true},
		"plain text 404":     {status: 404, body: "404 page not found", noEndpoint: true},
		"engine's own 404":   {status: 404, body: `{"error":{"message":"The model x does not exist.","type":"NotFoundError","param":null,"code":404}}`},
		"vLLM's flat 404":    {status: 404, body: `{"object":"error","message":"The model x does not exist.","type":"NotFoundError","code":404}`},
		"400 stays the same": {status: 400, body: `{"detail":"whatever"}`},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			eng := engineAt(t, func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			})
			_, err := eng.Do(ctxT(t), gpu.Request{Kind: gpu.KindEmbeddings, Body: []byte(`{}`)}, (&collector{}).sink)
			var he *gpu.HTTPError
			require.ErrorAs(t, err, &he)
			assert.Equal(tc.noEndpoint, he.NoEndpoint)
			if tc.noEndpoint {
				assert.Equal(http.StatusNotFound, he.Status)
				assert.JSONEq(`{"error":{"message":"unknown endpoint /v1/embeddings: the model's engine does not serve it","type":"invalid_request_error","param":null,"code":"unknown_url"}}`, string(he.Body))
			} else {
				assert.Equal(tc.status, he.Status)
				assert.Equal(tc.body, string(he.Body))
			}
		})
	}
}

// TestHTTPEngineKindsAgainstBuiltin: every endpoint of the built-in engine over HTTP meters the
// same usage as the engine in process.
func TestHTTPEngineKindsAgainstBuiltin(t *testing.T) {
	be := builtin.New(builtin.Config{})
	srv := httptest.NewServer(be)
	t.Cleanup(srv.Close)
	eng := newEngine(t, srv.URL)
	form, ctype := audioForm(t, builtin.DefaultModel, bytes.Repeat([]byte{1, 2, 3}, 2000))
	streamedForm, streamedType := audioForm(t, builtin.DefaultModel, bytes.Repeat([]byte{1, 2, 3}, 2000), "stream", "true")
	testCases := map[string]gpu.Request{
		"responses":              {Kind: gpu.KindResponses, Body: []byte(`{"model":"cocoon-builtin","input":"hello","max_output_tokens":5}`)},
		"responses streamed":     {Kind: gpu.KindResponses, Stream: true, Body: []byte(`{"model":"cocoon-builtin","input":[{"role":"user","content":[{"type":"input_text","text":"hello"}]}],"stream":true}`)},
		"embeddings":             {Kind: gpu.KindEmbeddings, Body: []byte(`{"model":"cocoon-builtin","input":["a b","c"]}`)},
		"transcription":          {Kind: gpu.KindTranscription, Body: form, ContentType: ctype},
		"transcription streamed": {Kind: gpu.KindTranscription, Body: streamedForm, ContentType: streamedType, Stream: true},
	}
	for name, req := range testCases {
		t.Run(name, func(t *testing.T) {
			viaHTTP, inProc := &collector{}, &collector{}
			u1, err := eng.Do(ctxT(t), req, viaHTTP.sink)
			require.NoError(t, err)
			u2, err := be.Do(ctxT(t), req, inProc.sink)
			require.NoError(t, err)
			assert.Equal(t, u2, u1)
			assert.NotZero(t, u1.PromptTokens)
			assert.Equal(t, len(inProc.chunks), len(viaHTTP.chunks))
		})
	}
}

// audioForm is a transcription's multipart form.
func audioForm(t *testing.T, model string, audio []byte, fields ...string) ([]byte, string) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	require.NoError(t, w.WriteField("model", model))
	for i := 0; i+1 < len(fields); i += 2 {
		require.NoError(t, w.WriteField(fields[i], fields[i+1]))
	}
	fw, err := w.CreateFormFile("file", "speech.wav")
	require.NoError(t, err)
	_, _ = fw.Write(audio)
	require.NoError(t, w.Close())
	return buf.Bytes(), w.FormDataContentType()
}
