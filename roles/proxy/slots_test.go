package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/roles/internal/poll"
	"github.com/cocoon-network/cocoon/transport"
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

// TestWorkerStreamsReleased: once an answer is relayed, the proxy is done with its stream to the
// worker in both directions, also when the worker refused the request: none stays held on a
// worker connection that lives for hours.
func TestWorkerStreamsReleased(t *testing.T) {
	testCases := map[string]behaviour{
		"answered": answerOK(2),
		"refused": func(s *transport.Stream, _ *wire.Request) {
			_ = s.Send(&wire.Error{Code: uint32(wire.CodeBadRequest), Message: "no"})
			_ = s.CloseSend()
		},
	}
	for name, b := range testCases {
		t.Run(name, func(t *testing.T) {
			p, addr := startProxy(t)
			fakeWorker(t, addr, "m", b)
			c := dialClient(t, addr)
			for range 5 {
				ask(t, c, "m")
			}
			workers := p.reg.all()
			require.Len(t, workers, 1)
			require.NoError(t, poll.Until(context.Background(), 10*time.Second, nil, func() error {
				if n := workers[0].conn.HeldStreams(); n != 0 {
					return fmt.Errorf("%d streams to the worker held", n)
				}
				return nil
			}))
		})
	}
}
