package attest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
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

// hpkeKey is a fresh worker HPKE key pair.
func hpkeKey(t testing.TB) hpke.PrivateKey {
	t.Helper()
	k, err := HPKEKEM().GenerateKey()
	require.NoError(t, err)
	return k
}

func TestClaimsRoundTrip(t *testing.T) {
	workerKey := hpkeKey(t).PublicKey().Bytes()
	testCases := map[string]Claims{
		"client":         {Role: RoleClient, PublicKey: testKey(1)},
		"proxy with pay": {Role: RoleProxy, PublicKey: testKey(2), Version: "1.0", PaymentKey: testKey(3), CreatedAt: time.Unix(1700000000, 0).UTC()},
		"worker": {Role: RoleWorker, PublicKey: testKey(4), Version: "1.0", ConfigDigest: [32]byte{9},
			Model: "Qwen/Qwen3-8B", WeightsDigest: "sha256:ab", CreatedAt: time.Unix(1800000000, 0).UTC(), HPKEKey: workerKey},
		"worker, only the required": {Role: RoleWorker, PublicKey: testKey(5), HPKEKey: workerKey},
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
	good, err := (&Claims{Role: RoleWorker, PublicKey: testKey(1), Model: "m", HPKEKey: hpkeKey(t).PublicKey().Bytes()}).Encode()
	require.NoError(t, err)
	// The HPKE key is the last field: good without it, and the header of a key field.
	noKey := good[:len(good)-3-HPKEKeySize]
	testCases := map[string][]byte{
		"empty":           nil,
		"bad version":     append([]byte{9}, good[1:]...),
		"truncated":       good[:len(good)-1],
		"trailing byte":   append(append([]byte(nil), good...), 0),
		"unknown role":    {1, tagRole, 0, 3, 'b', 'a', 'd', tagPublicKey, 0, 32},
		"no key":          {1, tagRole, 0, 6, 'w', 'o', 'r', 'k', 'e', 'r'},
		"out of order":    append([]byte{1, tagPublicKey, 0, 32}, append(make([]byte, 32), tagRole, 0, 6, 'w', 'o', 'r', 'k', 'e', 'r')...),
		"zero length":     {1, tagRole, 0, 0},
		"explicit zeroes": append(append([]byte(nil), noKey[:len(noKey)-4]...), tagConfigDigest, 0, 32),
		"too large":       make([]byte, MaxClaimsSize+1),
	}
	for name, raw := range testCases {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeClaims(raw)
			assert.ErrorIs(t, err, ErrMalformedClaims)
		})
	}
}

// TestClaimsHPKEKey checks the rule of the HPKE key in both directions: every worker names a valid
// MLKEM768X25519 public key, no other role names one.
func TestClaimsHPKEKey(t *testing.T) {
	valid := hpkeKey(t).PublicKey().Bytes()
	// ML-KEM coefficients are 12 bits below q = 3329: all ones is out of range.
	notAKey := bytes.Repeat([]byte{0xff}, HPKEKeySize)
	testCases := map[string]struct {
		claims  Claims
		wantErr error
	}{
		"worker with a key":       {claims: Claims{Role: RoleWorker, HPKEKey: valid}},
		"proxy without a key":     {claims: Claims{Role: RoleProxy}},
		"worker without a key":    {claims: Claims{Role: RoleWorker}, wantErr: ErrMissingHPKEKey},
		"worker with a short key": {claims: Claims{Role: RoleWorker, HPKEKey: valid[:HPKEKeySize-1]}, wantErr: ErrMalformedHPKEKey},
		"worker with a long key": {claims: Claims{Role: RoleWorker, HPKEKey: append(bytes.Clone(valid), 0)},
			wantErr: ErrMalformedHPKEKey},
		"worker with a key out of range": {claims: Claims{Role: RoleWorker, HPKEKey: notAKey}, wantErr: ErrMalformedHPKEKey},
		"proxy with a key":               {claims: Claims{Role: RoleProxy, HPKEKey: valid}, wantErr: ErrHPKEKeyNotAllowed},
		"client with a key":              {claims: Claims{Role: RoleClient, HPKEKey: valid}, wantErr: ErrHPKEKeyNotAllowed},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			c := tc.claims
			c.PublicKey = testKey(7)
			enc, err := c.Encode()
			if tc.wantErr != nil {
				assert.ErrorIs(err, tc.wantErr)
				assert.ErrorIs(err, ErrMalformedClaims, "a finer class of malformed claims")
				// The same claims spelled out by hand are refused when parsed, for the same reason.
				raw := encodeUnchecked(c)
				_, err := DecodeClaims(raw)
				assert.ErrorIs(err, tc.wantErr)
				return
			}
			require.NoError(err)
			got, err := DecodeClaims(enc)
			require.NoError(err)
			assert.Equal(c.HPKEKey, got.HPKEKey)
		})
	}
}

