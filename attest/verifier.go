package attest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-tdx-guest/pcs"
	"github.com/google/go-tdx-guest/verify"
	"github.com/google/go-tdx-guest/verify/trust"
)

// Evidence is what a peer presents: its quote (nil for peers outside a TEE), the encoded claims the
// quote vouches for, and the key and expiry of the certificate that carried them.
type Evidence struct {
	Quote    []byte
	Claims   []byte
	Key      ed25519.PublicKey
	NotAfter time.Time
}

// Peer is a verified peer.
type Peer struct {
	Claims *Claims
	// Quoted is false for peers the policy let in without a quote (clients).
	Quoted bool
	// Simulated is true when the quote rests on the development root of trust.
	Simulated    bool
	Measurements Measurements
	ImageHash    ImageHash
	NotAfter     time.Time
	// TCBStatus is the platform's TCB status as its collateral rates it (UpToDate unless the policy
	// accepts a lesser one); "" for unattested peers.
	TCBStatus string

	collateralNextUpdate time.Time // a cached verification never outlives its collateral
}

// Label names the peer's attestation for display: "simulated", "tdx" or "unattested".
func (p *Peer) Label() string {
	switch {
	case !p.Quoted:
		return "unattested"
	case p.Simulated:
		return "simulated"
	default:
		return "tdx"
	}
}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	Roots  []TrustedRoot
	Policy Policy
	// CacheTTL bounds how long a verification result is reused; never past the certificate's expiry.
	// Zero means DefaultCacheTTL; negative disables the cache.
	CacheTTL time.Duration
	// Now is the clock; nil means time.Now. Tests fix it.
	Now func() time.Time
}

// DefaultCacheTTL is how long a verified quote is trusted without checking it again.
const DefaultCacheTTL = 10 * time.Minute

const maxCacheEntries = 4096

// Verifier checks evidence against trusted roots, their collateral and a policy.
type Verifier struct {
	roots  []TrustedRoot
	policy Policy
	ttl    time.Duration
	now    func() time.Time
	// times is the instant each collateral document is checked at: now for all (tests of recorded
	// collateral give each document an instant inside its own validity).
	times func(now time.Time) *verify.TimeSet

	mu    sync.Mutex
	cache map[[32]byte]cacheEntry

	platforms platforms // collateral verified per platform (platforms.go)
}

type cacheEntry struct {
	peer    *Peer
	expires time.Time
}

