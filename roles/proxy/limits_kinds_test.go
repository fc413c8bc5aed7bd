package proxy

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// TestLimitsByKind: each endpoint's reservation, from the bounds the client read.
func TestLimitsByKind(t *testing.T) {
	pm := &Payments{MaxCompletionTokens: 1000}
	testCases := map[string]struct {
		kind       wire.Kind
		bounds     *wire.Bounds
		want       settle.Usage
		completion uint64 // what the worker makes the engine obey; never 0, which means "not metered"
		wantErr    error
	}{
		"responses": {kind: wire.Kind_KIND_RESPONSES, bounds: &wire.Bounds{BodyBytes: 100, Prompts: 1, Images: 1, CompletionTokens: 50, Sequences: 1},
			want: settle.Usage{PromptTokens: 100 + promptMargin + imageTokens, CompletionTokens: 50}, completion: 50},
		"responses without a limit": {kind: wire.Kind_KIND_RESPONSES, bounds: &wire.Bounds{BodyBytes: 10, Prompts: 1},
			want: settle.Usage{PromptTokens: 10 + promptMargin, CompletionTokens: 1000}, completion: 1000},
		"responses stored on the engine": {kind: wire.Kind_KIND_RESPONSES, bounds: &wire.Bounds{BodyBytes: 10, Unbounded: "previous_response_id"}, wantErr: errUnpriceable},
		"embeddings complete nothing": {kind: wire.Kind_KIND_EMBEDDINGS, bounds: &wire.Bounds{BodyBytes: 100, Prompts: 3, CompletionTokens: 9},
			want: settle.Usage{PromptTokens: 100 + 3*promptMargin}, completion: 9},
		"short audio": {kind: wire.Kind_KIND_TRANSCRIPTION, bounds: &wire.Bounds{BodyBytes: 7500, Prompts: 1},
			want: settle.Usage{PromptTokens: 11*audioTokensPerSec + promptMargin, CompletionTokens: transcriptPerWindow}, completion: transcriptPerWindow},
		"long audio is capped": {kind: wire.Kind_KIND_TRANSCRIPTION, bounds: &wire.Bounds{BodyBytes: 1 << 30, Prompts: 1},
			want:       settle.Usage{PromptTokens: maxAudioSeconds*audioTokensPerSec + promptMargin, CompletionTokens: maxAudioSeconds / transcriptWindowSec * transcriptPerWindow},
			completion: maxAudioSeconds / transcriptWindowSec * transcriptPerWindow},
		"no bounds": {kind: wire.Kind_KIND_EMBEDDINGS, wantErr: errNoBounds},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			lim, err := pm.limits(tc.kind, tc.bounds)
			if tc.wantErr != nil {
				assert.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, lim.max)
			assert.Equal(t, tc.completion, lim.completion)
			assert.Equal(t, uint64(1), max(lim.choices, 1))
		})
	}
}
