package gpu

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/cocoon-network/cocoon/settle"
)

func TestUsageOf(t *testing.T) {
	testCases := map[string]struct {
		in        string
		want      settle.Usage
		wantOK    bool
		noChoices bool
		wantErr   bool
	}{
		"openai chat completion": {
			in:     `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":3,"audio_tokens":0}}}`,
			want:   settle.Usage{PromptTokens: 19, CachedTokens: 4, CompletionTokens: 10, ReasoningTokens: 3},
			wantOK: true,
		},
		"vllm usage chunk": {
			in:        `{"id":"x","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":16,"total_tokens":66,"completion_tokens":50}}`,
			want:      settle.Usage{PromptTokens: 16, CompletionTokens: 50},
			wantOK:    true,
			noChoices: true,
		},
		"choices with spaces are empty": {
			in:        `{"choices":[ ],"usage":{"prompt_tokens":1}}`,
			want:      settle.Usage{PromptTokens: 1},
			wantOK:    true,
			noChoices: true,
		},
		"null details": {
			in:     `{"choices":[{}],"usage":{"prompt_tokens":5,"completion_tokens":2,"prompt_tokens_details":null,"completion_tokens_details":null}}`,
			want:   settle.Usage{PromptTokens: 5, CompletionTokens: 2},
			wantOK: true,
		},
		"ordinary chunk": {
			in: `{"choices":[{"index":0,"delta":{"content":"usage"}}]}`,
		},
		"usage null": {
			in: `{"choices":[{"index":0,"delta":{"content":"x"}}],"usage":null}`,
		},
		"quoted usage key inside content": {
			in: `{"choices":[{"delta":{"content":"say \"usage\": 1"}}]}`,
		},
		"key case matters": {
			in: `{"choices":[],"Usage":{"prompt_tokens":9}}`,
		},
		"escaped key": {
			in:     `{"choices":[{}],"us\u0061ge":{"prompt_tokens":9},"x":"usage"}`,
			want:   settle.Usage{PromptTokens: 9},
			wantOK: true,
		},
		"duplicate key, last wins": {
			in:        `{"usage":{"prompt_tokens":9},"usage":{"prompt_tokens":3}}`,
			want:      settle.Usage{PromptTokens: 3},
			wantOK:    true,
			noChoices: true,
		},
		"deep nesting": {
			in:     `{"choices":[` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `],"usage":{"completion_tokens":1}}`,
			want:   settle.Usage{CompletionTokens: 1},
			wantOK: true,
		},
		"nested usage is not the answer's": {
			in: `{"choices":[{"delta":{"tool_calls":[{"usage":{"prompt_tokens":9}}]}}]}`,
		},
		"negative": {
			in:      `{"usage":{"prompt_tokens":-1}}`,
			wantErr: true,
		},
		"wrong type": {
			in:      `{"usage":{"prompt_tokens":"12"}}`,
			wantErr: true,
		},
		"fraction": {
			in:      `{"usage":{"prompt_tokens":1.5}}`,
			wantErr: true,
		},
		"not json": {
			in:      `{"usage":`,
			wantErr: true,
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			u, ok, noChoices, err := parseUsage([]byte(tc.in))
			if tc.wantErr {
				assert.Error(err)
				assert.False(ok)
				return
			}
			assert.NoError(err)
			assert.Equal(tc.wantOK, ok)
			assert.Equal(tc.want, u)
			if tc.wantOK {
				assert.Equal(tc.noChoices, noChoices)
			}
			u2, ok2, err2 := UsageOf([]byte(tc.in))
			assert.Equal(u, u2)
			assert.Equal(ok, ok2)
			assert.NoError(err2)
		})
	}
}

