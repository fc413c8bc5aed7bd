package receiptcmd

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
	"github.com/cocoon-network/cocoon/attest/ratls"
	"github.com/cocoon-network/cocoon/roles/client"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/seal"
)

// receiptFile writes the receipt document of a plain answer signed by an attested worker, with
// the request and answer files beside it.
func receiptFile(t *testing.T, request, answer []byte) (doc, req, ans string) {
	t.Helper()
	id, err := transport.NewIdentity(transport.IdentityConfig{Claims: attesttest.Claims(attest.RoleWorker),
		Quoter: attesttest.Quoter(t, attesttest.Measurements(attest.RoleWorker))})
	require.NoError(t, err)
	cert := id.Certificate()
	rc, err := ratls.ParseCertificate(cert.Certificate[:1], time.Now(), 0)
	require.NoError(t, err)
	key := cert.PrivateKey.(ed25519.PrivateKey)
	u := settle.Usage{PromptTokens: 7, CompletionTokens: 2}
	rec := seal.UsageRecord{RequestID: "req_1", Model: "m", Usage: u}
	require.NoError(t, rec.Sign(key))
	rb, err := rec.Marshal()
	require.NoError(t, err)
	r := &seal.Receipt{RequestID: "req_1", Model: "m", WeightsDigest: "sha256:00", QuoteHash: seal.HashQuote(rc.Quote),
		BodyHash: sha256.Sum256(request), AnswerHash: sha256.Sum256(answer), RecordHash: sha256.Sum256(rb), Usage: u, Time: time.Now(),
		WorkerKey: key.Public().(ed25519.PublicKey)}
	require.NoError(t, r.Sign(key))
	b, err := json.Marshal(client.Receipt{RequestID: "req_1", Model: "m", Receipt: r, UsageRecord: rb, WorkerCertificate: cert.Certificate[0]})
	require.NoError(t, err)
	dir := t.TempDir()
	doc, req, ans = filepath.Join(dir, "receipt.json"), filepath.Join(dir, "request.json"), filepath.Join(dir, "answer.json")
	require.NoError(t, os.WriteFile(doc, b, 0o600))
	require.NoError(t, os.WriteFile(req, request, 0o600))
	require.NoError(t, os.WriteFile(ans, answer, 0o600))
	return doc, req, ans
}

func TestVerify(t *testing.T) {
	request, answer := []byte(`{"model":"m","messages":[]}`), []byte(`{"choices":[{"message":{"content":"hi"}}]}`)
	doc, req, ans := receiptFile(t, request, answer)
	var out bytes.Buffer
	require.NoError(t, Verify(doc, req, ans, filepath.Join(t.TempDir(), "worker.der"), &out))
	assert.Contains(t, out.String(), "ok   answer is the one the worker sealed")
	assert.Contains(t, out.String(), "ok   request body is the one the receipt names")
	assert.Contains(t, out.String(), "cocoon attest verify")

	other := filepath.Join(t.TempDir(), "other.json")
	require.NoError(t, os.WriteFile(other, []byte(`{"choices":[{"message":{"content":"ho"}}]}`), 0o600))
	err := Verify(doc, req, other, "", &out)
	require.ErrorIs(t, err, seal.ErrAnswerMismatch, "an answer the worker did not seal is refused")
	assert.Contains(t, err.Error(), "answer hash")

	b, err := os.ReadFile(doc)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(doc, bytes.Replace(b, []byte(`"req_1"`), []byte(`"req_2"`), 1), 0o600))
	assert.Error(t, Verify(doc, "", "", "", &out), "a receipt file for another request is refused")

	assert.ErrorContains(t, Verify(filepath.Join(t.TempDir(), "none.json"), "", "", "", &out), "no such file")
}
