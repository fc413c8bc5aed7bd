package builtin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/gpu/builtin"
	"github.com/cocoon-network/cocoon/settle"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testTimeout = 10 * time.Second

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

type result struct {
	chunks     []string
	usageChunk []bool
	usage      settle.Usage
}

func do(t *testing.T, e *builtin.Engine, kind gpu.Kind, body string, stream bool) result {
	t.Helper()
	var r result
	u, err := e.Do(ctxT(t), gpu.Request{Kind: kind, Body: []byte(body), Stream: stream}, func(c gpu.Chunk) error {
		r.chunks = append(r.chunks, string(c.Data))
		r.usageChunk = append(r.usageChunk, c.Usage)
		return nil
	})
	require.New(t).NoError(err)
	r.usage = u
	return r
}

type choice struct {
	Index        int     `json:"index"`
	Text         *string `json:"text"`
	FinishReason *string `json:"finish_reason"`
	Delta        *struct {
		Role    string  `json:"role"`
		Content *string `json:"content"`
	} `json:"delta"`
	Message *struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"message"`
}

type object struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"`
	Created int64    `json:"created"`
	Model   string   `json:"model"`
	Choices []choice `json:"choices"`
	Usage   *struct {
		PromptTokens     uint64 `json:"prompt_tokens"`
		CompletionTokens uint64 `json:"completion_tokens"`
		TotalTokens      uint64 `json:"total_tokens"`
	} `json:"usage"`
}

func parse(t *testing.T, s string) object {
	t.Helper()
	var o object
	require.New(t).NoError(json.Unmarshal([]byte(s), &o))
	return o
}

// answer reassembles the text and finish reason of a result.
func answer(t *testing.T, r result) (text, finish string) {
	var b strings.Builder
	for _, c := range r.chunks {
		for _, ch := range parse(t, c).Choices {
			switch {
			case ch.Text != nil:
				b.WriteString(*ch.Text)
			case ch.Delta != nil && ch.Delta.Content != nil:
				b.WriteString(*ch.Delta.Content)
			case ch.Message != nil:
				b.WriteString(ch.Message.Content)
			}
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
	}
	return b.String(), finish
}

func TestEngine(t *testing.T) {
	testCases := map[string]struct {
		kind       gpu.Kind
		body       string
		wantPrompt uint64
		wantTokens uint64 // 0: the natural length, finish "stop"
		wantObject string
	}{
		"chat": {
			kind:       gpu.KindChat,
			body:       `{"model":"cocoon-builtin","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Hello, world!"}]}`,
			wantPrompt: 4 + 4,
			wantObject: "chat.completion",
		},
		"chat with content parts and max_tokens": {
			kind:       gpu.KindChat,
			body:       `{"messages":[{"role":"user","content":[{"type":"text","text":"one two"},{"type":"image_url","image_url":{"url":"x"}}]},{"role":"assistant","content":null,"tool_calls":[]}],"max_tokens":5}`,
			wantPrompt: 2,
			wantTokens: 5,
			wantObject: "chat.completion",
		},
		"max_completion_tokens wins": {
			kind:       gpu.KindChat,
			body:       `{"messages":[{"role":"user","content":"x"}],"max_tokens":100,"max_completion_tokens":3}`,
			wantPrompt: 1,
			wantTokens: 3,
			wantObject: "chat.completion",
		},
		"completion": {
			kind:       gpu.KindCompletion,
			body:       `{"prompt":"Say this is a test.","max_tokens":1}`,
			wantPrompt: 6,
			wantTokens: 1,
			wantObject: "text_completion",
		},
		"completion, prompt array": {
			kind:       gpu.KindCompletion,
			body:       `{"prompt":["a b c"]}`,
			wantPrompt: 3,
			wantObject: "text_completion",
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			e := builtin.New(builtin.Config{Now: func() time.Time { return time.Unix(1700000000, 0) }})

			whole := do(t, e, tc.kind, tc.body, false)
			require.Len(whole.chunks, 1)
			o := parse(t, whole.chunks[0])
			assert.Equal(tc.wantObject, o.Object)
			assert.Equal(int64(1700000000), o.Created)
			assert.Equal("cocoon-builtin", o.Model)
			require.NotNil(o.Usage)
			assert.Equal(whole.usage.PromptTokens, o.Usage.PromptTokens)
			assert.Equal(whole.usage.CompletionTokens, o.Usage.CompletionTokens)
			assert.Equal(o.Usage.PromptTokens+o.Usage.CompletionTokens, o.Usage.TotalTokens)
			assert.Equal(tc.wantPrompt, whole.usage.PromptTokens)
			text, finish := answer(t, whole)
			assert.Equal(uint64(builtin.CountTokens(text)), whole.usage.CompletionTokens, "completion tokens are the answer's tokens")
			if tc.wantTokens != 0 {
				assert.Equal(tc.wantTokens, whole.usage.CompletionTokens)
				assert.Equal("length", finish)
			} else {
				// At least the target less 20%, then on to the end of a sentence.
				assert.GreaterOrEqual(whole.usage.CompletionTokens, uint64(builtin.DefaultTokens-builtin.DefaultTokens/5))
				assert.LessOrEqual(whole.usage.CompletionTokens, uint64(builtin.DefaultTokens+builtin.DefaultTokens/5+40))
				assert.Equal("stop", finish)
				assert.True(strings.HasSuffix(text, "."))
			}

			// Same prompt, same answer; streamed or not.
			again := do(t, e, tc.kind, tc.body, false)
			text2, _ := answer(t, again)
			assert.Equal(text, text2)
			stream := do(t, e, tc.kind, tc.body, true)
			sText, sFinish := answer(t, stream)
			assert.Equal(text, sText)
			assert.Equal(finish, sFinish)
			assert.Equal(whole.usage, stream.usage)
			ids := map[string]bool{}
			for i, c := range stream.chunks {
				so := parse(t, c)
				assert.Equal(tc.wantObject+map[bool]string{true: ".chunk", false: ""}[tc.kind == gpu.KindChat], so.Object)
				ids[so.ID] = true
				last := i == len(stream.chunks)-1
				assert.Equal(last, stream.usageChunk[i], "only the last chunk is the usage chunk")
				if last {
					assert.Empty(so.Choices)
					require.NotNil(so.Usage)
					assert.Equal(whole.usage.CompletionTokens, so.Usage.CompletionTokens)
				}
			}
			assert.Len(ids, 1, "one id per answer")
			assert.NotEqual(o.ID, parse(t, stream.chunks[0]).ID, "ids are unique per request")
		})
	}
}

