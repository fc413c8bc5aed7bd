package transport

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/cocoon-network/cocoon/attest"
)

// The OID arc of cocoon's RA-TLS extensions: 1.3.6.1.4.1.64447.1 (an IANA private enterprise arc,
// see transport/README.md). Both extensions are critical, so software that does not know them
// refuses the certificate instead of trusting it without the attestation.
var (
	OIDQuote  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 64447, 1, 1} // the raw TDX quote
	OIDClaims = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 64447, 1, 2} // the encoded attest.Claims
)

// MaxCertValidity is the longest validity a certificate may have unless configured otherwise:
// certificates are short-lived so a leaked key or a stale quote ages out within a day.
const MaxCertValidity = 24 * time.Hour

// MaxCertSize bounds a peer certificate before it is parsed.
const MaxCertSize = 128 << 10

// Certificate rejection classes, alongside attest's.
var (
	ErrCertExpired          = errors.New("certificate expired or not yet valid")
	ErrCertValidityTooLong  = errors.New("certificate validity longer than allowed")
	ErrNotSelfSigned        = errors.New("certificate is not a single self-signed certificate")
	ErrKeyType              = errors.New("certificate key is not Ed25519")
	ErrUnknownCriticalExt   = errors.New("certificate has an unknown critical extension")
	ErrMissingClaims        = errors.New("certificate carries no claims")
	ErrMalformedCertificate = errors.New("malformed certificate")
)

// CertOptions describe an RA-TLS certificate to make.
type CertOptions struct {
	Key      ed25519.PrivateKey
	Claims   attest.Claims // PublicKey and CreatedAt are filled in
	Quoter   attest.Quoter // nil: no quote (clients)
	Validity time.Duration // zero: MaxCertValidity
	Now      time.Time     // zero: time.Now
}

// NewCertificate makes a self-signed RA-TLS certificate whose quote (if any) binds the claims, and
// the claims bind the certificate key.
func NewCertificate(o CertOptions) (tls.Certificate, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Validity <= 0 {
		o.Validity = MaxCertValidity
	}
	claims := o.Claims
	claims.PublicKey = o.Key.Public().(ed25519.PublicKey)
	claims.CreatedAt = o.Now.Truncate(time.Second)
	enc, err := claims.Encode()
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("make certificate: %w", err)
	}
	exts := []pkix.Extension{{Id: OIDClaims, Critical: true, Value: enc}}
	if o.Quoter != nil {
		quote, err := o.Quoter.Quote(attest.ReportData(enc))
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("make certificate: %w", err)
		}
		exts = append([]pkix.Extension{{Id: OIDQuote, Critical: true, Value: quote}}, exts...)
	}
	return selfSign(o.Key, string(claims.Role), o.Now, o.Validity, exts)
}

// clockSkew backdates a certificate's NotBefore, so that a peer whose clock is a little behind
// accepts it.
const clockSkew = time.Minute

func selfSign(key ed25519.PrivateKey, cn string, now time.Time, validity time.Duration, exts []pkix.Extension) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:    serial,
		Subject:         pkix.Name{CommonName: "cocoon " + cn},
		NotBefore:       now.Add(-clockSkew),
		NotAfter:        now.Add(validity),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		ExtraExtensions: exts,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("sign certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parse own certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// RACert is a parsed RA-TLS certificate.
type RACert struct {
	X509   *x509.Certificate
	Key    ed25519.PublicKey
	Quote  []byte // nil when the certificate carries no quote
	Claims []byte
}

// Evidence returns what the attest.Verifier checks.
func (c *RACert) Evidence() attest.Evidence {
	return attest.Evidence{Quote: c.Quote, Claims: c.Claims, Key: c.Key, NotAfter: c.X509.NotAfter}
}

// ParseCertificate parses and checks the structure of a peer's certificate from untrusted bytes:
// a single, self-signed, Ed25519 certificate whose only critical extensions are known ones, valid at
// now and for no longer than maxValidity. It does not judge the quote; attest.Verifier does.
func ParseCertificate(rawCerts [][]byte, now time.Time, maxValidity time.Duration) (*RACert, error) {
	if len(rawCerts) != 1 {
		return nil, fmt.Errorf("%w: got %d certificates", ErrNotSelfSigned, len(rawCerts))
	}
	if len(rawCerts[0]) > MaxCertSize {
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
	if !bytes.Equal(cert.RawIssuer, cert.RawSubject) ||
		cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) != nil {
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
		maxValidity = MaxCertValidity
	}
	// One minute of backdating is what NewCertificate adds for clock skew.
	if cert.NotAfter.Sub(cert.NotBefore) > maxValidity+clockSkew {
		return nil, fmt.Errorf("%w: %s", ErrCertValidityTooLong, cert.NotAfter.Sub(cert.NotBefore))
	}
	rc := &RACert{X509: cert, Key: key}
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
