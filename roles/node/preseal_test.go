package node

import (
	"io"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/roles/node/nodetest"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// TestPresealedSkipsOffer: the client's first sealed request learns its worker from an offer;
// the next ones are presealed to that worker, and the proxy, which picks it again, forwards them
// without an offer and its round trip.
func TestPresealedSkipsOffer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the three roles; skipped with -short")
	}
	require := require.New(t)
	var offered, sealedBodies atomic.Int64
	ctx, api := tappedRoles(t, false, func(sent bool, typ wire.Type, _ []byte) {
		switch {
		case sent && typ == wire.TypeWorkerOffer:
			offered.Add(1)
		case !sent && typ == wire.TypeSealedBody:
			sealedBodies.Add(1)
		}
	})
	for i := range 5 {
		stream := i%2 == 0
		body := `{"model":"cocoon-builtin","stream":` + map[bool]string{true: "true", false: "false"}[stream] +
			`,"messages":[{"role":"user","content":"hello"}]}`
		resp := nodetest.Post(t, ctx, api+"/v1/chat/completions", body)
		answer, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.NoError(err)
		require.Equal(200, resp.StatusCode, string(answer))
		require.NotEmpty(answerPieces(t, answer, stream), "request %d: the answer has content: %s", i, answer)
		assert.NotEmpty(t, resp.Header.Get("X-Cocoon-Receipt"), "request %d: the sealed answer names its receipt", i)
	}
	assert.Equal(t, int64(1), offered.Load(), "one offer, for the first request")
	assert.Equal(t, int64(1), sealedBodies.Load(), "one body sealed in answer to an offer; the others came presealed")
}
