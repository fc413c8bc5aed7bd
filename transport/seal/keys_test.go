package seal

import (
	"crypto/ecdh"
	"crypto/hpke"
	"testing"

	"github.com/stretchr/testify/assert"
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

// TestRequestKeyID: a sealed request names its key's id in clear, which KeyIDOf computes from the
// claims' encoding; a short or foreign request names none.
func TestRequestKeyID(t *testing.T) {
	k := newKey(t)
	sealed, _, err := SealRequest(k.PublicKey(), testBinding(), []byte("hello"))
	require.NoError(t, err)
	id, ok := RequestKeyID(sealed)
	require.True(t, ok)
	assert.Equal(t, KeyIDOf(k.PublicKeyBytes()), id)
	assert.Equal(t, k.PublicKey().ID(), id)
	_, ok = RequestKeyID(sealed[:RequestOverhead-1])
	assert.False(t, ok)
	_, ok = RequestKeyID(flip(sealed, 0))
	assert.False(t, ok)
}
