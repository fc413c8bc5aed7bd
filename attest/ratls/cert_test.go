package ratls

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
	"github.com/cocoon-network/cocoon/testdata"
)

func TestNewCertificateShape(t *testing.T) {
	require := require.New(t)
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(err)
	c, err := NewCertificate(CertOptions{Key: key, Claims: attesttest.Claims(attest.RoleWorker),
		Quoter: attesttest.Quoter(t, attesttest.Measurements(attest.RoleWorker))})
	require.NoError(err)
	rc, err := ParseCertificate(c.Certificate, time.Now(), 0)
	require.NoError(err)
	require.NotNil(rc.Quote)
	claims, err := attest.DecodeClaims(rc.Claims)
	require.NoError(err)
	require.Equal(attest.RoleWorker, claims.Role)
	require.Equal([]byte(rc.Key), []byte(claims.PublicKey))
	require.LessOrEqual(c.Leaf.NotAfter.Sub(c.Leaf.NotBefore), MaxValidity+time.Minute)

	_, err = ParseCertificate(c.Certificate, time.Now(), time.Hour)
	require.ErrorIs(err, ErrCertValidityTooLong)
}

// TestNewCertificateHPKEKey checks that a worker certificate's claims name the HPKE key it was made
// with (or a fresh one), and that other roles' certificates cannot carry one.
func TestNewCertificateHPKEKey(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	own, err := attest.HPKEKEM().GenerateKey()
	require.NoError(t, err)
	testCases := map[string]struct {
		role    attest.Role
		hpke    hpke.PrivateKey
		want    []byte // nil: any valid key
		wantErr error
	}{
		"worker with its key":   {role: attest.RoleWorker, hpke: own, want: own.PublicKey().Bytes()},
		"worker, key made here": {role: attest.RoleWorker},
		"proxy without a key":   {role: attest.RoleProxy},
		"proxy with a key":      {role: attest.RoleProxy, hpke: own, wantErr: attest.ErrHPKEKeyNotAllowed},
		"client with a key":     {role: attest.RoleClient, hpke: own, wantErr: attest.ErrHPKEKeyNotAllowed},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			require := require.New(t)
			claims := attesttest.Claims(tc.role)
			claims.HPKEKey = nil
			c, err := NewCertificate(CertOptions{Key: key, Claims: claims, HPKEKey: tc.hpke})
			if tc.wantErr != nil {
				require.ErrorIs(err, tc.wantErr)
				return
			}
			require.NoError(err)
			rc, err := ParseCertificate(c.Certificate, time.Now(), 0)
			require.NoError(err)
			got, err := attest.DecodeClaims(rc.Claims)
			require.NoError(err)
			if tc.role != attest.RoleWorker {
				require.Nil(got.HPKEKey)
				return
			}
			require.Len(got.HPKEKey, attest.HPKEKeySize)
			if tc.want != nil {
				require.Equal(tc.want, got.HPKEKey)
			}
		})
	}
}

func FuzzParseCertificate(f *testing.F) {
	seeds, err := testdata.Files("certs")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		// The self-signature is checked as crypto/x509 checks it.
		if cert, err := x509.ParseCertificate(der); err == nil {
			if pub, ok := cert.PublicKey.(ed25519.PublicKey); ok && cert.SignatureAlgorithm == x509.PureEd25519 {
				want := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) == nil
				if verify(pub, cert.RawTBSCertificate, cert.Signature) != want {
					t.Fatalf("verify disagrees with crypto/x509 (%v)", want)
				}
			}
		}
		rc, err := ParseCertificate([][]byte{der}, time.Now(), 0)
		if err != nil {
			return
		}
		if rc.Claims == nil || len(rc.Key) != 32 {
			t.Fatal("accepted certificate without claims or Ed25519 key")
		}
	})
}

// A certificate is self-signed when its own key signed it: every flipped bit of the signature, and
// another key's signature over the same certificate, are refused.
func TestParseCertificateSelfSignature(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	c, err := NewCertificate(CertOptions{Key: key, Claims: attesttest.Claims(attest.RoleClient)})
	require.NoError(t, err)
	der := c.Certificate[0]
	_, err = ParseCertificate([][]byte{der}, time.Now(), 0)
	require.NoError(t, err)

	sig := c.Leaf.Signature
	at := bytes.Index(der, sig)
	require.Positive(t, at)
	for bit := range 8 * len(sig) {
		bad := bytes.Clone(der)
		bad[at+bit/8] ^= 1 << (bit % 8)
		_, err := ParseCertificate([][]byte{bad}, time.Now(), 0)
		require.ErrorIs(t, err, ErrNotSelfSigned, "bit %d", bit)
	}

	_, other, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	bad := bytes.Clone(der)
	copy(bad[at:], ed25519.Sign(other, c.Leaf.RawTBSCertificate))
	_, err = ParseCertificate([][]byte{bad}, time.Now(), 0)
	require.ErrorIs(t, err, ErrNotSelfSigned)
}

// verify decides as crypto/ed25519 does, on keys voi expands and on those it does not.
func TestVerifyAsStdLib(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	msg := []byte("to be signed")
	sig := ed25519.Sign(priv, msg)
	require.True(t, verify(pub, msg, sig))
	for bit := range 8 * len(sig) {
		bad := bytes.Clone(sig)
		bad[bit/8] ^= 1 << (bit % 8)
		require.Equal(t, ed25519.Verify(pub, msg, bad), verify(pub, msg, bad), "bit %d", bit)
	}
	require.False(t, verify(pub, msg, sig[:63]))
	// The identity, a point of order 2, and a non-canonical encoding of the identity.
	for _, hexKey := range []string{
		"0100000000000000000000000000000000000000000000000000000000000000",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	} {
		k, err := hex.DecodeString(hexKey)
		require.NoError(t, err)
		for _, s := range [][]byte{sig, make([]byte, 64)} {
			require.Equal(t, ed25519.Verify(k, msg, s), verify(k, msg, s), hexKey)
		}
	}
}

// BenchmarkParseCertificate parses a worker's certificate, as a proxy does at every handshake.
func BenchmarkParseCertificate(b *testing.B) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(b, err)
	c, err := NewCertificate(CertOptions{Key: key, Claims: attesttest.Claims(attest.RoleWorker),
		Quoter: attesttest.Quoter(b, attesttest.Measurements(attest.RoleWorker))})
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCertificate(c.Certificate, time.Now(), 0); err != nil {
			b.Fatal(err)
		}
	}
}
