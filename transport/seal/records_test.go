package seal

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/settle"
)

func newSigner(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	return pub, priv
}

var testUsage = settle.Usage{PromptTokens: 1200, CachedTokens: 1024, CompletionTokens: 300, ReasoningTokens: 120}

func signedUsage(t testing.TB, priv ed25519.PrivateKey) *UsageRecord {
	t.Helper()
	r := &UsageRecord{RequestID: "req-1", Model: "qwen3-8b", WeightsDigest: "sha256:abcd", Usage: testUsage}
	require.NoError(t, r.Sign(priv))
	return r
}

func TestUsageRecord(t *testing.T) {
	pub, priv := newSigner(t)
	otherPub, _ := newSigner(t)
	testCases := map[string]struct {
		edit      func(*UsageRecord)
		pub       ed25519.PublicKey
		requestID string
		wantErr   error
	}{
		"valid":                   {},
		"another request":         {requestID: "req-2", wantErr: ErrOtherRequest},
		"another signer":          {pub: otherPub, wantErr: ErrSignature},
		"no key":                  {pub: ed25519.PublicKey{}, wantErr: ErrSignature},
		"flipped signature":       {edit: func(r *UsageRecord) { r.Signature = flip(r.Signature, 3) }, wantErr: ErrSignature},
		"no signature":            {edit: func(r *UsageRecord) { r.Signature = nil }, wantErr: ErrSignature},
		"more completion tokens":  {edit: func(r *UsageRecord) { r.Usage.CompletionTokens++ }, wantErr: ErrSignature},
		"another model":           {edit: func(r *UsageRecord) { r.Model = "llama" }, wantErr: ErrSignature},
		"another weights digest":  {edit: func(r *UsageRecord) { r.WeightsDigest = "sha256:abce" }, wantErr: ErrSignature},
		"request id renamed, too": {edit: func(r *UsageRecord) { r.RequestID = "req-2" }, requestID: "req-2", wantErr: ErrSignature},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			r := signedUsage(t, priv)
			// Through the wire form, as the proxy receives it.
			b, err := r.Marshal()
			require.NoError(err)
			r, err = ParseUsageRecord(b)
			require.NoError(err)
			assert.Equal(testUsage, r.Usage)
			if tc.edit != nil {
				tc.edit(r)
			}
			key, id := pub, "req-1"
			if tc.pub != nil {
				key = tc.pub
			}
			if tc.requestID != "" {
				id = tc.requestID
			}
			err = r.Verify(key, id)
			if tc.wantErr == nil {
				assert.NoError(err)
			} else {
				assert.ErrorIs(err, tc.wantErr)
			}
		})
	}
}

func TestUsageRecordEncoding(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	_, priv := newSigner(t)
	r := signedUsage(t, priv)
	b1, err := r.Marshal()
	require.NoError(err)
	b2, err := signedUsage(t, priv).Marshal()
	require.NoError(err)
	assert.Equal(b1, b2, "deterministic")

	_, err = (&UsageRecord{}).Marshal()
	assert.ErrorIs(err, ErrSignature, "unsigned")
	assert.ErrorIs((&UsageRecord{Model: string(make([]byte, MaxFieldSize+1))}).Sign(priv), ErrTooLarge)
}

func TestParseUsageRecordRefuses(t *testing.T) {
	_, priv := newSigner(t)
	b1, err := signedUsage(t, priv).Marshal()
	require.NoError(t, err)
	testCases := map[string]struct {
		b       []byte
		wantErr error
	}{
		"empty":          {b: nil, wantErr: ErrMalformed},
		"other version":  {b: flip(b1, 0), wantErr: ErrMalformed},
		"cut":            {b: b1[:len(b1)-1], wantErr: ErrMalformed},
		"trailing":       {b: append(bytes.Clone(b1), 0), wantErr: ErrMalformed},
		"long length":    {b: append([]byte{Version, 0xff, 0xff}, make([]byte, 100)...), wantErr: ErrMalformed},
		"too large":      {b: make([]byte, MaxRecordSize+1), wantErr: ErrTooLarge},
		"receipt bytes?": {b: b1[:10], wantErr: ErrMalformed},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseUsageRecord(tc.b)
			require.ErrorIs(t, err, tc.wantErr)
		})
	}
}

