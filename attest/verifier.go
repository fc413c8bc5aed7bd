package attest

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-tdx-guest/pcs"
	"github.com/google/go-tdx-guest/verify"
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

	// What a later policy is judged against (Recheck): the TEE TCB SVN, and the collateral and
	// TCB ratings, nil when collateral was not checked.
	teeTCBSVN  [16]byte
	collateral *CollateralReport
	tcb        *TCBReport

	// validUntil is when the first certificate or collateral document the verification relied on
	// expires; a cached verification never outlives it.
	validUntil time.Time
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
	// CacheTTL bounds how long a verification result is reused; never past the expiry of the peer's
	// certificate, of a certificate in the quote's PCK chain or the collateral's, or of the collateral.
	// Zero means DefaultCacheTTL; negative disables the cache.
	CacheTTL time.Duration
	// Now is the clock; nil means time.Now. Tests fix it.
	Now func() time.Time
}

// Verifier checks evidence against trusted roots, their collateral and a policy.
type Verifier struct {
	roots  []TrustedRoot
	policy atomic.Pointer[Policy] // replaced whole by SetPolicy
	ttl    time.Duration
	now    func() time.Time
	// times is the instant each collateral document is checked at: now for all (tests of recorded
	// collateral give each document an instant inside its own validity).
	times func(now time.Time) *verify.TimeSet
	// rate is the TCB evaluation, evaluateTCB (tests stand in a drifted one).
	rate func(info *pcs.TcbInfo, qe *pcs.EnclaveIdentity, tee []byte, ext *pcs.PckExtensions, qeSVN uint32) *TCBReport

	mu    sync.Mutex
	cache map[[32]byte]cacheEntry

	platforms platforms // collateral verified per platform (platforms.go)

	watchMu  sync.Mutex
	watchers map[uint64]func()
	watchID  uint64
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
	p := cfg.Policy
	v := &Verifier{roots: roots, ttl: cfg.CacheTTL, now: cfg.Now, times: timeSet, rate: evaluateTCB, cache: map[[32]byte]cacheEntry{}}
	if v.ttl == 0 {
		v.ttl = DefaultCacheTTL
	}
	if v.now == nil {
		v.now = time.Now
	}
	v.policy.Store(&p)
	return v, nil
}

// Policy returns the verifier's current policy.
func (v *Verifier) Policy() Policy { return *v.policy.Load() }

// SetPolicy validates p and makes it the verifier's policy: every verification that starts from
// now on is judged by it (results cached under the old one are not reused), and then each function
// registered with OnPolicyChange is called, so that live connections are judged again (Recheck).
func (v *Verifier) SetPolicy(p Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	v.policy.Store(&p)
	v.mu.Lock()
	clear(v.cache)
	v.mu.Unlock()
	v.watchMu.Lock()
	fs := slices.Collect(maps.Values(v.watchers))
	v.watchMu.Unlock()
	for _, f := range fs {
		f()
	}
	return nil
}

// OnPolicyChange calls f after each SetPolicy, until stop is called. f runs in SetPolicy's
// goroutine and must not call SetPolicy.
func (v *Verifier) OnPolicyChange(f func()) (stop func()) {
	v.watchMu.Lock()
	defer v.watchMu.Unlock()
	if v.watchers == nil {
		v.watchers = map[uint64]func(){}
	}
	v.watchID++
	id := v.watchID
	v.watchers[id] = f
	return func() {
		v.watchMu.Lock()
		defer v.watchMu.Unlock()
		delete(v.watchers, id)
	}
}

// Recheck judges a peer verified earlier by the current policy: its role, whether it may be
// simulated, its platform, image and model, its collateral's age (now) and its TCB status. Its
// evidence is not verified again: only what the policy decides can have changed. A refusal is a
// *PolicyError.
func (v *Verifier) Recheck(peer *Peer) error {
	pol := v.policy.Load()
	if peer == nil || peer.Claims == nil {
		return &PolicyError{Err: fmt.Errorf("%w: no claims", ErrRoleNotAllowed)}
	}
	rp, err := pol.checkRole(peer.Claims.Role, peer.Quoted)
	if err != nil || !peer.Quoted {
		return asPolicyError(err)
	}
	if peer.Simulated && !pol.AllowSimulated {
		return &PolicyError{Err: fmt.Errorf("%w: the peer's quote is SIMULATED and the policy now requires real TDX", ErrSimulatedNotAllowed)}
	}
	return pol.judge(&peer.Measurements, peer.teeTCBSVN, peer.collateral, peer.tcb, v.now(),
		func() error { return pol.checkImage(rp, peer.Claims, &peer.Measurements) })
}

