package client

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest/attesttest"
)

// TestBrowserRequestsRefused: a web page can make the browser send requests to the local API
// without a CORS preflight (text/plain or form bodies), and DNS rebinding lets it read the answers;
// both would spend the client's deposit. OpenAI SDKs (JSON, no Origin, a loopback Host) still work.
func TestBrowserRequestsRefused(t *testing.T) {
	const okBody = `{"model":"m","messages":[]}`
	testCases := map[string]struct {
		method      string // default POST
		path        string // default /v1/chat/completions
		contentType string // default application/json
		origin      string
		host        string // default the listen address
		hdr         []string
		wantStatus  int
		wantMsg     []string // substrings of the error message
		wantCORS    bool
	}{
		"OpenAI SDK":                  {wantStatus: 200},
		"JSON with charset":           {contentType: "application/json; charset=utf-8", wantStatus: 200},
		"JSON in capitals":            {contentType: "Application/JSON", wantStatus: 200},
		"no content type":             {contentType: "-", wantStatus: 200},
		"localhost host":              {host: "localhost:8080", wantStatus: 200},
		"IPv6 loopback host":          {host: "[::1]:8080", wantStatus: 200},
		"other loopback IP host":      {host: "127.1.2.3", wantStatus: 200},
		"configured host":             {host: "API.internal:80", wantStatus: 200},
		"page on localhost":           {origin: "http://localhost:3000", wantStatus: 200},
		"page on a loopback IP":       {origin: "http://127.0.0.1:5173", wantStatus: 200},
		"configured origin":           {origin: "https://app.example.com", wantStatus: 200, wantCORS: true},
		"text/plain body":             {contentType: "text/plain;charset=UTF-8", wantStatus: 415, wantMsg: []string{"text/plain", "Content-Type: application/json"}},
		"form body":                   {contentType: "application/x-www-form-urlencoded", wantStatus: 415, wantMsg: []string{"Content-Type: application/json"}},
		"multipart body":              {contentType: "multipart/form-data; boundary=x", wantStatus: 415, wantMsg: []string{"Content-Type: application/json"}},
		"JSON look-alike":             {contentType: "application/jsonp", wantStatus: 415, wantMsg: []string{"Content-Type: application/json"}},
		"foreign page":                {origin: "https://evil.example", wantStatus: 403, wantMsg: []string{"https://evil.example", "client.allowed_origins"}},
		"foreign page on loopback IP": {origin: "https://evil.example:443", host: "127.0.0.1", wantStatus: 403, wantMsg: []string{"client.allowed_origins"}},
		"sandboxed page":              {origin: "null", wantStatus: 403, wantMsg: []string{"client.allowed_origins"}},
		"rebound name":                {host: "evil.example:8080", wantStatus: 403, wantMsg: []string{"evil.example", "client.allowed_hosts"}},
		"rebound name to localhost":   {host: "localhost.evil.example", origin: "http://localhost.evil.example", wantStatus: 403, wantMsg: []string{"client.allowed_hosts"}},
		"foreign page lists models":   {method: http.MethodGet, path: "/v1/models", origin: "https://evil.example", wantStatus: 403},
		"rebound name reads stats":    {method: http.MethodGet, path: "/jsonstats", host: "evil.example", wantStatus: 403},
		"rebound name reads health":   {method: http.MethodGet, path: "/healthz", host: "evil.example", wantStatus: 403},
		"preflight, configured page": {method: http.MethodOptions, origin: "https://app.example.com",
			hdr:        []string{"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type,x-stainless-os"},
			wantStatus: 204, wantCORS: true},
		"preflight, foreign page": {method: http.MethodOptions, origin: "https://evil.example",
			hdr: []string{"Access-Control-Request-Method", "POST"}, wantStatus: 403},
	}
	stub := newStub(t, answerStream)
	h := startClient(t, []*stubProxy{stub}, withConfig(func(c *Config) {
		c.AllowedOrigins = []string{"https://app.example.com"}
		c.AllowedHosts = []string{"api.internal"}
	}))
	h.waitConnected(t, 1)
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			method, path, body := tc.method, tc.path, ""
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = "/v1/chat/completions"
			}
			if method == http.MethodPost {
				body = okBody
			}
			req, err := http.NewRequestWithContext(t.Context(), method, h.url+path, strings.NewReader(body))
			require.NoError(err)
			switch tc.contentType {
			case "":
				req.Header.Set("Content-Type", "application/json")
			case "-":
			default:
				req.Header.Set("Content-Type", tc.contentType)
			}
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			if tc.host != "" {
				req.Host = tc.host
			}
			for i := 0; i+1 < len(tc.hdr); i += 2 {
				req.Header.Set(tc.hdr[i], tc.hdr[i+1])
			}
			before := len(stub.seen())
			resp, err := h.http.Do(req)
			require.NoError(err)
			got := readAll(t, resp.Body)
			_ = resp.Body.Close()
			require.Equal(tc.wantStatus, resp.StatusCode, got)
			if tc.wantCORS {
				assert.Equal(tc.origin, resp.Header.Get("Access-Control-Allow-Origin"))
				assert.Contains(resp.Header.Values("Vary"), "Origin")
			} else {
				assert.Empty(resp.Header.Get("Access-Control-Allow-Origin"), "no CORS for pages not configured")
			}
			if method == http.MethodOptions && tc.wantStatus == 204 {
				assert.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST")
				assert.Equal("authorization,content-type,x-stainless-os", resp.Header.Get("Access-Control-Allow-Headers"))
			}
			if tc.wantStatus < 400 {
				if method == http.MethodPost {
					assert.Len(stub.seen(), before+1)
				}
				return
			}
			assert.Len(stub.seen(), before, "a refused request never reaches a proxy")
			var e openAIError
			require.NoError(json.Unmarshal([]byte(got), &e), got)
			assert.Equal("invalid_request_error", e.Error.Type)
			for _, m := range tc.wantMsg {
				assert.Contains(e.Error.Message, m)
			}
		})
	}
	assert.Contains(t, h.logs.String(), `"origin":"https://evil.example"`, "the operator learns which page was refused")
	assert.Contains(t, h.logs.String(), `"host":"evil.example"`, "and which Host name")
}

