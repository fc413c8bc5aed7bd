package client

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// TestRequestIDOnEveryAnswer: every answer of the API, refusals and errors included, names its
// request in x-request-id (what OpenAI's SDKs read into _request_id) and X-Cocoon-Request-Id, with
// the same value; a completion's ID is the one its proxy sees.
func TestRequestIDOnEveryAnswer(t *testing.T) {
	h, stub := startTokenClient(t)
	auth := []string{"Authorization", "Bearer tok", "Content-Type", "application/json"}

	testCases := map[string]struct {
		method, path, body string
		hdr                []string
		wantStatus         int
		reachProxy         bool
	}{
		"completion":       {method: http.MethodPost, path: "/v1/chat/completions", body: `{"model":"test-model","messages":[]}`, hdr: auth, wantStatus: 200, reachProxy: true},
		"stream":           {method: http.MethodPost, path: "/v1/chat/completions", body: `{"model":"test-model","stream":true,"messages":[]}`, hdr: auth, wantStatus: 200, reachProxy: true},
		"proxy error":      {method: http.MethodPost, path: "/v1/chat/completions", body: `{"model":"unknown","messages":[]}`, hdr: auth, wantStatus: 404, reachProxy: true},
		"bad body":         {method: http.MethodPost, path: "/v1/chat/completions", body: `[]`, hdr: auth, wantStatus: 400},
		"no token":         {method: http.MethodPost, path: "/v1/chat/completions", body: `{}`, wantStatus: 401},
		"wrong method":     {method: http.MethodGet, path: "/v1/chat/completions", hdr: auth, wantStatus: 405},
		"unknown endpoint": {method: http.MethodGet, path: "/v1/nothing", hdr: auth, wantStatus: 404},
		"models":           {method: http.MethodGet, path: "/v1/models", hdr: auth, wantStatus: 200},
		"foreign origin":   {method: http.MethodGet, path: "/v1/models", hdr: append([]string{"Origin", "https://evil.example"}, auth...), wantStatus: 403},
		"health":           {method: http.MethodGet, path: "/healthz", wantStatus: 200},
	}
	seen := map[string]bool{}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			before := len(stub.seen())
			resp := h.do(t, context.Background(), tc.method, tc.path, tc.body, tc.hdr...)
			_ = readAll(t, resp.Body)
			require.Equal(tc.wantStatus, resp.StatusCode)
			id := resp.Header.Get("x-request-id")
			require.Regexp(`^req_[a-z0-9]{20}$`, id)
			assert.Equal(id, resp.Header.Get("X-Cocoon-Request-Id"))
			assert.Len(resp.Header.Values("X-Request-Id"), 1)
			assert.False(seen[id], "each answer has an ID of its own")
			seen[id] = true
			if tc.reachProxy {
				require.Len(stub.seen(), before+1)
				assert.Equal(id, stub.seen()[before].GetId())
			}
		})
	}
}

// startTokenClient is a client asking for the API token "tok", connected to a stub proxy that
// answers model test-model and fails the others as errorScript does.
func startTokenClient(t *testing.T) (*harness, *stubProxy) {
	stub := newStub(t, func(p *stubProxy, s *transport.Stream, req *wire.Request) {
		if req.GetModel() == "test-model" {
			answerStream(p, s, req)
			return
		}
		errorScript(p, s, req)
	}, &wire.ModelInfo{Name: "test-model", Workers: 1})
	h := startClient(t, []*stubProxy{stub}, withConfig(func(c *Config) { c.APIToken = "tok" }))
	h.waitConnected(t, 1)
	return h, stub
}