func TestEngineDifferentPrompts(t *testing.T) {
	assert := assert.New(t)
	e := builtin.New(builtin.Config{})
	a, _ := answer(t, do(t, e, gpu.KindChat, `{"messages":[{"role":"user","content":"a"}]}`, false))
	b, _ := answer(t, do(t, e, gpu.KindChat, `{"messages":[{"role":"user","content":"b"}]}`, false))
	c, _ := answer(t, do(t, e, gpu.KindChat, `{"messages":[{"role":"system","content":"a"}]}`, false))
	assert.NotEqual(a, b)
	assert.NotEqual(a, c, "roles count")
}

func TestEngineBadRequests(t *testing.T) {
	testCases := map[string]struct {
		kind       gpu.Kind
		body       string
		wantStatus int
	}{
		"malformed json":       {kind: gpu.KindChat, body: `{"messages":`, wantStatus: 400},
		"no messages":          {kind: gpu.KindChat, body: `{"model":"cocoon-builtin"}`, wantStatus: 400},
		"bad content":          {kind: gpu.KindChat, body: `{"messages":[{"role":"user","content":5}]}`, wantStatus: 400},
		"no prompt":            {kind: gpu.KindCompletion, body: `{}`, wantStatus: 400},
		"batched prompt":       {kind: gpu.KindCompletion, body: `{"prompt":["a","b"]}`, wantStatus: 400},
		"zero max_tokens":      {kind: gpu.KindCompletion, body: `{"prompt":"a","max_tokens":0}`, wantStatus: 400},
		"n > 1":                {kind: gpu.KindCompletion, body: `{"prompt":"a","n":2}`, wantStatus: 400},
		"unknown model":        {kind: gpu.KindChat, body: `{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}`, wantStatus: 404},
		"max_tokens not a num": {kind: gpu.KindChat, body: `{"messages":[{"role":"user","content":"x"}],"max_tokens":"5"}`, wantStatus: 400},
	}
	e := builtin.New(builtin.Config{})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			var errBody struct {
				Error struct {
					Message string `json:"message"`
					Type    string `json:"type"`
				} `json:"error"`
			}
			_, err := e.Do(ctxT(t), gpu.Request{Kind: tc.kind, Body: []byte(tc.body)}, func(gpu.Chunk) error { return nil })
			var he *gpu.HTTPError
			require.ErrorAs(err, &he)
			assert.Equal(tc.wantStatus, he.Status)
			require.NoError(json.Unmarshal(he.Body, &errBody))
			assert.NotEmpty(errBody.Error.Message)
			assert.Equal("invalid_request_error", errBody.Error.Type)

			req, err := http.NewRequestWithContext(ctxT(t), http.MethodPost, srv.URL+tc.kind.Path(), strings.NewReader(tc.body))
			require.NoError(err)
			resp, err := srv.Client().Do(req)
			require.NoError(err)
			defer resp.Body.Close()
			assert.Equal(tc.wantStatus, resp.StatusCode)
			assert.Equal("application/json", resp.Header.Get("Content-Type"))
			b, err := io.ReadAll(resp.Body)
			require.NoError(err)
			assert.JSONEq(string(he.Body), string(b))
		})
	}
}