func testReceipt(t testing.TB, priv ed25519.PrivateKey, body, answer []byte) *Receipt {
	t.Helper()
	r := &Receipt{
		RequestID: "req-1", Model: "qwen3-8b", WeightsDigest: "sha256:abcd",
		QuoteHash: HashQuote([]byte("quote")), BodyHash: sha256.Sum256(body), AnswerHash: sha256.Sum256(answer),
		Usage: testUsage, Time: time.Date(2026, 5, 1, 12, 0, 0, 123456789, time.FixedZone("x", 3600)),
	}
	require.NoError(t, r.Sign(priv))
	return r
}

func TestReceipt(t *testing.T) {
	pub, priv := newSigner(t)
	otherPub, _ := newSigner(t)
	body, answer := []byte("the prompt"), []byte("data: a\ndata: b\n")
	testCases := map[string]struct {
		edit      func(*Receipt)
		pub       ed25519.PublicKey
		body      []byte
		answer    []byte
		verifyErr error
		checkErr  error
	}{
		"valid":                 {},
		"another signer":        {pub: otherPub, verifyErr: ErrSignature},
		"key swapped, too":      {edit: func(r *Receipt) { r.WorkerKey = otherPub }, pub: otherPub, verifyErr: ErrSignature},
		"flipped signature":     {edit: func(r *Receipt) { r.Signature = flip(r.Signature, 0) }, verifyErr: ErrSignature},
		"another answer hash":   {edit: func(r *Receipt) { r.AnswerHash[0] ^= 1 }, verifyErr: ErrSignature, checkErr: ErrAnswerMismatch},
		"another quote":         {edit: func(r *Receipt) { r.QuoteHash[0] ^= 1 }, verifyErr: ErrSignature},
		"another time":          {edit: func(r *Receipt) { r.Time = r.Time.Add(time.Millisecond) }, verifyErr: ErrSignature},
		"fewer tokens":          {edit: func(r *Receipt) { r.Usage.PromptTokens-- }, verifyErr: ErrSignature},
		"another body":          {body: []byte("the prompt!"), checkErr: ErrAnswerMismatch},
		"another answer":        {answer: []byte("data: a\n"), checkErr: ErrAnswerMismatch},
		"chunks reordered":      {answer: []byte("data: b\ndata: a\n"), checkErr: ErrAnswerMismatch},
		"answer and body empty": {body: []byte{}, answer: []byte{}, checkErr: ErrAnswerMismatch},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			r := testReceipt(t, priv, body, answer)
			if tc.edit != nil {
				tc.edit(r)
			}
			key, b, a := pub, body, answer
			if tc.pub != nil {
				key = tc.pub
			}
			if tc.body != nil {
				b = tc.body
			}
			if tc.answer != nil {
				a = tc.answer
			}
			for form, got := range receiptForms(t, r) {
				if err := got.Verify(key); tc.verifyErr == nil {
					assert.NoError(err, form)
				} else {
					assert.ErrorIs(err, tc.verifyErr, form)
				}
				if err := got.CheckAnswer(b, a); tc.checkErr == nil {
					assert.NoError(err, form)
				} else {
					assert.ErrorIs(err, tc.checkErr, form)
				}
			}
		})
	}
}

// receiptForms returns r as it is and after a round trip through each encoding.
func receiptForms(t testing.TB, r *Receipt) map[string]*Receipt {
	t.Helper()
	b, err := r.Marshal()
	require.NoError(t, err)
	fromBinary, err := ParseReceipt(b)
	require.NoError(t, err)
	j, err := json.Marshal(r)
	require.NoError(t, err)
	fromJSON, err := ParseReceiptJSON(j)
	require.NoError(t, err)
	return map[string]*Receipt{"as signed": r, "binary": fromBinary, "json": fromJSON}
}

