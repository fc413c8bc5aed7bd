package attest

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testKey(b byte) ed25519.PublicKey {
	k := make(ed25519.PublicKey, ed25519.PublicKeySize)
	k[0] = b
	return k
}

func TestClaimsRoundTrip(t *testing.T) {
	testCases := map[string]Claims{
		"client":         {Role: RoleClient, PublicKey: testKey(1)},
		"proxy with pay": {Role: RoleProxy, PublicKey: testKey(2), Version: "1.0", PaymentKey: testKey(3), CreatedAt: time.Unix(1700000000, 0).UTC()},
		"worker": {Role: RoleWorker, PublicKey: testKey(4), Version: "1.0", ConfigDigest: [32]byte{9},
			Model: "Qwen/Qwen3-8B", WeightsDigest: "sha256:ab", CreatedAt: time.Unix(1800000000, 0).UTC()},
	}
	for name, c := range testCases {
		t.Run(name, func(t *testing.T) {
			require := require.New(t)
			enc, err := c.Encode()
			require.NoError(err)
			again, err := c.Encode()
			require.NoError(err)
			require.Equal(enc, again, "encoding is deterministic")
			got, err := DecodeClaims(enc)
			require.NoError(err)
			require.Equal(c, *got)
		})
	}
}

func TestClaimsRejected(t *testing.T) {
	good, err := (&Claims{Role: RoleWorker, PublicKey: testKey(1), Model: "m"}).Encode()
	require.NoError(t, err)
	testCases := map[string][]byte{
		"empty":           nil,
		"bad version":     append([]byte{9}, good[1:]...),
		"truncated":       good[:len(good)-1],
		"trailing byte":   append(append([]byte(nil), good...), 0),
		"unknown role":    {1, tagRole, 0, 3, 'b', 'a', 'd', tagPublicKey, 0, 32},
		"no key":          {1, tagRole, 0, 6, 'w', 'o', 'r', 'k', 'e', 'r'},
		"out of order":    append([]byte{1, tagPublicKey, 0, 32}, append(make([]byte, 32), tagRole, 0, 6, 'w', 'o', 'r', 'k', 'e', 'r')...),
		"zero length":     {1, tagRole, 0, 0},
		"explicit zeroes": append(append([]byte(nil), good[:len(good)-4]...), tagConfigDigest, 0, 32),
		"too large":       make([]byte, MaxClaimsSize+1),
	}
	for name, raw := range testCases {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeClaims(raw)
			assert.ErrorIs(t, err, ErrMalformedClaims)
		})
	}
}

func TestClaimsEncodeRefusesBadKeys(t *testing.T) {
	_, err := (&Claims{Role: RoleProxy, PublicKey: []byte{1, 2}}).Encode()
	assert.ErrorIs(t, err, ErrMalformedClaims)
	_, err = (&Claims{Role: "boss", PublicKey: testKey(1)}).Encode()
	assert.ErrorIs(t, err, ErrMalformedClaims)
}

func FuzzDecodeClaims(f *testing.F) {
	for _, c := range []Claims{
		{Role: RoleClient, PublicKey: testKey(1)},
		{Role: RoleWorker, PublicKey: testKey(4), Version: "1.0", ConfigDigest: [32]byte{9}, Model: "m", WeightsDigest: "sha256:ab", CreatedAt: time.Unix(1800000000, 0)},
	} {
		enc, err := c.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	for _, seed := range seedFiles(f, "claims") {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := DecodeClaims(raw)
		if err != nil {
			return
		}
		// Whatever decodes must encode back to the same bytes: one encoding per claim set.
		enc, err := c.Encode()
		if err != nil {
			t.Fatalf("decoded claims do not encode: %v", err)
		}
		if string(enc) != string(raw) {
			t.Fatalf("non-canonical input accepted")
		}
	})
}
