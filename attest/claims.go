package attest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"time"
)

// Role is what a node does in the network.
type Role string

// The roles. A client runs outside any TEE; proxies and workers run inside TDX.
const (
	RoleClient Role = "client"
	RoleProxy  Role = "proxy"
	RoleWorker Role = "worker"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	return r == RoleClient || r == RoleProxy || r == RoleWorker
}

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", fmt.Errorf("unknown role %q (want client, proxy or worker)", s)
	}
	return r, nil
}

// Claims are what a node asserts about itself. Their SHA-512 is the quote's REPORT_DATA, and
// PublicKey is the node's certificate key, so a quote cannot be reused with another key.
//
// A worker names two more keys, both covered by the quote through the report data:
//   - HPKEKey, the public half of an HPKE key pair (KEM HPKEKEM, X-Wing MLKEM768X25519) made inside
//     its TD with each certificate: a client seals a request to it, so only that TD can open it and
//     the proxy in between routes bytes it cannot read. Every worker carries one, no other role may.
//   - The key that signs its usage records and receipts, which is PublicKey itself: the certificate
//     key is already attested, TLS proves the worker holds it on every connection, and it rotates
//     with the quote, so a receipt verifies under the claims of the connection it came over. A
//     separate signing key would add a field and a second secret without adding any guarantee; one
//     would be needed only if records had to verify beyond the certificate's life, which they do
//     not (the proxy checks them as they arrive).
type Claims struct {
	Role          Role
	PublicKey     ed25519.PublicKey // the RA-TLS certificate's key
	Version       string            // software version
	ConfigDigest  [32]byte          // SHA-256 of the node's effective configuration
	CreatedAt     time.Time         // when the certificate was made; seconds precision
	Model         string            // workers: the model name served
	WeightsDigest string            // workers: digest of the model weights, e.g. "sha256:…"
	PaymentKey    ed25519.PublicKey // proxies: the key that signs payment states (optional)
	// HPKEKey is, for workers only and always, the HPKE public key (HPKEKEM's serialisation,
	// HPKEKeySize bytes) that sealed requests are encrypted to; its private half stays in the TD.
	HPKEKey []byte
}

// HPKEKEM is the KEM of the workers' HPKE keys: X-Wing (ML-KEM-768 with X25519), so a sealed request
// stays confidential if either of the two breaks.
func HPKEKEM() hpke.KEM { return hpke.MLKEM768X25519() }

// HPKEKeySize is the size of an HPKEKEM public key: an ML-KEM-768 encapsulation key (1184 bytes)
// and an X25519 point (32 bytes).
const HPKEKeySize = 1184 + 32

// HPKEPublicKey returns the worker's HPKE public key, ready to seal to. Claims that decoded always
// name a valid one for a worker; others have none (ErrHPKEKeyNotAllowed).
func (c *Claims) HPKEPublicKey() (hpke.PublicKey, error) {
	if err := c.checkHPKEKey(); err != nil {
		return nil, err
	}
	if c.HPKEKey == nil {
		return nil, fmt.Errorf("%w: %s claims carry no HPKE key", ErrHPKEKeyNotAllowed, c.Role)
	}
	return HPKEKEM().NewPublicKey(c.HPKEKey)
}

// checkHPKEKey enforces that a worker names a valid HPKE key and no other role names one.
func (c *Claims) checkHPKEKey() error {
	if c.Role != RoleWorker {
		if c.HPKEKey != nil {
			return fmt.Errorf("%w: %s claims carry one", ErrHPKEKeyNotAllowed, c.Role)
		}
		return nil
	}
	if len(c.HPKEKey) == 0 {
		return ErrMissingHPKEKey
	}
	if len(c.HPKEKey) != HPKEKeySize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrMalformedHPKEKey, len(c.HPKEKey), HPKEKeySize)
	}
	if _, err := HPKEKEM().NewPublicKey(c.HPKEKey); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformedHPKEKey, err)
	}
	return nil
}

// MaxClaimsSize bounds the encoded claims; they travel in every handshake.
const MaxClaimsSize = 4096

const claimsVersion = 1

// Field tags of the canonical encoding, in the order they must appear.
const (
	tagRole byte = iota + 1
	tagPublicKey
	tagVersion
	tagConfigDigest
	tagCreatedAt
	tagModel
	tagWeightsDigest
	tagPaymentKey
	tagHPKEKey
)

// Encode returns the canonical encoding: a version byte, then each non-empty field as
// tag (1 byte) | length (2 bytes, big endian) | value, tags strictly increasing. Two equal
// claims always encode to the same bytes, which is what makes the report-data binding sound.
func (c *Claims) Encode() ([]byte, error) {
	if err := c.checkHPKEKey(); err != nil {
		return nil, fmt.Errorf("encode claims: %w", err)
	}
	return c.encode()
}

