package transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/ratls"
)

// IdentityConfig describes the node a certificate speaks for.
type IdentityConfig struct {
	Claims   attest.Claims // role, version, config digest, model…; the key and time are filled in per certificate
	Quoter   attest.Quoter // nil for clients
	Validity time.Duration // zero: ratls.MaxValidity
	Now      func() time.Time
	// Key, when set, signs every certificate instead of a fresh key each time: a client's key is its
	// wallet key, which is how a proxy knows whose deposit pays (clients have no quote to rotate).
	Key ed25519.PrivateKey
}

// Identity holds a node's current RA-TLS certificate and replaces it before it expires. Each
// certificate has a fresh key and a fresh quote; connections already made keep working, because a
// certificate only matters during a handshake.
//
// A worker's certificates each come with a fresh HPKE key pair, made here inside the TD, whose
// public half the claims name (attest.Claims.HPKEKey): clients seal requests to it. The identity
// keeps the private halves it may still need (HPKEKey): the current certificate's, and a replaced
// one's while a connection made with that certificate lives, since requests sealed to the old key
// keep arriving on it until it drains. A replaced certificate's key is dropped once its last
// connection has ended (and no handshake with it can still be completing: retireGrace), and in
// any case when the certificate expires, as its connections end then. The private keys never
// leave the process and are never logged.
type Identity struct {
	cfg IdentityConfig

	mu   sync.RWMutex
	cert *tls.Certificate
	keys []*hpkeKey // workers: the HPKE keys still held, the current certificate's last
}

// hpkeKey is a worker's HPKE key pair for one of its certificates.
type hpkeKey struct {
	priv     hpke.PrivateKey
	pub      []byte // as the claims name it
	cert     *tls.Certificate
	notAfter time.Time // the certificate's
	retired  time.Time // when a newer certificate replaced cert; zero while it is current
	conns    int       // live connections made with cert
}

// retireGrace is how long a replaced certificate's HPKE key is kept with no connection holding
// it: a handshake that presented the certificate just before the rotation may still complete
// (the peer verifier's parked entries last as long).
const retireGrace = time.Minute

// held reports whether k may still be used at now.
func (k *hpkeKey) held(now time.Time) bool {
	return now.Before(k.notAfter) && (k.retired.IsZero() || k.conns > 0 || now.Sub(k.retired) < retireGrace)
}

