package seal

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cocoon-network/cocoon/settle"
)

// Receipt is a worker's signed statement of what it answered: which request body it opened,
// which answer it sealed, with which model, under which attestation, for what usage, when. A
// client checks it against the plaintext it sent and received (CheckAnswer) and can keep it, as
// JSON, to show later, offline, what the attested worker answered.
//
// A receipt names digests of the plaintext, and a short answer ("Yes.") can be guessed from its
// digest: it travels to the client sealed, in the end marker's trailer (AnswerSealer.End), never in
// the clear through the proxy.
type Receipt struct {
	RequestID     string
	Model         string
	WeightsDigest string
	QuoteHash     Digest // HashQuote of the worker's quote, whose claims name WorkerKey
	BodyHash      Digest // SHA-256 of the request body the worker opened
	AnswerHash    Digest // SHA-256 of the answer, all chunks in order (AnswerSealer.AnswerHash)
	RecordHash    Digest // SHA-256 of the signed usage record the proxy charges by (its wire form)
	Usage         settle.Usage
	Time          time.Time // when the worker signed; kept to the millisecond
	WorkerKey     ed25519.PublicKey
	Signature     []byte
}

// fields is the canonical encoding of r without its signature:
//
//	version(1) ‖ request id ‖ model ‖ weights digest (each 2-byte length ‖ bytes)
//	‖ quote hash ‖ body hash ‖ answer hash ‖ record hash (32 bytes each)
//	‖ prompt ‖ cached ‖ completion ‖ reasoning tokens ‖ time, Unix milliseconds (8 bytes each)
//	‖ worker key (32 bytes)
func (r *Receipt) fields() ([]byte, error) {
	for _, f := range []struct{ name, v string }{{"request id", r.RequestID}, {"model", r.Model}, {"weights digest", r.WeightsDigest}} {
		if err := checkField(f.name, f.v); err != nil {
			return nil, err
		}
	}
	ms := r.Time.UnixMilli()
	if ms < 0 {
		return nil, fmt.Errorf("time %v before 1970: %w", r.Time, ErrMalformed)
	}
	if len(r.WorkerKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("worker key of %d bytes: %w", len(r.WorkerKey), ErrMalformed)
	}
	e := encoder{b: make([]byte, 0, 1+6+len(r.RequestID)+len(r.Model)+len(r.WeightsDigest)+4*32+5*8+32+ed25519.SignatureSize)}
	e.u8(Version)
	e.str(r.RequestID)
	e.str(r.Model)
	e.str(r.WeightsDigest)
	e.digest(r.QuoteHash)
	e.digest(r.BodyHash)
	e.digest(r.AnswerHash)
	e.digest(r.RecordHash)
	putUsage(&e, r.Usage)
	e.u64(uint64(ms))
	e.raw(r.WorkerKey)
	return e.b, nil
}

// Sign signs r with the worker's attested key: it sets WorkerKey to priv's public key, rounds
// Time down to the millisecond, in UTC, and sets Signature.
func (r *Receipt) Sign(priv ed25519.PrivateKey) error {
	if len(priv) != ed25519.PrivateKeySize {
		return fmt.Errorf("sign receipt: private key of %d bytes", len(priv))
	}
	r.WorkerKey = priv.Public().(ed25519.PublicKey)
	r.Time = time.UnixMilli(r.Time.UnixMilli()).UTC()
	f, err := r.fields()
	if err != nil {
		return fmt.Errorf("sign receipt: %w", err)
	}
	r.Signature = sign(priv, receiptLabel, f)
	return nil
}

// Verify checks that r is signed by pub, the worker's attested key (from the claims its quote
// names). Refusal: ErrSignature, also when r names another key than pub.
func (r *Receipt) Verify(pub ed25519.PublicKey) error {
	if !bytes.Equal(pub, r.WorkerKey) {
		return fmt.Errorf("verify receipt of request %q: it names worker key %x, expected %x: %w", r.RequestID, []byte(r.WorkerKey), []byte(pub), ErrSignature)
	}
	f, err := r.fields()
	if err != nil {
		return fmt.Errorf("verify receipt: %w", err)
	}
	if !verify(pub, receiptLabel, f, r.Signature) {
		return fmt.Errorf("verify receipt of request %q: %w", r.RequestID, ErrSignature)
	}
	return nil
}

