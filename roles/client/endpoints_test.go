package client

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// audioForm is a transcription's multipart form of the fields (name, value) and an audio file.
func audioForm(t *testing.T, fields ...string) (string, string) {
	var buf bytes.Buffer
	buf.WriteString("a preamble the client drops\r\n")
	w := multipart.NewWriter(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		require.NoError(t, w.WriteField(fields[i], fields[i+1]))
	}
	fw, err := w.CreateFormFile("file", "speech.wav")
	require.NoError(t, err)
	_, _ = fw.Write([]byte("RIFF audio"))
	require.NoError(t, w.Close())
	return buf.String(), w.FormDataContentType()
}

// TestEndpoints: Responses, embeddings and transcriptions reach the proxy as their kinds, with the
// bounds the client read; a transcription's form goes on written again, its boundary on its first
// line, so the worker reads it without a content type.
func TestEndpoints(t *testing.T) {
	form, formType := audioForm(t, "model", "other", "model", "test-model", "language", "en")
	streamedForm, streamedType := audioForm(t, "model", "test-model", "language", "en", "stream", "true", "stream_include_usage", "true")
	stub := newStub(t, answerStream)
	h := startClient(t, []*stubProxy{stub})
	h.waitConnected(t, 1)
	testCases := map[string]struct {
		path, body, contentType string
		stream, includeUsage    bool
		kind                    wire.Kind
		want                    *wire.Bounds
	}{
		"responses": {path: "/v1/responses", body: `{"model":"test-model","input":[{"role":"user","content":[{"type":"input_text","text":"hi"},{"type":"input_image","image_url":"data:x"}]}],"max_output_tokens":9}`,
			kind: wire.Kind_KIND_RESPONSES, want: &wire.Bounds{Prompts: 1, Images: 1, CompletionTokens: 9, Sequences: 1}},
		"embeddings": {path: "/v1/embeddings", body: `{"model":"test-model","input":["a","b"]}`,
			kind: wire.Kind_KIND_EMBEDDINGS, want: &wire.Bounds{Prompts: 2, Sequences: 1}},
		"transcription": {path: "/v1/audio/transcriptions", body: form, contentType: formType,
			kind: wire.Kind_KIND_TRANSCRIPTION, want: &wire.Bounds{Prompts: 1, Sequences: 1}},
		"streamed transcription": {path: "/v1/audio/transcriptions", body: streamedForm, contentType: streamedType, stream: true, includeUsage: true,
			kind: wire.Kind_KIND_TRANSCRIPTION, want: &wire.Bounds{Prompts: 1, Sequences: 1}},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			resp := h.post(t, tc.path, tc.body, "Content-Type", cmpOr(tc.contentType, "application/json"))
			assert.Equal(http.StatusOK, resp.StatusCode, readAll(t, resp.Body))
			seen := stub.seen()
			req := seen[len(seen)-1]
			assert.Equal(tc.kind, req.GetKind())
			assert.Equal("test-model", req.GetModel())
			assert.Equal(tc.stream, req.GetStream())
			assert.Equal(tc.includeUsage, req.GetIncludeUsage())
			tc.want.BodyBytes = uint64(len(req.GetBody()))
			assert.Equal(tc.want.String(), req.GetBounds().String())
			if tc.kind != wire.Kind_KIND_TRANSCRIPTION {
				assert.Equal(tc.body, string(req.GetBody()), "a JSON body goes on untouched")
				return
			}
			assert.NotContains(string(req.GetBody()), "preamble")
			f, err := gpu.ParseForm(req.GetBody(), "")
			require.NoError(t, err)
			v, _ := f.Value("language")
			assert.Equal("en", v)
			assert.Equal([]byte("RIFF audio"), f.File("file").Data)
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestEndpointRefusals: what the client refuses itself, in OpenAI's shape with the offending
// param, and x-request-id on every answer.
func TestEndpointRefusals(t *testing.T) {
	stub := newStub(t, answerStream)
	h := startClient(t, []*stubProxy{stub})
	h.waitConnected(t, 1)
	noFile := "--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ntest-model\r\n--b--\r\n"
	streamed, streamedType := audioForm(t, "model", "test-model", "stream", "yes")
	text, textType := audioForm(t, "model", "test-model", "response_format", "srt")
	noModel, noModelType := audioForm(t)
	testCases := map[string]struct {
		path, body, contentType string
		status                  int
		param                   string
	}{
		"streamed embeddings":     {path: "/v1/embeddings", body: `{"model":"test-model","input":"x","stream":true}`, status: 400, param: "stream"},
		"embeddings of nothing":   {path: "/v1/embeddings", body: `{"model":"test-model"}`, status: 400, param: "input"},
		"background response":     {path: "/v1/responses", body: `{"model":"test-model","input":"x","background":true}`, status: 400, param: "background"},
		"negative output limit":   {path: "/v1/responses", body: `{"model":"test-model","input":"x","max_output_tokens":-1}`, status: 400, param: "max_output_tokens"},
		"transcription as JSON":   {path: "/v1/audio/transcriptions", body: `{"model":"test-model"}`, status: 415},
		"chat as a form":          {path: "/v1/chat/completions", body: noFile, contentType: "multipart/form-data; boundary=b", status: 415},
		"transcription, no file":  {path: "/v1/audio/transcriptions", body: noFile, contentType: "multipart/form-data; boundary=b", status: 400, param: "file"},
		"transcription, no model": {path: "/v1/audio/transcriptions", body: noModel, contentType: noModelType, status: 400, param: "model"},
		"stream not a boolean":    {path: "/v1/audio/transcriptions", body: streamed, contentType: streamedType, status: 400, param: "stream"},
		"transcript as subtitles": {path: "/v1/audio/transcriptions", body: text, contentType: textType, status: 400, param: "response_format"},
		"broken form":             {path: "/v1/audio/transcriptions", body: "--b\r\nnot a part", contentType: "multipart/form-data; boundary=b", status: 400},
		"unknown route":           {path: "/nowhere", body: "{}", status: 404},
	}
	before := len(stub.seen())
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			resp := h.post(t, tc.path, tc.body, "Content-Type", cmpOr(tc.contentType, "application/json"))
			assert.Equal(tc.status, resp.StatusCode)
			assert.True(strings.HasPrefix(resp.Header.Get("X-Request-Id"), "req_"))
			var e openAIError
			require.NoError(t, json.Unmarshal([]byte(readAll(t, resp.Body)), &e))
			assert.NotEmpty(e.Error.Message)
			if tc.param != "" {
				require.NotNil(t, e.Error.Param)
				assert.Equal(tc.param, *e.Error.Param)
			}
		})
	}
	assert.Len(t, stub.seen(), before, "nothing reached the proxy")
}

