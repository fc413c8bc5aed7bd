package seal

import (
	"crypto/hpke"
	"crypto/sha256"
	"fmt"
	"slices"
)

// The suite is fixed; there is no negotiation, so there is nothing to downgrade. A change of suite
// is a new Version.
//
//   - KEM MLKEM768-X25519 (X-Wing, draft-ietf-hpke-pq): a request recorded today stays secret
//     unless both X25519 and ML-KEM-768 are broken, so a future quantum adversary is not enough.
//   - KDF HKDF-SHA256.
//   - AEAD ChaCha20-Poly1305, for requests and answers alike. Clients run on any hardware (phones,
//     browsers through WASM, small ARM boards) where AES-GCM may lack hardware support and then is
//     slow or not constant-time; ChaCha20-Poly1305 is fast and constant-time in software
//     everywhere. On servers with AES-NI, AES-256-GCM would be a little faster on large chunks,
//     but an answer chunk is a few hundred bytes, where the fixed cost of either dominates.
var (
	kem  = hpke.MLKEM768X25519()
	kdf  = hpke.HKDFSHA256()
	aead = hpke.ChaCha20Poly1305()
)

const (
	// PublicKeySize is the length of an encoded public key (ML-KEM-768 encapsulation key, then
	// the X25519 point).
	PublicKeySize = 1216
	// encSize is the length of the KEM's encapsulated key in a sealed request.
	encSize = 1120
	// keyIDSize is the length of the key id a sealed request starts with (after its version).
	keyIDSize = 8
)

// PrivateKey is a worker's HPKE decapsulation key. It never leaves the worker's memory; its public
// half goes into the worker's attested claims. It keeps the secrets of the sessions it opened
// requests of, so a worker keeps one PrivateKey per key, not one per request.
type PrivateKey struct {
	k        hpke.PrivateKey
	pub      *PublicKey
	sessions sessions
}

// PublicKey is a worker's HPKE encapsulation key, as named by its attested claims.
type PublicKey struct {
	k  hpke.PublicKey
	b  []byte
	id KeyID
}

// GenerateKey makes a fresh key pair.
func GenerateKey() (*PrivateKey, error) {
	k, err := kem.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("generate hpke key: %w", err)
	}
	pub, err := newPublicKey(k.PublicKey().Bytes())
	if err != nil {
		return nil, err
	}
	return &PrivateKey{k: k, pub: pub}, nil
}

// FromHPKE wraps a decapsulation key made elsewhere (the worker's identity makes one with each
// certificate and names its public half in the claims); it must be of this package's KEM.
func FromHPKE(k hpke.PrivateKey) (*PrivateKey, error) {
	if k == nil || k.KEM().ID() != kem.ID() {
		return nil, fmt.Errorf("hpke key of another KEM: %w", ErrWrongKey)
	}
	pub, err := newPublicKey(k.PublicKey().Bytes())
	if err != nil {
		return nil, err
	}
	return &PrivateKey{k: k, pub: pub}, nil
}

// PublicKey returns the public half of k.
func (k *PrivateKey) PublicKey() *PublicKey { return k.pub }

// PublicKeyBytes returns the encoded public half of k (PublicKeySize bytes), for the claims.
func (k *PrivateKey) PublicKeyBytes() []byte { return k.pub.Bytes() }

// ParsePublicKey decodes a public key from its encoding (as PublicKeyBytes returns it).
func ParsePublicKey(b []byte) (*PublicKey, error) {
	if len(b) != PublicKeySize {
		return nil, fmt.Errorf("parse hpke public key: %d bytes, want %d: %w", len(b), PublicKeySize, ErrMalformed)
	}
	return newPublicKey(b)
}

func newPublicKey(b []byte) (*PublicKey, error) {
	k, err := kem.NewPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("parse hpke public key: %v: %w", err, ErrMalformed)
	}
	p := &PublicKey{k: k, b: append([]byte(nil), b...)}
	sum := sha256.Sum256(p.b)
	copy(p.id[:], sum[:])
	return p, nil
}

// Bytes returns the encoding of p (PublicKeySize bytes).
func (p *PublicKey) Bytes() []byte { return slices.Clone(p.b) }

// KeyID names a worker's HPKE public key in a sealed request's clear header: the first 8 bytes
// of its SHA-256. It lets a proxy see which worker a presealed request is for, and a worker tell
// a request sealed to its previous key; it is no secret.
type KeyID [keyIDSize]byte

// KeyIDOf is the id of the encoded public key pub (as in a worker's claims).
func KeyIDOf(pub []byte) KeyID {
	sum := sha256.Sum256(pub)
	return KeyID(sum[:keyIDSize])
}

// ID is the id of p.
func (p *PublicKey) ID() KeyID { return p.id }

// RequestKeyID is the id of the key a sealed request names, or false when sealed is too short or
// of another version to name one. It checks nothing else: only the worker can open the request.
func RequestKeyID(sealed []byte) (KeyID, bool) {
	if len(sealed) < RequestOverhead || sealed[0] != Version {
		return KeyID{}, false
	}
	return KeyID(sealed[1 : 1+keyIDSize]), true
}