// Verify checks ev and returns the verified peer. Errors wrap the sentinel of the failed check.
func (v *Verifier) Verify(ev Evidence) (*Peer, error) {
	key := cacheKey(ev)
	now := v.now()
	if p := v.cached(key, now); p != nil {
		return p, nil
	}
	pol := v.policy.Load()
	p, _, err := v.verify(pol, ev, now, false)
	if err != nil {
		return nil, err
	}
	v.store(key, p, pol, now)
	return p, nil
}

// ExamineEvidence verifies ev like Verify, without the cache, and reports what each check of its
// quote found, also when one fails (the report is nil when there is no quote or it does not
// parse). With skipCollateral only the quote's signature chain is checked.
func (v *Verifier) ExamineEvidence(ev Evidence, skipCollateral bool) (*Peer, *Report, error) {
	return v.verify(v.policy.Load(), ev, v.now(), skipCollateral)
}

// verify checks ev and judges it by pol. Refusals by pol of evidence whose cryptography checked
// out are *PolicyError; the rest fail the handshake.
func (v *Verifier) verify(pol *Policy, ev Evidence, now time.Time, skipCollateral bool) (*Peer, *Report, error) {
	claims, err := DecodeClaims(ev.Claims)
	if err != nil {
		return nil, nil, err
	}
	var rep *Report
	if ev.Quote != nil {
		q, err := parseQuote(ev.Quote, v.platforms.chain)
		if err != nil {
			return nil, nil, err
		}
		rep = &Report{Quote: q}
	}
	if !bytes.Equal(claims.PublicKey, ev.Key) {
		return nil, rep, ErrKeyMismatch
	}
	rp, err := pol.checkRole(claims.Role, ev.Quote != nil)
	if err != nil {
		return nil, rep, err
	}
	peer := &Peer{Claims: claims, NotAfter: ev.NotAfter}
	if ev.Quote == nil {
		return peer, nil, nil
	}
	q := rep.Quote
	if err := v.checkQuote(pol, rep, now, skipCollateral); err != nil {
		return nil, rep, err
	}
	if q.ReportData != ReportData(ev.Claims) {
		return nil, rep, ErrReportDataMismatch
	}
	if err := pol.judgeReport(rep, now, func() error { return pol.checkImage(rp, claims, &q.Measurements) }); err != nil {
		return nil, rep, err
	}
	peer.Quoted = true
	peer.Simulated = rep.Simulated
	peer.Measurements = q.Measurements
	peer.ImageHash = q.Measurements.ImageHash()
	if rep.TCB != nil {
		peer.TCBStatus = string(rep.TCB.Status)
	}
	peer.teeTCBSVN, peer.collateral, peer.tcb = q.TeeTCBSVN, rep.Collateral, rep.TCB
	peer.validUntil = rep.validUntil
	return peer, rep, nil
}

// judgeReport applies the policy to a quote whose signatures and collateral checked out,
// recording the outcome in rep.
func (p *Policy) judgeReport(rep *Report, now time.Time, image func() error) error {
	q := rep.Quote
	if err := p.judge(&q.Measurements, q.TeeTCBSVN, rep.Collateral, rep.TCB, now, image); err != nil {
		rep.Policy = err.Error()
		return err
	}
	rep.Policy = "passed"
	return nil
}

// judge applies the policy to verified evidence: the platform rules, then the image rules, then
// collateral age and TCB status (when collateral was checked). Its refusals are *PolicyError.
func (p *Policy) judge(m *Measurements, teeTCBSVN [16]byte, coll *CollateralReport, tcb *TCBReport, now time.Time, image func() error) error {
	err := p.checkPlatform(m, teeTCBSVN)
	if err == nil {
		err = image()
	}
	if err == nil && coll != nil {
		err = p.checkCollateralAge(coll, now)
		if err == nil {
			err = p.checkTCB(tcb)
		}
	}
	return asPolicyError(err)
}

// rootFor finds the trusted root whose key the quote's chain ends in. Only the key counts: a
// certificate that copies the Intel root's name with another key is a stranger.
func (v *Verifier) rootFor(pol *Policy, q *Quote) (TrustedRoot, error) {
	for _, r := range v.roots {
		if bytes.Equal(r.Cert.RawSubjectPublicKeyInfo, q.Root.RawSubjectPublicKeyInfo) {
			if r.Simulated && !pol.AllowSimulated {
				return r, fmt.Errorf("%w: the quote is SIMULATED (signed by a development root of trust, not by Intel hardware) and the policy requires real TDX", ErrSimulatedNotAllowed)
			}
			return r, nil
		}
	}
	return TrustedRoot{}, fmt.Errorf("%w: %q (key not pinned)", ErrUntrustedRoot, q.Root.Subject.String())
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
		TCBStatus: string(rep.TCB.Status), validUntil: rep.validUntil}, nil
}
