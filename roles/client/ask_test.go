package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// signalWriter records what is written and signals the first write.
type signalWriter struct {
	mu    sync.Mutex
	b     bytes.Buffer
	first chan struct{}
	once  sync.Once
}

func newSignalWriter() *signalWriter { return &signalWriter{first: make(chan struct{})} }

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.once.Do(func() { close(w.first) })
	return w.b.Write(p)
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func TestAsk(t *testing.T) {
	h, stub := startTokenClient(t)

	testCases := map[string]struct {
		opts       AskOptions
		noScheme   bool // the client's address as HOST:PORT
		stdin      string
		wantOut    string
		wantErr    string
		wantStderr []string
		check      func(t *testing.T, req *wire.Request)
	}{
		"streams text and prints the summary": {
			opts:    AskOptions{Model: "test-model", Prompt: "say hello"},
			wantOut: "Hello, world\n",
			wantStderr: []string{"model:  test-model\n", "worker: " + workerImage + " (simulated)\n",
				"tokens: prompt 7, cached 2, completion 3, reasoning 1\n", "cost:   1234 nanoTON\n"},
			check: func(t *testing.T, req *wire.Request) {
				var body map[string]any
				require.NoError(t, json.Unmarshal(req.GetBody(), &body))
				assert.Equal(t, true, body["stream"])
				assert.Equal(t, map[string]any{"include_usage": true}, body["stream_options"])
				assert.NotContains(t, body, "max_tokens")
			},
		},
		"first model, system message, max tokens, prompt from stdin": {
			opts:    AskOptions{System: "be brief", MaxTokens: 16, Prompt: "-"},
			stdin:   "question from stdin",
			wantOut: "Hello, world\n",
			check: func(t *testing.T, req *wire.Request) {
				assert.Equal(t, "test-model", req.GetModel())
				var body struct {
					Messages  []struct{ Role, Content string } `json:"messages"`
					MaxTokens int                              `json:"max_tokens"`
				}
				require.NoError(t, json.Unmarshal(req.GetBody(), &body))
				require.Len(t, body.Messages, 2)
				assert.Equal(t, "system", body.Messages[0].Role)
				assert.Equal(t, "be brief", body.Messages[0].Content)
				assert.Equal(t, "question from stdin", body.Messages[1].Content)
				assert.Equal(t, 16, body.MaxTokens)
			},
		},
		"raw JSON": {
			opts: AskOptions{Model: "test-model", Prompt: "hi", JSON: true},
			wantOut: `{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"test-model",` +
				`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello, world"},"finish_reason":"stop"}],` +
				`"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10,"total_cost":1234}}` + "\n",
			wantStderr: []string{"tokens: prompt 7, cached 0, completion 3, reasoning 0\n", "cost:   1234 nanoTON\n"},
		},
		"client address without a scheme": {
			opts: AskOptions{Model: "test-model", Prompt: "say hello"}, noScheme: true, wantOut: "Hello, world\n",
		},
		"bad client address": {opts: AskOptions{ClientURL: "ftp://127.0.0.1:8080", Prompt: "hi"},
			wantErr: `ask: client URL "ftp://127.0.0.1:8080": scheme "ftp" is not http or https; want http://HOST:PORT or HOST:PORT`},
		"unknown model":      {opts: AskOptions{Model: "unknown", Prompt: "hi"}, wantErr: "ask: no worker serves model unknown (HTTP 404)"},
		"mid-stream failure": {opts: AskOptions{Model: "head-then-fail", Prompt: "hi"}, wantErr: "worker died before its first token"},
		"wrong token":        {opts: AskOptions{Model: "test-model", Prompt: "hi", APIToken: "bad"}, wantErr: "missing or invalid API token"},
		"empty prompt":       {opts: AskOptions{Prompt: "  "}, wantErr: "ask: empty prompt"},
		"empty stdin":        {opts: AskOptions{Prompt: "-"}, wantErr: "ask: empty prompt"},
		"client not running": {opts: AskOptions{ClientURL: "http://127.0.0.1:1", Prompt: "hi"},
			wantErr: "ask: cannot reach the client at http://127.0.0.1:1"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			o := tc.opts
			if o.ClientURL == "" {
				o.ClientURL = h.url
			}
			if tc.noScheme {
				o.ClientURL = strings.TrimPrefix(h.url, "http://")
			}
			if o.APIToken == "" {
				o.APIToken = "tok"
			}
			before := len(stub.seen())
			var stdout, stderr bytes.Buffer
			err := Ask(t.Context(), o, strings.NewReader(tc.stdin), &stdout, &stderr)
			if tc.wantErr != "" {
				require.Error(err)
				assert.Contains(err.Error(), tc.wantErr)
				assert.NotContains(err.Error(), "\n", "errors are one line")
				return
			}
			require.NoError(err)
			assert.Equal(tc.wantOut, stdout.String())
			for _, s := range tc.wantStderr {
				assert.Contains(stderr.String(), s)
			}
			if tc.check != nil {
				seen := stub.seen()
				require.Len(seen, before+1)
				tc.check(t, seen[len(seen)-1])
			}
		})
	}
}