// encodeUnchecked is the wire form of c's role, key and HPKE key, as a hostile node might send it.
func encodeUnchecked(c Claims) []byte {
	b := []byte{claimsVersion, tagRole, 0, byte(len(c.Role))}
	b = append(b, c.Role...)
	b = append(b, tagPublicKey, 0, ed25519.PublicKeySize)
	b = append(b, c.PublicKey...)
	if len(c.HPKEKey) > 0 {
		b = append(b, tagHPKEKey, byte(len(c.HPKEKey)>>8), byte(len(c.HPKEKey)))
		b = append(b, c.HPKEKey...)
	}
	return b
}

// TestClaimsHPKEPublicKey seals to the key a worker's decoded claims name and opens with its
// private half.
func TestClaimsHPKEPublicKey(t *testing.T) {
	require := require.New(t)
	priv := hpkeKey(t)
	enc, err := (&Claims{Role: RoleWorker, PublicKey: testKey(1), HPKEKey: priv.PublicKey().Bytes()}).Encode()
	require.NoError(err)
	c, err := DecodeClaims(enc)
	require.NoError(err)
	pub, err := c.HPKEPublicKey()
	require.NoError(err)
	sealed, err := hpke.Seal(pub, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte("info"), []byte("prompt"))
	require.NoError(err)
	opened, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte("info"), sealed)
	require.NoError(err)
	require.Equal("prompt", string(opened))

	_, err = (&Claims{Role: RoleProxy, PublicKey: testKey(2)}).HPKEPublicKey()
	require.ErrorIs(err, ErrHPKEKeyNotAllowed)
}

func TestClaimsEncodeRefusesBadKeys(t *testing.T) {
	_, err := (&Claims{Role: RoleProxy, PublicKey: []byte{1, 2}}).Encode()
	assert.ErrorIs(t, err, ErrMalformedClaims)
	_, err = (&Claims{Role: "boss", PublicKey: testKey(1)}).Encode()
	assert.ErrorIs(t, err, ErrMalformedClaims)
	// An empty but non-nil key would encode as no key at all: refused rather than dropped.
	_, err = (&Claims{Role: RoleClient, PublicKey: testKey(1), HPKEKey: []byte{}}).Encode()
	assert.ErrorIs(t, err, ErrHPKEKeyNotAllowed)
}

func FuzzDecodeClaims(f *testing.F) {
	key, err := HPKEKEM().GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	workerKey := key.PublicKey().Bytes()
	for _, c := range []Claims{
		{Role: RoleClient, PublicKey: testKey(1)},
		{Role: RoleProxy, PublicKey: testKey(2), Version: "1.0", PaymentKey: testKey(3)},
		{Role: RoleWorker, PublicKey: testKey(4), Version: "1.0", ConfigDigest: [32]byte{9}, Model: "m", WeightsDigest: "sha256:ab",
			CreatedAt: time.Unix(1800000000, 0), HPKEKey: workerKey},
		{Role: RoleWorker, PublicKey: testKey(5), HPKEKey: workerKey},
	} {
		enc, err := c.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	// Hostile shapes around the key: a worker without one, a proxy with one, a key out of range.
	f.Add(encodeUnchecked(Claims{Role: RoleWorker, PublicKey: testKey(6)}))
	f.Add(encodeUnchecked(Claims{Role: RoleProxy, PublicKey: testKey(6), HPKEKey: workerKey}))
	f.Add(encodeUnchecked(Claims{Role: RoleWorker, PublicKey: testKey(6), HPKEKey: bytes.Repeat([]byte{0xff}, HPKEKeySize)}))
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
		// Only workers carry an HPKE key, and theirs always opens as one.
		if _, err := c.HPKEPublicKey(); (err == nil) != (c.Role == RoleWorker) {
			t.Fatalf("%s claims: HPKE key check: %v", c.Role, err)
		}
	})
}
