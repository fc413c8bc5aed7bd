package seal

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newKey(t testing.TB) *PrivateKey {
	t.Helper()
	k, err := GenerateKey()
	require.NoError(t, err)
	return k
}

func testBinding() Binding {
	return Binding{RequestID: "req-1", Model: "qwen3-8b", QuoteHash: HashQuote([]byte("quote"))}
}

func flip(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 0x01
	return out
}

func TestKeys(t *testing.T) {
	k := newKey(t)
	b := k.PublicKeyBytes()
	require.Len(t, b, PublicKeySize)
	pub, err := ParsePublicKey(b)
	require.NoError(t, err)
	assert.Equal(t, b, pub.Bytes())
	assert.Equal(t, k.PublicKey().id, pub.id)
	b[0] ^= 1
	assert.NotEqual(t, b, k.PublicKeyBytes(), "PublicKeyBytes returns a copy")
	b[0] ^= 1

	for name, in := range map[string][]byte{
		"empty":     nil,
		"short":     b[:PublicKeySize-1],
		"long":      append(bytes.Clone(b), 0),
		"all 0xff":  bytes.Repeat([]byte{0xff}, PublicKeySize),
		"x25519 32": b[:32],
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParsePublicKey(in)
			require.ErrorIs(t, err, ErrMalformed)
		})
	}
}

func TestRequestRoundTrip(t *testing.T) {
	k := newKey(t)
	testCases := map[string][]byte{
		"empty":    {},
		"small":    []byte(`{"model":"qwen3-8b","messages":[{"role":"user","content":"hi"}]}`),
		"4 KiB":    bytes.Repeat([]byte("a"), 4<<10),
		"max size": bytes.Repeat([]byte("b"), MaxBodySize),
	}
	for name, body := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			sealed, opener, err := SealRequest(k.PublicKey(), testBinding(), body)
			require.NoError(err)
			assert.Len(sealed, len(body)+RequestOverhead)
			if len(body) > 16 {
				assert.NotContains(string(sealed), string(body[:16]))
			}
			got, sealer, err := OpenRequest(k, testBinding(), sealed)
			require.NoError(err)
			assert.Equal(string(body), string(got))
			require.NotNil(opener)
			require.NotNil(sealer)
		})
	}
}

func TestSealRequestRefuses(t *testing.T) {
	k := newKey(t)
	testCases := map[string]struct {
		b    Binding
		body []byte
	}{
		"body too large":      {b: testBinding(), body: make([]byte, MaxBodySize+1)},
		"request id too long": {b: Binding{RequestID: string(make([]byte, MaxFieldSize+1))}},
		"model too long":      {b: Binding{Model: string(make([]byte, MaxFieldSize+1))}},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			_, _, err := SealRequest(k.PublicKey(), tc.b, tc.body)
			assert.ErrorIs(t, err, ErrTooLarge)
		})
	}
}

