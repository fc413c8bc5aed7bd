package attest_test

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/pcs"
	tdxtesting "github.com/google/go-tdx-guest/testing"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/sim"
)

// The collateral fuzz targets are seeded with what a PCCS sends: go-tdx-guest's recording of Intel
// PCS and the simulator's signed collateral.

// collateralSeeds returns the entries a getter holds after fetching every document of both sources.
func collateralSeeds(f *testing.F) [][]*attest.CollateralEntry {
	root, err := sim.New(sim.Options{})
	if err != nil {
		f.Fatal(err)
	}
	simURLs := []string{pcs.TcbInfoURL("00806f050000"), pcs.QeIdentityURL(), pcs.PckCrlURL("platform"), sim.RootCRLURL}
	sources := []struct {
		http interface {
			Get(string) (map[string][]string, []byte, error)
		}
		urls []string
	}{
		{tdxtesting.TestGetter, slices.Sorted(maps.Keys(tdxtesting.TestGetter.Responses))},
		{root.Collateral(), simURLs},
	}
	var out [][]*attest.CollateralEntry
	for _, src := range sources {
		g, err := attest.NewCollateralGetter(attest.CollateralConfig{HTTP: src.http})
		if err != nil {
			f.Fatal(err)
		}
		var entries []*attest.CollateralEntry
		for _, u := range src.urls {
			e, err := g.Fetch(u)
			if err != nil {
				f.Fatal(err)
			}
			entries = append(entries, e)
		}
		out = append(out, entries)
	}
	return out
}

var fuzzNow = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

// FuzzCollateralCRL: a CRL body as PCS (DER) or a PCCS (hex) sends it, and its next update.
func FuzzCollateralCRL(f *testing.F) {
	for _, entries := range collateralSeeds(f) {
		for _, e := range entries {
			if _, err := x509.ParseRevocationList(e.Body); err == nil {
				f.Add(e.Body)
				f.Add([]byte(hex.EncodeToString(e.Body)))
			}
		}
	}
	crlURL := pcs.PckCrlURL("platform")
	f.Fuzz(func(t *testing.T, body []byte) {
		der := attest.CRLDER(body)
		if len(der) > len(body) {
			t.Fatalf("%d bytes of CRL from a body of %d", len(der), len(body))
		}
		next := attest.NextUpdateOf(crlURL, der, fuzzNow)
		l, err := x509.ParseRevocationList(der)
		switch {
		case err == nil && !l.NextUpdate.IsZero():
			if !next.Equal(l.NextUpdate) {
				t.Fatalf("next update %v, the CRL says %v", next, l.NextUpdate)
			}
		case !next.After(fuzzNow):
			t.Fatalf("a CRL without a next update is kept until %v", next)
		}
	})
}

// FuzzCollateralNextUpdate: the next-update time of a TCB info or QE identity.
func FuzzCollateralNextUpdate(f *testing.F) {
	for _, entries := range collateralSeeds(f) {
		for _, e := range entries {
			if json.Valid(e.Body) {
				f.Add(e.Body)
			}
		}
	}
	u := pcs.TcbInfoURL("00806f050000")
	f.Fuzz(func(t *testing.T, body []byte) {
		if next := attest.NextUpdateOf(u, body, fuzzNow); next.IsZero() {
			t.Fatal("no next update")
		}
	})
}

// FuzzCollateralBundle: a bundle file, served by an offline getter.
func FuzzCollateralBundle(f *testing.F) {
	for _, entries := range collateralSeeds(f) {
		b, err := json.Marshal(entries)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`[null]`))
	f.Add([]byte(`[{"url":""}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := attest.ParseCollateralBundle(b)
		if err != nil {
			return
		}
		// Each entry takes at least `{"url":"x"}` of the input: what is allocated follows the input.
		if len(entries) > len(b)/len(`{"url":"x"}`) {
			t.Fatalf("%d entries from %d bytes", len(entries), len(b))
		}
		g := attest.BundleGetter(entries, fuzzNow)
		served := map[string][]byte{}
		for _, e := range entries {
			served[e.URL] = e.Body // the last entry of a URL wins, as when the bundle is loaded
		}
		for u, want := range served {
			_, body, err := g.Get(u)
			if err != nil {
				t.Fatalf("get %q: %v", u, err)
			}
			if !bytes.Equal(body, want) {
				t.Fatalf("get %q: another body than the bundle's", u)
			}
		}
		const absent = "https://absent.invalid/"
		if _, held := served[absent]; !held {
			if _, _, err := g.Get(absent); err == nil {
				t.Fatal("an offline getter served a URL it does not hold")
			}
		}
	})
}

// FuzzIssuerChain: the URL-escaped PEM chain of a collateral response header, read for its expiry.
func FuzzIssuerChain(f *testing.F) {
	for _, entries := range collateralSeeds(f) {
		for _, e := range entries {
			for _, v := range e.Header {
				for _, chain := range v {
					f.Add(chain)
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, v string) {
		notAfter, err := attest.ChainNotAfter(v)
		if err == nil && notAfter.IsZero() {
			t.Fatal("a chain read without an expiry")
		}
	})
}
