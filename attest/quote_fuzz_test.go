package attest_test

import (
	"bytes"
	"testing"

	tdxdata "github.com/google/go-tdx-guest/testing/testdata"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/sim"
	"github.com/cocoon-network/cocoon/testdata"
)

// The fuzz target lives outside package attest because its v5 seed comes from attest/sim, which
// imports attest. Every input that finds new coverage is minimized for -fuzzminimizetime (60 s
// unless set), and for a 5 KiB quote the minimizer's pass over every pair of positions never ends:
// with the default a short run spends its time minimizing, and the executions spent there are
// not shown. `make fuzz` caps minimizing at 2 s; -fuzzminimizetime 0 shows the parsing rate.
func FuzzParseQuote(f *testing.F) {
	f.Add(attest.RecordedQuote())
	f.Add(bytes.Clone(tdxdata.RawQuoteV5))
	root, err := sim.New(sim.Options{})
	if err != nil {
		f.Fatal(err)
	}
	q, err := root.NewQuoter(sim.Measurements{})
	if err != nil {
		f.Fatal(err)
	}
	v5, err := q.QuoteV5([64]byte{1})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(v5)
	seeds, err := testdata.Files("quotes")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range seeds {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		q, err := attest.ParseQuote(raw)
		if err != nil {
			return
		}
		if !bytes.Equal(q.Raw, raw) {
			t.Fatal("parsed quote does not keep its bytes")
		}
		_ = q.Measurements.ImageHash()
		if q.Root == nil {
			t.Fatal("parsed quote without a chain root")
		}
	})
}
