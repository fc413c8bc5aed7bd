package burst

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFillKeepsTheRest: one read takes the whole burst; the caller gets what fits, the rest comes
// from the buffer, and the buffer is let go once empty.
func TestFillKeepsTheRest(t *testing.T) {
	require := require.New(t)
	burst := bytes.Repeat([]byte("0123456789"), 500)
	var b Buffer
	calls := 0
	p := make([]byte, 1024)
	n, err := b.Fill(p, func(q []byte) (int, error) {
		calls++
		require.Len(q, Size)
		return copy(q, burst), nil
	})
	require.NoError(err)
	require.Equal(1024, n)
	require.Equal(burst[:1024], p)
	require.Equal(len(burst)-1024, b.Len())
	got := append([]byte(nil), p...)
	for b.Len() > 0 {
		n, err := b.Take(p)
		require.NoError(err)
		got = append(got, p[:n]...)
	}
	require.Equal(burst, got)
	require.Equal(1, calls)
	require.Nil(b.box, "an empty buffer holds no memory")
}

// TestFillErrorAfterTheData: an error read with data (QUIC's io.EOF with the last bytes) comes
// with the last of them, not before.
func TestFillErrorAfterTheData(t *testing.T) {
	require := require.New(t)
	var b Buffer
	p := make([]byte, 4)
	n, err := b.Fill(p, func(q []byte) (int, error) { return copy(q, "abcdefgh"), io.EOF })
	require.NoError(err)
	require.Equal("abcd", string(p[:n]))
	n, err = b.Take(p)
	require.ErrorIs(err, io.EOF)
	require.Equal("efgh", string(p[:n]))
	require.Zero(b.Len())
	require.Nil(b.box)
}

// TestFillNothing: a read that returns nothing (it would wait, or failed) keeps no buffer and
// returns its error.
func TestFillNothing(t *testing.T) {
	require := require.New(t)
	var b Buffer
	wait := errors.New("would wait")
	n, err := b.Fill(make([]byte, 8), func([]byte) (int, error) { return -1, wait })
	require.ErrorIs(err, wait)
	require.Zero(n)
	require.Nil(b.box)
	n, err = b.Fill(make([]byte, 8), func([]byte) (int, error) { return 0, nil })
	require.NoError(err)
	require.Zero(n)
	require.Nil(b.box)
}

// TestRelease drops what is kept.
func TestRelease(t *testing.T) {
	var b Buffer
	_, err := b.Fill(make([]byte, 1), func(q []byte) (int, error) { return copy(q, "abc"), nil })
	require.NoError(t, err)
	require.Equal(t, 2, b.Len())
	b.Release()
	require.Zero(t, b.Len())
	require.Nil(t, b.box)
}

// TestDirectUntilAReadFills: reads that return less than asked for go straight into the caller's
// buffer; once one fills it, the next goes through Fill, and a Fill that takes no more than the
// caller asked for goes back to direct reads.
func TestDirectUntilAReadFills(t *testing.T) {
	require := require.New(t)
	var b Buffer
	p := make([]byte, 8)
	require.True(b.Direct(p), "a new Buffer reads directly")
	n, err := b.ReadDirect(p, func(q []byte) (int, error) { return copy(q, "abc"), nil })
	require.NoError(err)
	require.Equal(3, n)
	require.True(b.Direct(p), "a read that did not fill p: data comes a little at a time")
	_, err = b.ReadDirect(p, func(q []byte) (int, error) { return copy(q, "abcdefghij"), nil })
	require.NoError(err)
	require.False(b.Direct(p), "a read filled p: more is probably waiting")
	require.True(b.Direct(make([]byte, Size)), "a caller asking for a whole burst reads into its own buffer")

	n, err = b.Fill(p, func(q []byte) (int, error) { return copy(q, "0123456789abcdef"), nil })
	require.NoError(err)
	require.Equal(8, n)
	require.False(b.Direct(p), "bytes are kept")
	_, err = b.Take(p)
	require.NoError(err)
	require.False(b.Direct(p), "the burst went on past p")

	_, err = b.Fill(p, func(q []byte) (int, error) { return copy(q, "xyz"), nil })
	require.NoError(err)
	require.True(b.Direct(p), "the burst ended: back to direct reads")
	require.Nil(b.box)
}
