package ratls

import (
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
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
		rc, err := ParseCertificate([][]byte{der}, time.Now(), 0)
		if err != nil {
			return
		}
		if rc.Claims == nil || len(rc.Key) != 32 {
			t.Fatal("accepted certificate without claims or Ed25519 key")
		}
	})
}
