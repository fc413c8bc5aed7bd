package wire

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/cocoon-network/cocoon/settle"
)

func TestUsageRoundTrip(t *testing.T) {
	testCases := map[string]settle.Usage{
		"zero": {},
		"all":  {PromptTokens: 100, CachedTokens: 64, CompletionTokens: 5, ReasoningTokens: 2},
		"max":  {PromptTokens: ^uint64(0), CachedTokens: ^uint64(0), CompletionTokens: ^uint64(0), ReasoningTokens: ^uint64(0)},
	}
	for name, u := range testCases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, u, DecodeUsage(EncodeUsage(u)))
		})
	}
	assert.Equal(t, settle.Usage{}, DecodeUsage(nil))
}
