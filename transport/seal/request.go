package seal

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
)

// Version is the first byte of a sealed request. It names the suite (keys.go) and every layout in
// this package; a change to either is a new version.
const Version = 2

// protocolLabel starts every request's info, so that no other protocol's keys can be taken for ours.
const protocolLabel = "cocoon/seal/v2 request"

// MaxBodySize bounds a request body: what a client frame can carry (transport's
// DefaultMaxClientFrameSize is 4 MiB + 64 KiB), less room for the sealing and the Request message.
const MaxBodySize = 4 << 20

const (
	// requestHeaderSize: version, key id, binding id, seal nonce. The AEAD authenticates it.
	requestHeaderSize = 1 + keyIDSize + bindingIDSize + sealNonceSize
	bindingIDSize     = 8
	// sealNonceSize is the client's random nonce of one sealing: it gives every sealed request
	// its own keys under a session's secret, even one sealed twice for the same binding.
	sealNonceSize = 16
	// RequestOverhead is how much longer a sealed request is than its body.
	RequestOverhead = requestHeaderSize + encSize + tagSize
	// MaxSealedRequestSize bounds what OpenRequest reads.
	MaxSealedRequestSize = RequestOverhead + MaxBodySize
)

// Binding is what client and worker must agree on for a request to open: both compute it from
// what they know (the client from the worker it chose and its own request, the worker from its own
// evidence and the Request message the proxy forwarded), and it enters the request's key
// schedule as info. A proxy that routes a sealed request to another worker, for another model or under
// another request id makes it fail to open.
type Binding struct {
	RequestID string // the request id both sides log and account under
	Model     string // the model name the request is routed by
	QuoteHash Digest // HashQuote of the worker's quote, whose claims name the HPKE public key
}

// HashQuote is the digest of a worker's attestation evidence (its TDX quote) that bindings and
// receipts name. The quote's REPORT_DATA names the worker's claims, and the claims name both its
// HPKE public key and its signing key, so this one digest pins all three.
func HashQuote(quote []byte) Digest { return sha256.Sum256(quote) }

// info is the request's info: the protocol label, a zero byte, then the fields in canonical encoding.
func (b Binding) info() ([]byte, error) {
	if err := checkField("request id", b.RequestID); err != nil {
		return nil, err
	}
	if err := checkField("model", b.Model); err != nil {
		return nil, err
	}
	e := encoder{b: make([]byte, 0, len(protocolLabel)+1+2+len(b.RequestID)+2+len(b.Model)+len(b.QuoteHash))}
	e.raw([]byte(protocolLabel))
	e.u8(0)
	e.str(b.RequestID)
	e.str(b.Model)
	e.digest(b.QuoteHash)
	return e.b, nil
}

// bindingID is a short digest of info, sent in the clear so that a worker tells a request meant
// for another binding (a diagnosis) from a damaged one. It adds no secrecy and no authenticity:
// info itself is public, and the AEAD authenticates it.
func bindingID(info []byte) []byte {
	sum := sha256.Sum256(info)
	return sum[:bindingIDSize]
}

// SealRequest seals body to a worker's public key for the request b describes, in a session of
// its own. It returns the sealed request, for the Request message, and the opener of the worker's
// answer, which the client keeps for this request only. A client that seals many requests to one
// worker keeps a Session instead.
func SealRequest(pub *PublicKey, b Binding, body []byte) ([]byte, *AnswerOpener, error) {
	s, err := NewSession(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("seal request: %w", err)
	}
	return s.SealRequest(b, body)
}

