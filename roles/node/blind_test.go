package node

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/roles/node/nodetest"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// tap keeps every frame payload a node sent or received.
type tap struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (t *tap) record(_ bool, _ wire.Type, payload []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(payload)
	t.buf.WriteByte(0)
}

func (t *tap) contains(s string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Contains(t.buf.Bytes(), []byte(s))
}

// answerPieces are the pieces of content an answer carried, as the engine's JSON wrote them:
// `"content":"<delta>"` for each chunk of a stream, the whole message's JSON string for a plain
// answer. They occur in no other bytes, so a tap that holds one saw the answer.
func answerPieces(t *testing.T, body []byte, stream bool) []string {
	t.Helper()
	var out []string
	add := func(raw []byte) {
		var c struct {
			Choices []struct {
				Delta   struct{ Content string } `json:"delta"`
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
		}
		if json.Unmarshal(raw, &c) != nil {
			return
		}
		for _, ch := range c.Choices {
			if s := ch.Delta.Content; s != "" {
				q, _ := json.Marshal(s)
				out = append(out, `"content":`+string(q))
			}
			if s := ch.Message.Content; s != "" {
				q, _ := json.Marshal(s)
				out = append(out, string(q))
			}
		}
	}
	if !stream {
		add(body)
		return out
	}
	r := gpu.NewSSEReader(bytes.NewReader(body), 0)
	for {
		p, err := r.Next()
		if err != nil {
			return out
		}
		add(p)
	}
}

// TestProxyIsBlind taps every frame the proxy sends and receives, on every connection, during a
// streamed and a plain request: with sealing (the default) neither the prompt nor any part of the
// answer is in them; with client.plaintext_dev both are, so the tap sees what it should.
func TestProxyIsBlind(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the three roles; skipped with -short")
	}
	const prompt = "the secret word is aubergine-7731, keep it"
	for _, plaintext := range []bool{false, true} {
		name := map[bool]string{false: "sealed", true: "plaintext_dev"}[plaintext]
		t.Run(name, func(t *testing.T) {
			require := require.New(t)
			tp := &tap{}
			ctx, api := tappedRoles(t, plaintext, tp.record)
			var pieces []string
			for _, stream := range []bool{true, false} {
				body := `{"model":"cocoon-builtin","stream":` + map[bool]string{true: "true", false: "false"}[stream] +
					`,"messages":[{"role":"user","content":"` + prompt + `"}]}`
				resp := nodetest.Post(t, ctx, api+"/v1/chat/completions", body)
				answer, err := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				require.NoError(err)
				require.Equal(200, resp.StatusCode, string(answer))
				got := answerPieces(t, answer, stream)
				require.NotEmpty(got, "the answer has content: %s", answer)
				pieces = append(pieces, got...)
			}
			if plaintext {
				assert.True(t, tp.contains("aubergine-7731"), "the tap sees the prompt in clear")
				for _, s := range pieces {
					assert.True(t, tp.contains(s), "the tap sees the answer's %q in clear", s)
				}
				return
			}
			assert.False(t, tp.contains("aubergine-7731"), "the proxy never sees the prompt")
			for _, s := range pieces {
				assert.False(t, tp.contains(s), "the proxy never sees the answer's %q", s)
			}
		})
	}
}

// tappedRoles runs proxy, worker and client in this process, record seeing every frame the proxy
// sends and receives, and returns a context for requests and the client's API address.
func tappedRoles(t *testing.T, plaintext bool, record func(sent bool, typ wire.Type, payload []byte)) (context.Context, string) {
	t.Helper()
	require := require.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), nodetest.Timescale(60*time.Second))
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	cfg := LoopbackConfig(t.TempDir(), "warn")
	cfg.Client.PlaintextDev = plaintext
	p, err := buildProxy(cfg, "test", log, nil, nil, func(tc *transport.Config) { tc.Tap = record })
	require.NoError(err)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	t.Cleanup(cancel)
	wg.Go(func() { _ = p.Run(ctx) })
	paddr := p.Addr(ctx).String()
	wcfg := cfg
	wcfg.Worker.Proxies = []string{paddr}
	w, err := BuildWorker(wcfg, "test", log, nil, nil)
	require.NoError(err)
	wg.Go(func() { _ = w.Run(ctx) })
	ccfg := cfg
	ccfg.Client.Proxies = []string{paddr}
	cl, err := BuildClient(ccfg, "test", log, nil, nil)
	require.NoError(err)
	wg.Go(func() { _ = cl.Run(ctx) })
	nodetest.WaitFor(t, "the worker", func() bool { return p.WorkerCount() == 1 })
	return ctx, "http://" + cl.Addr().String()
}