func TestOpenRequestRefuses(t *testing.T) {
	k, other := newKey(t), newKey(t)
	body := []byte(`{"messages":[{"role":"user","content":"secret"}]}`)
	sealed, _, err := SealRequest(k.PublicKey(), testBinding(), body)
	require.NoError(t, err)
	toOther, _, err := SealRequest(other.PublicKey(), testBinding(), body)
	require.NoError(t, err)

	withBinding := func(f func(*Binding)) Binding { b := testBinding(); f(&b); return b }
	testCases := map[string]struct {
		key     *PrivateKey
		binding Binding
		sealed  []byte
		wantErr error
	}{
		"flipped version":          {sealed: flip(sealed, 0), wantErr: ErrMalformed},
		"flipped key id":           {sealed: flip(sealed, 1), wantErr: ErrWrongKey},
		"flipped binding id":       {sealed: flip(sealed, 1+keyIDSize), wantErr: ErrBinding},
		"flipped seal nonce":       {sealed: flip(sealed, requestHeaderSize-1), wantErr: ErrTampered},
		"flipped enc, ML-KEM part": {sealed: flip(sealed, requestHeaderSize), wantErr: ErrTampered},
		"flipped enc, X25519 part": {sealed: flip(sealed, requestHeaderSize+encSize-1), wantErr: ErrTampered},
		"flipped ciphertext":       {sealed: flip(sealed, requestHeaderSize+encSize+3), wantErr: ErrTampered},
		"flipped tag":              {sealed: flip(sealed, len(sealed)-1), wantErr: ErrTampered},
		"sealed to another worker": {sealed: toOther, wantErr: ErrWrongKey},
		"opened by another worker": {key: other, sealed: sealed, wantErr: ErrWrongKey},
		"another request id":       {binding: withBinding(func(b *Binding) { b.RequestID = "req-2" }), sealed: sealed, wantErr: ErrBinding},
		"another model":            {binding: withBinding(func(b *Binding) { b.Model = "llama" }), sealed: sealed, wantErr: ErrBinding},
		"another quote":            {binding: withBinding(func(b *Binding) { b.QuoteHash[0] ^= 1 }), sealed: sealed, wantErr: ErrBinding},
		"truncated":                {sealed: sealed[:RequestOverhead-1], wantErr: ErrMalformed},
		"empty":                    {sealed: nil, wantErr: ErrMalformed},
		"cut short by one byte":    {sealed: sealed[:len(sealed)-1], wantErr: ErrTampered},
		"one byte added":           {sealed: append(bytes.Clone(sealed), 0), wantErr: ErrTampered},
		"too large":                {sealed: make([]byte, MaxSealedRequestSize+1), wantErr: ErrTooLarge},
		"binding field too long":   {binding: Binding{Model: string(make([]byte, MaxFieldSize+1))}, sealed: sealed, wantErr: ErrTooLarge},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			key := tc.key
			if key == nil {
				key = k
			}
			b := tc.binding
			if b == (Binding{}) {
				b = testBinding()
			}
			got, sealer, err := OpenRequest(key, b, tc.sealed)
			assert.ErrorIs(err, tc.wantErr)
			assert.Nil(got)
			assert.Nil(sealer)
		})
	}
}

// exchange seals a request and returns both ends of its answer.
func exchange(t testing.TB, k *PrivateKey) (*AnswerSealer, *AnswerOpener) {
	t.Helper()
	sealed, opener, err := SealRequest(k.PublicKey(), testBinding(), []byte("body"))
	require.NoError(t, err)
	_, sealer, err := OpenRequest(k, testBinding(), sealed)
	require.NoError(t, err)
	return sealer, opener
}

// sealAnswer seals chunks and the end marker, returning the frames in order.
func sealAnswer(t testing.TB, s *AnswerSealer, chunks [][]byte, trailer []byte) [][]byte {
	t.Helper()
	var frames [][]byte
	for _, c := range chunks {
		f, err := s.Seal(c)
		require.NoError(t, err)
		frames = append(frames, f)
	}
	f, err := s.End(trailer)
	require.NoError(t, err)
	return append(frames, f)
}

func TestAnswerRoundTrip(t *testing.T) {
	k := newKey(t)
	testCases := map[string]struct {
		chunks  [][]byte
		trailer []byte
	}{
		"no chunks":          {},
		"one chunk":          {chunks: [][]byte{[]byte(`{"choices":[]}`)}},
		"stream with empty":  {chunks: [][]byte{[]byte("data: a"), {}, []byte("data: b"), []byte("data: [DONE]")}},
		"trailer":            {chunks: [][]byte{[]byte("x")}, trailer: []byte("receipt")},
		"max chunk, trailer": {chunks: [][]byte{make([]byte, MaxChunkSize)}, trailer: make([]byte, MaxTrailerSize)},
		"many chunks":        {chunks: bytes.Fields(bytes.Repeat([]byte("tok "), 1000))},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			sealer, opener := exchange(t, k)
			frames := sealAnswer(t, sealer, tc.chunks, tc.trailer)
			var answer []byte
			for i, f := range frames {
				assert.False(opener.Ended())
				p, err := opener.Open(f)
				require.NoError(err, "frame %d", i)
				if i < len(tc.chunks) {
					assert.Equal(string(tc.chunks[i]), string(p))
				} else {
					assert.Nil(p)
				}
				answer = append(answer, p...)
			}
			assert.True(opener.Ended())
			require.NoError(opener.Done())
			assert.Equal(string(tc.trailer), string(opener.Trailer()))
			want := Digest(sha256.Sum256(answer))
			assert.Equal(want, opener.AnswerHash())
			assert.Equal(want, sealer.AnswerHash())
		})
	}
}

