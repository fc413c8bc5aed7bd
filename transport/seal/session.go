package seal

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha256"
	"fmt"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// sessionLabel is the HPKE info of a session, and sessionSecretLabel the exporter context of its
// secret: every request of the session derives its keys from that secret (deriveRequestKeys).
const (
	sessionLabel       = "cocoon/seal/v2 session"
	sessionSecretLabel = "cocoon session"
	sessionSecretSize  = 32
)

// zeroNonce is the AEAD nonce of a sealed request: each request has a key of its own.
var zeroNonce [chacha20poly1305.NonceSize]byte

// Session is a client's sealing context with one worker's public key: one KEM encapsulation
// (X25519 and ML-KEM-768 together cost more than everything else a client does for a request),
// whose exported secret the keys of many requests are derived from, each under the client's fresh
// seal nonce and the request's binding. The worker decapsulates a session's enc once and keeps its
// secret (PrivateKey's session cache), so a session costs both sides one KEM operation.
//
// A session's requests carry the same enc, so the proxy between them can tell they come from one
// session; it knows already that they come from one client connection. A session's secret opens
// every request of the session: a client keeps a session for a bounded time, then makes another.
type Session struct {
	pub    *PublicKey
	enc    []byte
	secret []byte
}

// NewSession makes a session with pub: one HPKE encapsulation.
func NewSession(pub *PublicKey) (*Session, error) {
	enc, s, err := hpke.NewSender(pub.k, kdf, aead, []byte(sessionLabel))
	if err != nil {
		return nil, fmt.Errorf("new seal session: %w", err)
	}
	secret, err := s.Export(sessionSecretLabel, sessionSecretSize)
	if err != nil {
		return nil, fmt.Errorf("new seal session: export secret: %w", err)
	}
	return &Session{pub: pub, enc: enc, secret: secret}, nil
}

// requestKeys are one sealed request's AEAD and the secret of its answer's keys.
type requestKeys struct {
	aead   cipher.AEAD
	answer []byte
}

// deriveRequestKeys is a request's key schedule (see doc.go):
//
//	prk     = HKDF-Extract(salt = enc ‖ seal_nonce, ikm = session secret)
//	key     = HKDF-Expand(prk, "request" ‖ info, 32)
//	answer  = HKDF-Expand(prk, "answer" ‖ info, 32)
func deriveRequestKeys(secret, enc, nonce, info []byte) (*requestKeys, error) {
	salt := make([]byte, 0, len(enc)+len(nonce))
	salt = append(append(salt, enc...), nonce...)
	prk, err := hkdf.Extract(sha256.New, secret, salt)
	if err != nil {
		return nil, fmt.Errorf("derive request keys: %w", err)
	}
	key, err := hkdf.Expand(sha256.New, prk, "request"+string(info), chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("derive request keys: %w", err)
	}
	answer, err := hkdf.Expand(sha256.New, prk, "answer"+string(info), answerSecretSize)
	if err != nil {
		return nil, fmt.Errorf("derive request keys: %w", err)
	}
	a, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, fmt.Errorf("derive request keys: %w", err)
	}
	return &requestKeys{aead: a, answer: answer}, nil
}

// MaxSessions bounds the session secrets a worker's key keeps: each is a few dozen bytes, and a
// session evicted costs its next request one decapsulation, nothing else.
const MaxSessions = 4096

// sessions is a worker key's cache of session secrets, by the SHA-256 of the session's enc. A
// secret is a function of enc and the private key, so what the cache holds is what decapsulation
// would give; it only saves the work. Eviction is first in, first out.
type sessions struct {
	mu    sync.Mutex
	byEnc map[Digest][]byte
	order []Digest // ring of the keys in byEnc, oldest at next
	next  int
}

// secret returns the session secret of enc, from the cache (cached true) or by decapsulating it.
func (c *sessions) secret(priv *PrivateKey, enc []byte) (secret []byte, cached bool, err error) {
	id := sha256.Sum256(enc)
	c.mu.Lock()
	secret, cached = c.byEnc[id]
	c.mu.Unlock()
	if cached {
		return secret, true, nil
	}
	r, err := hpke.NewRecipient(enc, priv.k, kdf, aead, []byte(sessionLabel))
	if err != nil {
		return nil, false, err
	}
	secret, err = r.Export(sessionSecretLabel, sessionSecretSize)
	return secret, false, err
}

// put keeps enc's secret, evicting the oldest when the cache is full.
func (c *sessions) put(enc, secret []byte) {
	id := sha256.Sum256(enc)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byEnc == nil {
		c.byEnc = make(map[Digest][]byte)
	}
	if _, ok := c.byEnc[id]; ok {
		return
	}
	if len(c.order) < MaxSessions {
		c.order = append(c.order, id)
	} else {
		delete(c.byEnc, c.order[c.next])
		c.order[c.next] = id
		c.next = (c.next + 1) % MaxSessions
	}
	c.byEnc[id] = secret
}

// len is how many secrets the cache holds.
func (c *sessions) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byEnc)
}
