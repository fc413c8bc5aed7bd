package attest

import (
	"bytes"
	"crypto/x509"
	"time"

	"github.com/google/go-tdx-guest/pcs"
	"github.com/google/go-tdx-guest/verify"
)

// SetDocumentTimes makes v check each collateral document at the instant f gives, for recorded
// collateral whose documents were captured years apart.
func SetDocumentTimes(v *Verifier, f func(now time.Time) *verify.TimeSet) { v.times = f }

// RecordedQuote is recordedQuote for the external tests.
var RecordedQuote = recordedQuote

// RateEverythingUpToDate makes v's own TCB evaluation rate every component UpToDate: a stand-in
// for a drift between it and go-tdx-guest's rating.
func RateEverythingUpToDate(v *Verifier) {
	v.rate = func(info *pcs.TcbInfo, qe *pcs.EnclaveIdentity, tee []byte, ext *pcs.PckExtensions, qeSVN uint32) *TCBReport {
		t := evaluateTCB(info, qe, tee, ext, qeSVN)
		if t.Problem != "" {
			return t
		}
		t.Status = pcs.TcbComponentStatusUpToDate
		for _, c := range t.components() {
			c.level.Status = pcs.TcbComponentStatusUpToDate
		}
		return t
	}
}

// The collateral parsers, for the fuzz targets.
var (
	CRLDER                = crlDER
	NextUpdateOf          = nextUpdateOf
	ParseCollateralBundle = parseCollateralBundle
	ChainNotAfter         = chainNotAfter
)

// BundleGetter is the offline getter NewCollateralGetter makes for a bundle of these entries.
func BundleGetter(entries []*CollateralEntry, now time.Time) *CollateralGetter {
	g := &CollateralGetter{base: IntelPCSURL, offline: true, now: func() time.Time { return now },
		mem: map[string]*CollateralEntry{}, failed: map[string]fetchFailure{}}
	for _, e := range entries {
		g.mem[e.URL] = e
	}
	return g
}

// CheckSignatures parses raw and checks it as a quote from a known platform (checkSignatures), and
// as go-tdx-guest does without collateral (its PCK chain to root, then the same signatures), for
// the tests that compare the two. sameChain says whether raw's PCK chain is chain.
func CheckSignatures(raw, chain []byte, root *x509.Certificate, at time.Time) (known, full error, sameChain bool, err error) {
	q, err := ParseQuote(raw)
	if err != nil {
		return nil, nil, false, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	full = tdxVerify(q, &verify.Options{Now: timeSet(at), TrustedRoots: pool})
	return checkSignatures(q, at), full, bytes.Equal(q.pckChain(), chain), nil
}

// PCKChain is the PCK chain carried in a parsed quote.
func (q *Quote) PCKChain() []byte { return q.pckChain() }