func TestAnswerSealerRefuses(t *testing.T) {
	assert := assert.New(t)
	sealer, _ := exchange(t, newKey(t))
	_, err := sealer.Seal(make([]byte, MaxChunkSize+1))
	assert.ErrorIs(err, ErrTooLarge)
	_, err = sealer.End(make([]byte, MaxTrailerSize+1))
	assert.ErrorIs(err, ErrTooLarge)
	_, err = sealer.End(nil)
	assert.NoError(err)
	_, err = sealer.Seal(nil)
	assert.ErrorIs(err, ErrEnded)
	_, err = sealer.End(nil)
	assert.ErrorIs(err, ErrEnded)
}

func TestAnswerOpenerRefuses(t *testing.T) {
	k := newKey(t)
	chunks := [][]byte{[]byte("data: one"), []byte("data: two"), []byte("data: three")}
	// frames: 0, 1, 2 are chunks, 3 the end marker.
	testCases := map[string]struct {
		edit    func(frames, others [][]byte) [][]byte
		wantErr error // from Open or, if every Open succeeds, Done
	}{
		"flipped byte in chunk": {
			edit: func(f, _ [][]byte) [][]byte { f[1] = flip(f[1], len(f[1])-5); return f }, wantErr: ErrTampered,
		},
		"flipped byte in tag": {
			edit: func(f, _ [][]byte) [][]byte { f[1] = flip(f[1], len(f[1])-1); return f }, wantErr: ErrTampered,
		},
		"flipped answer nonce": {
			edit: func(f, _ [][]byte) [][]byte { f[0] = flip(f[0], frameHeaderSize); return f }, wantErr: ErrTampered,
		},
		"flipped sequence number": {
			edit: func(f, _ [][]byte) [][]byte { f[1][4] = 2; return f }, wantErr: ErrTampered,
		},
		"chunk turned into end": {
			edit: func(f, _ [][]byte) [][]byte { f[1][0] = kindEnd; return f }, wantErr: ErrTampered,
		},
		"flipped byte in end": {
			edit: func(f, _ [][]byte) [][]byte { f[3] = flip(f[3], frameHeaderSize); return f }, wantErr: ErrTampered,
		},
		"unknown kind": {
			edit: func(f, _ [][]byte) [][]byte { f[1][0] = 9; return f }, wantErr: ErrMalformed,
		},
		"dropped chunk": {
			edit: func(f, _ [][]byte) [][]byte { return [][]byte{f[0], f[2], f[3]} }, wantErr: ErrOutOfOrder,
		},
		"dropped first chunk": {
			edit: func(f, _ [][]byte) [][]byte { return f[1:] }, wantErr: ErrOutOfOrder,
		},
		"dropped last chunk": {
			edit: func(f, _ [][]byte) [][]byte { return [][]byte{f[0], f[1], f[3]} }, wantErr: ErrOutOfOrder,
		},
		"reordered chunks": {
			edit: func(f, _ [][]byte) [][]byte { return [][]byte{f[0], f[2], f[1], f[3]} }, wantErr: ErrOutOfOrder,
		},
		"replayed chunk": {
			edit: func(f, _ [][]byte) [][]byte { return [][]byte{f[0], f[1], f[1], f[2], f[3]} }, wantErr: ErrReplayed,
		},
		"replayed first chunk": {
			edit: func(f, _ [][]byte) [][]byte { return [][]byte{f[0], f[1], f[0], f[2], f[3]} }, wantErr: ErrReplayed,
		},
		"replayed end": {
			edit: func(f, _ [][]byte) [][]byte { return append(f, f[3]) }, wantErr: ErrReplayed,
		},
		"chunk after end": {
			edit: func(f, _ [][]byte) [][]byte { return append(f, f[2]) }, wantErr: ErrReplayed,
		},
		"truncated: no end marker": {
			edit: func(f, _ [][]byte) [][]byte { return f[:3] }, wantErr: ErrTruncated,
		},
		"truncated: nothing arrived": {
			edit: func(f, _ [][]byte) [][]byte { return nil }, wantErr: ErrTruncated,
		},
		"frame of another answer": {
			edit: func(f, o [][]byte) [][]byte { return [][]byte{f[0], o[1], f[2], f[3]} }, wantErr: ErrTampered,
		},
		"first frame of another answer": {
			edit: func(f, o [][]byte) [][]byte { return [][]byte{o[0], f[1], f[2], f[3]} }, wantErr: ErrTampered,
		},
		"frame too short": {
			edit: func(f, _ [][]byte) [][]byte { f[1] = f[1][:frameHeaderSize+tagSize-1]; return f }, wantErr: ErrMalformed,
		},
		"first frame too short for its nonce": {
			edit: func(f, _ [][]byte) [][]byte { f[0] = f[0][:frameHeaderSize+answerNonceSize]; return f }, wantErr: ErrMalformed,
		},
		"frame too large": {
			edit: func(f, _ [][]byte) [][]byte { f[1] = append(f[1], make([]byte, MaxFrameSize)...); return f }, wantErr: ErrTooLarge,
		},
		"end marker too large": {
			edit: func(f, _ [][]byte) [][]byte { f[3] = append(f[3], make([]byte, MaxTrailerSize+1)...); return f }, wantErr: ErrTooLarge,
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			sealer, opener := exchange(t, k)
			frames := sealAnswer(t, sealer, chunks, nil)
			// Another answer to the same request, replayed to the worker by the proxy: the same
			// HPKE context, another answer nonce.
			otherSealer, _ := exchange(t, k)
			others := sealAnswer(t, otherSealer, chunks, nil)
			var err error
			for _, f := range tc.edit(frames, others) {
				if _, err = opener.Open(f); err != nil {
					break
				}
			}
			if err == nil {
				err = opener.Done()
			}
			assert.ErrorIs(err, tc.wantErr)
			assert.ErrorIs(opener.Done(), tc.wantErr, "Done reports the first refusal")
			assert.False(opener.Ended())
			_, again := opener.Open(frames[len(frames)-1])
			assert.ErrorIs(again, tc.wantErr, "a refusal is final")
		})
	}
}

