package client

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

const chatBody = `{"model":"test-model","stream":true,"messages":[{"role":"user","content":"secret prompt 4711"}]}`

// TestStreamArrivesChunkByChunk: the first chunk reaches the app while the stub is still holding the
// second, so nothing buffers the answer; the request reaches the proxy untouched.
func TestStreamArrivesChunkByChunk(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	release := make(chan struct{})
	stub := newStub(t, func(_ *stubProxy, s *transport.Stream, req *wire.Request) {
		sendHead(s, req)
		sendChunk(s, chunkHello)
		select {
		case <-release:
		case <-s.Context().Done():
			return
		}
		sendChunk(s, chunkWorld)
		sendChunk(s, chunkStop)
		_ = s.SendFrame(wire.TypeUsageChunk, []byte(chunkUsage))
		sendDone(s, 99)
	})
	h := startClient(t, []*stubProxy{stub}, withConfig(func(c *Config) { c.MaxCoefficient = 1500 }))
	h.waitConnected(t, 1)
	body := `{"model":"test-model","stream":true,"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"tool_choice":"auto","seed":7,"logprobs":true,"user":"u1","response_format":{"type":"json_object"}}`
	resp := h.post(t, "/v1/chat/completions", body)
	require.Equal(http.StatusOK, resp.StatusCode)
	assert.Equal("text/event-stream", resp.Header.Get("Content-Type"))
	assert.Equal("test-model", resp.Header.Get("X-Cocoon-Model"))
	assert.Equal(workerImage, resp.Header.Get("X-Cocoon-Worker-Image"))
	assert.Equal("simulated", resp.Header.Get("X-Cocoon-Attestation"))
	assert.NotEmpty(resp.Header.Get("X-Cocoon-Time-To-Head-Ms"))

	events := newSSEReader(resp.Body)
	first, err := events.nextWithin(t, 5*time.Second)
	require.NoError(err, "the first chunk must arrive before the stub sends the second")
	assert.Equal(chunkHello, first)
	close(release)
	assert.Equal([]string{chunkWorld, chunkStop, "[DONE]"}, events.all(t), "no usage chunk: the app did not ask")

	seen := stub.seen()
	require.Len(seen, 1)
	req := seen[0]
	assert.Equal(body, string(req.GetBody()), "the body is passed through untouched")
	assert.Equal(wire.Kind_KIND_CHAT, req.GetKind())
	assert.Equal("test-model", req.GetModel())
	assert.True(req.GetStream())
	assert.Equal(uint32(1500), req.GetMaxCoefficient())
	assert.Positive(req.GetTimeoutMs())
	assert.Equal(resp.Header.Get("X-Cocoon-Request-Id"), req.GetId())
}

func TestUsageChunkOnlyWhenAsked(t *testing.T) {
	testCases := map[string]struct {
		body      string
		wantUsage bool
	}{
		"include_usage true":  {body: `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}`, wantUsage: true},
		"include_usage false": {body: `{"model":"m","stream":true,"stream_options":{"include_usage":false},"messages":[]}`},
		"no stream_options":   {body: `{"model":"m","stream":true,"messages":[]}`},
	}
	stub := newStub(t, answerStream)
	h := startClient(t, []*stubProxy{stub})
	h.waitConnected(t, 1)
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			resp := h.post(t, "/v1/chat/completions", tc.body)
			require.Equal(http.StatusOK, resp.StatusCode)
			seen := stub.seen()
			assert.Equal(tc.wantUsage, seen[len(seen)-1].GetIncludeUsage(), "the request tells the worker what the app asked")
			events := newSSEReader(resp.Body).all(t)
			want := []string{chunkRole, chunkHello, chunkWorld, chunkStop}
			if !tc.wantUsage {
				assert.Equal(append(want, "[DONE]"), events)
				return
			}
			require.Len(events, 6)
			assert.Equal(want, events[:4])
			assert.Equal("[DONE]", events[5])
			// The usage chunk is the engine's, with the cost the proxy charged added to usage.
			wantUsage := strings.Replace(chunkUsage, `"reasoning_tokens":1}}`, `"reasoning_tokens":1},"total_cost":1234}`, 1)
			assert.Equal(wantUsage, events[4])
		})
	}
}

