package worker

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/gpu/scripted"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/seal"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// sealTo seals body for request id to the worker at the other end of c, as a client that saw the
// worker's evidence does.
func sealTo(t *testing.T, c *transport.Conn, id string, body []byte) ([]byte, *seal.AnswerOpener) {
	t.Helper()
	ev, err := c.PeerEvidence()
	require.NoError(t, err)
	pub, err := seal.ParsePublicKey(c.Peer().Claims.HPKEKey)
	require.NoError(t, err)
	sealed, opener, err := seal.SealRequest(pub, seal.Binding{RequestID: id, Model: "test-model", QuoteHash: seal.HashQuote(ev.Quote)}, body)
	require.NoError(t, err)
	return sealed, opener
}

func TestServeSealed(t *testing.T) {
	testCases := map[string]struct {
		tamper  func(sealed []byte)
		id      string
		wantErr string
	}{
		"opens and seals the answer": {id: "r"},
		"flipped byte":               {id: "r", tamper: func(b []byte) { b[len(b)-3] ^= 1 }, wantErr: seal.ErrTampered.Error()},
		"other request id":           {id: "other", wantErr: seal.ErrBinding.Error()},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			eng := scripted.New(scripted.Config{Chunks: 3, Model: "test-model"})
			t.Cleanup(eng.Close)
			e, err := gpu.NewHTTP(gpu.HTTPConfig{BaseURL: eng.URL})
			require.NoError(err)
			c := startWorker(t, newStubProxy(t), e, 4)
			expectRegister(t, c, 4)

			sealed, opener := sealTo(t, c, tc.id, []byte(chat))
			if tc.tamper != nil {
				tc.tamper(sealed)
			}
			s, err := c.OpenStream(context.Background())
			require.NoError(err)
			require.NoError(s.Send(&wire.Request{Id: "r", Kind: wire.Kind_KIND_CHAT, Model: "test-model", Stream: true, SealedBody: sealed}))
			_ = s.CloseSend() // as a proxy does: the worker may have stopped reading once it had the request
			var answer []byte
			var done *wire.Done
			for {
				typ, payload, err := s.RecvFrame()
				if errors.Is(err, io.EOF) {
					break
				}
				require.NoError(err)
				switch typ {
				case wire.TypeChunk, wire.TypeSealedEnd:
					assert.NotContains(string(payload), "data", "chunks travel sealed")
					p, err := opener.Open(payload)
					require.NoError(err)
					answer = append(answer, p...)
				default:
					m, err := wire.Unmarshal(typ, payload)
					require.NoError(err)
					switch m := m.(type) {
					case *wire.Error:
						require.NotEmpty(tc.wantErr, "unexpected refusal: %s", m.GetMessage())
						assert.Equal(uint32(wire.CodeBadRequest), m.GetCode())
						assert.Contains(m.GetMessage(), tc.wantErr)
						assert.Empty(eng.Requests(), "a request that does not open never reaches the engine")
						return
					case *wire.Done:
						done = m
					}
				}
			}
			require.Empty(tc.wantErr)
			require.NoError(opener.Done())
			assert.Contains(string(answer), "chat.completion.chunk")
			rec, err := seal.ParseReceipt(opener.Trailer())
			require.NoError(err)
			require.NoError(rec.Verify(c.Peer().Claims.PublicKey))
			require.NoError(rec.CheckHashes(seal.Digest(sha(chat)), opener.AnswerHash()))
			require.NotNil(done)
			ur, err := seal.ParseUsageRecord(done.GetUsageRecord())
			require.NoError(err)
			require.NoError(ur.Verify(c.Peer().Claims.PublicKey, "r"))
			assert.Equal(wire.DecodeUsage(done.GetUsage()), ur.Usage)
			assert.Equal(ur.Usage, rec.Usage)
		})
	}
}

// TestPlainUsageSigned: a plain request's Done carries a usage record signed with the key of the
// worker's certificate on that connection.
func TestPlainUsageSigned(t *testing.T) {
	eng := scripted.New(scripted.Config{Chunks: 2, Model: "test-model"})
	t.Cleanup(eng.Close)
	e, err := gpu.NewHTTP(gpu.HTTPConfig{BaseURL: eng.URL})
	require.NoError(t, err)
	c := startWorker(t, newStubProxy(t), e, 4)
	expectRegister(t, c, 4)
	_, read := request(t, c, chat, true)
	r := read()
	require.NotNil(t, r.done)
	ur, err := seal.ParseUsageRecord(r.done.GetUsageRecord())
	require.NoError(t, err)
	require.NoError(t, ur.Verify(c.Peer().Claims.PublicKey, "r"))
	assert.Equal(t, uint64(2), ur.Usage.CompletionTokens)
}

func sha(s string) [32]byte { return sha256.Sum256([]byte(s)) }
