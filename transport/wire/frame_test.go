package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-network/cocoon/testdata"
)

func TestFrameRoundTrip(t *testing.T) {
	require := require.New(t)
	msgs := []proto.Message{
		&Hello{ProtocolVersion: ProtocolVersion, SoftwareVersion: "v"},
		&Ping{Nonce: 7}, &Pong{Nonce: 7}, &Error{Code: 3, Message: "x"},
	}
	var buf []byte
	for _, m := range msgs {
		var err error
		buf, err = Marshal(buf, m)
		require.NoError(err)
	}
	fr := NewFrameReader(bytes.NewReader(buf), 0)
	for _, want := range msgs {
		typ, payload, err := fr.Next()
		require.NoError(err)
		got, err := Unmarshal(typ, payload)
		require.NoError(err)
		require.True(proto.Equal(want, got), "%v != %v", want, got)
	}
	_, _, err := fr.Next()
	require.ErrorIs(err, io.EOF)
}

func TestFrameErrors(t *testing.T) {
	testCases := map[string]struct {
		in      []byte
		wantErr error
	}{
		"too large":      {in: []byte{0, 0, 1, 0, 1}, wantErr: ErrFrameTooLarge},
		"zero length":    {in: []byte{0, 0, 0, 0, 1}, wantErr: ErrMalformedFrame},
		"cut in payload": {in: []byte{0, 0, 0, 5, 1, 1}, wantErr: io.ErrUnexpectedEOF},
		"cut in header":  {in: []byte{0, 0}, wantErr: io.ErrUnexpectedEOF},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			_, _, err := NewFrameReader(bytes.NewReader(tc.in), 64).Next()
			assert.ErrorIs(t, err, tc.wantErr)
		})
	}
	_, err := Unmarshal(200, nil)
	assert.ErrorIs(t, err, ErrMalformedFrame)
}

func TestFrameReader(t *testing.T) {
	big := bytes.Repeat([]byte{7}, 300<<10) // read in many growing steps
	frames := func(payloads ...[]byte) []byte {
		var b []byte
		for _, p := range payloads {
			b = AppendFrame(b, TypeChunk, p)
		}
		return b
	}
	testCases := map[string]struct {
		in      []byte
		max     int
		want    [][]byte
		wantErr error
	}{
		"two frames, then a clean end": {in: frames([]byte("one"), []byte("two")), want: [][]byte{[]byte("one"), []byte("two")}, wantErr: io.EOF},
		"empty payload":                {in: frames(nil), want: [][]byte{{}}, wantErr: io.EOF},
		"payload of many steps":        {in: frames(big, []byte("after")), want: [][]byte{big, []byte("after")}, wantErr: io.EOF},
		"at the limit":                 {in: frames(make([]byte, 99)), max: 100, want: [][]byte{make([]byte, 99)}, wantErr: io.EOF},
		"over the limit":               {in: frames(make([]byte, 100)), max: 100, wantErr: ErrFrameTooLarge},
		"zero length":                  {in: []byte{0, 0, 0, 0, 1}, wantErr: ErrMalformedFrame},
		"end inside the header":        {in: []byte{0, 0}, wantErr: io.ErrUnexpectedEOF},
		"end inside the payload":       {in: frames([]byte("whole"))[:7], wantErr: io.ErrUnexpectedEOF},
		"largest declared length":      {in: []byte{0xff, 0xff, 0xff, 0xff, 12}, wantErr: ErrFrameTooLarge},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			max := tc.max
			if max == 0 {
				max = 1 << 20
			}
			f := NewFrameReader(bytes.NewReader(tc.in), max)
			for _, want := range tc.want {
				typ, p, err := f.Next()
				require.NoError(t, err)
				assert.Equal(TypeChunk, typ)
				assert.True(bytes.Equal(want, p), "payload of %d bytes, want %d", len(p), len(want))
			}
			_, _, err := f.Next()
			assert.ErrorIs(err, tc.wantErr)
		})
	}
}

// The buffer holds about what arrived, whatever the header declared.
func TestFrameReaderGrowsAsBytesArrive(t *testing.T) {
	for _, arrived := range []int{0, 1, firstChunk, 100 << 10, 1 << 20} {
		in := append(binary.BigEndian.AppendUint32(nil, 8<<20), byte(TypeRequest))
		in = append(in, make([]byte, arrived)...)
		f := NewFrameReader(bytes.NewReader(in), 8<<20)
		_, _, err := f.Next()
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		assert.Equal(t, arrived, len(f.buf))
		assert.LessOrEqual(t, cap(f.buf), 2*arrived+maxChunk, "%d bytes arrived", arrived)
	}
}

func FuzzFrameDecoder(f *testing.F) {
	seeds, err := testdata.Files("frames")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		fr := NewFrameReader(bytes.NewReader(in), 1<<16)
		for {
			typ, payload, err := fr.Next()
			if err != nil {
				if errors.Is(err, ErrFrameTooLarge) && len(in) > 1<<20 {
					t.Fatal("unexpected")
				}
				return
			}
			if len(payload) >= 1<<16 {
				t.Fatalf("payload of %d bytes over the limit", len(payload))
			}
			m, err := Unmarshal(typ, payload)
			if err != nil {
				continue
			}
			if _, err := Marshal(nil, m); err != nil {
				t.Fatalf("decoded message does not encode: %v", err)
			}
		}
	})
}

func BenchmarkFrame(b *testing.B) {
	payload := bytes.Repeat([]byte("x"), 128)
	b.Run("encode", func(b *testing.B) {
		buf := make([]byte, 0, 256)
		b.ReportAllocs()
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			buf = AppendFrame(buf[:0], TypePing, payload)
		}
	})
	b.Run("decode", func(b *testing.B) {
		one := AppendFrame(nil, TypePing, payload)
		stream := bytes.Repeat(one, 1024)
		r := bytes.NewReader(stream)
		fr := NewFrameReader(r, 0)
		b.ReportAllocs()
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			if _, _, err := fr.Next(); err != nil {
				r.Reset(stream)
				if _, _, err := fr.Next(); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
