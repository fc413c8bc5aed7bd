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
// imports attest.
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
		_ = q.Measurements.ImageHash()
		if q.Root == nil {
			t.Fatal("parsed quote without a chain root")
		}
	})
}