func TestReceiptEncoding(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	pub, priv := newSigner(t)
	r := testReceipt(t, priv, []byte("b"), []byte("a"))
	assert.Equal(time.UTC, r.Time.Location())
	assert.Equal(123000000, r.Time.Nanosecond(), "rounded to the millisecond")
	assert.Equal([]byte(pub), []byte(r.WorkerKey))

	b1, err := r.Marshal()
	require.NoError(err)
	b2, err := testReceipt(t, priv, []byte("b"), []byte("a")).Marshal()
	require.NoError(err)
	assert.Equal(b1, b2, "deterministic")
	for form, got := range receiptForms(t, r) {
		assert.Equal(r, got, form)
	}

	j, err := json.Marshal(r)
	require.NoError(err)
	var fields map[string]any
	require.NoError(json.Unmarshal(j, &fields))
	assert.Equal(r.AnswerHash.String(), fields["answer_hash"], "digests in hex")
	assert.Contains(fields, "usage")

	_, err = (&Receipt{}).Marshal()
	assert.ErrorIs(err, ErrSignature)
	assert.ErrorIs((&Receipt{Time: time.Unix(-1, 0)}).Sign(priv), ErrMalformed)
}

func TestReceiptFileRefuses(t *testing.T) {
	_, priv := newSigner(t)
	j, err := json.Marshal(testReceipt(t, priv, []byte("b"), []byte("a")))
	require.NoError(t, err)
	withJSON := func(key string, v any) []byte {
		m := map[string]any{}
		require.NoError(t, json.Unmarshal(j, &m))
		m[key] = v
		out, err := json.Marshal(m)
		require.NoError(t, err)
		return out
	}
	jsonCases := map[string]struct {
		b       []byte
		wantErr error
	}{
		"not json":         {b: []byte("{"), wantErr: ErrMalformed},
		"other version":    {b: withJSON("version", 1), wantErr: ErrMalformed},
		"short digest":     {b: withJSON("body_hash", "abcd"), wantErr: ErrMalformed},
		"bad hex":          {b: withJSON("body_hash", string(bytes.Repeat([]byte("zz"), 32))), wantErr: ErrMalformed},
		"short worker key": {b: withJSON("worker_key", "AAAA"), wantErr: ErrMalformed},
		"short signature":  {b: withJSON("signature", "AAAA"), wantErr: ErrMalformed},
		"long model":       {b: withJSON("model", string(make([]byte, MaxFieldSize+1))), wantErr: ErrTooLarge},
		"file too large":   {b: make([]byte, 4*MaxRecordSize+1), wantErr: ErrTooLarge},
	}
	for name, tc := range jsonCases {
		t.Run("json "+name, func(t *testing.T) {
			got, err := ParseReceiptJSON(tc.b)
			require.ErrorIs(t, err, tc.wantErr)
			require.Nil(t, got)
		})
	}
}

func TestParseReceiptRefuses(t *testing.T) {
	_, priv := newSigner(t)
	b1, err := testReceipt(t, priv, []byte("b"), []byte("a")).Marshal()
	require.NoError(t, err)
	binCases := map[string]struct {
		b       []byte
		wantErr error
	}{
		"empty":         {b: nil, wantErr: ErrMalformed},
		"other version": {b: flip(b1, 0), wantErr: ErrMalformed},
		"cut":           {b: b1[:len(b1)-1], wantErr: ErrMalformed},
		"trailing":      {b: append(bytes.Clone(b1), 0), wantErr: ErrMalformed},
		"too large":     {b: make([]byte, MaxRecordSize+1), wantErr: ErrTooLarge},
	}
	for name, tc := range binCases {
		t.Run("binary "+name, func(t *testing.T) {
			_, err := ParseReceipt(tc.b)
			require.ErrorIs(t, err, tc.wantErr)
		})
	}
}