// TestReplayedRequestGetsFreshKeys: a proxy that replays a sealed request has the worker answer
// under other keys, so two answers never share a key and nonce.
func TestReplayedRequestGetsFreshKeys(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	k := newKey(t)
	sealed, _, err := SealRequest(k.PublicKey(), testBinding(), []byte("body"))
	require.NoError(err)
	_, s1, err := OpenRequest(k, testBinding(), sealed)
	require.NoError(err)
	_, s2, err := OpenRequest(k, testBinding(), sealed)
	require.NoError(err)
	f1, err := s1.Seal([]byte("same chunk"))
	require.NoError(err)
	f2, err := s2.Seal([]byte("same chunk"))
	require.NoError(err)
	assert.NotEqual(f1[frameHeaderSize+answerNonceSize:], f2[frameHeaderSize+answerNonceSize:])
}

// TestAnswerInPlace: AppendSeal into a reused buffer and OpenInPlace give the same answer as
// Seal and Open, allocate nothing per chunk, and the trailer outlives the buffer it came in.
func TestAnswerInPlace(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	sealer, opener := exchange(t, newKey(t))
	chunks := [][]byte{[]byte("data: a"), {}, []byte("data: bb"), bytes.Repeat([]byte("c"), 300)}
	var buf []byte
	for i, c := range chunks {
		prefix := []byte("keep")
		out, err := sealer.AppendSeal(append(buf[:0], prefix...), c)
		require.NoError(err)
		assert.Equal("keep", string(out[:4]), "AppendSeal appends")
		buf = out
		p, err := opener.OpenInPlace(out[4:])
		require.NoError(err, "chunk %d", i)
		assert.Equal(string(c), string(p))
	}
	end, err := sealer.End([]byte("receipt"))
	require.NoError(err)
	_, err = opener.OpenInPlace(end)
	require.NoError(err)
	clear(end)
	assert.Equal("receipt", string(opener.Trailer()))
	require.NoError(opener.Done())
	assert.Equal(sealer.AnswerHash(), opener.AnswerHash())

	s2, o2 := exchange(t, newKey(t))
	chunk := bytes.Repeat([]byte("t"), 128)
	buf, err = s2.AppendSeal(buf[:0], chunk) // frame 0, with the answer nonce
	require.NoError(err)
	_, err = o2.OpenInPlace(buf)
	require.NoError(err)
	allocs := testing.AllocsPerRun(100, func() {
		buf, _ = s2.AppendSeal(buf[:0], chunk)
		_, _ = o2.OpenInPlace(buf)
	})
	assert.Zero(allocs, "allocations per sealed and opened chunk")
}
