package transport

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cocoon-network/cocoon/attest"
)

// peerVerifier runs inside the TLS handshake: it parses the peer's RA-TLS certificate and verifies
// its evidence before the handshake completes, so no application data is exchanged with an
// unverified peer. Verified peers are parked by certificate hash until the connection picks them up.
type peerVerifier struct {
	cfg *Config

	mu     sync.Mutex
	parked map[[32]byte]parkedPeer
}

type parkedPeer struct {
	peer *attest.Peer
	at   time.Time
}

func newPeerVerifier(cfg *Config) *peerVerifier {
	return &peerVerifier{cfg: cfg, parked: map[[32]byte]parkedPeer{}}
}

// verify checks a peer certificate chain as presented in the handshake.
func (pv *peerVerifier) verify(rawCerts [][]byte) (*attest.Peer, error) {
	rc, err := ParseCertificate(rawCerts, pv.cfg.Now(), pv.cfg.MaxCertValidity)
	if err != nil {
		return nil, err
	}
	peer, err := pv.cfg.Verifier.Verify(rc.Evidence())
	if err != nil {
		return nil, err
	}
	if len(pv.cfg.PeerRoles) > 0 && !slices.Contains(pv.cfg.PeerRoles, peer.Claims.Role) {
		return nil, fmt.Errorf("%w: got %s, want one of %v", attest.ErrRoleMismatch, peer.Claims.Role, pv.cfg.PeerRoles)
	}
	return peer, nil
}

// hook returns a VerifyPeerCertificate callback; onReject sees every refusal.
func (pv *peerVerifier) hook(onReject func(error)) func([][]byte, [][]*x509.Certificate) error {
	return func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
		peer, err := pv.verify(rawCerts)
		if err != nil {
			onReject(err)
			return err
		}
		pv.park(rawCerts[0], peer)
		return nil
	}
}

func (pv *peerVerifier) park(raw []byte, p *attest.Peer) {
	now := time.Now()
	pv.mu.Lock()
	defer pv.mu.Unlock()
	// Handshakes that fail after our check leave an entry behind; drop those after a minute.
	for k, e := range pv.parked {
		if now.Sub(e.at) > time.Minute {
			delete(pv.parked, k)
		}
	}
	pv.parked[sha256.Sum256(raw)] = parkedPeer{peer: p, at: now}
}

// pickUp returns the verified peer of a completed handshake.
func (pv *peerVerifier) pickUp(state tls.ConnectionState) (*attest.Peer, error) {
	if len(state.PeerCertificates) != 1 {
		return nil, fmt.Errorf("%w: got %d certificates", ErrNotSelfSigned, len(state.PeerCertificates))
	}
	k := sha256.Sum256(state.PeerCertificates[0].Raw)
	pv.mu.Lock()
	e, ok := pv.parked[k]
	delete(pv.parked, k)
	pv.mu.Unlock()
	if ok {
		return e.peer, nil
	}
	// Parked entry aged out (a very slow handshake): verify again.
	return pv.verify([][]byte{state.PeerCertificates[0].Raw})
}
