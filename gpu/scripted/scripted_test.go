package scripted_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cocoon-network/cocoon/gpu/scripted"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func post(t *testing.T, s *scripted.Server, path, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+path, strings.NewReader(body))
	require.New(t).NoError(err)
	resp, err := http.DefaultClient.Do(req)
	require.New(t).NoError(err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.New(t).NoError(err)
	return resp.StatusCode, string(b)
}

func TestStream(t *testing.T) {
	testCases := map[string]struct {
		path       string
		body       string
		wantEvents int
		wantUsage  bool
	}{
		"chat, reference, usage asked": {
			path:       "/v1/chat/completions",
			body:       `{"stream":true,"stream_options":{"include_usage":true}}`,
			wantEvents: 1 + scripted.DefaultChunks + 1,
			wantUsage:  true,
		},
		"chat, no usage asked": {
			path:       "/v1/chat/completions",
			body:       `{"stream":true}`,
			wantEvents: 1 + scripted.DefaultChunks,
		},
		"completion": {
			path:       "/v1/completions",
			body:       `{"stream":true,"stream_options":{"include_usage":true}}`,
			wantEvents: scripted.DefaultChunks + 1,
			wantUsage:  true,
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			s := scripted.New(scripted.Reference())
			t.Cleanup(s.Close)
			status, body := post(t, s, tc.path, tc.body)
			require.Equal(http.StatusOK, status)
			events := strings.Split(strings.TrimSuffix(body, "\n\n"), "\n\n")
			require.Len(events, tc.wantEvents+1)
			assert.Equal("data: [DONE]", events[len(events)-1])
			var contentChunks int
			for _, ev := range events[:len(events)-1] {
				var v struct {
					Choices []struct {
						Text  string `json:"text"`
						Delta struct {
							Content string `json:"content"`
						} `json:"delta"`
					} `json:"choices"`
					Usage *struct {
						CompletionTokens int `json:"completion_tokens"`
					} `json:"usage"`
				}
				require.NoError(json.Unmarshal([]byte(strings.TrimPrefix(ev, "data: ")), &v))
				if len(v.Choices) == 1 && len(v.Choices[0].Text+v.Choices[0].Delta.Content) == scripted.DefaultChunkBytes {
					contentChunks++
				}
				if v.Usage != nil {
					assert.Equal(scripted.DefaultChunks, v.Usage.CompletionTokens)
				}
			}
			assert.Equal(scripted.DefaultChunks, contentChunks)
			assert.Equal(tc.wantUsage, strings.Contains(events[len(events)-2], `"choices":[],"usage"`))
			reqs, err := s.Await(t.Context(), 1)
			require.NoError(err)
			assert.Equal(tc.path, reqs[0].Path)
			<-reqs[0].Done()
			assert.False(reqs[0].WasCancelled())
		})
	}
}

func TestFaults(t *testing.T) {
	assert := assert.New(t)
	s := scripted.New(scripted.Config{})
	t.Cleanup(s.Close)
	status, body := post(t, s, "/v1/chat/completions", `{}`)
	assert.Equal(http.StatusOK, status)
	assert.Contains(body, `"object":"chat.completion"`)
	assert.Contains(body, `"usage":{`)
	status, _ = post(t, s, "/v1/chat/completions", `{`)
	assert.Equal(http.StatusBadRequest, status)
	s.Configure(func(c *scripted.Config) { c.Status = http.StatusTooManyRequests })
	status, body = post(t, s, "/v1/completions", `{}`)
	assert.Equal(http.StatusTooManyRequests, status)
	assert.Contains(body, `"code":429`)
	s.Configure(func(c *scripted.Config) { c.Status, c.Down = 0, true })
	status, _ = post(t, s, "/v1/completions", `{}`)
	assert.Equal(http.StatusServiceUnavailable, status)
	assert.Len(s.Requests(), 4)
}

func TestNoRecord(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	s := scripted.New(scripted.Config{NoRecord: true, Chunks: 1})
	t.Cleanup(s.Close)
	for range 3 {
		status, _ := post(t, s, "/v1/completions", `{"stream":true}`)
		require.Equal(http.StatusOK, status)
	}
	assert.Equal(3, s.Count())
	reqs, err := s.Await(t.Context(), 3)
	require.NoError(err)
	assert.Empty(reqs)
}
