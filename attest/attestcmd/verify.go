package attestcmd

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/ratls"
	"github.com/cocoon-network/cocoon/attest/sim"
)

// VerifyOptions are the options of `cocoon attest verify`.
type VerifyOptions struct {
	Policy         *attest.Policy // nil: every role, any image
	AllowSimulated bool
	SimDir         string
	// Collateral is where Intel collateral comes from: a PCCS or PCS base URL, a cache directory (as
	// `cocoon attest collateral fetch` writes) or a bundle file. "": Intel PCS, cached in CacheDir.
	Collateral string
	// Offline uses no network: collateral only from a directory or bundle, and without any, the
	// signature chain alone is checked.
	Offline bool
	// At is the time to verify at; zero means now.
	At time.Time
	// JSON prints the result as one JSON object.
	JSON bool
	// CacheDir caches collateral fetched from a URL; "" means the user cache directory.
	CacheDir string
}

// verifyResult is what `cocoon attest verify` prints.
type verifyResult struct {
	File                 string            `json:"file"`
	Kind                 string            `json:"kind"`
	Role                 string            `json:"role,omitempty"`
	QuoteVersion         uint32            `json:"quote_version,omitempty"`
	TEEType              string            `json:"tee_type,omitempty"`
	MRTD                 string            `json:"mrtd,omitempty"`
	RTMR                 []string          `json:"rtmr,omitempty"`
	MRSEAM               string            `json:"mrseam,omitempty"`
	TDAttributes         string            `json:"td_attributes,omitempty"`
	TDAttributeNames     string            `json:"td_attribute_names,omitempty"`
	XFAM                 string            `json:"xfam,omitempty"`
	TEETCBSVN            string            `json:"tee_tcb_svn,omitempty"`
	TEETCBSVN2           string            `json:"tee_tcb_svn2,omitempty"`
	MRServiceTD          string            `json:"mrservicetd,omitempty"`
	TDReport             string            `json:"td_report,omitempty"`
	ImageHash            string            `json:"image_hash,omitempty"`
	ReportData           string            `json:"report_data,omitempty"`
	ReportDataMatches    bool              `json:"report_data_matches_claims,omitempty"`
	Report               *attest.Report    `json:"verification,omitempty"`
	CollateralChecked    bool              `json:"collateral_checked"`
	CollateralSource     string            `json:"collateral_source,omitempty"`
	At                   time.Time         `json:"verified_at"`
	OK                   bool              `json:"ok"`
	Error                string            `json:"error,omitempty"`
	collateralNotChecked string            // why, for the text output
	tcb                  *attest.TCBReport // for the text output
	coll                 *attest.CollateralReport
}

// runVerify verifies a certificate or quote and prints what it found; it returns nil only when
// everything required passed. Offline without collateral it checks the signature chain only,
// says so, and passes if the chain is good.
func runVerify(path string, o VerifyOptions, stdout io.Writer) error {
	ev, err := ReadEvidence(path)
	if err != nil {
		return err
	}
	at := o.At
	if at.IsZero() {
		at = time.Now()
	}
	policy := anyImagePolicy()
	if o.Policy != nil {
		policy = *o.Policy
	}
	if o.AllowSimulated {
		policy.AllowSimulated = true
	}
	res := &verifyResult{File: path, At: at.UTC()}
	intel, source, skip, err := collateralSource(o)
	if err != nil {
		return err
	}
	res.CollateralSource = source
	roots := []attest.TrustedRoot{intel}
	// The development root is known even when not allowed, so that a simulated quote is refused as
	// simulated rather than as signed by a stranger; the policy decides whether it passes.
	if r, err := sim.OpenPublic(o.SimDir); err == nil {
		roots = append(roots, r.TrustedRoot())
	} else if policy.AllowSimulated && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("load development root of trust: %w", err)
	}
	v, err := attest.NewVerifier(attest.VerifierConfig{Roots: roots, Policy: policy, CacheTTL: -1, Now: func() time.Time { return at }})
	if err != nil {
		return err
	}

	var rep *attest.Report
	var verr error
	if ev.Cert == nil {
		res.Kind = "TDX quote"
		rep, verr = v.Examine(ev.Quote.Raw, skip)
	} else {
		res.Kind = "RA-TLS certificate"
		if _, err := ratls.ParseCertificate([][]byte{ev.Cert.X509.Raw}, at, 0); err != nil {
			verr = err
		} else {
			var p *attest.Peer
			p, rep, verr = v.ExamineEvidence(ev.Cert.Evidence(), skip)
			if p != nil && p.Claims != nil {
				res.Role = string(p.Claims.Role)
			}
		}
		if c, err := attest.DecodeClaims(ev.Cert.Claims); err == nil {
			res.Role = string(c.Role)
		}
	}
	if ev.Quote != nil {
		res.describe(ev.Quote)
	}
	if rep != nil {
		res.Report, res.tcb, res.coll = rep, rep.TCB, rep.Collateral
		res.CollateralChecked = rep.Collateral != nil
		if rep.Simulated {
			res.CollateralSource = "the development root of trust's own (SIMULATED)"
		}
	}
	if ev.Cert != nil && ev.Quote != nil {
		res.ReportDataMatches = attest.ReportData(ev.Cert.Claims) == ev.Quote.ReportData
	}
	if !res.CollateralChecked && skip {
		res.collateralNotChecked = "NOT CHECKED (offline without collateral): TCB status, QE identity and revocation unknown"
	}
	res.OK = verr == nil
	if verr != nil {
		res.Error = verr.Error()
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return fmt.Errorf("write result: %w", err)
		}
	} else {
		res.print(stdout)
	}
	return verr
}