func TestNonStreamJSON(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	stub := newStub(t, answerStream)
	h := startClient(t, []*stubProxy{stub})
	h.waitConnected(t, 1)
	resp := h.post(t, "/v1/chat/completions", `{"model":"test-model","messages":[{"role":"user","content":"hi"}]}`)
	require.Equal(http.StatusOK, resp.StatusCode)
	body := readAll(t, resp.Body)
	assert.Equal(`{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"test-model",`+
		`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello, world"},"finish_reason":"stop"}],`+
		`"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10,"total_cost":1234}}`, body)
	assert.True(json.Valid([]byte(body)))
	assert.Equal("application/json", resp.Header.Get("Content-Type"))
	assert.Equal(strconv.Itoa(len(body)), resp.Header.Get("Content-Length"))
	assert.Equal(stub.seen()[0].GetId(), resp.Header.Get("X-Cocoon-Request-Id"))
	for _, hdr := range []string{"X-Cocoon-Time-To-Head-Ms", "X-Cocoon-Total-Ms"} {
		_, err := strconv.ParseInt(resp.Header.Get(hdr), 10, 64)
		assert.NoError(err, "%s: %q", hdr, resp.Header.Get(hdr))
	}
	assert.Equal("test-model", resp.Header.Get("X-Cocoon-Model"))
	assert.Equal(workerImage, resp.Header.Get("X-Cocoon-Worker-Image"))
	assert.Equal("simulated", resp.Header.Get("X-Cocoon-Attestation"))
	assert.Equal("1234", resp.Header.Get("X-Cocoon-Total-Cost"))
	require.Len(stub.seen(), 1)
	assert.False(stub.seen()[0].GetStream())
}

func TestCompletionsEndpoint(t *testing.T) {
	stub := newStub(t, func(_ *stubProxy, s *transport.Stream, req *wire.Request) {
		sendHead(s, req)
		sendChunk(s, `{"object":"text_completion","choices":[{"text":"x"}]}`)
		sendDone(s, 0)
	})
	h := startClient(t, []*stubProxy{stub})
	h.waitConnected(t, 1)
	resp := h.post(t, "/v1/completions", `{"model":"m","prompt":["a","b"],"max_tokens":3}`)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, `{"object":"text_completion","choices":[{"text":"x"}]}`, readAll(t, resp.Body))
	assert.Equal(t, wire.Kind_KIND_COMPLETION, stub.seen()[0].GetKind())
}

// TestOpenAIWireShapes reads a streamed answer line by line, as the OpenAI SDKs do: every event is
// one "data: <json>" line and an empty line; chunks decode as chat.completion.chunk objects; the
// stream ends with "data: [DONE]".
func TestOpenAIWireShapes(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	stub := newStub(t, answerStream)
	h := startClient(t, []*stubProxy{stub})
	h.waitConnected(t, 1)
	resp := h.post(t, "/v1/chat/completions",
		`{"model":"test-model","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`,
		"Accept", "text/event-stream")
	require.Equal(http.StatusOK, resp.StatusCode)
	require.True(strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"))
	raw := readAll(t, resp.Body)
	require.True(strings.HasSuffix(raw, "data: [DONE]\n\n"), "stream ends with [DONE]")

	type chunk struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		Model   string `json:"model"`
		Choices []struct {
			Index int `json:"index"`
			Delta struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			} `json:"delta"`
			FinishReason *string `json:"finish_reason"`
		} `json:"choices"`
		Usage *struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
			TotalTokens      int `json:"total_tokens"`
		} `json:"usage"`
	}
	lines := strings.Split(strings.TrimSuffix(raw, "\n\n"), "\n")
	var text strings.Builder
	var finish string
	var usage int
	for i, line := range lines {
		if i%2 == 1 {
			assert.Empty(line, "line %d: events are separated by one empty line", i)
			continue
		}
		payload, ok := strings.CutPrefix(line, "data: ")
		require.True(ok, "line %d is not a data line: %q", i, line)
		if payload == "[DONE]" {
			assert.Equal(len(lines)-1, i, "[DONE] is the last event")
			continue
		}
		var c chunk
		require.NoError(json.Unmarshal([]byte(payload), &c), "line %d", i)
		assert.Equal("chat.completion.chunk", c.Object)
		assert.Equal("chatcmpl-1", c.ID)
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
		if c.Usage != nil {
			usage = c.Usage.TotalTokens
		}
	}
	assert.Equal("Hello, world", text.String())
	assert.Equal("stop", finish)
	assert.Equal(10, usage)
}

