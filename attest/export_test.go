package attest

import (
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
