package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/gpu/scripted"
)

// sdkChecks are the checks testdata/sdk/sdk.mjs runs, each of which must print "ok <name>".
var sdkChecks = []string{
	"models.list", "chat.completions.create", "chat.completions.create stream",
	"responses.create", "responses.create stream", "embeddings.create", "audio.transcriptions.create",
	"audio.transcriptions.create stream",
	"error: unknown model", "error: bad parameter", "error: engine refusal", "error: unknown route",
	"ai-sdk generateText (Responses API)", "ai-sdk streamText (Responses API)", "ai-sdk embed",
}

// TestOfficialSDKs: the official `openai` npm client and `@ai-sdk/openai` (its default model
// handle, which uses the Responses API) against the demo's client, metered end to end: Responses
// streamed and not, embeddings, a transcription streamed and not (the built-in engine serves
// one), chat streaming,
// errors in OpenAI's shape, and _request_id on every answer. It installs testdata/sdk with npm ci
// when node_modules is missing, and skips only when node is not installed.
func TestOfficialSDKs(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: install Node.js (with npm) to run the official SDK tests")
	}
	dir := filepath.Join("testdata", "sdk")
	ctx, cancel := context.WithTimeout(context.Background(), timescale(5*time.Minute))
	defer cancel()
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil {
		npm, err := exec.LookPath("npm")
		require.NoError(t, err, "node is installed but npm is not: install npm to fetch the SDKs")
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "npm ci in %s:\n%s", dir, out)
	}

	urls := startDemo(t, t.TempDir())
	cmd := exec.CommandContext(ctx, node, "sdk.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COCOON_BASE_URL="+urls.Client.API, "COCOON_MODEL=cocoon-builtin")
	out, err := cmd.CombinedOutput()
	t.Logf("sdk.mjs against %s:\n%s", urls.Client.API, out)
	assert.NoError(t, err, "a check failed")
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, name := range sdkChecks {
		assert.Contains(t, lines, "ok "+name)
	}
}

// TestEngineWithoutEndpoint: a worker whose engine lacks the Responses and embeddings endpoints
// (the vLLM look-alike serves chat and completions only) answers the app as OpenAI does for an
// unknown route, with x-request-id.
func TestEngineWithoutEndpoint(t *testing.T) {
	vllm := scripted.New(scripted.Config{})
	t.Cleanup(vllm.Close)
	n := newNetwork(t)
	n.worker("worker", vllm.URL, scripted.DefaultModel)
	n.workers(1)
	_, api := n.client()
	ctx, cancel := context.WithTimeout(context.Background(), timescale(30*time.Second))
	defer cancel()
	for path, body := range map[string]string{
		"/v1/responses":  `{"model":"` + scripted.DefaultModel + `","input":"hello"}`,
		"/v1/embeddings": `{"model":"` + scripted.DefaultModel + `","input":"hello"}`,
	} {
		resp := post(t, ctx, api+path, body)
		var e struct {
			Error struct {
				Message string  `json:"message"`
				Type    string  `json:"type"`
				Code    *string `json:"code"`
			} `json:"error"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
		require.NoError(t, resp.Body.Close())
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, path)
		assert.Equal(t, "invalid_request_error", e.Error.Type)
		require.NotNil(t, e.Error.Code)
		assert.Equal(t, "unknown_url", *e.Error.Code)
		assert.Contains(t, e.Error.Message, path)
		assert.True(t, strings.HasPrefix(resp.Header.Get("X-Request-Id"), "req_"), path)
	}
}
