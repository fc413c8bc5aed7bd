package proxy

import (
	"crypto/ed25519"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/seal"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// answerSigned answers with a head, one chunk and a Done whose plain usage says plain and whose
// usage record (for request id and model, signed with key, or with the worker's own key when key
// is nil) says signed.
func answerSigned(plain, signed settle.Usage, id, model string, key ed25519.PrivateKey) workerAct {
	return func(c *transport.Conn, s *transport.Stream, _ *wire.Request) {
		if key == nil {
			key = c.LocalCertificate().PrivateKey.(ed25519.PrivateKey)
		}
		r := seal.UsageRecord{RequestID: id, Model: model, Usage: signed}
		rec := []byte{1}
		if r.Sign(key) == nil {
			rec, _ = r.Marshal()
		}
		_ = s.Send(&wire.ResponseHead{HttpStatus: 200})
		_ = s.SendFrame(wire.TypeChunk, []byte(`{"x":1}`))
		_ = s.Send(&wire.Done{Usage: wire.EncodeUsage(plain), UsageRecord: rec})
		_ = s.CloseSend()
	}
}

// unsigned answers with a head, one chunk and a Done with plain usage and no record.
func unsigned(plain settle.Usage) workerAct {
	return func(_ *transport.Conn, s *transport.Stream, _ *wire.Request) {
		_ = s.Send(&wire.ResponseHead{HttpStatus: 200})
		_ = s.SendFrame(wire.TypeChunk, []byte(`{"x":1}`))
		_ = s.Send(&wire.Done{Usage: wire.EncodeUsage(plain)})
		_ = s.CloseSend()
	}
}

// TestChargedBySignedUsage: the proxy charges and credits by the worker's signed usage record,
// not by the plain usage beside it; a record it cannot verify (another key, another request,
// another model) charges the reservation: money fails closed.
func TestChargedBySignedUsage(t *testing.T) {
	body := `{"model":"m","max_tokens":200,` + chatMsgs + `}`
	floor := settle.Usage{PromptTokens: uint64(len(body)), CompletionTokens: 200}
	plain := settle.Usage{PromptTokens: 1, CompletionTokens: 1}
	signed := settle.Usage{PromptTokens: 20, CompletionTokens: 30}
	_, other, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	testCases := map[string]struct {
		act      workerAct
		wantFull bool
	}{
		"signed record":              {act: answerSigned(plain, signed, "1", "m", nil)},
		"bad signature":              {act: answerSigned(plain, signed, "1", "m", other), wantFull: true},
		"record for another request": {act: answerSigned(plain, signed, "2", "m", nil), wantFull: true},
		"record for another model":   {act: answerSigned(plain, signed, "1", "n", nil), wantFull: true},
		"no record":                  {act: unsigned(plain), wantFull: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			_, a, charged := paidRequest(t, body, tc.act)
			assert.Equal(charged, a.done.GetTotalCost())
			if tc.wantFull {
				assert.GreaterOrEqual(charged, cost(t, floor), "the reservation is charged")
				return
			}
			assert.Equal(cost(t, signed), charged, "charged by the signed record")
			rec, err := seal.ParseUsageRecord(a.done.GetUsageRecord())
			require.NoError(err)
			assert.Equal(signed, rec.Usage, "the client gets the worker's record")
		})
	}
}

// TestHeadWithoutContentFree: a worker that sends the answer's head and fails before its first
// chunk delivered nothing, and nothing is charged (the head may arrive ahead of the reset that
// follows it, so this happens in practice).
func TestHeadWithoutContentFree(t *testing.T) {
	pp := startPayingProxy(t)
	stubWorker(t, pp.addr, 1000, 8, func(_ *transport.Conn, s *transport.Stream, _ *wire.Request) {
		_ = s.Send(&wire.ResponseHead{HttpStatus: 200})
		_ = s.CloseSend() // ends the answer before any chunk, and without Done
	})
	c, acct := clientConn(t, pp.addr)
	require.NoError(t, pp.ledger.Deposit(acct, 1<<50, 0))
	a, err := send(c, bounded(&wire.Request{Id: "1", Kind: wire.Kind_KIND_CHAT, Model: "m", Stream: true,
		Body: []byte(`{"model":"m","max_tokens":5,` + chatMsgs + `}`)}))
	require.NoError(t, err)
	require.NotNil(t, a.err, "the client is told the answer was cut off")
	assert.Zero(t, settled(t, pp, acct))
}
