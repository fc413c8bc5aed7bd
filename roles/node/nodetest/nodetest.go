// Package nodetest holds what tests of whole nodes share: the time scale of their deadlines, a
// wait for a condition, and small HTTP helpers against a client's OpenAI API. Only tests import
// it.
package nodetest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Timescale stretches deadlines: COCOON_TIMESCALE=3 on a slow machine.
func Timescale(d time.Duration) time.Duration {
	if f, err := strconv.ParseFloat(os.Getenv("COCOON_TIMESCALE"), 64); err == nil && f > 0 {
		return time.Duration(float64(d) * f)
	}
	return d
}

// WaitFor checks cond every 20 ms until it holds, and fails the test after 30 s (scaled).
func WaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Timescale(30 * time.Second))
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// GetJSON decodes the JSON answer of a GET.
func GetJSON(url string, v any) error {
	resp, err := http.Get(url) //nolint:noctx // test helper
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// Post sends body as JSON and returns the answer; the caller closes its body.
func Post(t *testing.T, ctx context.Context, url, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}

// ChatBody is a chat completion request for model; extra is spliced in after the messages
// (`,"max_tokens":5`).
func ChatBody(model string, stream bool, extra string) string {
	return fmt.Sprintf(`{"model":%q,"stream":%t,"messages":[{"role":"user","content":"what is remote attestation?"}]%s}`, model, stream, extra)
}