func TestModelsMergedAcrossProxies(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	a := newStub(t, nil,
		&wire.ModelInfo{Name: "llama", Workers: 2, MinCoefficient: 900, MaxCoefficient: 1000},
		&wire.ModelInfo{Name: "qwen", Workers: 1, MinCoefficient: 1000, MaxCoefficient: 1000})
	b := newStub(t, nil,
		&wire.ModelInfo{Name: "llama", Workers: 1, MinCoefficient: 800, MaxCoefficient: 1200},
		&wire.ModelInfo{Name: "deepseek", Workers: 3, MinCoefficient: 1100, MaxCoefficient: 1300})
	h := startClient(t, []*stubProxy{a, b})
	h.waitConnected(t, 2)

	resp := h.do(t, context.Background(), http.MethodGet, "/v1/models", "")
	require.Equal(http.StatusOK, resp.StatusCode)
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID             string `json:"id"`
			Object         string `json:"object"`
			Created        int64  `json:"created"`
			OwnedBy        string `json:"owned_by"`
			Workers        uint32 `json:"workers"`
			MinCoefficient uint32 `json:"min_coefficient"`
			MaxCoefficient uint32 `json:"max_coefficient"`
		} `json:"data"`
	}
	require.NoError(json.NewDecoder(resp.Body).Decode(&list))
	assert.Equal("list", list.Object)
	require.Len(list.Data, 3)
	type m struct {
		id            string
		workers, l, h uint32
	}
	var got []m
	for _, d := range list.Data {
		assert.Equal("model", d.Object)
		assert.Equal("cocoon", d.OwnedBy)
		assert.Positive(d.Created)
		got = append(got, m{d.ID, d.Workers, d.MinCoefficient, d.MaxCoefficient})
	}
	assert.Equal([]m{{"deepseek", 3, 1100, 1300}, {"llama", 3, 800, 1200}, {"qwen", 1, 1000, 1000}}, got)

	one := h.do(t, context.Background(), http.MethodGet, "/v1/models/qwen", "")
	assert.Equal(http.StatusOK, one.StatusCode)
	missing := h.do(t, context.Background(), http.MethodGet, "/v1/models/nope", "")
	assert.Equal(http.StatusNotFound, missing.StatusCode)
}

func TestModelsErrors(t *testing.T) {
	assert := assert.New(t)
	good := newStub(t, nil, &wire.ModelInfo{Name: "llama", Workers: 1})
	bad := newStub(t, nil, &wire.ModelInfo{Name: "qwen", Workers: 1})
	bad.failModels(&wire.Error{Code: uint32(wire.CodeInternal), Message: "registry unavailable"})
	h := startClient(t, []*stubProxy{good, bad})
	h.waitConnected(t, 2)

	resp := h.do(t, context.Background(), http.MethodGet, "/v1/models", "")
	assert.Equal(http.StatusOK, resp.StatusCode, "one failing proxy leaves the others' models")
	body := readAll(t, resp.Body)
	assert.Contains(body, `"llama"`)
	assert.NotContains(body, `"qwen"`)

	good.failModels(&wire.Error{Code: uint32(wire.CodeOverloaded), Message: "busy"})
	resp = h.do(t, context.Background(), http.MethodGet, "/v1/models", "")
	assert.Equal(http.StatusServiceUnavailable, resp.StatusCode, "every proxy failed: the most telling error")
	var e openAIError
	assert.NoError(json.Unmarshal([]byte(readAll(t, resp.Body)), &e))
}

func TestNoProxyConnected(t *testing.T) {
	assert := assert.New(t)
	stub := newStub(t, answerStream)
	stub.stop()
	h := startClient(t, []*stubProxy{stub}, withConnectWait(50*time.Millisecond))
	for _, path := range []string{"/v1/models", "/v1/chat/completions"} {
		method, body := http.MethodGet, ""
		if path != "/v1/models" {
			method, body = http.MethodPost, chatBody
		}
		resp := h.do(t, context.Background(), method, path, body)
		assert.Equal(http.StatusServiceUnavailable, resp.StatusCode, path)
		var e openAIError
		assert.NoError(json.Unmarshal([]byte(readAll(t, resp.Body)), &e))
		assert.Equal("no_proxy", *e.Error.Code)
	}
}

func TestRoutes(t *testing.T) {
	testCases := map[string]struct {
		method, path string
		wantStatus   int
	}{
		"GET on completions": {method: http.MethodGet, path: "/v1/chat/completions", wantStatus: http.StatusMethodNotAllowed},
		"unknown endpoint":   {method: http.MethodGet, path: "/v1/assistants", wantStatus: http.StatusNotFound},
		"stats page":         {method: http.MethodGet, path: "/stats", wantStatus: http.StatusOK},
	}
	stub := newStub(t, answerStream)
	h := startClient(t, []*stubProxy{stub})
	h.waitConnected(t, 1)
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			resp := h.do(t, t.Context(), tc.method, tc.path, "")
			body := readAll(t, resp.Body)
			assert.Equal(t, tc.wantStatus, resp.StatusCode)
			if strings.HasPrefix(tc.path, "/v1/") {
				var e openAIError
				assert.NoError(t, json.Unmarshal([]byte(body), &e))
				assert.NotEmpty(t, e.Error.Message)
			}
		})
	}
}