// TestAskStreamsAsItArrives: Ask writes the first words before the answer is complete.
func TestAskStreamsAsItArrives(t *testing.T) {
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
		sendChunk(s, chunkUsage)
		sendDone(s, 0)
	})
	h := startClient(t, []*stubProxy{stub})
	h.waitConnected(t, 1)
	stdout := newSignalWriter()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- Ask(context.Background(), AskOptions{ClientURL: h.url, Model: "test-model", Prompt: "hi"},
			nil, stdout, &stderr)
	}()
	select {
	case <-stdout.first:
	case <-time.After(5 * time.Second):
		t.Fatal("no text before the answer was complete")
	}
	require.Equal("Hello", stdout.String())
	close(release)
	select {
	case err := <-done:
		require.NoError(err)
	case <-time.After(10 * time.Second):
		t.Fatal("Ask did not return")
	}
	require.Equal("Hello, world\n", stdout.String())
	require.NotContains(stderr.String(), "cost:", "no cost line when the usage carries none")
}

func TestParseClientURL(t *testing.T) {
	const want = "; want http://HOST:PORT or HOST:PORT, e.g. 127.0.0.1:8080"
	testCases := map[string]struct {
		in      string
		want    string
		wantErr string
	}{
		"empty":             {in: "", want: DefaultClientURL},
		"host:port":         {in: "127.0.0.1:8080", want: "http://127.0.0.1:8080"},
		"name:port":         {in: "localhost:8080", want: "http://localhost:8080"},
		"IPv6":              {in: "[::1]:8080", want: "http://[::1]:8080"},
		"http URL":          {in: "http://127.0.0.1:8080/", want: "http://127.0.0.1:8080"},
		"https URL":         {in: "https://cocoon.internal", want: "https://cocoon.internal"},
		"OpenAI base URL":   {in: "http://127.0.0.1:8080/v1/", want: "http://127.0.0.1:8080"},
		"served under path": {in: "https://gw.example/cocoon", want: "https://gw.example/cocoon"},
		"spaces":            {in: " 127.0.0.1:8080 ", want: "http://127.0.0.1:8080"},
		"bad port":          {in: "127.0.0.1:80a", wantErr: `client URL "127.0.0.1:80a": invalid port ":80a" after host` + want},
		"other scheme":      {in: "ftp://host:21", wantErr: `client URL "ftp://host:21": scheme "ftp" is not http or https` + want},
		"no host":           {in: "http://", wantErr: `client URL "http://": no host` + want},
		"port only":         {in: ":8080", wantErr: `client URL ":8080": no host` + want},
		"query":             {in: "127.0.0.1:8080?x=1", wantErr: `client URL "127.0.0.1:8080?x=1": no user, query or fragment is allowed` + want},
		"user":              {in: "http://u:p@127.0.0.1:8080", wantErr: "no user, query or fragment is allowed" + want},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseClientURL(tc.in)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestAskToolCalls: an answer that calls tools prints each call, put together from the pieces it
// streams in, as name(arguments) after any text; --json prints them within the answer's JSON.
func TestAskToolCalls(t *testing.T) {
	event := func(s string) string { return "data: " + s + "\n\n" }
	call := func(choice, index int, name, args string) string {
		fn := `"arguments":` + strconv.Quote(args)
		if name != "" {
			fn = `"name":` + strconv.Quote(name) + "," + fn
		}
		return event(fmt.Sprintf(`{"choices":[{"index":%d,"delta":{"tool_calls":[{"index":%d,"function":{%s}}]}}]}`, choice, index, fn))
	}
	testCases := map[string]struct {
		stream  string
		wantOut string
	}{
		"one call in pieces": {
			stream:  call(0, 0, "get_weather", `{"city":`) + call(0, 0, "", `"Paris"}`) + event(`[DONE]`),
			wantOut: "tool call: get_weather({\"city\":\"Paris\"})\n",
		},
		"text, then two calls": {
			stream: event(`{"choices":[{"index":0,"delta":{"content":"Let me look."}}]}`) +
				call(0, 0, "get_weather", `{"city":"Paris"}`) + call(0, 1, "get_time", "") +
				call(0, 1, "", `{"tz":"CET"}`) + event(`[DONE]`),
			wantOut: "Let me look.\ntool call: get_weather({\"city\":\"Paris\"})\ntool call: get_time({\"tz\":\"CET\"})\n",
		},
		"no arguments": {
			stream:  call(0, 0, "now", "") + event(`[DONE]`),
			wantOut: "tool call: now()\n",
		},
		"text only": {
			stream:  event(`{"choices":[{"index":0,"delta":{"content":"hi"}}]}`) + event(`[DONE]`),
			wantOut: "hi\n",
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := streamText(strings.NewReader(tc.stream), &out)
			require.NoError(t, err)
			assert.Equal(t, tc.wantOut, out.String())
		})
	}

	t.Run("json", func(t *testing.T) {
		answer := `{"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,` +
			`"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},` +
			`"finish_reason":"tool_calls"}]}`
		var out bytes.Buffer
		_, err := copyJSON(strings.NewReader(answer), &out)
		require.NoError(t, err)
		assert.JSONEq(t, answer, out.String())
	})
}

func TestAskSummaryNamesReceipt(t *testing.T) {
	var b strings.Builder
	h := http.Header{}
	h.Set("X-Cocoon-Receipt", receiptPath+"req_1")
	answerSummary{model: "m"}.print(&b, h)
	assert.Contains(t, b.String(), "sealed: end to end; the worker's signed receipt is at /v1/cocoon/receipts/req_1")
}
