package seal

import (
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fuzzKey is one worker key for every fuzz input (key generation would dominate otherwise).
var fuzzKey = sync.OnceValue(func() *PrivateKey {
	k, err := GenerateKey()
	if err != nil {
		panic(err)
	}
	return k
})

func FuzzOpenRequest(f *testing.F) {
	k := fuzzKey()
	sealed, _, err := SealRequest(k.PublicKey(), testBinding(), []byte(`{"model":"m"}`))
	require.NoError(f, err)
	f.Add(sealed)
	f.Add(sealed[:RequestOverhead])
	f.Add([]byte{Version})
	f.Fuzz(func(t *testing.T, b []byte) {
		body, sealer, err := OpenRequest(k, testBinding(), b)
		if err != nil {
			require.Nil(t, body)
			require.Nil(t, sealer)
			return
		}
		require.LessOrEqual(t, len(body), len(b)-RequestOverhead)
	})
}

// FuzzAnswerOpen feeds an opener a stream of frames cut from the input (each preceded by a 2-byte
// length), after the frames of a real answer were offered as seeds.
func FuzzAnswerOpen(f *testing.F) {
	k := fuzzKey()
	sealed, seedOpener, err := SealRequest(k.PublicKey(), testBinding(), []byte("body"))
	require.NoError(f, err)
	_, sealer, err := OpenRequest(k, testBinding(), sealed)
	require.NoError(f, err)
	var stream []byte
	for _, c := range []string{"data: a", "", "data: [DONE]"} {
		fr, err := sealer.Seal([]byte(c))
		require.NoError(f, err)
		stream = binary.BigEndian.AppendUint16(stream, uint16(len(fr)))
		stream = append(stream, fr...)
	}
	end, err := sealer.End([]byte("trailer"))
	require.NoError(f, err)
	stream = append(binary.BigEndian.AppendUint16(stream, uint16(len(end))), end...)
	f.Add(stream)
	f.Add(stream[:len(stream)/2])
	f.Add([]byte{0, 5, kindChunk, 0, 0, 0, 0})

	f.Fuzz(func(t *testing.T, b []byte) {
		// A fresh opener of the seeds' request, so that mutated seeds get past authentication.
		opener := &AnswerOpener{secret: seedOpener.secret, enc: seedOpener.enc}
		for len(b) >= 2 {
			n := min(int(binary.BigEndian.Uint16(b)), len(b)-2)
			frame := b[2 : 2+n]
			b = b[2+n:]
			p, err := opener.Open(frame)
			if err != nil {
				require.Nil(t, p)
				break
			}
			require.LessOrEqual(t, len(p), len(frame))
		}
		_ = opener.Done()
		require.LessOrEqual(t, len(opener.Trailer()), MaxTrailerSize)
	})
}

func FuzzParseUsageRecord(f *testing.F) {
	_, priv, err := ed25519.GenerateKey(nil)
	require.NoError(f, err)
	r := &UsageRecord{RequestID: "req-1", Model: "m", WeightsDigest: "sha256:w", Usage: testUsage}
	require.NoError(f, r.Sign(priv))
	b, err := r.Marshal()
	require.NoError(f, err)
	f.Add(b)
	f.Add(b[:20])
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseUsageRecord(b)
		if err != nil {
			require.Nil(t, r)
			return
		}
		again, err := r.Marshal()
		require.NoError(t, err)
		require.Equal(t, b, again, "one encoding per record")
		_ = r.Verify(priv.Public().(ed25519.PublicKey), r.RequestID)
	})
}

func FuzzParseReceipt(f *testing.F) {
	_, priv, err := ed25519.GenerateKey(nil)
	require.NoError(f, err)
	r := &Receipt{RequestID: "req-1", Model: "m", WeightsDigest: "sha256:w", Usage: testUsage, Time: time.Unix(1e9, 0)}
	require.NoError(f, r.Sign(priv))
	b, err := r.Marshal()
	require.NoError(f, err)
	f.Add(b)
	f.Add(b[:40])
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReceipt(b)
		if err != nil {
			require.Nil(t, r)
			return
		}
		again, err := r.Marshal()
		require.NoError(t, err)
		require.Equal(t, b, again, "one encoding per receipt")
		_ = r.Verify(r.WorkerKey)
		_ = r.CheckAnswer(nil, nil)
	})
}

func FuzzParseReceiptJSON(f *testing.F) {
	_, priv, err := ed25519.GenerateKey(nil)
	require.NoError(f, err)
	r := &Receipt{RequestID: "req-1", Model: "m", WeightsDigest: "sha256:w", Usage: testUsage, Time: time.Unix(1e9, 0)}
	require.NoError(f, r.Sign(priv))
	j, err := json.Marshal(r)
	require.NoError(f, err)
	f.Add(j)
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReceiptJSON(b)
		if err != nil {
			require.Nil(t, r)
			return
		}
		_, err = r.Marshal()
		require.NoError(t, err, "a receipt read from a file has a binary form")
		_ = r.Verify(r.WorkerKey)
	})
}

func FuzzParsePublicKey(f *testing.F) {
	f.Add(fuzzKey().PublicKeyBytes())
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePublicKey(b)
		if err != nil {
			require.Nil(t, p)
			return
		}
		require.Equal(t, b, p.Bytes())
	})
}
