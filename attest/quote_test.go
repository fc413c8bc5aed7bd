package attest

import (
	"bytes"
	"encoding/pem"
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

// pemOracle is the PCK chain rule as encoding/pem states it: exactly three CERTIFICATE blocks
// without headers whose re-encoding is the chain, optionally followed by one NUL.
func pemOracle(chain []byte) ([][]byte, bool) {
	chain = bytes.TrimSuffix(chain, []byte{0})
	var ders [][]byte
	var again []byte
	rest := chain
	for range 3 {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil || b.Type != "CERTIFICATE" || len(b.Headers) != 0 {
			return nil, false
		}
		ders = append(ders, b.Bytes)
		again = append(again, pem.EncodeToMemory(b)...)
	}
	return ders, len(rest) == 0 && bytes.Equal(again, chain)
}

// checkSplitChain asserts that splitChain accepts exactly what pemOracle accepts, with the same DER.
func checkSplitChain(t *testing.T, chain []byte) bool {
	t.Helper()
	got, ok := splitChain(chain)
	want, wantOK := pemOracle(chain)
	if ok != wantOK || (ok && (len(got[0]) == 0 || len(got[1]) == 0 || len(got[2]) == 0)) {
		t.Fatalf("splitChain accepts: %v, encoding/pem's rule: %v", ok, wantOK)
	}
	for i := range want {
		if ok && !bytes.Equal(want[i], got[i]) {
			t.Fatalf("certificate %d: another DER than encoding/pem's", i)
		}
	}
	return ok
}

func TestSplitChain(t *testing.T) {
	q, err := ParseQuote(recordedQuote())
	require.NoError(t, err)
	chain := bytes.TrimSuffix(bytes.Clone(q.pckChain()), []byte{0})
	firstEnd := bytes.Index(chain, []byte(pemEnd)) + len(pemEnd)
	testCases := map[string]struct {
		edit func([]byte) []byte
		want bool
	}{
		"as recorded":          {edit: func(c []byte) []byte { return c }, want: true},
		"with the NUL":         {edit: func(c []byte) []byte { return append(c, 0) }, want: true},
		"two NULs":             {edit: func(c []byte) []byte { return append(c, 0, 0) }},
		"CRLF lines":           {edit: func(c []byte) []byte { return bytes.ReplaceAll(c, []byte("\n"), []byte("\r\n")) }},
		"no final newline":     {edit: func(c []byte) []byte { return c[:len(c)-1] }},
		"two certificates":     {edit: func(c []byte) []byte { return c[firstEnd:] }},
		"four certificates":    {edit: func(c []byte) []byte { return append(c, c[:firstEnd]...) }},
		"a header":             {edit: func(c []byte) []byte { return bytes.Replace(c, []byte(pemBegin), []byte(pemBegin+"A: b\n\n"), 1) }},
		"a blank line in body": {edit: func(c []byte) []byte { return bytes.Replace(c, []byte(pemBegin), []byte(pemBegin+"\n"), 1) }},
		"another type":         {edit: func(c []byte) []byte { return bytes.Replace(c, []byte("CERTIFICATE"), []byte("CERTIFICATX"), 2) }},
		"joined lines":         {edit: func(c []byte) []byte { i := len(pemBegin) + pemLine; return append(c[:i:i], c[i+1:]...) }},
		"space before newline": {edit: func(c []byte) []byte {
			i := len(pemBegin) + pemLine
			return append(c[:i:i], append([]byte(" "), c[i:]...)...)
		}},
		"text before the chain": {edit: func(c []byte) []byte { return append([]byte("x\n"), c...) }},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, checkSplitChain(t, tc.edit(bytes.Clone(chain))))
		})
	}
}

// FuzzSplitChain: the PCK chain reader accepts exactly the chains encoding/pem's rule accepts.
func FuzzSplitChain(f *testing.F) {
	q, err := ParseQuote(recordedQuote())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(bytes.Clone(q.pckChain()))
	f.Fuzz(func(t *testing.T, chain []byte) { checkSplitChain(t, chain) })
}
