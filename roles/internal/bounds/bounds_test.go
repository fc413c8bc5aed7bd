package bounds

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/transport/wire"
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

func TestOfKind(t *testing.T) {
	testCases := map[string]struct {
		kind wire.Kind
		body string
		want *wire.Bounds // BodyBytes is filled in
	}{
		"responses":  {wire.Kind_KIND_RESPONSES, `{"model":"m","input":[{"role":"user","content":[{"type":"input_image","image_url":"x"}]}],"max_output_tokens":7}`, &wire.Bounds{Prompts: 1, Images: 1, CompletionTokens: 7, Sequences: 1}},
		"embeddings": {wire.Kind_KIND_EMBEDDINGS, `{"model":"m","input":["a","b"]}`, &wire.Bounds{Prompts: 2, Sequences: 1}},
		"chat":       {wire.Kind_KIND_CHAT, `{"model":"m","messages":[],"max_tokens":3}`, &wire.Bounds{Prompts: 1, CompletionTokens: 3, Sequences: 1}},
		"transcription": {wire.Kind_KIND_TRANSCRIPTION, "--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n--b\r\n" +
			"Content-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\naudio\r\n--b--\r\n", &wire.Bounds{Prompts: 1, Sequences: 1}},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			b, err := OfKind(tc.kind, []byte(tc.body), "")
			require.NoError(t, err)
			tc.want.BodyBytes = uint64(len(tc.body))
			assert.True(t, proto.Equal(tc.want, b), "got %v, want %v", b, tc.want)
		})
	}
	_, err := OfKind(wire.Kind(99), []byte(`{}`), "")
	assert.ErrorIs(t, err, gpu.ErrBadRequest)
	_, err = OfKind(wire.Kind_KIND_TRANSCRIPTION, []byte(`{}`), "")
	assert.ErrorIs(t, err, gpu.ErrBadRequest, "a transcription is a multipart form")
	// A transcription's form that grew past its bounds is refused by its size.
	f, err := gpu.ReadKindFacts(gpu.KindTranscription, []byte(testCases["transcription"].body), "")
	require.NoError(t, err)
	assert.Contains(t, Exceeds(f.Limits, 1000, &wire.Bounds{BodyBytes: 999}), "1000 bytes")
}