// CheckAnswer checks that r names body, the request body as the client sealed it, and answer,
// all answer chunks in order as the client opened them. Refusal: ErrAnswerMismatch. It does not
// check the signature: call Verify too.
func (r *Receipt) CheckAnswer(body, answer []byte) error {
	return r.CheckHashes(sha256.Sum256(body), sha256.Sum256(answer))
}

// CheckHashes is CheckAnswer for a client that kept digests, not plaintext (AnswerOpener.AnswerHash).
func (r *Receipt) CheckHashes(body, answer Digest) error {
	switch {
	case body != r.BodyHash:
		return fmt.Errorf("check receipt of request %q: request body hash %s, receipt names %s: %w", r.RequestID, body, r.BodyHash, ErrAnswerMismatch)
	case answer != r.AnswerHash:
		return fmt.Errorf("check receipt of request %q: answer hash %s, receipt names %s: %w", r.RequestID, answer, r.AnswerHash, ErrAnswerMismatch)
	}
	return nil
}

// Marshal returns the wire form of a signed receipt: its fields' encoding, then the 64-byte
// signature.
func (r *Receipt) Marshal() ([]byte, error) {
	return marshalSigned("receipt", r.fields, r.Signature)
}

// ParseReceipt decodes what Marshal wrote. The receipt is not verified: call Verify.
func ParseReceipt(b []byte) (*Receipt, error) {
	d, err := recordDecoder("receipt", b)
	if err != nil {
		return nil, err
	}
	r := &Receipt{
		RequestID:     d.str("request id"),
		Model:         d.str("model"),
		WeightsDigest: d.str("weights digest"),
		QuoteHash:     d.digest("quote hash"),
		BodyHash:      d.digest("body hash"),
		AnswerHash:    d.digest("answer hash"),
		RecordHash:    d.digest("record hash"),
		Usage:         getUsage(d),
	}
	ms := d.u64("time")
	r.WorkerKey = d.raw(ed25519.PublicKeySize, "worker key")
	r.Signature = d.raw(ed25519.SignatureSize, "signature")
	if err := d.end("receipt"); err != nil {
		return nil, fmt.Errorf("parse receipt: %w", err)
	}
	if ms > 1<<62 {
		return nil, fmt.Errorf("parse receipt: time %d ms out of range: %w", ms, ErrMalformed)
	}
	r.Time = time.UnixMilli(int64(ms)).UTC()
	return r, nil
}

// receiptJSON is the file form of a receipt (what `cocoon receipt verify` reads): digests in hex,
// keys and signature in base64, usage in the OpenAI usage object's names.
type receiptJSON struct {
	Version       int       `json:"version"`
	RequestID     string    `json:"request_id"`
	Model         string    `json:"model"`
	WeightsDigest string    `json:"weights_digest"`
	QuoteHash     Digest    `json:"quote_hash"`
	BodyHash      Digest    `json:"body_hash"`
	AnswerHash    Digest    `json:"answer_hash"`
	RecordHash    Digest    `json:"record_hash"`
	Usage         usageJSON `json:"usage"`
	Time          time.Time `json:"time"`
	WorkerKey     []byte    `json:"worker_key"`
	Signature     []byte    `json:"signature"`
}

type usageJSON struct {
	PromptTokens     uint64 `json:"prompt_tokens"`
	CachedTokens     uint64 `json:"cached_tokens"`
	CompletionTokens uint64 `json:"completion_tokens"`
	ReasoningTokens  uint64 `json:"reasoning_tokens"`
}

