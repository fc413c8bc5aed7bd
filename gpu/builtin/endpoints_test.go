package builtin_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/gpu/builtin"
)

func post(t *testing.T, srv *httptest.Server, path, contentType, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// TestResponses: a response in the Responses API's shape, streamed as named events without
// [DONE], its usage in the last event; max_output_tokens makes it incomplete.
func TestResponses(t *testing.T) {
	srv := httptest.NewServer(builtin.New(builtin.Config{}))
	t.Cleanup(srv.Close)
	resp, body := post(t, srv, "/v1/responses", "application/json", `{"model":"cocoon-builtin","input":"hello","instructions":"be brief"}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	var r struct {
		Object, Status string
		Output         []struct {
			Type    string
			Content []struct{ Type, Text string }
		}
		Usage struct {
			InputTokens  int `json:"input_tokens"`
			OutputTokens int `json:"output_tokens"`
		}
	}
	require.NoError(t, json.Unmarshal([]byte(body), &r))
	assert.Equal(t, "response", r.Object)
	assert.Equal(t, "completed", r.Status)
	require.Len(t, r.Output, 1)
	assert.Equal(t, "output_text", r.Output[0].Content[0].Type)
	assert.NotEmpty(t, r.Output[0].Content[0].Text)
	assert.Equal(t, 3, r.Usage.InputTokens, "be, brief, hello")
	assert.Positive(t, r.Usage.OutputTokens)

	resp, body = post(t, srv, "/v1/responses", "application/json", `{"model":"cocoon-builtin","input":[{"role":"user","content":[{"type":"input_text","text":"hello"}]}],"stream":true,"max_output_tokens":3}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	assert.NotContains(t, body, "[DONE]")
	events := strings.Split(strings.TrimSpace(body), "\n\n")
	assert.Equal(t, 3, strings.Count(body, "event: response.output_text.delta\n"))
	last := events[len(events)-1]
	assert.True(t, strings.HasPrefix(last, "event: response.incomplete\ndata: "), last)
	assert.Contains(t, last, `"output_tokens":3`)
	assert.Contains(t, last, `"incomplete_details":{"reason":"max_output_tokens"}`)

	resp, body = post(t, srv, "/v1/responses", "application/json", `{"model":"other","input":"x"}`)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, body)
	resp, body = post(t, srv, "/v1/responses", "application/json", `{"model":"cocoon-builtin","input":"x","max_output_tokens":0}`)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
	assert.Contains(t, body, `"param":"max_output_tokens"`)
}

// TestEmbeddings: unit vectors, the same for the same text, in floats or in OpenAI's base64.
func TestEmbeddings(t *testing.T) {
	srv := httptest.NewServer(builtin.New(builtin.Config{}))
	t.Cleanup(srv.Close)
	type answer struct {
		Data []struct {
			Index     int
			Embedding json.RawMessage
		}
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	var floats, b64 answer
	_, body := post(t, srv, "/v1/embeddings", "application/json", `{"model":"cocoon-builtin","input":["hello world","x"],"dimensions":8}`)
	require.NoError(t, json.Unmarshal([]byte(body), &floats), body)
	_, body = post(t, srv, "/v1/embeddings", "application/json", `{"model":"cocoon-builtin","input":["hello world","x"],"dimensions":8,"encoding_format":"base64"}`)
	require.NoError(t, json.Unmarshal([]byte(body), &b64), body)
	require.Len(t, floats.Data, 2)
	assert.Equal(t, 3, floats.Usage.PromptTokens)
	var v []float32
	require.NoError(t, json.Unmarshal(floats.Data[0].Embedding, &v))
	require.Len(t, v, 8)
	var norm float64
	for _, x := range v {
		norm += float64(x) * float64(x)
	}
	assert.InDelta(t, 1, norm, 1e-5)
	var s string
	require.NoError(t, json.Unmarshal(b64.Data[0].Embedding, &s))
	raw, err := base64.StdEncoding.DecodeString(s)
	require.NoError(t, err)
	for i := range v {
		assert.Equal(t, v[i], math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
	}
	resp, body := post(t, srv, "/v1/embeddings", "application/json", `{"model":"cocoon-builtin","input":[]}`)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
}

// TestTranscriptions: a multipart form in, a JSON transcript with token usage out; the
// in-process engine reads the form by the content type the request carries.
func TestTranscriptions(t *testing.T) {
	e := builtin.New(builtin.Config{})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	require.NoError(t, w.WriteField("model", "cocoon-builtin"))
	fw, err := w.CreateFormFile("file", "a.wav")
	require.NoError(t, err)
	_, _ = fw.Write(bytes.Repeat([]byte{9}, 2500))
	require.NoError(t, w.Close())
	resp, body := post(t, srv, "/v1/audio/transcriptions", w.FormDataContentType(), buf.String())
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Contains(t, body, `"usage":{"type":"tokens","input_tokens":3,`)
	var got []byte
	u, err := e.Do(t.Context(), gpu.Request{Kind: gpu.KindTranscription, Body: buf.Bytes(), ContentType: w.FormDataContentType()},
		func(ch gpu.Chunk) error { got = append(got, ch.Data...); return nil })
	require.NoError(t, err)
	assert.Equal(t, body, string(got))
	assert.Equal(t, uint64(3), u.PromptTokens)

	resp, body = post(t, srv, "/v1/audio/transcriptions", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ncocoon-builtin\r\n--x--\r\n")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, body, `"param":"file"`)

	// Streamed in OpenAI's shape: deltas, then the whole text with the usage.
	var events []string
	su, err := e.Do(t.Context(), gpu.Request{Kind: gpu.KindTranscription, Body: buf.Bytes(), ContentType: w.FormDataContentType(), Stream: true},
		func(ch gpu.Chunk) error {
			assert.False(t, ch.Usage, "every event is the app's")
			events = append(events, string(ch.Data))
			return nil
		})
	require.NoError(t, err)
	assert.Equal(t, u, su)
	require.Greater(t, len(events), 2)
	assert.True(t, strings.HasPrefix(events[0], `{"type":"transcript.text.delta","delta":`), events[0])
	assert.True(t, strings.HasPrefix(events[len(events)-1], `{"type":"transcript.text.done","text":`), events[len(events)-1])
	assert.Contains(t, events[len(events)-1], `"usage":{"type":"tokens","input_tokens":3,`)
}
