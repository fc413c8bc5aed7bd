package sim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // RFC 5280 method 1 key identifier, not a security function
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"time"

	"github.com/google/go-tdx-guest/pcs"
)

// Intel SGX extension OIDs that go-tdx-guest's pcs package does not export.
var (
	oidSGXType      = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 5}
	oidSGXTCBPrefix = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 2}
)

func newKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate P-256 key: %w", err)
	}
	return k, nil
}

func randomSerial() (*big.Int, error) {
	// 127 random bits: unique, positive and within RFC 5280's 20 octets.
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate serial: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

func keyID(pub *ecdsa.PublicKey) ([]byte, error) {
	b, err := pub.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	id := sha1.Sum(b) //nolint:gosec // see import
	return id[:], nil
}

type certSpec struct {
	cn       string
	ca       bool
	maxPath  int
	usage    x509.KeyUsage
	crlDP    []string
	extra    []pkix.Extension
	key      *ecdsa.PrivateKey
	parent   *x509.Certificate // nil: self-signed
	signer   *ecdsa.PrivateKey
	now      time.Time
	validity time.Duration
}

// issue creates a certificate shaped like Intel's: ECDSA P-256 with SHA-256, the exact CN
// go-tdx-guest checks, and only the extensions Intel's certificates carry (a PCK leaf must have
// exactly six).
func issue(s certSpec) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	ski, err := keyID(&s.key.PublicKey)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: s.cn, Organization: []string{Organization}},
		NotBefore:             s.now.Add(-clockSkew),
		NotAfter:              s.now.Add(s.validity),
		KeyUsage:              s.usage,
		BasicConstraintsValid: true,
		IsCA:                  s.ca,
		MaxPathLen:            s.maxPath,
		MaxPathLenZero:        s.ca && s.maxPath == 0,
		SubjectKeyId:          ski,
		CRLDistributionPoints: s.crlDP,
		ExtraExtensions:       s.extra,
		SignatureAlgorithm:    x509.ECDSAWithSHA256,
	}
	parent, signer := s.parent, s.signer
	if parent == nil {
		parent, signer = tmpl, s.key
		tmpl.AuthorityKeyId = ski // Intel's root names itself as its authority too
	}
	// Signed until the DER length is a multiple of 3, so its PEM form has no base64 padding: padding
	// leaves unused bits that lenient decoders ignore, and every byte of a simulated quote's embedded
	// chain should matter, as TestEveryByteIsCovered checks. ECDSA signatures vary in length by a few
	// bytes, so a handful of attempts suffice.
	var der []byte
	for attempt := 0; attempt == 0 || len(der)%3 != 0; attempt++ {
		if attempt == maxSignAttempts {
			return nil, fmt.Errorf("create %q certificate: no unpadded encoding in %d signatures", s.cn, attempt)
		}
		var err error
		if der, err = x509.CreateCertificate(rand.Reader, tmpl, parent, &s.key.PublicKey, signer); err != nil {
			return nil, fmt.Errorf("create %q certificate: %w", s.cn, err)
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse %q certificate: %w", s.cn, err)
	}
	return cert, nil
}

// maxSignAttempts bounds the re-signing for an unpadded encoding; each attempt succeeds with
// probability about one third.
const maxSignAttempts = 64

// keySet is the private half of a development root of trust.
type keySet struct {
	root, platformCA, pck, tcbSigning *ecdsa.PrivateKey
}

// certSet is the public half.
type certSet struct {
	root, platformCA, pck, tcbSigning *x509.Certificate
}

// lifetimes overrides certValidity for single certificates; zero keeps it.
type lifetimes struct{ pck, platformCA, tcbSigning time.Duration }

func orDefault(d time.Duration) time.Duration {
	if d == 0 {
		return certValidity
	}
	return d
}

func newHierarchy(now time.Time, life lifetimes) (*keySet, *certSet, error) {
	var ks keySet
	for _, k := range []**ecdsa.PrivateKey{&ks.root, &ks.platformCA, &ks.pck, &ks.tcbSigning} {
		var err error
		if *k, err = newKey(); err != nil {
			return nil, nil, err
		}
	}
	sgxExt, err := sgxExtension()
	if err != nil {
		return nil, nil, err
	}
	var cs certSet
	if cs.root, err = issue(certSpec{
		cn: cnRoot, ca: true, maxPath: 1, usage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		crlDP: []string{RootCRLURL}, key: ks.root, now: now, validity: certValidity,
	}); err != nil {
		return nil, nil, err
	}
	if cs.platformCA, err = issue(certSpec{
		cn: cnPlatformCA, ca: true, maxPath: 0, usage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		crlDP: []string{RootCRLURL}, key: ks.platformCA, parent: cs.root, signer: ks.root, now: now, validity: orDefault(life.platformCA),
	}); err != nil {
		return nil, nil, err
	}
	if cs.pck, err = issue(certSpec{
		cn: cnPCK, usage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		crlDP: []string{pcs.PckCrlURL(platformCAID)}, extra: []pkix.Extension{sgxExt},
		key: ks.pck, parent: cs.platformCA, signer: ks.platformCA, now: now, validity: orDefault(life.pck),
	}); err != nil {
		return nil, nil, err
	}
	if cs.tcbSigning, err = issue(certSpec{
		cn: cnTCBSigning, usage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		crlDP: []string{RootCRLURL}, key: ks.tcbSigning, parent: cs.root, signer: ks.root, now: now, validity: orDefault(life.tcbSigning),
	}); err != nil {
		return nil, nil, err
	}
	return &ks, &cs, nil
}