// collateralSource builds the Intel root for the options, and says whether collateral is skipped.
func collateralSource(o VerifyOptions) (attest.TrustedRoot, string, bool, error) {
	c := o.Collateral
	switch {
	case c == "" && o.Offline:
		return attest.IntelRoot(nil), "none (offline)", true, nil
	case strings.HasPrefix(c, "https://") || strings.HasPrefix(c, "http://") || c == "":
		if o.Offline {
			return attest.TrustedRoot{}, "", false, fmt.Errorf("--offline with a collateral URL: give a directory or bundle file")
		}
		dir := o.CacheDir
		if dir == "" {
			if ucd, err := os.UserCacheDir(); err == nil {
				dir = filepath.Join(ucd, "cocoon", "collateral")
			}
		}
		g, err := attest.NewCollateralGetter(attest.CollateralConfig{URL: c, Dir: dir})
		if err != nil {
			return attest.TrustedRoot{}, "", false, err
		}
		name := c
		if name == "" {
			name = attest.IntelPCSURL
		}
		return attest.IntelRoot(g), name + " (cache " + dir + ")", false, nil
	}
	st, err := os.Stat(c)
	if err != nil {
		return attest.TrustedRoot{}, "", false, fmt.Errorf("collateral: %w", err)
	}
	cfg := attest.CollateralConfig{Offline: o.Offline}
	if st.IsDir() {
		cfg.Dir = c
	} else {
		cfg.Bundle, cfg.Offline = c, true
	}
	g, err := attest.NewCollateralGetter(cfg)
	if err != nil {
		return attest.TrustedRoot{}, "", false, err
	}
	mode := "refreshed from Intel PCS when expired"
	if cfg.Offline {
		mode = "offline"
	}
	return attest.IntelRoot(g), c + " (" + mode + ")", false, nil
}

func (r *verifyResult) describe(q *attest.Quote) {
	m := &q.Measurements
	r.QuoteVersion = q.Version
	r.TEEType = fmt.Sprintf("0x%x", q.TeeType)
	if q.TeeType == 0x81 {
		r.TEEType += " (TDX)"
	}
	r.MRTD = hex.EncodeToString(m.MRTD[:])
	for i := range m.RTMR {
		r.RTMR = append(r.RTMR, hex.EncodeToString(m.RTMR[i][:]))
	}
	r.MRSEAM = hex.EncodeToString(m.MRSeam[:])
	r.TDAttributes = hex.EncodeToString(m.TDAttributes[:])
	r.TDAttributeNames = attest.TDAttributeNames(m.TDAttributes)
	r.XFAM = hex.EncodeToString(m.XFAM[:])
	r.TEETCBSVN = hex.EncodeToString(q.TeeTCBSVN[:])
	r.TDReport = "TDX 1.0"
	if q.BodyType == attest.BodyTDX15 {
		r.TDReport = "TDX 1.5"
		r.TEETCBSVN2 = hex.EncodeToString(q.TeeTCBSVN2[:])
		r.MRServiceTD = hex.EncodeToString(q.MRServiceTD[:])
	}
	r.ImageHash = m.ImageHash().String()
	r.ReportData = hex.EncodeToString(q.ReportData[:])
}