// NewVerifier validates cfg and returns a Verifier.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if err := cfg.Policy.Validate(); err != nil {
		return nil, err
	}
	roots := slices.Clone(cfg.Roots)
	var pcs *CollateralGetter
	for i, r := range roots {
		if r.Cert == nil {
			return nil, fmt.Errorf("verifier: roots[%d]: no certificate", i)
		}
		if r.Collateral == nil {
			// Intel PCS, with responses kept until their own next-update time, so that a handshake
			// does not fetch four documents.
			if pcs == nil {
				var err error
				if pcs, err = NewCollateralGetter(CollateralConfig{}); err != nil {
					return nil, err
				}
			}
			roots[i].Collateral = pcs
		}
	}
	v := &Verifier{roots: roots, policy: cfg.Policy, ttl: cfg.CacheTTL, now: cfg.Now, times: timeSet, cache: map[[32]byte]cacheEntry{}}
	if v.ttl == 0 {
		v.ttl = DefaultCacheTTL
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

// Policy returns the verifier's policy.
func (v *Verifier) Policy() Policy { return v.policy }

// Verify checks ev and returns the verified peer. Errors wrap the sentinel of the failed check.
func (v *Verifier) Verify(ev Evidence) (*Peer, error) {
	key := cacheKey(ev)
	now := v.now()
	if p := v.cached(key, now); p != nil {
		return p, nil
	}
	p, _, err := v.verify(ev, now, false)
	if err != nil {
		return nil, err
	}
	v.store(key, p, now)
	return p, nil
}

// ExamineEvidence verifies ev like Verify, without the cache, and reports what each check of its
// quote found, also when one fails (the report is nil when there is no quote or it does not
// parse). With skipCollateral only the quote's signature chain is checked.
func (v *Verifier) ExamineEvidence(ev Evidence, skipCollateral bool) (*Peer, *Report, error) {
	return v.verify(ev, v.now(), skipCollateral)
}

func (v *Verifier) verify(ev Evidence, now time.Time, skipCollateral bool) (*Peer, *Report, error) {
	claims, err := DecodeClaims(ev.Claims)
	if err != nil {
		return nil, nil, err
	}
	var rep *Report
	if ev.Quote != nil {
		q, err := ParseQuote(ev.Quote)
		if err != nil {
			return nil, nil, err
		}
		rep = &Report{Quote: q}
	}
	if !bytes.Equal(claims.PublicKey, ev.Key) {
		return nil, rep, ErrKeyMismatch
	}
	rp, err := v.policy.checkRole(claims.Role, ev.Quote != nil)
	if err != nil {
		return nil, rep, err
	}
	peer := &Peer{Claims: claims, NotAfter: ev.NotAfter}
	if ev.Quote == nil {
		return peer, nil, nil
	}
	q := rep.Quote
	if err := v.checkQuote(rep, now, skipCollateral); err != nil {
		return nil, rep, err
	}
	if q.ReportData != ReportData(ev.Claims) {
		return nil, rep, ErrReportDataMismatch
	}
	if err := v.judge(rep, now, func() error { return v.policy.checkImage(rp, claims, &q.Measurements) }); err != nil {
		return nil, rep, err
	}
	peer.Quoted = true
	peer.Simulated = rep.Simulated
	peer.Measurements = q.Measurements
	peer.ImageHash = q.Measurements.ImageHash()
	if rep.TCB != nil {
		peer.TCBStatus = string(rep.TCB.Status)
	}
	if rep.Collateral != nil {
		peer.collateralNextUpdate = rep.Collateral.NextUpdate()
	}
	return peer, rep, nil
}

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
}