type sgxOctets struct {
	ID    asn1.ObjectIdentifier
	Value []byte
}

type sgxInt struct {
	ID    asn1.ObjectIdentifier
	Value int
}

type sgxEnum struct {
	ID    asn1.ObjectIdentifier
	Value asn1.Enumerated
}

type sgxSeq struct {
	ID    asn1.ObjectIdentifier
	Value []asn1.RawValue
}

// sgxExtension builds the Intel SGX PCK certificate extension (OID 1.2.840.113741.1.13.1) for the
// simulated platform: PPID, TCB (16 SGX components, PCESVN, CPUSVN), PCE-ID, FMSPC and SGX type.
func sgxExtension() (pkix.Extension, error) {
	var tcb []asn1.RawValue
	add := func(list *[]asn1.RawValue, v any) error {
		b, err := asn1.Marshal(v)
		if err != nil {
			return fmt.Errorf("marshal SGX extension: %w", err)
		}
		*list = append(*list, asn1.RawValue{FullBytes: b})
		return nil
	}
	for i, svn := range platformSGXComponents {
		oid := append(append(asn1.ObjectIdentifier{}, oidSGXTCBPrefix...), i+1)
		if err := add(&tcb, sgxInt{oid, int(svn)}); err != nil {
			return pkix.Extension{}, err
		}
	}
	if err := add(&tcb, sgxInt{pcs.OidPCESvn, int(platformPCESVN)}); err != nil {
		return pkix.Extension{}, err
	}
	if err := add(&tcb, sgxOctets{pcs.OidCPUSvn, platformSGXComponents[:]}); err != nil {
		return pkix.Extension{}, err
	}
	var top []asn1.RawValue
	for _, v := range []any{
		sgxOctets{pcs.OidPPID, platformPPID[:]},
		sgxSeq{pcs.OidTCB, tcb},
		sgxOctets{pcs.OidPCEID, platformPCEID[:]},
		sgxOctets{pcs.OidFMSPC, platformFMSPC[:]},
		sgxEnum{oidSGXType, 0}, // 0: standard (not scalable) platform
	} {
		if err := add(&top, v); err != nil {
			return pkix.Extension{}, err
		}
	}
	val, err := asn1.Marshal(top)
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("marshal SGX extension: %w", err)
	}
	return pkix.Extension{Id: pcs.OidSgxExtension, Value: val}, nil
}

// checkHierarchy makes sure certificates loaded from disk form the chain go-tdx-guest expects and,
// when keys are given, that each key belongs to its certificate.
func checkHierarchy(cs *certSet, ks *keySet) error {
	for _, c := range []struct {
		cert, parent *x509.Certificate
		cn           string
	}{
		{cs.root, cs.root, cnRoot},
		{cs.platformCA, cs.root, cnPlatformCA},
		{cs.pck, cs.platformCA, cnPCK},
		{cs.tcbSigning, cs.root, cnTCBSigning},
	} {
		if c.cert.Subject.CommonName != c.cn {
			return fmt.Errorf("certificate CN %q, want %q", c.cert.Subject.CommonName, c.cn)
		}
		if err := c.cert.CheckSignatureFrom(c.parent); err != nil {
			return fmt.Errorf("check %q certificate signature: %w", c.cn, err)
		}
	}
	if ks == nil {
		return nil
	}
	for _, p := range []struct {
		cert *x509.Certificate
		key  *ecdsa.PrivateKey
	}{{cs.root, ks.root}, {cs.platformCA, ks.platformCA}, {cs.pck, ks.pck}, {cs.tcbSigning, ks.tcbSigning}} {
		if !p.key.PublicKey.Equal(p.cert.PublicKey) {
			return fmt.Errorf("private key does not match %q certificate", p.cert.Subject.CommonName)
		}
	}
	return nil
}
