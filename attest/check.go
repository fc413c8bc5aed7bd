package attest

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/go-tdx-guest/pcs"
	"github.com/google/go-tdx-guest/verify"
	"github.com/google/go-tdx-guest/verify/trust"
)

// Prefixes of go-tdx-guest's errors for the TCB status checks it runs last, after every
// signature, collateral and revocation check has passed (verify.go verifyQuote).
const (
	gtgTDTCBPrefix = "TDX TCB info reported by Intel PCS failed TCB status check: "
	gtgQETCBPrefix = "QE Identity reported by Intel PCS failed TCB status check: "
)

// checkQuote verifies the quote's signatures and, unless skipCollateral, its collateral and
// revocation, with go-tdx-guest, and rates its TCB. It does not judge the TCB status: the policy does.
//
// go-tdx-guest demands UpToDate for the TD's TCB (then stops, before checking the QE report against
// the QE identity) and for the QE. When it stops at one of those two status
// checks everything before has passed; the QE report check it skipped is run here, and the TCB
// levels are evaluated from the very collateral it verified, recorded as it was fetched.
func (v *Verifier) checkQuote(pol *Policy, rep *Report, now time.Time, skipCollateral bool) error {
	q := rep.Quote
	root, err := v.rootFor(pol, q)
	if err != nil {
		if root.Cert != nil {
			rep.Root, rep.Simulated = rootName(root), root.Simulated
		}
		return err
	}
	rep.Root, rep.Simulated = rootName(root), root.Simulated
	rep.reliedOn(q.chain.notAfter)
	pool := x509.NewCertPool()
	pool.AddCert(root.Cert)
	if !skipCollateral {
		key := platformKey(root, q)
		if p := v.platforms.lookup(key, root.Collateral, now); p != nil {
			return v.checkKnownPlatform(rep, p, now)
		}
		defer func() {
			// Remember a platform whose collateral was fully verified (see platforms.go).
			if rep.RevocationChecked && rep.lastColl != nil {
				v.platforms.store(key, newVerifiedPlatform(rep.lastRec, rep.lastColl, rep.gtgTCB, now), q)
			}
		}()
	}
	rec := &recordingGetter{inner: root.Collateral}
	opts := &verify.Options{
		GetCollateral:    !skipCollateral,
		CheckRevocations: !skipCollateral,
		Getter:           rec,
		Now:              v.times(now),
		TrustedRoots:     pool,
	}
	gerr := tdxVerify(q, opts)
	if skipCollateral {
		if gerr != nil {
			return classify(gerr)
		}
		rep.ChainVerified = true
		return nil
	}
	tdStage := gerr != nil && strings.HasPrefix(gerr.Error(), gtgTDTCBPrefix)
	qeStage := gerr != nil && strings.HasPrefix(gerr.Error(), gtgQETCBPrefix)
	if gerr != nil && !tdStage && !qeStage {
		return classify(gerr)
	}
	rep.ChainVerified, rep.RevocationChecked = true, true
	coll, err := rec.collateral(q)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCollateral, err)
	}
	rep.Collateral = coll.report
	rep.reliedOn(coll.notAfter())
	if tdStage {
		if err := checkQEIdentity(q.qeReport(), &coll.qeIdentity); err != nil {
			return fmt.Errorf("%w: %v", ErrQEIdentityMismatch, err)
		}
	}
	rep.lastRec, rep.lastColl, rep.gtgTCB = rec, coll, gerr
	rep.TCB = v.rate(&coll.tcbInfo, &coll.qeIdentity, q.TeeTCBSVN[:], coll.ext, q.qeReport().GetIsvSvn())
	guardDrift(rep.TCB, gerr)
	return nil
}

// guardDrift lets go-tdx-guest's refusal of the TCB (gtgTCB, nil if it accepted) win over an
// evaluation here that rates it UpToDate: the two drifted apart, and the stricter one wins. (The
// other way round is expected: for TDX modules of major version 1 and later go-tdx-guest rates
// only the module, while the platform's level counts too.)
func guardDrift(t *TCBReport, gtgTCB error) {
	if gtgTCB != nil && t.Problem == "" && t.Status == pcs.TcbComponentStatusUpToDate {
		t.Problem = fmt.Sprintf("go-tdx-guest refused the TCB (%v), this verifier rated it UpToDate", gtgTCB)
	}
}

// checkKnownPlatform verifies a quote from a platform whose collateral was verified before and is
// still served unchanged and unexpired: the PCK chain's validity now, the QE report and quote
// signatures (checkSignatures); then the QE report against the QE identity, the TDX module
// against the TCB info and the TCB levels, as the full verification does, with go-tdx-guest's
// verdict on the same TCB from it.
func (v *Verifier) checkKnownPlatform(rep *Report, p *verifiedPlatform, now time.Time) error {
	q := rep.Quote
	if err := checkSignatures(q, v.times(now).PckCertChain); err != nil {
		return err
	}
	rep.ChainVerified = true
	if err := checkTDModule(q, p.coll); err != nil {
		return err
	}
	if err := checkQEIdentity(q.qeReport(), &p.coll.qeIdentity); err != nil {
		return fmt.Errorf("%w: %v", ErrQEIdentityMismatch, err)
	}
	rep.RevocationChecked = true // the same chain against the same CRLs as before
	rep.Collateral = p.coll.report
	rep.reliedOn(p.coll.notAfter())
	rep.TCB = v.rate(&p.coll.tcbInfo, &p.coll.qeIdentity, q.TeeTCBSVN[:], p.coll.ext, q.qeReport().GetIsvSvn())
	// go-tdx-guest's verdict on this very TCB, from the full verification (platformKey has the SVNs
	// it rates), so that its refusal wins here as it does there.
	guardDrift(rep.TCB, p.gtgTCB)
	return nil
}

