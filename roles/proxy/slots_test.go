package proxy

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// TestStreamSlotsFreed: a client's request stream frees its slot when the answer ends, also when
// the client's end of it arrives after the request frame (here: after the answer's head), which no
// read of the proxy's would take. With the slots of a few streams, many requests in a row pass.
func TestStreamSlotsFreed(t *testing.T) {
	tc := tconfig(t, attest.RoleProxy, "")
	tc.MaxStreams = 3
	_, addr := startProxyWith(t, Config{Listen: "127.0.0.1:0", RequestTimeout: 5 * time.Second}, tc)
	fakeWorker(t, addr, "m", answerOK(2))
	c := dialClient(t, addr)
	body := []byte(`{"messages":[{"role":"user","content":"` + strings.Repeat("x", 3000) + `"}]}`)
	for i := range 12 {
		octx, ocancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := c.OpenStream(octx)
		ocancel()
		require.NoError(t, err, "request %d: no stream slot left", i)
		require.NoError(t, s.Send(bounded(&wire.Request{Id: "r", Kind: wire.Kind_KIND_CHAT, Model: "m", Body: body})))
		sentEnd := false
		for {
			typ, _, err := s.RecvFrame()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, "request %d", i)
			if typ == wire.TypeResponseHead && !sentEnd {
				// The proxy read all it wanted and may have said so already: the close's error is
				// ignored, as the client does.
				_ = s.CloseSend()
				sentEnd = true
			}
		}
		require.True(t, sentEnd, "request %d was answered", i)
	}
}
