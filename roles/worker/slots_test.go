package worker

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/gpu/scripted"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// TestStreamSlotsFreed: a request stream frees its slot when its answer ends, also when the
// proxy's end of it arrives after the request frame (here: after the answer's head), which no
// read of the worker's would take. With the slots of a few streams, many requests in a row pass.
func TestStreamSlotsFreed(t *testing.T) {
	eng := scripted.New(scripted.Config{Chunks: 2, Model: "test-model"})
	t.Cleanup(eng.Close)
	e, err := gpu.NewHTTP(gpu.HTTPConfig{BaseURL: eng.URL})
	require.NoError(t, err)
	tc := tconfig(t, attest.RoleWorker)
	tc.MaxStreams = 3
	_, c := startWorkerWith(t, newStubProxy(t), e, 4, tc)
	expectRegister(t, c, 4)
	body := `{"model":"test-model","messages":[{"role":"user","content":"` + strings.Repeat("x", 3000) + `"}]}`
	for i := range 12 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := c.OpenStream(ctx)
		cancel()
		require.NoError(t, err, "request %d: no stream slot left", i)
		require.NoError(t, s.Send(bounded(&wire.Request{Id: "r", Kind: wire.Kind_KIND_CHAT, Model: "test-model", Body: []byte(body)})))
		sentEnd := false
		for {
			typ, _, err := s.RecvFrame()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			if typ == wire.TypeResponseHead && !sentEnd {
				// Our end, well after the request frame. The worker read all it wanted and may have
				// said so already, as a proxy would find it too: the close's error is ignored there.
				_ = s.CloseSend()
				sentEnd = true
			}
		}
		require.True(t, sentEnd, "request %d was answered", i)
	}
}
