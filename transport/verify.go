package transport

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/ratls"
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
	// refused is set instead of peer when the policy refused evidence that verified: the
	// handshake completes so that the connection can be closed with the reason (RefusedError).
	refused *RefusedError
	at      time.Time
	started time.Time // when the peer's certificate check began
	// local is the certificate this end presented in that handshake.
	local *tls.Certificate
}

func newPeerVerifier(cfg *Config) *peerVerifier {
	return &peerVerifier{cfg: cfg, parked: map[[32]byte]parkedPeer{}}
}

// verify checks a peer certificate chain as presented in the handshake.
func (pv *peerVerifier) verify(rawCerts [][]byte) (*attest.Peer, error) {
	rc, err := ratls.ParseCertificate(rawCerts, pv.cfg.Now(), pv.cfg.MaxCertValidity)
	if err != nil {
		return nil, err
	}
	peer, err := pv.cfg.Verifier.Verify(rc.Evidence())
	if err != nil {
		return nil, err
	}
	if len(pv.cfg.PeerRoles) > 0 && !slices.Contains(pv.cfg.PeerRoles, peer.Claims.Role) {
		// The evidence verified: the peer may be told.
		return nil, &attest.PolicyError{Err: fmt.Errorf("%w: got %s, want one of %v", attest.ErrRoleMismatch, peer.Claims.Role, pv.cfg.PeerRoles)}
	}
	return peer, nil
}

// hook returns a VerifyPeerCertificate callback; onReject sees every refusal. served is the
// certificate this end presented in the same handshake (nil until it has presented one).
//
// A cryptographic failure fails the handshake (TLS alert bad_certificate). A refusal by policy of
// evidence that verified (attest.PolicyError) lets the handshake complete, TLS still proving the
// peer holds the certificate's key, and parks the refusal: the connection is then closed with
// CodePolicyRefused and the reason before any stream is accepted or opened.
func (pv *peerVerifier) hook(served *atomic.Pointer[tls.Certificate], onReject func(error)) func([][]byte, [][]*x509.Certificate) error {
	return func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
		started := time.Now()
		peer, err := pv.verify(rawCerts)
		if err != nil {
			onReject(err)
			if re := refusalOf(err); re != nil {
				pv.park(rawCerts[0], parkedPeer{refused: re})
				return nil
			}
			return err
		}
		pv.park(rawCerts[0], parkedPeer{peer: peer, local: served.Load(), started: started})
		return nil
	}
}

func (pv *peerVerifier) park(raw []byte, e parkedPeer) {
	now := time.Now()
	pv.mu.Lock()
	defer pv.mu.Unlock()
	// Handshakes that fail after our check leave an entry behind; drop those after a minute.
	for k, e := range pv.parked {
		if now.Sub(e.at) > time.Minute {
			delete(pv.parked, k)
		}
	}
	e.at = now
	pv.parked[sha256.Sum256(raw)] = e
}

// pickUp returns the verified peer of a completed handshake, the certificate this end presented
// in it (nil if that is not known) and when the peer's certificate check began. A peer the policy
// refused, whose handshake completed only to be told why, is a *RefusedError.
func (pv *peerVerifier) pickUp(state tls.ConnectionState) (*attest.Peer, *tls.Certificate, time.Time, error) {
	if len(state.PeerCertificates) != 1 {
		return nil, nil, time.Time{}, fmt.Errorf("%w: got %d certificates", ratls.ErrNotSelfSigned, len(state.PeerCertificates))
	}
	k := sha256.Sum256(state.PeerCertificates[0].Raw)
	pv.mu.Lock()
	e, ok := pv.parked[k]
	delete(pv.parked, k)
	pv.mu.Unlock()
	if ok && e.refused != nil {
		return nil, nil, time.Time{}, e.refused
	}
	if ok {
		return e.peer, e.local, e.started, nil
	}
	// Parked entry aged out (a very slow handshake): verify again.
	started := time.Now()
	p, err := pv.verify([][]byte{state.PeerCertificates[0].Raw})
	if re := refusalOf(err); re != nil {
		return nil, nil, time.Time{}, re
	}
	return p, nil, started, err
}
