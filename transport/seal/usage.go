package seal

import (
	"crypto/ed25519"
	"fmt"

	"github.com/cocoon-network/cocoon/settle"
)

const (
	usageLabel   = "cocoon/seal/v2 usage record\x00"
	receiptLabel = "cocoon/seal/v2 receipt\x00"
	// MaxRecordSize bounds an encoded usage record or receipt: three fields of MaxFieldSize and
	// fixed-size values.
	MaxRecordSize = 4 << 10
)

// UsageRecord is what a worker metered for one request, signed with its attested key (the
// Ed25519 key of its RA-TLS certificate), so that a proxy that sees only ciphertext can charge
// for it, and keep proof of what the worker reported.
type UsageRecord struct {
	RequestID     string
	Model         string
	WeightsDigest string // as in the worker's claims, e.g. "sha256:…"
	Usage         settle.Usage
	Signature     []byte // Ed25519 over the label and the encoding of the fields above
}

// fields is the canonical encoding of r without its signature:
//
//	version(1) ‖ request id ‖ model ‖ weights digest (each 2-byte length ‖ bytes)
//	‖ prompt ‖ cached ‖ completion ‖ reasoning tokens (each 8 bytes, big-endian)
func (r *UsageRecord) fields() ([]byte, error) {
	for _, f := range []struct{ name, v string }{{"request id", r.RequestID}, {"model", r.Model}, {"weights digest", r.WeightsDigest}} {
		if err := checkField(f.name, f.v); err != nil {
			return nil, err
		}
	}
	e := encoder{b: make([]byte, 0, 1+6+len(r.RequestID)+len(r.Model)+len(r.WeightsDigest)+32+ed25519.SignatureSize)}
	e.u8(Version)
	e.str(r.RequestID)
	e.str(r.Model)
	e.str(r.WeightsDigest)
	putUsage(&e, r.Usage)
	return e.b, nil
}

func putUsage(e *encoder, u settle.Usage) {
	e.u64(u.PromptTokens)
	e.u64(u.CachedTokens)
	e.u64(u.CompletionTokens)
	e.u64(u.ReasoningTokens)
}

func getUsage(d *decoder) settle.Usage {
	return settle.Usage{
		PromptTokens:     d.u64("prompt tokens"),
		CachedTokens:     d.u64("cached tokens"),
		CompletionTokens: d.u64("completion tokens"),
		ReasoningTokens:  d.u64("reasoning tokens"),
	}
}

// Sign signs r with the worker's attested key, setting r.Signature.
func (r *UsageRecord) Sign(priv ed25519.PrivateKey) error {
	if len(priv) != ed25519.PrivateKeySize {
		return fmt.Errorf("sign usage record: private key of %d bytes", len(priv))
	}
	f, err := r.fields()
	if err != nil {
		return fmt.Errorf("sign usage record: %w", err)
	}
	r.Signature = sign(priv, usageLabel, f)
	return nil
}

// Verify checks that r is signed by pub (the worker's attested key) and is for the request
// requestID. Refusals: ErrSignature, ErrOtherRequest (checked first: a record for another request
// is refused whoever signed it).
func (r *UsageRecord) Verify(pub ed25519.PublicKey, requestID string) error {
	if r.RequestID != requestID {
		return fmt.Errorf("verify usage record: for request %q, expected %q: %w", r.RequestID, requestID, ErrOtherRequest)
	}
	f, err := r.fields()
	if err != nil {
		return fmt.Errorf("verify usage record: %w", err)
	}
	if !verify(pub, usageLabel, f, r.Signature) {
		return fmt.Errorf("verify usage record of request %q: %w", requestID, ErrSignature)
	}
	return nil
}

// Marshal returns the wire form of a signed record: its fields' encoding, then the 64-byte
// signature.
func (r *UsageRecord) Marshal() ([]byte, error) {
	return marshalSigned("usage record", r.fields, r.Signature)
}

// marshalSigned is the wire form of a signed record: fields, then the signature.
func marshalSigned(what string, fields func() ([]byte, error), sig []byte) ([]byte, error) {
	if len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("encode %s: not signed: %w", what, ErrSignature)
	}
	f, err := fields()
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", what, err)
	}
	return append(f, sig...), nil
}

// recordDecoder starts decoding a record: it bounds its size and reads its version.
func recordDecoder(what string, b []byte) (*decoder, error) {
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("parse %s: %d bytes, at most %d: %w", what, len(b), MaxRecordSize, ErrTooLarge)
	}
	d := &decoder{b: b}
	if v := d.u8("version"); d.err == nil && v != Version {
		return nil, fmt.Errorf("parse %s: version %d, want %d: %w", what, v, Version, ErrMalformed)
	}
	return d, nil
}

// ParseUsageRecord decodes what Marshal wrote. The record is not verified: call Verify.
func ParseUsageRecord(b []byte) (*UsageRecord, error) {
	d, err := recordDecoder("usage record", b)
	if err != nil {
		return nil, err
	}
	r := &UsageRecord{
		RequestID:     d.str("request id"),
		Model:         d.str("model"),
		WeightsDigest: d.str("weights digest"),
		Usage:         getUsage(d),
		Signature:     d.raw(ed25519.SignatureSize, "signature"),
	}
	if err := d.end("usage record"); err != nil {
		return nil, fmt.Errorf("parse usage record: %w", err)
	}
	return r, nil
}
