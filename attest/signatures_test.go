package attest_test

import (
	"bytes"
	"crypto/x509"
	"testing"
	"time"

	tdxdata "github.com/google/go-tdx-guest/testing/testdata"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
)

// signatureCase is a genuine quote, the root its chain ends in and an instant its chain is valid at.
type signatureCase struct {
	raw  []byte
	root *x509.Certificate
	at   time.Time
}

func signatureCases(t testing.TB) map[string]signatureCase {
	root := attesttest.Root(t)
	v4 := evidence(t, attest.RoleWorker, attesttest.Quoter(t, attesttest.Measurements(attest.RoleWorker)))
	q5, err := root.QuoterV5(attesttest.Measurements(attest.RoleWorker))
	require.NoError(t, err)
	v5 := evidence(t, attest.RoleWorker, q5)
	intel, err := attest.ParseQuote(intelQuote())
	require.NoError(t, err)
	return map[string]signatureCase{
		"simulated v4": {v4.Quote, root.Certificate(), time.Now()},
		"simulated v5": {v5.Quote, root.Certificate(), time.Now()},
		"intel v4":     {intelQuote(), intel.Root, recordedAt},
		"intel v5":     {bytes.Clone(tdxdata.RawQuoteV5), intel.Root, recordedV5At},
	}
}

// compareSignatures checks raw both ways and fails unless they agree. A quote whose chain is not
// c's is never checked the short way (its platform is another), so it is not compared.
func compareSignatures(t *testing.T, c signatureCase, chain, raw []byte, at time.Time) (compared bool, known error) {
	t.Helper()
	known, full, sameChain, err := attest.CheckSignatures(raw, chain, c.root, at)
	if err != nil || !sameChain {
		return false, nil
	}
	if (known == nil) != (full == nil) {
		t.Fatalf("known platform's check says %v, go-tdx-guest's says %v", known, full)
	}
	if known != nil {
		require.ErrorIs(t, known, attest.ErrQuoteSignature)
	}
	return true, known
}

// A quote from a known platform is checked without its chain's signatures, which were verified
// with the platform. Whatever else is changed in the quote, that check accepts exactly what
// go-tdx-guest accepts.
func TestKnownPlatformSignaturesAsGoTdxGuest(t *testing.T) {
	for name, c := range signatureCases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			q, err := attest.ParseQuote(c.raw)
			require.NoError(t, err)
			chain := q.PCKChain()
			compared, err := compareSignatures(t, c, chain, c.raw, c.at)
			require.True(t, compared)
			require.NoError(t, err, "the genuine quote")

			refused := 0
			for i := range c.raw {
				bad := bytes.Clone(c.raw)
				bad[i] ^= 0x01
				if ok, err := compareSignatures(t, c, chain, bad, c.at); ok && err != nil {
					refused++
				}
			}
			require.Positive(t, refused)

			for _, at := range []time.Time{q.PCK.NotBefore.Add(-time.Second), q.PCK.NotAfter.Add(time.Second)} {
				_, err := compareSignatures(t, c, chain, c.raw, at)
				require.ErrorContains(t, err, "PCK certificate chain is not valid at")
			}
		})
	}
}

// FuzzKnownPlatformSignatures: on any quote that carries a genuine quote's chain, the known
// platform's check and go-tdx-guest's agree.
func FuzzKnownPlatformSignatures(f *testing.F) {
	cases := signatureCases(f)
	byChain := map[string]signatureCase{}
	for _, c := range cases {
		q, err := attest.ParseQuote(c.raw)
		require.NoError(f, err)
		byChain[string(q.PCKChain())] = c
		f.Add(c.raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		q, err := attest.ParseQuote(raw)
		if err != nil {
			return
		}
		if c, ok := byChain[string(q.PCKChain())]; ok {
			compareSignatures(t, c, q.PCKChain(), raw, c.at)
		}
	})
}

// A verified platform's chain is parsed once: the next quote from it carries the same bytes and
// gets the same certificates; a quote with any other chain is parsed afresh.
func TestKnownPlatformChainParsedOnce(t *testing.T) {
	v := attesttest.Verifier(t, attesttest.OpenPolicy())
	q := attesttest.Quoter(t, attesttest.Measurements(attest.RoleWorker))
	_, first, err := v.ExamineEvidence(evidence(t, attest.RoleWorker, q), false)
	require.NoError(t, err)
	_, second, err := v.ExamineEvidence(evidence(t, attest.RoleWorker, q), false)
	require.NoError(t, err)
	require.Same(t, first.Quote.PCK, second.Quote.PCK)

	other, err := attest.NewVerifier(attest.VerifierConfig{
		Roots: []attest.TrustedRoot{attesttest.Root(t).TrustedRoot()}, Policy: attesttest.OpenPolicy()})
	require.NoError(t, err)
	_, third, err := other.ExamineEvidence(evidence(t, attest.RoleWorker, q), false)
	require.NoError(t, err)
	require.NotSame(t, first.Quote.PCK, third.Quote.PCK, "another verifier has verified no platform yet")
	require.Equal(t, first.Quote.PCK.Raw, third.Quote.PCK.Raw)
}
