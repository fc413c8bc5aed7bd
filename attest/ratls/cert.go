package ratls

import (
	"crypto/ed25519"
	"crypto/hpke"
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

// MaxValidity is the longest validity a certificate may have unless configured otherwise:
// certificates are short-lived so a leaked key or a stale quote ages out within a day.
const MaxValidity = 24 * time.Hour

// MaxSize bounds a peer certificate before it is parsed.
const MaxSize = 128 << 10

// Certificate rejection classes, alongside attest's: a peer is refused with one of these before its
// evidence is judged.
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
	Key    ed25519.PrivateKey
	Claims attest.Claims // PublicKey, CreatedAt and (workers) HPKEKey are filled in
	// HPKEKey is a worker's HPKE key pair for this certificate (attest.HPKEKEM); the claims name its
	// public half. Nil for a worker: a fresh one, whose private half is dropped (a certificate
	// made only to be inspected). The worker's transport identity passes its own, to open
	// requests sealed to it. Other roles have none.
	HPKEKey  hpke.PrivateKey
	Quoter   attest.Quoter // nil: no quote (clients)
	Validity time.Duration // zero: MaxValidity
	Now      time.Time     // zero: time.Now
}

// NewCertificate makes a self-signed RA-TLS certificate whose quote (if any) binds the claims, and
// the claims bind the certificate key.
func NewCertificate(o CertOptions) (tls.Certificate, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Validity <= 0 {
		o.Validity = MaxValidity
	}
	claims := o.Claims
	claims.PublicKey = o.Key.Public().(ed25519.PublicKey)
	claims.CreatedAt = o.Now.Truncate(time.Second)
	if o.HPKEKey == nil && claims.Role == attest.RoleWorker {
		k, err := attest.HPKEKEM().GenerateKey()
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("make certificate: generate HPKE key: %w", err)
		}
		o.HPKEKey = k
	}
	if o.HPKEKey != nil {
		claims.HPKEKey = o.HPKEKey.PublicKey().Bytes()
	}
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
	return SelfSign(o.Key, string(claims.Role), o.Now, o.Validity, exts)
}

// Backdate is how far NewCertificate backdates NotBefore, so that a peer whose clock is a little
// behind accepts the certificate; a certificate was made at NotBefore + Backdate.
const Backdate = time.Minute

// SelfSign makes a self-signed certificate for key with the given extensions, as NewCertificate does
// with the quote and claims; tests use it to build the malformed certificates a hostile peer might send.
func SelfSign(key ed25519.PrivateKey, cn string, now time.Time, validity time.Duration, exts []pkix.Extension) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:    serial,
		Subject:         pkix.Name{CommonName: "cocoon " + cn},
		NotBefore:       now.Add(-Backdate),
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
