package ratls

import (
	"crypto/ed25519"
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
