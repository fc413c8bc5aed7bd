package bounds

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/gpu"
)

func TestOfAndExceeds(t *testing.T) {
	body := []byte(`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"x"}}]}],"max_tokens":5,"n":2,"n":3}`)
	b, err := Of(body)
	require.NoError(t, err)
	assert.Equal(t, uint64(len(body)), b.GetBodyBytes())
	assert.Equal(t, uint64(5), b.GetCompletionTokens())
	assert.Equal(t, uint64(3), b.GetN(), "the last duplicate wins, as in the engine")
	assert.Equal(t, uint64(1), b.GetImages())
	f, err := gpu.ReadFacts(body)
	require.NoError(t, err)
	assert.Empty(t, Exceeds(f.Limits, len(body), b))

	testCases := map[string]struct {
		body string
		want string
	}{
		"longer":      {`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi, and much more than was declared"},{"type":"image_url","image_url":{"url":"x"}}]}],"max_tokens":5,"n":3}`, "bytes"},
		"more images": {`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}},{"type":"image_url","image_url":{"url":"y"}}]}]}`, "2 images"},
		"more n":      {`{"model":"m","messages":[],"n":9}`, "9 sequences"},
		"audio":       {`{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio"}]}]}`, "its bounds did not declare"},
	}
	small, err := Of([]byte(`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`))
	require.NoError(t, err)
	small.BodyBytes = 1 << 20
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			f, err := gpu.ReadFacts([]byte(tc.body))
			require.NoError(t, err)
			against := small
			if name == "longer" {
				against = b
			}
			assert.Contains(t, Exceeds(f.Limits, len(tc.body), against), tc.want)
		})
	}
	assert.Contains(t, Exceeds(f.Limits, len(body), nil), "no bounds")
}
