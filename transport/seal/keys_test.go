package seal

import (
	"crypto/ecdh"
	"crypto/hpke"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFromHPKE: a key the worker's identity made opens what was sealed to its public half, which
// is what the claims name; a key of another KEM is refused.
func TestFromHPKE(t *testing.T) {
	require := require.New(t)
	hk, err := hpke.MLKEM768X25519().GenerateKey()
	require.NoError(err)
	k, err := FromHPKE(hk)
	require.NoError(err)
	require.Equal(hk.PublicKey().Bytes(), k.PublicKeyBytes())
	b := Binding{RequestID: "r", Model: "m"}
	sealed, _, err := SealRequest(k.PublicKey(), b, []byte("hello"))
	require.NoError(err)
	body, _, err := OpenRequest(k, b, sealed)
	require.NoError(err)
	require.Equal("hello", string(body))

	other, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	require.NoError(err)
	_, err = FromHPKE(other)
	require.ErrorIs(err, ErrWrongKey)
}