func (r *verifyResult) print(w io.Writer) {
	line := func(k, format string, a ...any) { fmt.Fprintf(w, "%-15s %s\n", k, fmt.Sprintf(format, a...)) }
	line("file", "%s", r.File)
	line("kind", "%s", r.Kind)
	if r.Role != "" {
		line("role", "%s", r.Role)
	}
	line("verified at", "%s", r.At.Format(time.RFC3339))
	if r.MRTD != "" {
		line("quote", "version %d, TEE type %s, %s TD report", r.QuoteVersion, r.TEEType, r.TDReport)
		line("MRTD", "%s", r.MRTD)
		for i, v := range r.RTMR {
			line(fmt.Sprintf("RTMR%d", i), "%s", v)
		}
		line("MRSEAM", "%s", r.MRSEAM)
		line("TD attributes", "%s (%s; debug %s)", r.TDAttributes, r.TDAttributeNames, onOff(strings.Contains(r.TDAttributeNames, "DEBUG")))
		line("XFAM", "%s", r.XFAM)
		line("TEE TCB SVN", "%s", r.TEETCBSVN)
		if r.TEETCBSVN2 != "" {
			line("TEE TCB SVN2", "%s", r.TEETCBSVN2)
			line("MRSERVICETD", "%s", r.MRServiceTD)
		}
		line("image hash", "%s", r.ImageHash)
		line("report data", "%s", r.ReportData)
		if r.Kind == "RA-TLS certificate" {
			line("", "%s SHA-512 of the certificate's claims", matchWord(r.ReportDataMatches))
		}
	}
	rep := r.Report
	if rep != nil {
		root := rep.Root
		if root == "" {
			root = "not trusted"
		}
		line("root of trust", "%s", root)
		if rep.ChainVerified {
			line("PCK chain", "verified: PCK certificate to the pinned root, QE report, attestation key, quote signature")
		} else {
			line("PCK chain", "NOT verified")
		}
	}
	switch {
	case r.coll != nil:
		c := r.coll
		line("collateral", "%s", r.CollateralSource)
		line("  FMSPC", "%s (PCK CA %s), TCB evaluation data number %d", c.FMSPC, c.CA, c.TCBEvaluationDataNumber)
		line("  TCB info", "issued %s, next update %s", day(c.TCBInfoIssued), day(c.TCBInfoNextUpdate))
		line("  QE identity", "issued %s, next update %s", day(c.QEIdentityIssued), day(c.QEIdentityNextUpdate))
		line("  PCK CRL", "issued %s, next update %s", day(c.PCKCRLIssued), day(c.PCKCRLNextUpdate))
		line("  root CA CRL", "next update %s", day(c.RootCRLNextUpdate))
		line("  revocation", "checked: PCK and intermediate certificates, collateral signers not revoked")
	case r.collateralNotChecked != "":
		line("collateral", "%s", r.collateralNotChecked)
	case rep != nil && rep.ChainVerified:
		line("collateral", "FAILED (see result)")
	}
	if t := r.tcb; t != nil {
		if t.Problem != "" {
			line("TCB status", "NONE: %s", t.Problem)
		} else {
			line("TCB status", "%s", t.Status)
		}
		for _, c := range []struct {
			name string
			l    *attest.TCBLevel
		}{{"  platform", t.Platform}, {"  TDX module", t.Module}, {"  QE", t.QE}} {
			if c.l != nil {
				adv := ""
				if len(c.l.AdvisoryIDs) > 0 {
					adv = ", advisories " + strings.Join(c.l.AdvisoryIDs, " ")
				}
				line(c.name, "%s (TCB date %s%s)", c.l.Status, c.l.Date, adv)
			}
		}
	}
	if rep != nil && rep.Policy != "" {
		line("policy", "%s", rep.Policy)
	}
	if r.OK {
		label := ""
		if rep != nil && rep.Simulated {
			label = " (SIMULATED: proves nothing about hardware)"
		}
		if r.collateralNotChecked != "" {
			label += " (signature chain only: collateral not checked)"
		}
		line("result", "OK%s", label)
		return
	}
	line("result", "FAILED: %s", r.Error)
}

func day(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
