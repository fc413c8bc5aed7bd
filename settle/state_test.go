package settle

import (
	"crypto/ed25519"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/ton"
)

func testKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
}

func testState() State {
	return State{
		Proxy: ton.AccountID{Workchain: 0, Address: [32]byte{1}},
		Party: ton.AccountID{Workchain: -1, Address: [32]byte{2}},
		Kind:  KindClientCharged,
		Seqno: 7,
		Total: 1_500_000_000,
	}
}

func TestStateCellLayout(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	c, err := testState().Cell()
	require.NoError(err)
	// 32 tag + 267 + 267 address + 8 kind + 64 seqno + 4 len + 4*8 total bytes (1.5e9 needs 4 bytes).
	assert.Equal(32+267+267+8+64+4+32, c.BitSize())
	assert.Equal(0, c.RefsSize())
	tag, err := c.ReadUint(32)
	require.NoError(err)
	assert.Equal(uint64(StateTag), tag)
}

func TestSignVerify(t *testing.T) {
	key := testKey()
	other := ed25519.NewKeyFromSeed(append(make([]byte, ed25519.SeedSize-1), 1))
	signed, err := Sign(testState(), key)
	require.NoError(t, err)

	testCases := map[string]struct {
		mutate  func(*SignedState)
		pub     ed25519.PublicKey
		wantErr error
	}{
		"valid":           {pub: key.Public().(ed25519.PublicKey)},
		"other key":       {pub: other.Public().(ed25519.PublicKey), wantErr: ErrBadSignature},
		"short key":       {pub: ed25519.PublicKey{1, 2}, wantErr: ErrBadSignature},
		"total raised":    {mutate: func(s *SignedState) { s.State.Total++ }, pub: key.Public().(ed25519.PublicKey), wantErr: ErrBadSignature},
		"other proxy":     {mutate: func(s *SignedState) { s.State.Proxy.Address[0] = 9 }, pub: key.Public().(ed25519.PublicKey), wantErr: ErrBadSignature},
		"kind swapped":    {mutate: func(s *SignedState) { s.State.Kind = KindWorkerEarned }, pub: key.Public().(ed25519.PublicKey), wantErr: ErrBadSignature},
		"signature flips": {mutate: func(s *SignedState) { s.Signature[10] ^= 1 }, pub: key.Public().(ed25519.PublicKey), wantErr: ErrBadSignature},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			s := signed
			if tc.mutate != nil {
				tc.mutate(&s)
			}
			err := s.Verify(tc.pub)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
		})
	}
}

// The signature is crypto/ed25519's over the state's hash, byte for byte: the contract checks it
// on chain (settle/contracts/tolk/proxy.tolk).
func TestSignAsStdLib(t *testing.T) {
	for seqno := range uint64(8) {
		st := testState()
		st.Seqno = seqno
		signed, err := Sign(st, testKey())
		require.NoError(t, err)
		h, err := st.Hash()
		require.NoError(t, err)
		require.Equal(t, ed25519.Sign(testKey(), h[:]), signed.Signature[:])
	}
}

func TestSignedStateRoundTrip(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	signed, err := Sign(testState(), testKey())
	require.NoError(err)
	b, err := signed.MarshalBinary()
	require.NoError(err)
	got, err := ParseSignedState(b)
	require.NoError(err)
	assert.Equal(signed, got)
	require.NoError(got.Verify(testKey().Public().(ed25519.PublicKey)))
}

func TestParseSignedStateRejects(t *testing.T) {
	signed, err := Sign(testState(), testKey())
	require.NoError(t, err)
	good, err := signed.Cell()
	require.NoError(t, err)

	build := func(f func(root, st *boc.Cell)) []byte {
		st := boc.NewCell()
		root := boc.NewCell()
		f(root, st)
		b, err := root.ToBoc()
		require.NoError(t, err)
		return b
	}
	stateBits := func(st *boc.Cell, tag uint64, kind uint64, coinsLen uint64) {
		require.NoError(t, st.WriteUint(tag, 32))
		for range 2 {
			require.NoError(t, st.WriteUint(0b100, 3))
			require.NoError(t, st.WriteUint(0, 8))
			require.NoError(t, st.WriteUint(0, 256))
		}
		require.NoError(t, st.WriteUint(kind, 8))
		require.NoError(t, st.WriteUint(1, 64))
		require.NoError(t, st.WriteUint(coinsLen, 4))
		for range coinsLen {
			require.NoError(t, st.WriteUint(0, 8))
		}
	}
	withSig := func(root, st *boc.Cell) {
		require.NoError(t, root.WriteUint(0, 256))
		require.NoError(t, root.WriteUint(0, 256))
		require.NoError(t, root.AddRef(st))
	}
	goodBoc, err := good.ToBoc()
	require.NoError(t, err)

	testCases := map[string][]byte{
		"empty":         nil,
		"garbage":       []byte("not a boc"),
		"truncated":     goodBoc[:len(goodBoc)-3],
		"no ref":        build(func(root, _ *boc.Cell) { require.NoError(t, root.WriteUint(0, 64)) }),
		"wrong tag":     build(func(root, st *boc.Cell) { stateBits(st, 0xdeadbeef, 1, 0); withSig(root, st) }),
		"unknown kind":  build(func(root, st *boc.Cell) { stateBits(st, StateTag, 3, 0); withSig(root, st) }),
		"non-canonical": build(func(root, st *boc.Cell) { stateBits(st, StateTag, 1, 2); withSig(root, st) }),
		"trailing bits": build(func(root, st *boc.Cell) {
			stateBits(st, StateTag, 1, 0)
			require.NoError(t, st.WriteBit(true))
			withSig(root, st)
		}),
	}
	for name, b := range testCases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseSignedState(b)
			require.ErrorIs(t, err, ErrMalformedState)
		})
	}
}

func FuzzParseSignedState(f *testing.F) {
	signed, err := Sign(testState(), testKey())
	require.NoError(f, err)
	b, err := signed.MarshalBinary()
	require.NoError(f, err)
	f.Add(b)
	f.Add([]byte{})
	seed, _ := hex.DecodeString("b5ee9c7241010101000200000000")
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSignedState(data)
		if err != nil {
			return
		}
		// Whatever parses must re-encode to bytes that parse to the same state.
		again, err := s.MarshalBinary()
		require.NoError(t, err)
		s2, err := ParseSignedState(again)
		require.NoError(t, err)
		require.Equal(t, s, s2)
	})
}
