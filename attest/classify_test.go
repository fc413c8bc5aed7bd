package attest_test

import (
	"testing"

	"github.com/google/go-tdx-guest/pcs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
	"github.com/cocoon-network/cocoon/attest/sim"
)

// A quoting enclave that the QE identity does not describe is refused with one error class,
// whichever path finds it: go-tdx-guest's QE report check (full verification), this package's
// (full verification once go-tdx-guest stopped at the TD's TCB status), or the one for a known platform.
func TestQEIdentityMismatchClass(t *testing.T) {
	testCases := map[string]struct {
		root sim.Options
		// known: a quote from Intel's QE is verified first, so the platform's collateral is known.
		known  bool
		accept []pcs.TcbComponentStatus
	}{
		"full, checked by go-tdx-guest": {},
		"full, after go-tdx-guest stopped at the TDX module's status": {
			root: sim.Options{ModuleTCBStatus: pcs.TcbComponentStatusSwHardeningNeeded}, accept: []pcs.TcbComponentStatus{pcs.TcbComponentStatusSwHardeningNeeded},
		},
		"known platform": {known: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			root, err := sim.New(tc.root)
			require.NoError(err)
			p := attesttest.OpenPolicy()
			p.AcceptTCBStatuses = tc.accept
			v, err := attest.NewVerifier(attest.VerifierConfig{Roots: []attest.TrustedRoot{root.TrustedRoot()}, Policy: p, CacheTTL: -1})
			require.NoError(err)
			am := attesttest.Measurements(attest.RoleWorker)
			m := sim.Measurements{MRTD: am.MRTD, RTMR: am.RTMR, MRConfigID: am.MRConfigID, TDAttributes: am.TDAttributes, XFAM: am.XFAM}
			if tc.known {
				genuine, err := root.NewQuoter(m)
				require.NoError(err)
				_, err = v.Verify(evidence(t, attest.RoleWorker, genuine))
				require.NoError(err)
			}
			other, err := root.NewQuoterQE(m, sim.QE{ProdID: 7})
			require.NoError(err)
			_, err = v.Verify(evidence(t, attest.RoleWorker, other))
			require.ErrorIs(err, attest.ErrQEIdentityMismatch)
			assert.ErrorIs(err, attest.ErrCollateral, "a finer case of a collateral failure")
		})
	}
}