func TestHandler(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	e := builtin.New(builtin.Config{Model: "m"})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	get := func(path string) (int, string) {
		req, err := http.NewRequestWithContext(ctxT(t), http.MethodGet, srv.URL+path, nil)
		require.NoError(err)
		resp, err := srv.Client().Do(req)
		require.NoError(err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(err)
		return resp.StatusCode, string(b)
	}
	status, _ := get("/health")
	assert.Equal(http.StatusOK, status)
	status, body := get("/v1/models")
	assert.Equal(http.StatusOK, status)
	var models struct {
		Object string `json:"object"`
		Data   []struct {
			ID     string `json:"id"`
			Object string `json:"object"`
		} `json:"data"`
	}
	require.NoError(json.Unmarshal([]byte(body), &models))
	assert.Equal("list", models.Object)
	require.Len(models.Data, 1)
	assert.Equal("m", models.Data[0].ID)
	status, _ = get("/v1/chat/completions")
	assert.Equal(http.StatusMethodNotAllowed, status)

	// Streaming over HTTP: the usage chunk only when asked, then [DONE].
	for _, asked := range []bool{false, true} {
		body := `{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":2`
		if asked {
			body += `,"stream_options":{"include_usage":true}`
		}
		req, err := http.NewRequestWithContext(ctxT(t), http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(body+"}"))
		require.NoError(err)
		resp, err := srv.Client().Do(req)
		require.NoError(err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(err)
		assert.Equal("text/event-stream", resp.Header.Get("Content-Type"))
		events := strings.Split(strings.TrimSuffix(string(b), "\n\n"), "\n\n")
		want := 1 + 2 + 1 // role, two tokens, finish
		if asked {
			want++
		}
		require.Len(events, want+1)
		assert.Equal("data: [DONE]", events[len(events)-1])
		assert.Equal(asked, strings.Contains(events[len(events)-2], `"choices":[],"usage":{`))
		assert.Equal(asked, strings.Contains(events[0], `"usage":null`), "OpenAI sends usage:null in every chunk when asked")
	}
}

func TestEngineCancellation(t *testing.T) {
	testCases := map[string]struct {
		stream bool
	}{
		"stream":     {stream: true},
		"not stream": {stream: false},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			// A delay no test would wait for: only cancellation ends the request.
			e := builtin.New(builtin.Config{TokenDelay: time.Hour})
			ctx, cancel := context.WithCancel(ctxT(t))
			defer cancel()
			done := make(chan error, 1)
			chunks := make(chan struct{}, 10)
			go func() {
				_, err := e.Do(ctx, gpu.Request{Kind: gpu.KindChat, Body: []byte(`{"messages":[{"role":"user","content":"x"}]}`), Stream: tc.stream},
					func(gpu.Chunk) error { chunks <- struct{}{}; return nil })
				done <- err
			}()
			if tc.stream {
				<-chunks // the role chunk comes before the first token
			}
			cancel()
			select {
			case err := <-done:
				assert.ErrorIs(err, context.Canceled)
			case <-time.After(testTimeout):
				t.Fatal("Do did not return after cancellation")
			}
		})
	}
}

func TestEngineSinkError(t *testing.T) {
	assert := assert.New(t)
	e := builtin.New(builtin.Config{})
	boom := errors.New("boom")
	n := 0
	u, err := e.Do(ctxT(t), gpu.Request{Kind: gpu.KindCompletion, Body: []byte(`{"prompt":"a b"}`), Stream: true}, func(gpu.Chunk) error {
		if n++; n == 3 {
			return boom
		}
		return nil
	})
	assert.ErrorIs(err, boom)
	assert.Equal(uint64(2), u.PromptTokens)
	assert.Equal(uint64(3), u.CompletionTokens, "tokens produced so far")
}

func TestCountTokens(t *testing.T) {
	testCases := map[string]struct {
		in   string
		want int
	}{
		"empty":       {in: "", want: 0},
		"spaces":      {in: " \t\n ", want: 0},
		"words":       {in: "hello world", want: 2},
		"punctuation": {in: "Hello, world!", want: 4},
		"digits":      {in: "gpt4o 3.14", want: 4},
		"unicode":     {in: "naïve café — ok", want: 4},
		"symbols run": {in: "a+=b", want: 4},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert.New(t).Equal(tc.want, builtin.CountTokens(tc.in))
		})
	}
}

func BenchmarkEngineStream(b *testing.B) {
	e := builtin.New(builtin.Config{})
	req := gpu.Request{Kind: gpu.KindChat, Body: []byte(`{"messages":[{"role":"user","content":"benchmark prompt"}],"max_tokens":50}`), Stream: true}
	var n int
	sink := func(c gpu.Chunk) error { n += len(c.Data); return nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Do(context.Background(), req, sink); err != nil {
			b.Fatal(err)
		}
	}
}
