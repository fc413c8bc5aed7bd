package client

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

const engineErrorBody = `{"object":"error","message":"max_tokens is too large","type":"BadRequestError","param":null,"code":400}`

// errorScript fails each request the way its model name says.
func errorScript(_ *stubProxy, s *transport.Stream, req *wire.Request) {
	send := func(code quic.ApplicationErrorCode, msg string) {
		_ = s.Send(&wire.Error{Code: uint32(code), Message: msg})
	}
	switch req.GetModel() {
	case "unknown":
		send(wire.CodeNotFound, "no worker serves model unknown")
	case "busy":
		send(wire.CodeOverloaded, "all workers are busy")
	case "broke":
		send(wire.CodeUpstream, "worker died")
	case "slow":
		send(wire.CodeTimeout, "worker timed out")
	case "poor":
		send(wire.CodePaymentRequired, "balance too low")
	case "reset":
		s.Cancel(wire.CodeUpstream)
	case "bad-engine":
		_ = s.Send(&wire.Error{Code: uint32(wire.CodeBadRequest), Message: "engine refused", HttpStatus: 422,
			Body: []byte(engineErrorBody)})
	case "bad-engine-text":
		_ = s.Send(&wire.Error{Code: uint32(wire.CodeUpstream), Message: "engine failed", HttpStatus: 500,
			Body: []byte("Internal Server Error")})
	case "head-then-fail":
		sendHead(s, req)
		send(wire.CodeUpstream, "worker died before its first token")
	}
}

type openAIError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func TestErrorMapping(t *testing.T) {
	testCases := map[string]struct {
		path       string
		body       string
		wantStatus int
		wantType   string
		wantCode   string
		wantParam  string
		wantMsg    string // substring
		wantBody   string // exact body, for engine errors
		reachProxy bool
	}{
		"malformed JSON":            {body: `{"model":`, wantStatus: 400, wantType: "invalid_request_error"},
		"not an object":             {body: `[1,2]`, wantStatus: 400, wantType: "invalid_request_error"},
		"null body":                 {body: `null`, wantStatus: 400, wantType: "invalid_request_error"},
		"missing model":             {body: `{"messages":[]}`, wantStatus: 400, wantParam: "model", wantType: "invalid_request_error"},
		"empty model":               {body: `{"model":"","messages":[]}`, wantStatus: 400, wantParam: "model", wantType: "invalid_request_error"},
		"model not a string":        {body: `{"model":5,"messages":[]}`, wantStatus: 400, wantParam: "model", wantType: "invalid_request_error"},
		"stream not a bool":         {body: `{"model":"m","stream":"yes","messages":[]}`, wantStatus: 400, wantParam: "stream", wantType: "invalid_request_error"},
		"stream_options not object": {body: `{"model":"m","stream_options":3,"messages":[]}`, wantStatus: 400, wantParam: "stream_options", wantType: "invalid_request_error"},
		"messages not an array":     {body: `{"model":"m","messages":"hi"}`, wantStatus: 400, wantParam: "messages", wantType: "invalid_request_error"},
		"messages missing":          {body: `{"model":"m"}`, wantStatus: 400, wantParam: "messages", wantType: "invalid_request_error"},
		"completion without prompt": {path: "/v1/completions", body: `{"model":"m"}`, wantStatus: 400, wantParam: "prompt", wantType: "invalid_request_error"},
		"unknown model": {body: `{"model":"unknown","messages":[]}`, wantStatus: 404, wantType: "invalid_request_error",
			wantCode: "model_not_found", wantMsg: "no worker serves model unknown", reachProxy: true},
		"no capacity": {body: `{"model":"busy","messages":[]}`, wantStatus: 503, wantType: "server_error",
			wantCode: "overloaded", wantMsg: "busy", reachProxy: true},
		"upstream failure": {body: `{"model":"broke","messages":[]}`, wantStatus: 502, wantType: "server_error",
			wantCode: "upstream_error", wantMsg: "worker died", reachProxy: true},
		"stream reset": {body: `{"model":"reset","stream":true,"messages":[]}`, wantStatus: 502, wantType: "server_error",
			wantCode: "upstream_error", reachProxy: true},
		"failure after head, before first chunk": {body: `{"model":"head-then-fail","stream":true,"messages":[]}`,
			wantStatus: 502, wantType: "server_error", wantCode: "upstream_error", reachProxy: true},
		"proxy timeout": {body: `{"model":"slow","messages":[]}`, wantStatus: 504, wantType: "server_error",
			wantCode: "timeout", reachProxy: true},
		"payment required": {body: `{"model":"poor","messages":[]}`, wantStatus: 402, wantType: "insufficient_quota",
			wantCode: "payment_required", wantMsg: "balance too low", reachProxy: true},
		"engine error that is not JSON": {body: `{"model":"bad-engine-text","messages":[]}`, wantStatus: 500,
			wantType: "server_error", wantMsg: "engine failed", reachProxy: true},
		"engine error passed through": {body: `{"model":"bad-engine","max_tokens":1000000,"messages":[]}`, wantStatus: 422,
			wantBody: engineErrorBody, reachProxy: true},
	}
	stub := newStub(t, errorScript)
	h := startClient(t, []*stubProxy{stub})
	h.waitConnected(t, 1)
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			path := tc.path
			if path == "" {
				path = "/v1/chat/completions"
			}
			before := len(stub.seen())
			resp := h.post(t, path, tc.body)
			body := readAll(t, resp.Body)
			require.Equal(tc.wantStatus, resp.StatusCode, body)
			assert.Equal("application/json", resp.Header.Get("Content-Type"))
			assert.NotEmpty(resp.Header.Get("X-Cocoon-Request-Id"))
			if tc.reachProxy {
				assert.Len(stub.seen(), before+1)
			} else {
				assert.Len(stub.seen(), before, "an invalid request never reaches a proxy")
			}
			if tc.wantBody != "" {
				assert.Equal(tc.wantBody, body, "the engine's own error is passed through as is")
				return
			}
			var e openAIError
			require.NoError(json.Unmarshal([]byte(body), &e), body)
			assert.Equal(tc.wantType, e.Error.Type)
			assert.NotEmpty(e.Error.Message)
			assert.Contains(e.Error.Message, tc.wantMsg)
			if tc.wantCode != "" {
				require.NotNil(e.Error.Code)
				assert.Equal(tc.wantCode, *e.Error.Code)
			}
			if tc.wantParam != "" {
				require.NotNil(e.Error.Param)
				assert.Equal(tc.wantParam, *e.Error.Param)
			}
			assert.Contains(body, `"param":`, "OpenAI's error shape always has param")
		})
	}
}