// MarshalJSON writes r's file form.
func (r *Receipt) MarshalJSON() ([]byte, error) {
	return json.Marshal(receiptJSON{
		Version: Version, RequestID: r.RequestID, Model: r.Model, WeightsDigest: r.WeightsDigest,
		QuoteHash: r.QuoteHash, BodyHash: r.BodyHash, AnswerHash: r.AnswerHash, RecordHash: r.RecordHash,
		Usage: usageJSON(r.Usage), Time: r.Time, WorkerKey: r.WorkerKey, Signature: r.Signature,
	})
}

// MaxReceiptFileSize bounds a receipt's file form.
const MaxReceiptFileSize = 4 * MaxRecordSize

// ParseReceiptJSON reads a receipt's file form (what MarshalJSON wrote), such as a file that
// `cocoon receipt verify` is given. The receipt is not verified: call Verify.
func ParseReceiptJSON(b []byte) (*Receipt, error) {
	if len(b) > MaxReceiptFileSize {
		return nil, fmt.Errorf("parse receipt file: %d bytes, at most %d: %w", len(b), MaxReceiptFileSize, ErrTooLarge)
	}
	r := &Receipt{}
	if err := json.Unmarshal(b, r); err != nil {
		if errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge) {
			return nil, err
		}
		return nil, fmt.Errorf("parse receipt file: %v: %w", err, ErrMalformed)
	}
	return r, nil
}

// UnmarshalJSON reads r's file form, refusing another version and fields beyond their bounds. The
// receipt is not verified: call Verify.
func (r *Receipt) UnmarshalJSON(b []byte) error {
	if len(b) > MaxReceiptFileSize {
		return fmt.Errorf("parse receipt file: %d bytes, at most %d: %w", len(b), MaxReceiptFileSize, ErrTooLarge)
	}
	var j receiptJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("parse receipt file: %v: %w", err, ErrMalformed)
	}
	if j.Version != Version {
		return fmt.Errorf("parse receipt file: version %d, want %d: %w", j.Version, Version, ErrMalformed)
	}
	out := Receipt{
		RequestID: j.RequestID, Model: j.Model, WeightsDigest: j.WeightsDigest,
		QuoteHash: j.QuoteHash, BodyHash: j.BodyHash, AnswerHash: j.AnswerHash, RecordHash: j.RecordHash,
		Usage: settle.Usage(j.Usage), Time: j.Time, WorkerKey: j.WorkerKey, Signature: j.Signature,
	}
	if _, err := out.fields(); err != nil {
		return fmt.Errorf("parse receipt file: %w", err)
	}
	if len(out.Signature) != ed25519.SignatureSize {
		return fmt.Errorf("parse receipt file: signature of %d bytes: %w", len(out.Signature), ErrMalformed)
	}
	*r = out
	return nil
}

// CheckRecord parses rec, the usage record the proxy charged r's request by, and checks that it
// is the one r names, for the same request, naming the same model and usage. The record's own
// signature is not checked again: r's, which the caller verifies (Verify), covers its digest, and
// the attested worker signed both. Refusals: ErrMalformed, ErrSignature (another record than the
// one r names), ErrOtherRequest, ErrAnswerMismatch.
func (r *Receipt) CheckRecord(rec []byte) (*UsageRecord, error) {
	u, err := ParseUsageRecord(rec)
	if err != nil {
		return nil, err
	}
	if u.RequestID != r.RequestID {
		return nil, fmt.Errorf("usage record for request %q, its receipt for %q: %w", u.RequestID, r.RequestID, ErrOtherRequest)
	}
	if Digest(sha256.Sum256(rec)) != r.RecordHash {
		return nil, fmt.Errorf("usage record of request %q is not the one its receipt names: %w", r.RequestID, ErrSignature)
	}
	if u.Usage != r.Usage || u.Model != r.Model {
		return nil, fmt.Errorf("usage record of request %q and its receipt disagree: %w", r.RequestID, ErrAnswerMismatch)
	}
	return u, nil
}