// SealRequest seals body to the session's worker for the request b describes. It returns the
// sealed request and the opener of the worker's answer, which the client keeps for this request
// only. It is safe for concurrent use.
func (s *Session) SealRequest(b Binding, body []byte) ([]byte, *AnswerOpener, error) {
	if len(body) > MaxBodySize {
		return nil, nil, fmt.Errorf("seal request: body of %d bytes, at most %d: %w", len(body), MaxBodySize, ErrTooLarge)
	}
	info, err := b.info()
	if err != nil {
		return nil, nil, fmt.Errorf("seal request: %w", err)
	}
	out := make([]byte, 0, RequestOverhead+len(body))
	out = append(out, Version)
	out = append(out, s.pub.id[:]...)
	out = append(out, bindingID(info)...)
	out = out[:requestHeaderSize]
	nonce := out[requestHeaderSize-sealNonceSize:]
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails
	hdr := out[:requestHeaderSize:requestHeaderSize]
	out = append(out, s.enc...)
	k, err := deriveRequestKeys(s.secret, s.enc, nonce, info)
	if err != nil {
		return nil, nil, fmt.Errorf("seal request: %w", err)
	}
	out = k.aead.Seal(out, zeroNonce[:], body, hdr)
	return out, &AnswerOpener{secret: k.answer, enc: s.enc}, nil
}

// OpenRequest opens a sealed request with the worker's private key, for the request b describes.
// It returns the body and the sealer of the answer, which the worker keeps for this request only.
//
// Refusals: ErrTooLarge, ErrMalformed, ErrWrongKey (sealed to another key, e.g. the worker's
// previous one), ErrBinding (sealed for another request id, model or quote), ErrTampered.
func OpenRequest(priv *PrivateKey, b Binding, sealed []byte) ([]byte, *AnswerSealer, error) {
	switch {
	case len(sealed) > MaxSealedRequestSize:
		return nil, nil, fmt.Errorf("open request: %d bytes, at most %d: %w", len(sealed), MaxSealedRequestSize, ErrTooLarge)
	case len(sealed) < RequestOverhead:
		return nil, nil, fmt.Errorf("open request: %d bytes, at least %d: %w", len(sealed), RequestOverhead, ErrMalformed)
	case sealed[0] != Version:
		return nil, nil, fmt.Errorf("open request: version %d, want %d: %w", sealed[0], Version, ErrMalformed)
	case !bytes.Equal(sealed[1:1+keyIDSize], priv.pub.id[:]):
		return nil, nil, fmt.Errorf("open request: key id %x, ours is %x: %w", sealed[1:1+keyIDSize], priv.pub.id, ErrWrongKey)
	}
	info, err := b.info()
	if err != nil {
		return nil, nil, fmt.Errorf("open request: %w", err)
	}
	if got := sealed[1+keyIDSize : 1+keyIDSize+bindingIDSize]; !bytes.Equal(got, bindingID(info)) {
		return nil, nil, fmt.Errorf("open request: sealed for binding %x, expected request %q, model %q, quote %s: %w",
			got, b.RequestID, b.Model, b.QuoteHash, ErrBinding)
	}
	hdr := sealed[:requestHeaderSize:requestHeaderSize]
	nonce := hdr[requestHeaderSize-sealNonceSize:]
	enc := sealed[requestHeaderSize : requestHeaderSize+encSize]
	secret, cached, err := priv.sessions.secret(priv, enc)
	if err != nil {
		return nil, nil, fmt.Errorf("open request: %v: %w", err, ErrTampered)
	}
	k, err := deriveRequestKeys(secret, enc, nonce, info)
	if err != nil {
		return nil, nil, fmt.Errorf("open request: %w", err)
	}
	body, err := k.aead.Open(nil, zeroNonce[:], sealed[requestHeaderSize+encSize:], hdr)
	if err != nil {
		return nil, nil, fmt.Errorf("open request: %v: %w", err, ErrTampered)
	}
	if !cached {
		// Kept only once a body opened under it: a forged enc costs its sender a decapsulation
		// each time, never a place in the cache.
		priv.sessions.put(enc, secret)
	}
	s, err := newAnswerSealer(k.answer, enc)
	if err != nil {
		return nil, nil, fmt.Errorf("open request: %w", err)
	}
	return body, s, nil
}
