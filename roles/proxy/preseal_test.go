package proxy

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-network/cocoon/transport/wire"
)

// TestWithoutSealedBody: a presealed request offered to another worker goes to it with the body
// sealed in answer to the offer only, every other field as the client sent it.
func TestWithoutSealedBody(t *testing.T) {
	req := &wire.Request{Id: "req-1", Model: "m", Seal: true, Stream: true, SealedBody: []byte("presealed to another worker"),
		Bounds: &wire.Bounds{BodyBytes: 10}}
	payload, err := proto.Marshal(req)
	require.NoError(t, err)
	payload = withReserved(payload, limits{completion: 7, choices: 1})
	out := withSealedBody(withoutSealedBody(payload), []byte("sealed to this one"))
	var got wire.Request
	require.NoError(t, proto.Unmarshal(out, &got))
	assert.Equal(t, []byte("sealed to this one"), got.GetSealedBody())
	assert.NotContains(t, string(out), "presealed")
	assert.Equal(t, "req-1", got.GetId())
	assert.True(t, got.GetSeal())
	assert.True(t, got.GetStream())
	assert.Equal(t, uint64(10), got.GetBounds().GetBodyBytes())
	assert.Equal(t, uint64(7), got.GetReservedCompletionTokens())

	assert.Equal(t, []byte{0xff}, withoutSealedBody([]byte{0xff}), "a frame that does not parse goes on as it is")
}

// TestSealedShape: a sealed request may come presealed, never with a body in clear; a sealed
// body needs seal set.
func TestSealedShape(t *testing.T) {
	assert.Empty(t, sealedShape(&wire.Request{Seal: true}))
	assert.Empty(t, sealedShape(&wire.Request{Seal: true, SealedBody: []byte("x")}))
	assert.Contains(t, sealedShape(&wire.Request{Seal: true, Body: []byte("{}")}), "no body in clear")
	assert.Contains(t, sealedShape(&wire.Request{SealedBody: []byte("x")}), "must set seal")
}