// TestWholeExchange: the flow of doc.go, with the receipt sealed in the end marker.
func TestWholeExchange(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	k := newKey(t)
	signPub, signPriv := newSigner(t)
	b := testBinding()
	body := []byte(`{"messages":[{"role":"user","content":"hello"}],"stream":true}`)

	sealed, opener, err := SealRequest(k.PublicKey(), b, body)
	require.NoError(err)

	// Worker.
	gotBody, sealer, err := OpenRequest(k, b, sealed)
	require.NoError(err)
	var frames [][]byte
	for _, c := range []string{"data: {\"a\"}", "data: {\"b\"}", "data: [DONE]"} {
		f, err := sealer.Seal([]byte(c))
		require.NoError(err)
		frames = append(frames, f)
	}
	usage := &UsageRecord{RequestID: b.RequestID, Model: b.Model, WeightsDigest: "sha256:w", Usage: testUsage}
	require.NoError(usage.Sign(signPriv))
	usageWire, err := usage.Marshal()
	require.NoError(err)
	receipt := &Receipt{
		RequestID: b.RequestID, Model: b.Model, WeightsDigest: "sha256:w", QuoteHash: b.QuoteHash,
		BodyHash: sha256.Sum256(gotBody), AnswerHash: sealer.AnswerHash(), Usage: testUsage, Time: time.Now(),
	}
	require.NoError(receipt.Sign(signPriv))
	receiptWire, err := receipt.Marshal()
	require.NoError(err)
	end, err := sealer.End(receiptWire)
	require.NoError(err)
	frames = append(frames, end)

	// Proxy: meters by the usage record, sees no plaintext.
	u, err := ParseUsageRecord(usageWire)
	require.NoError(err)
	require.NoError(u.Verify(signPub, b.RequestID))
	for _, f := range append([][]byte{sealed}, frames...) {
		assert.NotContains(string(f), "hello")
		assert.NotContains(string(f), "DONE")
	}

	// Client.
	var answer []byte
	for _, f := range frames {
		p, err := opener.Open(f)
		require.NoError(err)
		answer = append(answer, p...)
	}
	require.NoError(opener.Done())
	got, err := ParseReceipt(opener.Trailer())
	require.NoError(err)
	require.NoError(got.Verify(signPub))
	require.NoError(got.CheckAnswer(body, answer))
	require.NoError(got.CheckHashes(sha256.Sum256(body), opener.AnswerHash()))
	assert.Equal(testUsage, got.Usage)
}

// TestReceiptCheckRecord: the usage record must be the one the receipt names, for its request,
// and say what the receipt says.
func TestReceiptCheckRecord(t *testing.T) {
	pub, priv := newSigner(t)
	_, other := newSigner(t)
	record := func(t *testing.T, key ed25519.PrivateKey, edit func(*UsageRecord)) []byte {
		u := &UsageRecord{RequestID: "req-1", Model: "qwen3-8b", Usage: testUsage}
		if edit != nil {
			edit(u)
		}
		require.NoError(t, u.Sign(key))
		b, err := u.Marshal()
		require.NoError(t, err)
		return b
	}
	genuine := record(t, priv, nil)
	testCases := map[string]struct {
		rec   []byte
		named []byte // the record the receipt names; nil: rec
		want  error
	}{
		"the record the receipt names": {rec: genuine},
		"same fields, another signer":  {rec: record(t, other, nil), named: genuine, want: ErrSignature},
		"another usage than named": {
			rec: record(t, priv, func(u *UsageRecord) { u.Usage.CompletionTokens++ }), named: genuine, want: ErrSignature,
		},
		"another request": {rec: record(t, priv, func(u *UsageRecord) { u.RequestID = "req-2" }), want: ErrOtherRequest},
		"named, but its usage disagrees": {
			rec: record(t, priv, func(u *UsageRecord) { u.Usage.CompletionTokens++ }), want: ErrAnswerMismatch,
		},
		"named, but its model disagrees": {rec: record(t, priv, func(u *UsageRecord) { u.Model = "other" }), want: ErrAnswerMismatch},
		"not a record":                   {rec: []byte("x"), want: ErrMalformed},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			named := tc.named
			if named == nil {
				named = tc.rec
			}
			r := &Receipt{RequestID: "req-1", Model: "qwen3-8b", Usage: testUsage, WorkerKey: pub, RecordHash: sha256.Sum256(named)}
			got, err := r.CheckRecord(tc.rec)
			if tc.want != nil {
				assert.ErrorIs(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, testUsage, got.Usage)
		})
	}
}
