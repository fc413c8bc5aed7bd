package attest

import (
	"bytes"
	"testing"

	tdxdata "github.com/google/go-tdx-guest/testing/testdata"
	"github.com/stretchr/testify/require"
)

// recordedQuote is go-tdx-guest's recorded production quote without the text its authors appended
// after the signed data for their own tests.
func recordedQuote() []byte {
	suffix := []byte("\nextra bytes(only for testing purpose)\n")
	return bytes.TrimSuffix(bytes.Clone(tdxdata.RawQuote), suffix) // callers append: never to the shared original
}

func TestParseRecordedIntelQuote(t *testing.T) {
	q, err := ParseQuote(recordedQuote())
	require.NoError(t, err)
	require.Equal(t, uint32(4), q.Version)
	require.Equal(t, "Intel SGX Root CA", q.Root.Subject.CommonName)

	// Unsigned additions that go-tdx-guest would let through are refused.
	_, err = ParseQuote(tdxdata.RawQuote)
	require.ErrorIs(t, err, ErrMalformedQuote, "non-zero bytes after the signed data")
	_, err = ParseQuote(append(recordedQuote(), 0, 0, 0))
	require.NoError(t, err, "zero padding is tolerated")
}