// TestEngineRefusalIsBadRequest: an engine's own 4xx refusal (the app's mistake) is counted as a
// bad request, its 5xx as an engine error; the app gets the engine's body either way.
func TestEngineRefusalIsBadRequest(t *testing.T) {
	refusal := `{"error":{"message":"only n=1 is supported","type":"invalid_request_error","param":"n","code":null}}`
	stub := newStub(t, func(_ *stubProxy, s *transport.Stream, req *wire.Request) {
		status := uint32(400)
		if req.GetModel() == "broken" {
			status = 500
		}
		_ = s.Send(&wire.Error{Code: uint32(wire.CodeBadRequest), Message: "engine answered", HttpStatus: status, Body: []byte(refusal)})
	})
	h := startClient(t, []*stubProxy{stub})
	h.waitConnected(t, 1)
	resp := h.post(t, "/v1/chat/completions", `{"model":"test-model","messages":[],"n":2}`)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.JSONEq(t, refusal, readAll(t, resp.Body))
	resp = h.post(t, "/v1/chat/completions", `{"model":"broken","messages":[]}`)
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	out := h.c.snapshot().Requests.ByOutcome
	assert.Equal(t, uint64(1), out["bad_request"])
	assert.Equal(t, uint64(1), out["engine_error"])
}
