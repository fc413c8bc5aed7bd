package sim

import (
	"fmt"

	"github.com/cocoon-network/cocoon/attest"
)

// TrustedRoot is this development root of trust as attest verifies against it, with the
// collateral it signed, marked simulated so that only a policy allowing simulation accepts it.
func (r *Root) TrustedRoot() attest.TrustedRoot {
	return attest.TrustedRoot{Cert: r.Certificate(), Collateral: r.Collateral(), Simulated: true}
}

// Quoter returns an attest.Quoter that signs v4 quotes reporting m with this root.
func (r *Root) Quoter(m attest.Measurements) (attest.Quoter, error) {
	return r.quoterFor(m)
}

// QuoterV5 returns an attest.Quoter that signs v5 quotes with a TDX 1.5 TD report, as a platform
// with a TDX 1.5 module does, reporting m with this root.
func (r *Root) QuoterV5(m attest.Measurements) (attest.Quoter, error) {
	q, err := r.quoterFor(m)
	if err != nil {
		return nil, err
	}
	return quoterV5{q}, nil
}

type quoterV5 struct{ q *Quoter }

func (s quoterV5) Quote(reportData [64]byte) ([]byte, error) { return s.q.QuoteV5(reportData) }

func (r *Root) quoterFor(m attest.Measurements) (*Quoter, error) {
	q, err := r.NewQuoter(Measurements{
		MRTD:         m.MRTD,
		RTMR:         m.RTMR,
		MRConfigID:   m.MRConfigID,
		TDAttributes: m.TDAttributes,
		XFAM:         m.XFAM,
	})
	if err != nil {
		return nil, fmt.Errorf("simulated quoter: %w", err)
	}
	return q, nil
}
