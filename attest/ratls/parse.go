package ratls

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"fmt"
	"time"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"

	"github.com/cocoon-network/cocoon/attest"
)

// Certificate is a parsed RA-TLS certificate.
type Certificate struct {
	X509   *x509.Certificate
	Key    ed25519.PublicKey
	Quote  []byte // nil when the certificate carries no quote
	Claims []byte
}

// Evidence returns what the attest.Verifier checks.
func (c *Certificate) Evidence() attest.Evidence {
	return attest.Evidence{Quote: c.Quote, Claims: c.Claims, Key: c.Key, NotAfter: c.X509.NotAfter}
}

// ParseCertificate parses and checks the structure of a peer's certificate from untrusted bytes:
// a single, self-signed, Ed25519 certificate whose only critical extensions are known ones, valid at
// now and for no longer than maxValidity. It does not judge the quote; attest.Verifier does.
func ParseCertificate(rawCerts [][]byte, now time.Time, maxValidity time.Duration) (*Certificate, error) {
	if len(rawCerts) != 1 {
		return nil, fmt.Errorf("%w: got %d certificates", ErrNotSelfSigned, len(rawCerts))
	}
	if len(rawCerts[0]) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformedCertificate, len(rawCerts[0]))
	}
	cert, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedCertificate, err)
	}
	key, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrKeyType, cert.PublicKeyAlgorithm)
	}
	// A self-signed certificate names itself as issuer and verifies under its own key. CheckSignatureFrom
	// would also demand CA bits, which an RA-TLS leaf does not have.
	if !bytes.Equal(cert.RawIssuer, cert.RawSubject) || cert.SignatureAlgorithm != x509.PureEd25519 ||
		!verify(key, cert.RawTBSCertificate, cert.Signature) {
		return nil, ErrNotSelfSigned
	}
	for _, oid := range cert.UnhandledCriticalExtensions {
		if !oid.Equal(OIDQuote) && !oid.Equal(OIDClaims) {
			return nil, fmt.Errorf("%w: %s", ErrUnknownCriticalExt, oid)
		}
	}
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return nil, fmt.Errorf("%w: valid %s to %s", ErrCertExpired,
			cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if maxValidity <= 0 {
		maxValidity = MaxValidity
	}
	// One minute of backdating is what NewCertificate adds for clock skew.
	if cert.NotAfter.Sub(cert.NotBefore) > maxValidity+Backdate {
		return nil, fmt.Errorf("%w: %s", ErrCertValidityTooLong, cert.NotAfter.Sub(cert.NotBefore))
	}
	rc := &Certificate{X509: cert, Key: key}
	for _, ext := range cert.Extensions {
		switch {
		case ext.Id.Equal(OIDQuote):
			if rc.Quote != nil || !ext.Critical {
				return nil, fmt.Errorf("%w: quote extension repeated or not critical", ErrMalformedCertificate)
			}
			rc.Quote = ext.Value
		case ext.Id.Equal(OIDClaims):
			if rc.Claims != nil || !ext.Critical {
				return nil, fmt.Errorf("%w: claims extension repeated or not critical", ErrMalformedCertificate)
			}
			rc.Claims = ext.Value
		}
	}
	if rc.Claims == nil {
		return nil, ErrMissingClaims
	}
	return rc, nil
}

// stdLibRules are crypto/ed25519's rules, which crypto/x509 applies to an Ed25519 certificate.
var stdLibRules = &voi.Options{Verify: voi.VerifyOptionsStdLib}

// verify is what crypto/x509 checks of an Ed25519 signature, with curve25519-voi, which takes two
// thirds of the time: every handshake checks a certificate.
func verify(pub ed25519.PublicKey, msg, sig []byte) bool {
	if len(sig) != ed25519.SignatureSize {
		return false
	}
	k, err := voi.NewExpandedPublicKey(voi.PublicKey(pub))
	if err != nil {
		// voi does not expand every encoding crypto/ed25519 reads (a non-canonical one): that
		// check decides it.
		return ed25519.Verify(pub, msg, sig)
	}
	return voi.VerifyExpandedWithOptions(k, msg, sig, stdLibRules)
}