// NewIdentity makes the first certificate.
func NewIdentity(cfg IdentityConfig) (*Identity, error) {
	if cfg.Validity <= 0 {
		cfg.Validity = ratls.MaxValidity
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	id := &Identity{cfg: cfg}
	if err := id.Rotate(); err != nil {
		return nil, err
	}
	return id, nil
}

// Role is the role this identity claims.
func (id *Identity) Role() attest.Role { return id.cfg.Claims.Role }

// Certificate returns the current certificate.
func (id *Identity) Certificate() *tls.Certificate {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return id.cert
}

// Rotate replaces the certificate with a new one (new key, new quote, and for a worker a new HPKE
// key pair).
func (id *Identity) Rotate() error {
	key := id.cfg.Key
	if key == nil {
		var err error
		if _, key, err = ed25519.GenerateKey(rand.Reader); err != nil {
			return fmt.Errorf("generate certificate key: %w", err)
		}
	}
	var hk hpke.PrivateKey
	if id.cfg.Claims.Role == attest.RoleWorker {
		var err error
		if hk, err = attest.HPKEKEM().GenerateKey(); err != nil {
			return fmt.Errorf("generate HPKE key: %w", err)
		}
	}
	now := id.now()
	cert, err := ratls.NewCertificate(ratls.CertOptions{Key: key, Claims: id.cfg.Claims, Quoter: id.cfg.Quoter,
		HPKEKey: hk, Validity: id.cfg.Validity, Now: now})
	if err != nil {
		return err
	}
	id.mu.Lock()
	defer id.mu.Unlock()
	id.cert = &cert
	if hk == nil {
		return nil
	}
	for _, k := range id.keys {
		if k.retired.IsZero() {
			k.retired = now
		}
	}
	id.keys = append(id.keys, &hpkeKey{priv: hk, pub: hk.PublicKey().Bytes(), cert: &cert, notAfter: cert.Leaf.NotAfter})
	id.pruneLocked(now)
	return nil
}

func (id *Identity) now() time.Time {
	if id.cfg.Now == nil {
		return time.Now()
	}
	return id.cfg.Now()
}

// pruneLocked drops the HPKE keys no longer held.
func (id *Identity) pruneLocked(now time.Time) {
	id.keys = slices.DeleteFunc(id.keys, func(k *hpkeKey) bool { return !k.held(now) })
}

// HPKEKey returns the private HPKE key whose public key is pub, as a worker's claims name it
// (attest.Claims.HPKEKey): the current certificate's, or a replaced one's while a connection made
// with it lives. ok is false for any other key, for one dropped, and for identities that are not
// a worker's. The key is for opening sealed requests inside this process only.
func (id *Identity) HPKEKey(pub []byte) (key hpke.PrivateKey, ok bool) {
	id.mu.Lock()
	defer id.mu.Unlock()
	id.pruneLocked(id.now())
	for _, k := range id.keys {
		if bytes.Equal(k.pub, pub) {
			return k.priv, true
		}
	}
	return nil, false
}

// HPKEKeys returns every private HPKE key HPKEKey would return, the current certificate's first:
// for a sealed request that names its key by an id derived from the public key (the request may
// come over a connection made with another certificate than the one whose key the client saw).
func (id *Identity) HPKEKeys() []hpke.PrivateKey {
	id.mu.Lock()
	defer id.mu.Unlock()
	id.pruneLocked(id.now())
	out := make([]hpke.PrivateKey, 0, len(id.keys))
	for _, k := range slices.Backward(id.keys) {
		out = append(out, k.priv)
	}
	return out
}

// hold keeps the HPKE key of cert, a certificate this identity presented in a handshake, until
// release is called when the connection made with it ends; pub is that key's public half (nil if
// there is none). With cert nil (not known) it holds every key still held, so that none the
// connection may need is dropped before it ends.
func (id *Identity) hold(cert *tls.Certificate) (pub []byte, release func()) {
	if id == nil {
		return nil, func() {}
	}
	id.mu.Lock()
	defer id.mu.Unlock()
	id.pruneLocked(id.now())
	var held []*hpkeKey
	for _, k := range id.keys {
		if cert == nil || k.cert == cert {
			k.conns++
			held = append(held, k)
			if cert != nil {
				pub = k.pub
			}
		}
	}
	var once sync.Once
	return pub, func() {
		once.Do(func() {
			id.mu.Lock()
			defer id.mu.Unlock()
			for _, k := range held {
				k.conns--
			}
			id.pruneLocked(id.now())
		})
	}
}

// renewAt is when the current certificate should be replaced: after two thirds of its life, which
// starts when it was made (NotBefore is backdated by ratls.Backdate).
func (id *Identity) renewAt() time.Time {
	c := id.Certificate()
	made := c.Leaf.NotBefore.Add(ratls.Backdate)
	return made.Add(c.Leaf.NotAfter.Sub(made) * 2 / 3)
}

// Run rotates the certificate before it expires until ctx ends. A failed rotation is retried
// every minute while the old certificate is still valid.
func (id *Identity) Run(ctx context.Context, log zerolog.Logger) error {
	for {
		wait := time.Until(id.renewAt())
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if err := id.Rotate(); err != nil {
			log.Error().Err(err).Msg("rotate certificate")
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Minute):
			}
			continue
		}
		log.Info().Time("not_after", id.Certificate().Leaf.NotAfter).Msg("certificate rotated")
	}
}