// encode is Encode without the HPKE key check, which DecodeClaims has made already.
func (c *Claims) encode() ([]byte, error) {
	if !c.Role.Valid() {
		return nil, fmt.Errorf("encode claims: %w: role %q", ErrMalformedClaims, c.Role)
	}
	if len(c.PublicKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("encode claims: %w: public key is %d bytes", ErrMalformedClaims, len(c.PublicKey))
	}
	if c.PaymentKey != nil && len(c.PaymentKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("encode claims: %w: payment key is %d bytes", ErrMalformedClaims, len(c.PaymentKey))
	}
	var b bytes.Buffer
	b.WriteByte(claimsVersion)
	put := func(tag byte, v []byte) {
		if len(v) == 0 {
			return
		}
		b.WriteByte(tag)
		_ = binary.Write(&b, binary.BigEndian, uint16(len(v)))
		b.Write(v)
	}
	put(tagRole, []byte(c.Role))
	put(tagPublicKey, c.PublicKey)
	put(tagVersion, []byte(c.Version))
	if c.ConfigDigest != ([32]byte{}) {
		put(tagConfigDigest, c.ConfigDigest[:])
	}
	if !c.CreatedAt.IsZero() {
		var ts [8]byte
		binary.BigEndian.PutUint64(ts[:], uint64(c.CreatedAt.Unix()))
		put(tagCreatedAt, ts[:])
	}
	put(tagModel, []byte(c.Model))
	put(tagWeightsDigest, []byte(c.WeightsDigest))
	put(tagPaymentKey, c.PaymentKey)
	put(tagHPKEKey, c.HPKEKey)
	if b.Len() > MaxClaimsSize {
		return nil, fmt.Errorf("encode claims: %w: %d bytes, limit %d", ErrMalformedClaims, b.Len(), MaxClaimsSize)
	}
	return b.Bytes(), nil
}

// DecodeClaims parses claims from untrusted bytes. It accepts only the canonical encoding.
func DecodeClaims(raw []byte) (*Claims, error) {
	bad := func(format string, a ...any) (*Claims, error) {
		return nil, fmt.Errorf("decode claims: %w: %s", ErrMalformedClaims, fmt.Sprintf(format, a...))
	}
	if len(raw) > MaxClaimsSize {
		return bad("%d bytes, limit %d", len(raw), MaxClaimsSize)
	}
	if len(raw) == 0 || raw[0] != claimsVersion {
		return bad("unknown version")
	}
	c := &Claims{}
	last := byte(0)
	for p := raw[1:]; len(p) > 0; {
		if len(p) < 3 {
			return bad("truncated field header")
		}
		tag, n := p[0], int(binary.BigEndian.Uint16(p[1:3]))
		p = p[3:]
		if tag <= last {
			return bad("field %d out of order", tag)
		}
		last = tag
		if n == 0 || n > len(p) {
			return bad("field %d has bad length %d", tag, n)
		}
		v := p[:n]
		p = p[n:]
		switch tag {
		case tagRole:
			c.Role = Role(v)
		case tagPublicKey:
			if n != ed25519.PublicKeySize {
				return bad("public key is %d bytes", n)
			}
			c.PublicKey = bytes.Clone(v)
		case tagVersion:
			c.Version = string(v)
		case tagConfigDigest:
			if n != 32 {
				return bad("config digest is %d bytes", n)
			}
			copy(c.ConfigDigest[:], v)
		case tagCreatedAt:
			if n != 8 {
				return bad("created-at is %d bytes", n)
			}
			ts := binary.BigEndian.Uint64(v)
			if ts == 0 || ts > 1<<40 {
				return bad("created-at out of range")
			}
			c.CreatedAt = time.Unix(int64(ts), 0).UTC()
		case tagModel:
			c.Model = string(v)
		case tagWeightsDigest:
			c.WeightsDigest = string(v)
		case tagPaymentKey:
			if n != ed25519.PublicKeySize {
				return bad("payment key is %d bytes", n)
			}
			c.PaymentKey = bytes.Clone(v)
		case tagHPKEKey:
			// Checked with the role below, once every field is read (the role comes first, but
			// the rule is the same for encoding and decoding).
			if n != HPKEKeySize {
				return nil, fmt.Errorf("decode claims: %w: %d bytes, want %d", ErrMalformedHPKEKey, n, HPKEKeySize)
			}
			c.HPKEKey = bytes.Clone(v)
		default:
			return bad("unknown field %d", tag)
		}
	}
	if !c.Role.Valid() {
		return bad("role %q", c.Role)
	}
	if c.PublicKey == nil {
		return bad("no public key")
	}
	if err := c.checkHPKEKey(); err != nil {
		return nil, fmt.Errorf("decode claims: %w", err)
	}
	// Anything that decodes but would encode differently (a zero digest spelled out, say) is refused,
	// so one set of claims has exactly one report data.
	if enc, err := c.encode(); err != nil || !bytes.Equal(enc, raw) {
		return bad("not canonical")
	}
	return c, nil
}

// ReportData is the value a quote must carry for these encoded claims.
func ReportData(encodedClaims []byte) [64]byte {
	return sha512.Sum512(encodedClaims)
}
