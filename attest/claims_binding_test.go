package attest_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
)

// TestHPKEKeyBoundByReportData checks that the quote covers the worker's HPKE key: claims naming
// another key, or the same key with one byte changed, no longer match the quote's report data.
func TestHPKEKeyBoundByReportData(t *testing.T) {
	other, err := attest.HPKEKEM().GenerateKey()
	require.NoError(t, err)
	testCases := map[string]func(key []byte){
		// The X25519 half is the key's last 32 bytes, where any value is a valid point.
		"one byte flipped": func(key []byte) { key[len(key)-1] ^= 1 },
		"another key":      func(key []byte) { copy(key, other.PublicKey().Bytes()) },
	}
	for name, change := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			v := attesttest.Verifier(t, attesttest.OpenPolicy())
			ev := evidence(t, attest.RoleWorker, attesttest.Quoter(t, attesttest.Measurements(attest.RoleWorker)))
			peer, err := v.Verify(ev)
			require.NoError(err)
			require.Equal(attesttest.HPKEPublicKey(), peer.Claims.HPKEKey, "the verified peer names its HPKE key")

			at := bytes.Index(ev.Claims, peer.Claims.HPKEKey)
			require.Positive(at)
			ev.Claims = bytes.Clone(ev.Claims)
			change(ev.Claims[at : at+attest.HPKEKeySize])
			c, err := attest.DecodeClaims(ev.Claims)
			require.NoError(err, "the changed claims are well formed")
			require.NotEqual(peer.Claims.HPKEKey, c.HPKEKey)
			_, err = v.Verify(ev)
			assert.ErrorIs(err, attest.ErrReportDataMismatch)
		})
	}
}