func FuzzUsageOf(f *testing.F) {
	f.Add([]byte(`{"choices":[],"usage":{"prompt_tokens":16,"total_tokens":66,"completion_tokens":50,"prompt_tokens_details":{"cached_tokens":8},"completion_tokens_details":{"reasoning_tokens":3}}}`))
	f.Add([]byte(`{"usage":null}`))
	f.Add([]byte(`[{"usage":1}]`))
	f.Add([]byte(`"usage"`))
	f.Add([]byte(`{"usage":{"prompt_tokens":1e400}}`))
	f.Add([]byte(`{"us\u0061ge":{"prompt_tokens":2},"x":"usage"}`))
	f.Add([]byte(`{"Usage":{"prompt_tokens":2},"usage":null}`))
	f.Add([]byte(`{"choices":[{"delta":{"content":"\\\"usage\\\""}}],"usage":{"prompt_tokens":7}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		u, ok, err := UsageOf(in)
		if err != nil && ok {
			t.Fatal("ok with an error")
		}
		if !ok && u != (settle.Usage{}) {
			t.Fatalf("usage %+v without ok", u)
		}
		if max(u.PromptTokens, u.CachedTokens, u.CompletionTokens, u.ReasoningTokens) > math.MaxInt64 {
			t.Fatalf("negative usage %+v", u) // a negative count converted, not refused
		}
		// For a valid object, agree with a plain decoder that matches keys
		// exactly (a usage key written with escapes is not looked for).
		var top map[string]json.RawMessage
		if json.Unmarshal(in, &top) != nil {
			return
		}
		raw, has := top["usage"]
		if !has || string(raw) == "null" || !bytes.Contains(in, usageKey) {
			if ok || err != nil {
				t.Fatalf("got %+v, %v, %v; want no usage", u, ok, err)
			}
			return
		}
		type cached struct {
			CachedTokens int64 `json:"cached_tokens"`
		}
		type reasoning struct {
			ReasoningTokens int64 `json:"reasoning_tokens"`
		}
		var j struct {
			PromptTokens            *int64    `json:"prompt_tokens"`
			CompletionTokens        *int64    `json:"completion_tokens"`
			InputTokens             *int64    `json:"input_tokens"`
			OutputTokens            *int64    `json:"output_tokens"`
			PromptTokensDetails     cached    `json:"prompt_tokens_details"`
			InputTokensDetails      cached    `json:"input_tokens_details"`
			CompletionTokensDetails reasoning `json:"completion_tokens_details"`
			OutputTokensDetails     reasoning `json:"output_tokens_details"`
		}
		get := func(p *int64) int64 {
			if p == nil {
				return 0
			}
			return *p
		}
		if json.Unmarshal(raw, &j) != nil ||
			min(get(j.PromptTokens), get(j.CompletionTokens), get(j.InputTokens), get(j.OutputTokens), j.PromptTokensDetails.CachedTokens,
				j.CompletionTokensDetails.ReasoningTokens, j.InputTokensDetails.CachedTokens, j.OutputTokensDetails.ReasoningTokens) < 0 {
			if err == nil {
				t.Fatalf("no error for usage %s", raw)
			}
			return
		}
		if j.PromptTokens == nil && j.CompletionTokens == nil && j.InputTokens == nil && j.OutputTokens == nil {
			if ok || err != nil {
				t.Fatalf("got %+v, %v, %v for usage %s without a token count; want no usage", u, ok, err, raw)
			}
			return
		}
		want := settle.Usage{PromptTokens: uint64(max(get(j.PromptTokens), get(j.InputTokens))),
			CachedTokens:     uint64(max(j.PromptTokensDetails.CachedTokens, j.InputTokensDetails.CachedTokens)),
			CompletionTokens: uint64(max(get(j.CompletionTokens), get(j.OutputTokens))),
			ReasoningTokens:  uint64(max(j.CompletionTokensDetails.ReasoningTokens, j.OutputTokensDetails.ReasoningTokens))}
		if err != nil || !ok || u != want {
			t.Fatalf("got %+v, %v, %v; want %+v", u, ok, err, want)
		}
	})
}

func BenchmarkUsageOf(b *testing.B) {
	benchmarks := map[string]string{
		"content chunk": `{"id":"chatcmpl-0123456789abcdef","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{"content":"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua lorem"},"logprobs":null,"finish_reason":null}]}`,
		"usage chunk":   `{"id":"chatcmpl-0123456789abcdef","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[],"usage":{"prompt_tokens":16,"total_tokens":66,"completion_tokens":50,"prompt_tokens_details":{"cached_tokens":8}}}`,
		"usage null":    `{"id":"chatcmpl-0123456789abcdef","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{"content":"lorem ipsum"},"finish_reason":null}],"usage":null}`,
	}
	for name, in := range benchmarks {
		b.Run(name, func(b *testing.B) {
			data := []byte(in)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := UsageOf(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
