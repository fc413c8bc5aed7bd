package attest

import (
	"testing"

	tdxdata "github.com/google/go-tdx-guest/testing/testdata"
	"github.com/stretchr/testify/require"
)

func TestParseRecordedIntelQuote(t *testing.T) {
	q, err := ParseQuote(tdxdata.RawQuote)
	require.NoError(t, err)
	require.Equal(t, uint32(4), q.Version)
	require.Equal(t, "Intel SGX Root CA", q.Root.Subject.CommonName)
}

func FuzzParseQuote(f *testing.F) {
	f.Add(tdxdata.RawQuote)
	for _, seed := range seedFiles(f, "quotes") {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		q, err := ParseQuote(raw)
		if err != nil {
			return
		}
		_ = q.Measurements.ImageHash()
		if q.Root == nil {
			t.Fatal("parsed quote without a chain root")
		}
	})
}
