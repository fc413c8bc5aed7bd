package seal

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Keys and signatures at the edges of the rules: the identity point, a point of small order, a
// non-canonical encoding of the identity, and a signature whose R is the identity.
var edgeKeys = [][]byte{
	append([]byte{1}, make([]byte, 31)...),                      // identity
	append([]byte{0xec}, append(repeat(0xff, 30), 0x7f)...),     // y = p − 1: order 2
	append([]byte{0xee}, append(repeat(0xff, 30), 0x7f)...),     // y = p + 1 ≡ 1: non-canonical identity
	append([]byte{0xc7, 0x17, 0x6a, 0x70}, make([]byte, 28)...), // not on the curve for most readers
}

func repeat(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

// TestVerifyAsStdLib: verify accepts exactly what crypto/ed25519 accepts, for good signatures,
// every single-bit change of them, and the edge keys, and keeps doing so from its cache.
func TestVerifyAsStdLib(t *testing.T) {
	for i := range 4 {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		fields := []byte{byte(i), 1, 2, 3}
		sig := ed25519.Sign(priv, append([]byte(usageLabel), fields...))
		for range 2 { // the second time from the cache
			require.True(t, verify(pub, usageLabel, fields, sig))
		}
		assert.False(t, verify(pub, receiptLabel, fields, sig), "another label")
		for bit := range 8 * len(sig) {
			bad := append([]byte(nil), sig...)
			bad[bit/8] ^= 1 << (bit % 8)
			want := ed25519.Verify(pub, append([]byte(usageLabel), fields...), bad)
			require.Equal(t, want, verify(pub, usageLabel, fields, bad), "signature bit %d", bit)
		}
	}
	sigs := [][]byte{make([]byte, 64), append(append([]byte{1}, make([]byte, 31)...), make([]byte, 32)...)}
	for _, pub := range edgeKeys {
		for _, sig := range sigs {
			want := ed25519.Verify(pub, append([]byte(usageLabel), 'x'), sig)
			assert.Equal(t, want, verify(pub, usageLabel, []byte{'x'}, sig), "key %x, signature %x", pub, sig)
		}
	}
	assert.False(t, verify(edgeKeys[0][:31], usageLabel, nil, sigs[0]), "short key")
	assert.False(t, verify(edgeKeys[0], usageLabel, nil, sigs[0][:63]), "short signature")
}

// FuzzVerify: on any key, message and signature, verify says what crypto/ed25519 says.
func FuzzVerify(f *testing.F) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(f, err)
	msg := []byte("fields")
	f.Add([]byte(pub), msg, ed25519.Sign(priv, append([]byte(usageLabel), msg...)))
	for _, k := range edgeKeys {
		f.Add(k, msg, make([]byte, 64))
	}
	f.Fuzz(func(t *testing.T, pub, fields, sig []byte) {
		want := len(pub) == ed25519.PublicKeySize && len(sig) == ed25519.SignatureSize &&
			ed25519.Verify(pub, append([]byte(usageLabel), fields...), sig)
		if got := verify(pub, usageLabel, fields, sig); got != want {
			t.Fatalf("verify %v, crypto/ed25519 %v: key %x, signature %x", got, want, pub, sig)
		}
	})
}

// BenchmarkVerify is one usage record's or receipt's signature check, the key already seen.
func BenchmarkVerify(b *testing.B) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(b, err)
	fields := make([]byte, 300)
	sig := ed25519.Sign(priv, append([]byte(receiptLabel), fields...))
	b.ReportAllocs()
	for b.Loop() {
		if !verify(pub, receiptLabel, fields, sig) {
			b.Fatal("rejected")
		}
	}
}

// BenchmarkSign: a worker's signature over a record, and crypto/ed25519's for comparison.
func BenchmarkSign(b *testing.B) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(b, err)
	fields := make([]byte, 300)
	b.Run("sign", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sign(priv, receiptLabel, fields)
		}
	})
	b.Run("crypto-ed25519", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ed25519.Sign(priv, append([]byte(receiptLabel), fields...))
		}
	})
}

// TestSignAsStdLib: sign makes the very signature crypto/ed25519 makes.
func TestSignAsStdLib(t *testing.T) {
	for i := range 16 {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		fields := repeat(byte(i), i*37)
		want := ed25519.Sign(priv, append([]byte(receiptLabel), fields...))
		require.Equal(t, want, sign(priv, receiptLabel, fields))
	}
}

// FuzzSign: for any seed and message, sign and crypto/ed25519 agree.
func FuzzSign(f *testing.F) {
	f.Add(make([]byte, ed25519.SeedSize), []byte("fields"))
	f.Fuzz(func(t *testing.T, seed, fields []byte) {
		if len(seed) != ed25519.SeedSize {
			return
		}
		priv := ed25519.NewKeyFromSeed(seed)
		if want := ed25519.Sign(priv, append([]byte(usageLabel), fields...)); !bytes.Equal(want, sign(priv, usageLabel, fields)) {
			t.Fatalf("seed %x: sign differs from crypto/ed25519", seed)
		}
	})
}