// TestAnyOriginAndHost: "*" opens each check explicitly.
func TestAnyOriginAndHost(t *testing.T) {
	assert := assert.New(t)
	stub := newStub(t, answerStream)
	h := startClient(t, []*stubProxy{stub}, withConfig(func(c *Config) {
		c.AllowedOrigins = []string{"*"}
		c.AllowedHosts = []string{"*"}
	}))
	h.waitConnected(t, 1)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, h.url+"/v1/models", nil)
	require.NoError(t, err)
	req.Host = "anything.example"
	req.Header.Set("Origin", "https://anywhere.example")
	resp, err := h.http.Do(req)
	require.NoError(t, err)
	body := readAll(t, resp.Body)
	_ = resp.Body.Close()
	assert.Equal(http.StatusOK, resp.StatusCode, body)
	assert.Equal("https://anywhere.example", resp.Header.Get("Access-Control-Allow-Origin"))
}

func TestGuardConfigValidated(t *testing.T) {
	tc := clientTransport(t, attesttest.OpenPolicy())
	testCases := map[string]struct {
		mutate  func(*Config)
		wantErr string
	}{
		"origin with a path":  {mutate: func(c *Config) { c.AllowedOrigins = []string{"https://a.example/app"} }, wantErr: "allowed_origins[0]"},
		"origin, no scheme":   {mutate: func(c *Config) { c.AllowedOrigins = []string{"a.example"} }, wantErr: "allowed_origins[0]"},
		"host with a port":    {mutate: func(c *Config) { c.AllowedHosts = []string{"ok.example", "a.example:80"} }, wantErr: "allowed_hosts[1]"},
		"host empty":          {mutate: func(c *Config) { c.AllowedHosts = []string{""} }, wantErr: "allowed_hosts[0]"},
		"budget below a body": {mutate: func(c *Config) { c.MaxBodiesBytes = 1024 }, wantErr: "max_bodies_bytes"},
		"negative conns":      {mutate: func(c *Config) { c.MaxConnections = -1 }, wantErr: "max_connections"},
	}
	for name, c := range testCases {
		t.Run(name, func(t *testing.T) {
			cfg := Config{Proxies: []string{"127.0.0.1:7000"}, Listen: "127.0.0.1:0"}
			c.mutate(&cfg)
			_, err := New(cfg, tc, zerolog.Nop())
			assert.ErrorContains(t, err, c.wantErr)
		})
	}
}
