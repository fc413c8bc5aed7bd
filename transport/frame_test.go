package transport

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/testdata"
	"github.com/cocoon-network/cocoon/transport/wire"
)

func TestFrameReader(t *testing.T) {
	big := bytes.Repeat([]byte{7}, 300<<10) // read in many growing steps
	frames := func(payloads ...[]byte) []byte {
		var b []byte
		for _, p := range payloads {
			b = wire.AppendFrame(b, wire.TypeChunk, p)
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
		"over the limit":               {in: frames(make([]byte, 100)), max: 100, wantErr: wire.ErrFrameTooLarge},
		"zero length":                  {in: []byte{0, 0, 0, 0, 1}, wantErr: wire.ErrMalformedFrame},
		"end inside the header":        {in: []byte{0, 0}, wantErr: io.ErrUnexpectedEOF},
		"end inside the payload":       {in: frames([]byte("whole"))[:7], wantErr: io.ErrUnexpectedEOF},
		"largest declared length":      {in: []byte{0xff, 0xff, 0xff, 0xff, 12}, wantErr: wire.ErrFrameTooLarge},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			max := tc.max
			if max == 0 {
				max = 1 << 20
			}
			f := frameReader{r: bytes.NewReader(tc.in), max: max}
			for _, want := range tc.want {
				typ, p, err := f.next()
				require.NoError(t, err)
				assert.Equal(wire.TypeChunk, typ)
				assert.True(bytes.Equal(want, p), "payload of %d bytes, want %d", len(p), len(want))
			}
			_, _, err := f.next()
			assert.ErrorIs(err, tc.wantErr)
		})
	}
}

// The buffer holds about what arrived, whatever the header declared.
func TestFrameReaderGrowsAsBytesArrive(t *testing.T) {
	for _, arrived := range []int{0, 1, firstChunk, 100 << 10, 1 << 20} {
		in := append(header(wire.TypeRequest, 8<<20), make([]byte, arrived)...)
		f := frameReader{r: bytes.NewReader(in), max: 8 << 20}
		_, _, err := f.next()
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		assert.Equal(t, arrived, len(f.buf))
		assert.LessOrEqual(t, cap(f.buf), 2*arrived+maxChunk, "%d bytes arrived", arrived)
	}
}

// FuzzFrameReader: the reader returns what wire.FrameReader, the reference that allocates up
// front, returns, frame by frame.
func FuzzFrameReader(f *testing.F) {
	seeds, err := testdata.Files("frames")
	require.NoError(f, err)
	for _, s := range seeds {
		f.Add(s, uint16(1<<12))
	}
	f.Fuzz(func(t *testing.T, in []byte, max uint16) {
		limit := int(max) + 1
		ours := frameReader{r: bytes.NewReader(in), max: limit}
		ref := wire.NewFrameReader(bytes.NewReader(in), limit)
		for {
			typ, p, err := ours.next()
			wantTyp, wantP, wantErr := ref.Next()
			if wantErr != nil {
				require.Error(t, err)
				for _, class := range []error{io.EOF, io.ErrUnexpectedEOF, wire.ErrFrameTooLarge, wire.ErrMalformedFrame} {
					require.Equal(t, errors.Is(wantErr, class), errors.Is(err, class), "want %v, got %v", wantErr, err)
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, wantTyp, typ)
			require.Equal(t, wantP, p)
		}
	})
}