// tdxVerify runs go-tdx-guest's verification. Like its parser, it indexes by sizes it reads, here
// from collateral that a PCCS sends before any signature is checked; a panic is a refusal, never a crash.
func tdxVerify(q *Quote, opts *verify.Options) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("verification aborted on inconsistent input: %v", r)
		}
	}()
	return verify.TdxQuote(q.proto, opts)
}

// timeSet checks every document of the collateral at one time.
func timeSet(now time.Time) *verify.TimeSet {
	return &verify.TimeSet{PckCertChain: now, TcbInfo: now, QeIdentity: now, PckCrl: now, RootCaCrl: now}
}

func rootName(r TrustedRoot) string {
	if r.Simulated {
		return "development root of trust (SIMULATED)"
	}
	return r.Cert.Subject.CommonName
}

// recordingGetter keeps every response go-tdx-guest fetched, so the TCB evaluation reads the exact
// bytes whose signatures it checked rather than fetching them again.
type recordingGetter struct {
	inner trust.HTTPSGetter
	mu    sync.Mutex
	got   map[string][]byte
	hdr   map[string]map[string][]string
}

func (r *recordingGetter) Get(u string) (map[string][]string, []byte, error) {
	h, b, err := r.inner.Get(u)
	if err == nil {
		r.mu.Lock()
		if r.got == nil {
			r.got, r.hdr = map[string][]byte{}, map[string]map[string][]string{}
		}
		r.got[u], r.hdr[u] = b, h
		r.mu.Unlock()
	}
	return h, b, err
}

type parsedCollateral struct {
	report     *CollateralReport
	tcbInfo    pcs.TcbInfo
	qeIdentity pcs.EnclaveIdentity
	ext        *pcs.PckExtensions
	// signersNotAfter is the earliest expiry among the certificates that issued the documents.
	signersNotAfter time.Time
}

// notAfter is when the collateral stops vouching for anything: its first next-update time or the
// first expiry of an issuer certificate.
func (c *parsedCollateral) notAfter() time.Time {
	t := c.report.NextUpdate()
	if !c.signersNotAfter.IsZero() && (t.IsZero() || c.signersNotAfter.Before(t)) {
		t = c.signersNotAfter
	}
	return t
}

// collateral parses the recorded responses for q.
func (r *recordingGetter) collateral(q *Quote) (*parsedCollateral, error) {
	ext, err := pcs.PckCertificateExtensions(q.PCK)
	if err != nil {
		return nil, fmt.Errorf("PCK certificate extensions: %v", err)
	}
	ca := "platform"
	if q.PCK.Issuer.CommonName == "Intel SGX PCK Processor CA" {
		ca = "processor"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := &parsedCollateral{ext: ext, report: &CollateralReport{FMSPC: ext.FMSPC, CA: ca}}
	var tcb pcs.TdxTcbInfo
	if err := json.Unmarshal(r.got[pcs.TcbInfoURL(ext.FMSPC)], &tcb); err != nil {
		return nil, fmt.Errorf("TCB info: %v", err)
	}
	var qe pcs.QeIdentity
	if err := json.Unmarshal(r.got[pcs.QeIdentityURL()], &qe); err != nil {
		return nil, fmt.Errorf("QE identity: %v", err)
	}
	c.tcbInfo, c.qeIdentity = tcb.TcbInfo, qe.EnclaveIdentity
	c.report.TCBEvaluationDataNumber = tcb.TcbInfo.TcbEvaluationDataNumber
	c.report.TCBInfoIssued, c.report.TCBInfoNextUpdate = tcb.TcbInfo.IssueDate, tcb.TcbInfo.NextUpdate
	c.report.QEIdentityIssued, c.report.QEIdentityNextUpdate = qe.EnclaveIdentity.IssueDate, qe.EnclaveIdentity.NextUpdate
	for _, h := range r.hdr {
		for _, name := range collateralHeaders {
			for _, v := range h[name] {
				notAfter, err := chainNotAfter(v)
				if err != nil {
					return nil, err
				}
				if c.signersNotAfter.IsZero() || notAfter.Before(c.signersNotAfter) {
					c.signersNotAfter = notAfter
				}
			}
		}
	}
	pckURL := pcs.PckCrlURL(ca)
	for u, b := range r.got {
		l, err := x509.ParseRevocationList(b)
		if err != nil {
			continue
		}
		if u == pckURL {
			c.report.PCKCRLIssued, c.report.PCKCRLNextUpdate = l.ThisUpdate, l.NextUpdate
		} else {
			c.report.RootCRLNextUpdate = l.NextUpdate
		}
	}
	return c, nil
}