func TestBodyOverLimit(t *testing.T) {
	assert := assert.New(t)
	stub := newStub(t, answerStream)
	h := startClient(t, []*stubProxy{stub}, withConfig(func(c *Config) { c.MaxBodyBytes = 1024 }))
	h.waitConnected(t, 1)
	big := `{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("x", 2048) + `"}]}`
	resp := h.post(t, "/v1/chat/completions", big)
	assert.Equal(http.StatusRequestEntityTooLarge, resp.StatusCode)
	var e openAIError
	assert.NoError(json.Unmarshal([]byte(readAll(t, resp.Body)), &e))
	assert.Equal("invalid_request_error", e.Error.Type)
	assert.Empty(stub.seen())

	small := h.post(t, "/v1/chat/completions", `{"model":"m","messages":[]}`)
	assert.Equal(http.StatusOK, small.StatusCode)
}

func TestBearerToken(t *testing.T) {
	testCases := map[string]struct {
		path       string
		header     string
		wantStatus int
	}{
		"no token":             {path: "/v1/models", wantStatus: 401},
		"wrong token":          {path: "/v1/models", header: "Bearer nope", wantStatus: 401},
		"token without Bearer": {path: "/v1/models", header: "s3cret-token", wantStatus: 401},
		"right token":          {path: "/v1/models", header: "Bearer s3cret-token", wantStatus: 200},
		"healthz needs none":   {path: "/healthz", wantStatus: 200},
		"jsonstats needs it":   {path: "/jsonstats", wantStatus: 401},
		"stats page needs it":  {path: "/stats", wantStatus: 401},
		"jsonstats with it":    {path: "/jsonstats", header: "Bearer s3cret-token", wantStatus: 200},
	}
	stub := newStub(t, nil, &wire.ModelInfo{Name: "m", Workers: 1})
	h := startClient(t, []*stubProxy{stub}, withConfig(func(c *Config) { c.APIToken = "s3cret-token" }))
	h.waitConnected(t, 1)
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			var hdr []string
			if tc.header != "" {
				hdr = []string{"Authorization", tc.header}
			}
			resp := h.do(t, t.Context(), http.MethodGet, tc.path, "", hdr...)
			body := readAll(t, resp.Body)
			assert.Equal(t, tc.wantStatus, resp.StatusCode, body)
			if tc.wantStatus == 401 {
				var e openAIError
				require.NoError(t, json.Unmarshal([]byte(body), &e))
				assert.Equal(t, "invalid_api_key", *e.Error.Code)
			}
		})
	}
	resp := h.post(t, "/v1/chat/completions", `{"model":"m","messages":[]}`)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "completions need the token too")
	assert.NotContains(t, h.logs.String(), "s3cret-token", "the token is never logged")
}

