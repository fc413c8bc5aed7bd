package attest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

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

	mu    sync.Mutex
	cache map[[32]byte]cacheEntry
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
	for i, r := range cfg.Roots {
		if r.Cert == nil {
			return nil, fmt.Errorf("verifier: roots[%d]: no certificate", i)
		}
	}
	v := &Verifier{roots: cfg.Roots, policy: cfg.Policy, ttl: cfg.CacheTTL, now: cfg.Now, cache: map[[32]byte]cacheEntry{}}
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
	p, err := v.verify(ev, now)
	if err != nil {
		return nil, err
	}
	v.store(key, p, now)
	return p, nil
}

func (v *Verifier) verify(ev Evidence, now time.Time) (*Peer, error) {
	claims, err := DecodeClaims(ev.Claims)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(claims.PublicKey, ev.Key) {
		return nil, ErrKeyMismatch
	}
	rp, err := v.policy.checkRole(claims.Role, ev.Quote != nil)
	if err != nil {
		return nil, err
	}
	peer := &Peer{Claims: claims, NotAfter: ev.NotAfter}
	if ev.Quote == nil {
		return peer, nil
	}
	q, err := ParseQuote(ev.Quote)
	if err != nil {
		return nil, err
	}
	root, err := v.rootFor(q)
	if err != nil {
		return nil, err
	}
	if err := verifyQuote(q, root, now); err != nil {
		return nil, err
	}
	if q.ReportData != ReportData(ev.Claims) {
		return nil, ErrReportDataMismatch
	}
	if err := v.policy.checkImage(rp, claims, &q.Measurements); err != nil {
		return nil, err
	}
	peer.Quoted = true
	peer.Simulated = root.Simulated
	peer.Measurements = q.Measurements
	peer.ImageHash = q.Measurements.ImageHash()
	return peer, nil
}

// rootFor finds the trusted root whose key the quote's chain ends in.
func (v *Verifier) rootFor(q *Quote) (TrustedRoot, error) {
	for _, r := range v.roots {
		if bytes.Equal(r.Cert.RawSubjectPublicKeyInfo, q.Root.RawSubjectPublicKeyInfo) {
			if r.Simulated && !v.policy.AllowSimulated {
				return r, ErrSimulatedNotAllowed
			}
			return r, nil
		}
	}
	return TrustedRoot{}, ErrUntrustedRoot
}

// verifyQuote runs go-tdx-guest's full verification: PCK chain to root, QE report, quote signature,
// collateral (TCB info, QE identity) and revocation (PCK and root CRLs).
func verifyQuote(q *Quote, root TrustedRoot, now time.Time) error {
	pool := x509.NewCertPool()
	pool.AddCert(root.Cert)
	getter := root.Collateral
	if getter == nil {
		getter = trust.DefaultHTTPSGetter()
	}
	opts := &verify.Options{
		GetCollateral:    true,
		CheckRevocations: true,
		Getter:           getter,
		Now:              now,
		TrustedRoots:     pool,
	}
	if err := verify.TdxQuote(q.proto, opts); err != nil {
		return classify(err)
	}
	return nil
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
	case strings.Contains(msg, "has expired"):
		return fmt.Errorf("%w: %v", ErrCollateralExpired, err)
	case strings.Contains(msg, "was revoked"):
		return fmt.Errorf("%w: %v", ErrRevoked, err)
	case strings.Contains(msg, "TCB Status is not") || strings.Contains(msg, "no matching TCB level") ||
		errors.Is(err, verify.ErrTcbStatus):
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
// chain, collateral, the debug attribute, and that its image is allowed for at least one role.
// REPORT_DATA is not checked, since there are no claims to bind it to.
func (v *Verifier) VerifyQuote(raw []byte) (*Peer, error) {
	q, err := ParseQuote(raw)
	if err != nil {
		return nil, err
	}
	root, err := v.rootFor(q)
	if err != nil {
		return nil, err
	}
	if err := verifyQuote(q, root, v.now()); err != nil {
		return nil, err
	}
	peer := &Peer{Quoted: true, Simulated: root.Simulated, Measurements: q.Measurements, ImageHash: q.Measurements.ImageHash()}
	var last error = ErrRoleNotAllowed
	for role, rp := range v.policy.Roles {
		c := &Claims{Role: role}
		if last = v.policy.checkImage(rp, c, &q.Measurements); last == nil {
			return peer, nil
		}
	}
	return nil, last
}
