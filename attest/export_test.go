package attest

import (
	"time"

	"github.com/google/go-tdx-guest/verify"
)

// SetDocumentTimes makes v check each collateral document at the instant f gives, for recorded
// collateral whose documents were captured years apart.
func SetDocumentTimes(v *Verifier, f func(now time.Time) *verify.TimeSet) { v.times = f }

// RecordedQuote is recordedQuote for the external tests.
var RecordedQuote = recordedQuote
