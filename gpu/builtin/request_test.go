package builtin_test

import (
	"encoding/json"
	"errors"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/gpu/builtin"
)

// TestEngineExactKeys: keys are matched exactly, as the Python engines, the proxy and the client
// match them, so a case variant is an unknown field and is ignored.
func TestEngineExactKeys(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hello there"}]`
	testCases := map[string]struct {
		kind       gpu.Kind
		body       string
		same       string // a body that must give the same answer
		wantStatus int    // 0 for success
		wantFinish string
	}{
		"Model ignored":          {kind: gpu.KindChat, body: `{"Model":"gpt-9",` + msgs + `}`, same: `{` + msgs + `}`, wantFinish: "stop"},
		"MODEL after model":      {kind: gpu.KindChat, body: `{"model":"cocoon-builtin","MODEL":"x",` + msgs + `}`, same: `{` + msgs + `}`, wantFinish: "stop"},
		"Max_Tokens ignored":     {kind: gpu.KindChat, body: `{"Max_Tokens":1,` + msgs + `}`, same: `{` + msgs + `}`, wantFinish: "stop"},
		"escaped key is the key": {kind: gpu.KindChat, body: `{"max_tok\u0065ns":1,` + msgs + `}`, same: `{"max_tokens":1,` + msgs + `}`, wantFinish: "length"},
		"last of repeated key":   {kind: gpu.KindChat, body: `{"max_tokens":0,"max_tokens":1,` + msgs + `}`, same: `{"max_tokens":1,` + msgs + `}`, wantFinish: "length"},
		"Role ignored":           {kind: gpu.KindChat, body: `{"messages":[{"Role":"user","content":"hello there"}]}`, same: `{"messages":[{"content":"hello there"}]}`, wantFinish: "stop"},
		"Content ignored":        {kind: gpu.KindChat, body: `{"messages":[{"role":"user","Content":"hello there"}]}`, same: `{"messages":[{"role":"user"}]}`, wantFinish: "stop"},
		"Text part ignored": {kind: gpu.KindChat, body: `{"messages":[{"role":"user","content":[{"type":"text","Text":"x"}]}]}`,
			same: `{"messages":[{"role":"user","content":""}]}`, wantFinish: "stop"},
		"Messages is not messages": {kind: gpu.KindChat, body: `{"Messages":[{"role":"user","content":"x"}]}`, wantStatus: 400},
		"Prompt is not prompt":     {kind: gpu.KindCompletion, body: `{"Prompt":"x"}`, wantStatus: 400},
		"wrong type under a variant key is ignored": {kind: gpu.KindCompletion, body: `{"prompt":"x","N":"many"}`,
			same: `{"prompt":"x"}`, wantFinish: "stop"},
	}
	e := builtin.New(builtin.Config{})
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			if tc.wantStatus != 0 {
				_, err := e.Do(ctxT(t), gpu.Request{Kind: tc.kind, Body: []byte(tc.body)}, func(gpu.Chunk) error { return nil })
				var he *gpu.HTTPError
				require.ErrorAs(err, &he)
				assert.Equal(tc.wantStatus, he.Status)
				return
			}
			got, finish := answer(t, do(t, e, tc.kind, tc.body, false))
			want, _ := answer(t, do(t, e, tc.kind, tc.same, false))
			assert.Equal(want, got)
			assert.Equal(tc.wantFinish, finish)
		})
	}
}

// FuzzBuiltinRequest: the request parser reads untrusted bytes. It must never panic, must refuse
// with OpenAI error JSON, and must not allocate more than a small multiple of the body.
func FuzzBuiltinRequest(f *testing.F) {
	for _, seed := range []string{
		`{"model":"cocoon-builtin","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}}]},{"role":"assistant","content":null}]}`,
		`{"prompt":["one"],"max_tokens":3,"n":1}`,
		`{"prompt":"x","max_completion_tokens":2,"max_tokens":9}`,
		` {"mod\u0065l":"m","Messages":[],"messages":[{"role":"\ud83d\ude00","content":"\u00e9\ud800"}]} `,
		`{"messages":[null,{}],"stream_options":null}`,
		`{"messages":`,
		`[1,2]`,
		`null`,
	} {
		f.Add([]byte(seed), true)
		f.Add([]byte(seed), false)
	}
	e := builtin.New(builtin.Config{})
	f.Fuzz(func(t *testing.T, body []byte, chat bool) {
		kind := gpu.KindCompletion
		if chat {
			kind = gpu.KindChat
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := e.Do(t.Context(), gpu.Request{Kind: kind, Body: body}, func(gpu.Chunk) error { return nil })
		runtime.ReadMemStats(&after)
		// json.Valid keeps one int per open bracket, so a deeply nested body costs a few
		// words a byte; the answer itself is bounded by Config, not by the body.
		assert.LessOrEqual(t, after.TotalAlloc-before.TotalAlloc, uint64(32*len(body)+64<<10))
		if err == nil {
			return
		}
		var he *gpu.HTTPError
		require.True(t, errors.As(err, &he), "%v", err)
		assert.Contains(t, []int{400, 404}, he.Status)
		var shape struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		require.NoError(t, json.Unmarshal(he.Body, &shape))
		assert.NotEmpty(t, shape.Error.Message)
	})
}
