package attest

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// Report is everything verification established about one quote, in the order it was checked;
// `cocoon attest verify` prints it. Fields stay zero for checks that were not reached.
type Report struct {
	Quote *Quote `json:"-"`
	// Root names the trusted root the PCK chain ends in.
	Root      string `json:"root,omitempty"`
	Simulated bool   `json:"simulated"`
	// ChainVerified: PCK chain to the root, QE report signed by the PCK key, attestation key bound
	// by the QE report, quote signed by the attestation key.
	ChainVerified bool `json:"chain_verified"`
	// Collateral is nil when collateral was not checked (offline without any).
	Collateral *CollateralReport `json:"collateral,omitempty"`
	// RevocationChecked: PCK, intermediate and collateral signing certificates checked against the CRLs.
	RevocationChecked bool       `json:"revocation_checked"`
	TCB               *TCBReport `json:"tcb,omitempty"`
	// Policy is "passed" or the reason the policy refused the quote; "" if not reached.
	Policy string `json:"policy,omitempty"`

	// What a full verification fetched and parsed, kept to remember the platform.
	lastRec  *recordingGetter
	lastColl *parsedCollateral
	gtgTCB   error // go-tdx-guest's refusal of the TCB's status, nil if it accepted it
	// validUntil is the earliest expiry among what the checks relied on: the PCK chain, and the
	// collateral's documents and issuer certificates when it was checked.
	validUntil time.Time
}

// reliedOn records that the verification relied on something valid until t.
func (r *Report) reliedOn(t time.Time) {
	if !t.IsZero() && (r.validUntil.IsZero() || t.Before(r.validUntil)) {
		r.validUntil = t
	}
}

// Examine verifies a bare quote like VerifyQuote and reports what each check found, also when
// one fails. With skipCollateral only the signature chain is checked; the report then has no
// Collateral and the policy's TCB and collateral rules are not applied.
func (v *Verifier) Examine(raw []byte, skipCollateral bool) (*Report, error) {
	q, err := parseQuote(raw, v.platforms.chain)
	if err != nil {
		return nil, err
	}
	rep := &Report{Quote: q}
	now := v.now()
	pol := v.policy.Load()
	if err := v.checkQuote(pol, rep, now, skipCollateral); err != nil {
		return rep, err
	}
	err = pol.judgeReport(rep, now, func() error {
		// Roles in a fixed order, those that admit no image skipped, so the refusal is repeatable
		// and names a role that could have accepted the quote.
		var first error
		for _, role := range slices.Sorted(maps.Keys(pol.Roles)) {
			rp := pol.Roles[role]
			if len(rp.ImageHashes) == 0 && len(rp.MRTDs) == 0 && len(rp.RTMRs) == 0 {
				continue
			}
			err := pol.checkImage(rp, &Claims{Role: role}, &q.Measurements)
			if err == nil {
				return nil
			}
			if first == nil {
				first = err
			}
		}
		if first == nil {
			first = fmt.Errorf("%w: the policy allows no image for any role", ErrImageNotAllowed)
		}
		return first
	})
	return rep, err
}
