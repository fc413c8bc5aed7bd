package attestcmd

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/go-tdx-guest/pcs"

	"github.com/cocoon-network/cocoon/attest"
)

// CollateralFetchOptions are the options of `cocoon attest collateral fetch`.
type CollateralFetchOptions struct {
	Quote string // a quote or RA-TLS certificate whose platform to fetch for
	FMSPC string // or the platform's FMSPC, 6 bytes hex
	// Out is a directory (a collateral cache, usable with --collateral DIR) or, ending in .json, a
	// single bundle file.
	Out string
	URL string // PCCS or PCS base URL; "" means Intel PCS
}

// runCollateralFetch fetches the collateral a platform's quotes are verified against, for verifying
// offline later.
func runCollateralFetch(o CollateralFetchOptions, stdout io.Writer) error {
	if (o.Quote == "") == (o.FMSPC == "") {
		return errors.New("collateral fetch: give --quote FILE or --fmspc HEX")
	}
	if o.Out == "" {
		return errors.New("collateral fetch: --out is required")
	}
	fmspc, cas := strings.ToLower(o.FMSPC), []string{"platform", "processor"}
	if o.Quote != "" {
		ev, err := ReadEvidence(o.Quote)
		if err != nil {
			return err
		}
		if ev.Quote == nil {
			return fmt.Errorf("collateral fetch: %s carries no quote", o.Quote)
		}
		ext, err := pcs.PckCertificateExtensions(ev.Quote.PCK)
		if err != nil {
			return fmt.Errorf("collateral fetch: PCK certificate of %s: %w", o.Quote, err)
		}
		fmspc, cas = ext.FMSPC, []string{"platform"}
		if ev.Quote.PCK.Issuer.CommonName == "Intel SGX PCK Processor CA" {
			cas = []string{"processor"}
		}
	} else if b, err := hex.DecodeString(fmspc); err != nil || len(b) != 6 {
		return fmt.Errorf("collateral fetch: --fmspc %q: want 6 bytes hex", o.FMSPC)
	}
	bundle := strings.HasSuffix(o.Out, ".json")
	cfg := attest.CollateralConfig{URL: o.URL}
	if !bundle {
		cfg.Dir = o.Out
	}
	g, err := attest.NewCollateralGetter(cfg)
	if err != nil {
		return err
	}
	// Without a quote the PCK CA is unknown: fetch both CRLs and need at least one.
	urls := attest.CollateralURLs(fmspc, cas[0])
	if len(cas) > 1 {
		urls = append(urls, pcs.PckCrlURL(cas[1]))
	}
	crls := 0
	for _, u := range urls {
		e, err := g.Fetch(u)
		if err != nil {
			if strings.Contains(u, "/pckcrl?") && len(cas) > 1 {
				fmt.Fprintf(stdout, "skipped  %s: %v\n", u, err)
				continue
			}
			return fmt.Errorf("collateral fetch: %w", err)
		}
		if strings.Contains(u, "/pckcrl?") {
			crls++
		}
		fmt.Fprintf(stdout, "fetched  %s (next update %s)\n", u, e.NextUpdate.UTC().Format(time.RFC3339))
	}
	if crls == 0 {
		return errors.New("collateral fetch: no PCK CRL could be fetched")
	}
	if bundle {
		if err := attest.WriteCollateralBundle(o.Out, g.Entries()); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "wrote    %s (use: cocoon attest verify --offline --collateral %s FILE)\n", o.Out, o.Out)
	return nil
}