// Examine verifies a bare quote like VerifyQuote and reports what each check found, also when
// one fails. With skipCollateral only the signature chain is checked; the report then has no
// Collateral and the policy's TCB and collateral rules are not applied.
func (v *Verifier) Examine(raw []byte, skipCollateral bool) (*Report, error) {
	q, err := ParseQuote(raw)
	if err != nil {
		return nil, err
	}
	rep := &Report{Quote: q}
	now := v.now()
	if err := v.checkQuote(rep, now, skipCollateral); err != nil {
		return rep, err
	}
	err = v.judge(rep, now, func() error {
		// Roles in a fixed order, those that admit no image skipped, so the refusal is repeatable
		// and names a role that could have accepted the quote.
		var first error
		for _, role := range slices.Sorted(maps.Keys(v.policy.Roles)) {
			rp := v.policy.Roles[role]
			if len(rp.ImageHashes) == 0 && len(rp.MRTDs) == 0 && len(rp.RTMRs) == 0 {
				continue
			}
			err := v.policy.checkImage(rp, &Claims{Role: role}, &q.Measurements)
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

// judge applies the policy to a quote whose signatures and collateral checked out: the platform
// rules, then the image rules, then collateral age and TCB status, recording the outcome.
func (v *Verifier) judge(rep *Report, now time.Time, image func() error) error {
	err := v.policy.checkPlatform(rep.Quote)
	if err == nil {
		err = image()
	}
	if err == nil && rep.Collateral != nil {
		err = v.policy.checkCollateralAge(rep.Collateral, now)
		if err == nil {
			err = v.policy.checkTCB(rep.TCB)
		}
	}
	if err != nil {
		rep.Policy = err.Error()
		return err
	}
	rep.Policy = "passed"
	return nil
}

// rootFor finds the trusted root whose key the quote's chain ends in. Only the key counts: a
// certificate that copies the Intel root's name with another key is a stranger.
func (v *Verifier) rootFor(q *Quote) (TrustedRoot, error) {
	for _, r := range v.roots {
		if bytes.Equal(r.Cert.RawSubjectPublicKeyInfo, q.Root.RawSubjectPublicKeyInfo) {
			if r.Simulated && !v.policy.AllowSimulated {
				return r, fmt.Errorf("%w: the quote is SIMULATED (signed by a development root of trust, not by Intel hardware) and the policy requires real TDX", ErrSimulatedNotAllowed)
			}
			return r, nil
		}
	}
	return TrustedRoot{}, fmt.Errorf("%w: %q (key not pinned)", ErrUntrustedRoot, q.Root.Subject.String())
}

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
func (v *Verifier) checkQuote(rep *Report, now time.Time, skipCollateral bool) error {
	q := rep.Quote
	root, err := v.rootFor(q)
	if err != nil {
		if root.Cert != nil {
			rep.Root, rep.Simulated = rootName(root), root.Simulated
		}
		return err
	}
	rep.Root, rep.Simulated = rootName(root), root.Simulated
	pool := x509.NewCertPool()
	pool.AddCert(root.Cert)
	if !skipCollateral {
		key := platformKey(root, q)
		if p := v.platforms.lookup(key, root.Collateral, now); p != nil {
			return v.checkKnownPlatform(rep, p, pool, now)
		}
		defer func() {
			// Remember a platform whose collateral was fully verified (see platforms.go).
			if rep.RevocationChecked && rep.lastColl != nil {
				if p, err := newVerifiedPlatform(rep.lastRec, rep.lastColl, now); err == nil {
					v.platforms.store(key, p)
				}
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
	if tdStage {
		if err := checkQEIdentity(q.qeReport(), &coll.qeIdentity); err != nil {
			return fmt.Errorf("%w: %v", ErrCollateral, err)
		}
	}
	rep.lastRec, rep.lastColl = rec, coll
	rep.TCB = evaluateTCB(&coll.tcbInfo, &coll.qeIdentity, q.TeeTCBSVN[:], coll.ext, q.qeReport().GetIsvSvn())
	if gerr != nil && rep.TCB.Problem == "" && rep.TCB.Status == pcs.TcbComponentStatusUpToDate {
		// go-tdx-guest refused a status this evaluation rates UpToDate: the two drifted apart, and
		// the stricter one wins. (The other way round is expected: for TDX modules of major version
		// 1 and later go-tdx-guest rates only the module, while the platform's level counts too.)
		rep.TCB.Problem = fmt.Sprintf("go-tdx-guest refused the TCB (%v), this verifier rated it UpToDate", gerr)
	}
	return nil
}

// checkKnownPlatform verifies a quote from a platform whose collateral was verified before and is
// still served unchanged and unexpired: go-tdx-guest checks the PCK chain (and its validity now),
// the QE report and quote signatures; then the QE report against the QE identity, the TDX module
// against the TCB info and the TCB levels, as the full verification does.
func (v *Verifier) checkKnownPlatform(rep *Report, p *verifiedPlatform, pool *x509.CertPool, now time.Time) error {
	q := rep.Quote
	if err := tdxVerify(q, &verify.Options{Now: v.times(now), TrustedRoots: pool}); err != nil {
		return classify(err)
	}
	rep.ChainVerified = true
	if err := checkTDModule(q, p.coll); err != nil {
		return err
	}
	if err := checkQEIdentity(q.qeReport(), &p.coll.qeIdentity); err != nil {
		return fmt.Errorf("%w: %v", ErrCollateral, err)
	}
	rep.RevocationChecked = true // the same chain against the same CRLs as before
	rep.Collateral = p.coll.report
	rep.TCB = evaluateTCB(&p.coll.tcbInfo, &p.coll.qeIdentity, q.TeeTCBSVN[:], p.coll.ext, q.qeReport().GetIsvSvn())
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

// classify maps go-tdx-guest's errors onto our rejection classes.
func classify(err error) error {
	expired := []error{verify.ErrTcbInfoExpired, verify.ErrQeIdentityExpired, verify.ErrRootCaCrlExpired,
		verify.ErrPCKCrlExpired, verify.ErrTcbInfoSigningCertExpired, verify.ErrTcbInfoRootCertExpired,
		verify.ErrQeIdentitySigningCertExpired, verify.ErrQeIdentityRootCertExpired,
		verify.ErrPCKCrlSigningCertExpired, verify.ErrPCKCrlRootCertExpired}
	for _, e := range expired {
		if errors.Is(err, e) {
			return fmt.Errorf("%w: %v", ErrCollateralExpired, err)
		}
	}
	msg := err.Error()
	// go-tdx-guest wraps its sentinels with %v, so past the top level they survive only as text.
	switch {
	case strings.Contains(msg, ErrCollateralUnavailable.Error()) || strings.HasPrefix(msg, "unable to receive"):
		return fmt.Errorf("%w: %v", ErrCollateralUnavailable, err)
	case strings.Contains(msg, "was revoked"):
		return fmt.Errorf("%w: %v", ErrRevoked, err)
	case strings.HasPrefix(msg, "error verifying PCK Certificate") || strings.Contains(msg, "in PCK certificate chain has expired"):
		// The quote's own certificates, not collateral: the signature chain does not hold at this time.
		return fmt.Errorf("%w: %v", ErrQuoteSignature, err)
	case strings.Contains(msg, "has expired"):
		return fmt.Errorf("%w: %v", ErrCollateralExpired, err)
	case strings.Contains(msg, "TCB Status is not") || strings.Contains(msg, "no matching TCB level") ||
		errors.Is(err, verify.ErrTdxTcbStatus) || errors.Is(err, verify.ErrEnclaveTcbStatus):
		return fmt.Errorf("%w: %v", ErrTCBStatus, err)
	case strings.Contains(msg, "collateral") || strings.Contains(msg, "tcbInfo") || strings.Contains(msg, "QeIdentity") ||
		strings.Contains(msg, "CRL"):
		return fmt.Errorf("%w: %v", ErrCollateral, err)
	}
	return fmt.Errorf("%w: %v", ErrQuoteSignature, err)
}

func cacheKey(ev Evidence) [32]byte {
	h := sha256.New()
	for _, b := range [][]byte{ev.Quote, ev.Claims, ev.Key} {
		var n [8]byte
		for i, l := 0, uint64(len(b)); i < 8; i++ {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:])
		h.Write(b)
	}
	ts, _ := ev.NotAfter.MarshalBinary()
	h.Write(ts)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func (v *Verifier) cached(key [32]byte, now time.Time) *Peer {
	if v.ttl < 0 {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.cache[key]
	if !ok {
		return nil
	}
	if !now.Before(e.expires) {
		delete(v.cache, key)
		return nil
	}
	return e.peer
}

func (v *Verifier) store(key [32]byte, p *Peer, now time.Time) {
	if v.ttl < 0 {
		return
	}
	expires := now.Add(v.ttl)
	if !p.NotAfter.IsZero() && p.NotAfter.Before(expires) {
		expires = p.NotAfter
	}
	if !p.collateralNextUpdate.IsZero() && p.collateralNextUpdate.Before(expires) {
		expires = p.collateralNextUpdate
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.cache) >= maxCacheEntries {
		for k, e := range v.cache {
			if !now.Before(e.expires) {
				delete(v.cache, k)
			}
		}
		if len(v.cache) >= maxCacheEntries {
			clear(v.cache)
		}
	}
	v.cache[key] = cacheEntry{peer: p, expires: expires}
}

// VerifyQuote checks a bare quote without claims (an operator's file, not a handshake): signature
// chain, collateral, the platform rules, that its image is allowed for at least one role, and its
// TCB status. REPORT_DATA is not checked, since there are no claims to bind it to.
func (v *Verifier) VerifyQuote(raw []byte) (*Peer, error) {
	rep, err := v.Examine(raw, false)
	if err != nil {
		return nil, err
	}
	q := rep.Quote
	return &Peer{Quoted: true, Simulated: rep.Simulated, Measurements: q.Measurements, ImageHash: q.Measurements.ImageHash(),
		TCBStatus: string(rep.TCB.Status), collateralNextUpdate: rep.Collateral.NextUpdate()}, nil
}