// TestMidStreamError: a failure after the first chunk reaches the app as one SSE error event and
// the stream ends without [DONE], promptly.
func TestMidStreamError(t *testing.T) {
	testCases := map[string]struct {
		fail     func(p *stubProxy, s *transport.Stream)
		wantCode string
	}{
		"error message": {fail: func(_ *stubProxy, s *transport.Stream) {
			_ = s.Send(&wire.Error{Code: uint32(wire.CodeUpstream), Message: "worker died"})
		}, wantCode: "upstream_error"},
		"engine error body": {fail: func(_ *stubProxy, s *transport.Stream) {
			_ = s.Send(&wire.Error{Code: uint32(wire.CodeUpstream), HttpStatus: 500, Body: []byte(`{"error":{"message":"engine crashed","type":"server_error","param":null,"code":null}}`)})
		}},
		"stream reset":             {fail: func(_ *stubProxy, s *transport.Stream) { s.Cancel(wire.CodeUpstream) }, wantCode: "upstream_error"},
		"stream ends without done": {fail: func(*stubProxy, *transport.Stream) {}, wantCode: "upstream_error"},
		"connection lost":          {fail: func(p *stubProxy, _ *transport.Stream) { p.dropConns() }, wantCode: "upstream_error"},
		"timeout reset":            {fail: func(_ *stubProxy, s *transport.Stream) { s.Cancel(wire.CodeTimeout) }, wantCode: "timeout"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			// The stub fails only once the app holds the first chunk: a reset would otherwise
			// discard the chunk in flight and make this a failure before the answer.
			got := make(chan struct{})
			stub := newStub(t, func(p *stubProxy, s *transport.Stream, req *wire.Request) {
				sendHead(s, req)
				sendChunk(s, chunkHello)
				select {
				case <-got:
				case <-s.Context().Done():
					return
				}
				tc.fail(p, s)
			})
			h := startClient(t, []*stubProxy{stub})
			h.waitConnected(t, 1)
			start := time.Now()
			resp := h.post(t, "/v1/chat/completions", chatBody)
			require.Equal(http.StatusOK, resp.StatusCode)
			events := newSSEReader(resp.Body)
			first, err := events.nextWithin(t, 2*time.Second)
			require.NoError(err)
			assert.Equal(chunkHello, first)
			close(got)
			rest := events.all(t)
			assert.Less(time.Since(start), 2*time.Second, "a failed stream ends promptly")
			require.Len(rest, 1, "exactly one error event and no [DONE]: %q", rest)
			var e openAIError
			require.NoError(json.Unmarshal([]byte(rest[0]), &e), rest[0])
			assert.NotEmpty(e.Error.Message)
			if tc.wantCode != "" {
				require.NotNil(e.Error.Code)
				assert.Equal(tc.wantCode, *e.Error.Code)
			}
			assert.Len(stub.seen(), 1, "never retried after the first chunk")
		})
	}
}
