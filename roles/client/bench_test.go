package client

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// BenchmarkStream measures the client's share of a streamed request, as the reference benchmark
// does: 50 chunks of 128 bytes and a usage chunk, relayed from a stub proxy to an HTTP app.
func BenchmarkStream(b *testing.B) {
	chunk := []byte(`{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"` +
		strings.Repeat("x", 128-76) + `"}}]}`)
	stub := newStub(b, func(_ *stubProxy, s *transport.Stream, req *wire.Request) {
		sendHead(s, req)
		for range 50 {
			_ = s.SendFrame(wire.TypeChunk, chunk)
		}
		_ = s.SendFrame(wire.TypeUsageChunk, []byte(chunkUsage))
		sendDone(s, 1)
	})
	h := startClient(b, []*stubProxy{stub})
	h.waitConnected(b, 1)
	b.SetBytes(50 * int64(len(chunk)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := h.http.Post(h.url+"/v1/chat/completions", "application/json", strings.NewReader(chatBody))
			if err != nil {
				b.Error(err)
				return
			}
			body, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || !bytes.HasSuffix(body, []byte("data: [DONE]\n\n")) {
				b.Errorf("status %d, err %v", resp.StatusCode, err)
				return
			}
		}
	})
}
