package transport

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"fmt"
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
type Identity struct {
	cfg IdentityConfig

	mu   sync.RWMutex
	cert *tls.Certificate
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

// Rotate replaces the certificate with a new one (new key, new quote).
func (id *Identity) Rotate() error {
	key := id.cfg.Key
	if key == nil {
		var err error
		if _, key, err = ed25519.GenerateKey(rand.Reader); err != nil {
			return fmt.Errorf("generate certificate key: %w", err)
		}
	}
	cert, err := ratls.NewCertificate(ratls.CertOptions{Key: key, Claims: id.cfg.Claims, Quoter: id.cfg.Quoter,
		Validity: id.cfg.Validity, Now: id.cfg.Now()})
	if err != nil {
		return err
	}
	id.mu.Lock()
	id.cert = &cert
	id.mu.Unlock()
	return nil
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
