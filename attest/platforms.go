package attest

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-tdx-guest/verify/trust"
)

// A platform is one PCK certificate chain under one trusted root: every quote from one machine
// carries the same chain, and is checked against the same collateral. The first full verification
// of a platform's quote checks the collateral's signatures, issuer chains and CRLs (most of the
// work of a verification: a dozen ECDSA verifications and the parsing of four documents). What
// depends only on the chain and the collateral is the same for the next quote from that platform,
// as long as the very same collateral is being served and none of it has expired. The platforms
// cache keeps that result, so a later quote needs only what depends on the quote itself: the PCK
// chain's validity now (its signatures were verified with the platform, over the same bytes), the
// QE report and quote signatures, the QE report against the QE identity, the TD's TDX module
// against the TCB info, and the TCB levels. It also keeps the chain parsed.

// maxPlatforms bounds the cache; a proxy sees one entry per worker machine.
const maxPlatforms = 1024

// maxPlatformAge bounds how long a platform's verified collateral is reused even when nothing in it
// expires sooner.
const maxPlatformAge = time.Hour

// collateralHeaders are the response headers go-tdx-guest verifies (the issuer chains).
var collateralHeaders = []string{"Tcb-Info-Issuer-Chain", "Sgx-Enclave-Identity-Issuer-Chain", "Sgx-Pck-Crl-Issuer-Chain"}

// response is one collateral document as it was verified.
type response struct {
	header map[string][]string
	body   []byte
}

type verifiedPlatform struct {
	responses map[string]response // by URL
	coll      *parsedCollateral
	gtgTCB    error // go-tdx-guest's verdict on the TCB status (see guardDrift)
	expires   time.Time
}

type platforms struct {
	mu sync.Mutex
	m  map[[32]byte]*verifiedPlatform
	// chains are the verified platforms' PCK chains, parsed, by the SHA-256 of their bytes: the
	// next quote from a platform need not parse its three certificates again.
	chains map[[32]byte]*parsedChain
}

// platformKey names a platform and the TCB go-tdx-guest rated for it: the TEE TCB SVN and the QE's
// ISV SVN are all its TCB status checks read from a quote, so its verdict holds for every quote
// with the same key. A TDX module or QE updated in place makes a new key, checked in full once.
func platformKey(root TrustedRoot, q *Quote) [32]byte {
	h := sha256.New()
	h.Write(root.Cert.Raw)
	h.Write(q.pckChain())
	h.Write(q.TeeTCBSVN[:])
	h.Write(binary.LittleEndian.AppendUint32(nil, q.qeReport().GetIsvSvn()))
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// lookup returns the platform's verified collateral if it is still what getter serves and nothing
// in it has expired at now.
func (ps *platforms) lookup(key [32]byte, getter trust.HTTPSGetter, now time.Time) *verifiedPlatform {
	ps.mu.Lock()
	p := ps.m[key]
	ps.mu.Unlock()
	if p == nil || !now.Before(p.expires) {
		return nil
	}
	for u, want := range p.responses {
		h, b, err := getter.Get(u)
		if err != nil || !bytes.Equal(b, want.body) {
			return nil
		}
		for _, name := range collateralHeaders {
			if !slices.Equal(h[name], want.header[name]) {
				return nil
			}
		}
	}
	return p
}

// store remembers p under key, and the parsed chain of q, the quote it was verified with.
func (ps *platforms) store(key [32]byte, p *verifiedPlatform, q *Quote) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.m == nil || len(ps.m) >= maxPlatforms || len(ps.chains) >= maxPlatforms {
		ps.m, ps.chains = map[[32]byte]*verifiedPlatform{}, map[[32]byte]*parsedChain{}
	}
	ps.m[key] = p
	ps.chains[sha256.Sum256(q.pckChain())] = q.chain
}

// chain returns the parsed PCK chain of a verified platform whose chain is b, or nil.
func (ps *platforms) chain(b []byte) *parsedChain {
	k := sha256.Sum256(b)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.chains[k]
}

// newVerifiedPlatform records what a full verification checked, valid until the first expiry in
// it: the TCB info, QE identity and CRLs' next updates, and the collateral issuer certificates.
func newVerifiedPlatform(rec *recordingGetter, coll *parsedCollateral, gtgTCB error, now time.Time) *verifiedPlatform {
	p := &verifiedPlatform{responses: map[string]response{}, coll: coll, gtgTCB: gtgTCB, expires: now.Add(maxPlatformAge)}
	if t := coll.notAfter(); !t.IsZero() && t.Before(p.expires) {
		p.expires = t
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for u, b := range rec.got {
		p.responses[u] = response{header: rec.hdr[u], body: b}
	}
	return p
}

// chainNotAfter is the earliest expiry in a URL-escaped PEM issuer chain.
func chainNotAfter(v string) (time.Time, error) {
	chain, err := url.QueryUnescape(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("issuer chain: %w", err)
	}
	var first time.Time
	for rest := []byte(chain); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return time.Time{}, fmt.Errorf("issuer chain: %w", err)
		}
		if first.IsZero() || c.NotAfter.Before(first) {
			first = c.NotAfter
		}
	}
	if first.IsZero() {
		return time.Time{}, fmt.Errorf("issuer chain: no certificate")
	}
	return first, nil
}

// checkTDModule compares the TD's TDX module with the TCB info, as go-tdx-guest's
// verifyTdQuoteBody does before it rates the TCB.
func checkTDModule(q *Quote, c *parsedCollateral) error {
	body := q.body
	m := c.tcbInfo.TdxModule
	// FMSPC in either case, as go-tdx-guest compares it.
	if !strings.EqualFold(c.ext.FMSPC, c.tcbInfo.Fmspc) || c.ext.PCEID != c.tcbInfo.PceID {
		return fmt.Errorf("%w: PCK certificate FMSPC/PCEID do not match the TCB info", ErrCollateral)
	}
	if !bytes.Equal(m.Mrsigner.Bytes, body.GetMrSignerSeam()) {
		return fmt.Errorf("%w: MRSIGNERSEAM does not match the TCB info's TDX module", ErrCollateral)
	}
	attrs := body.GetSeamAttributes()
	if len(m.AttributesMask.Bytes) != len(attrs) {
		return fmt.Errorf("%w: SEAM attributes size does not match the TCB info's mask", ErrCollateral)
	}
	masked := make([]byte, len(attrs))
	for i := range attrs {
		masked[i] = attrs[i] & m.AttributesMask.Bytes[i]
	}
	if !bytes.Equal(masked, m.Attributes.Bytes) {
		return fmt.Errorf("%w: SEAM attributes do not match the TCB info's TDX module", ErrCollateral)
	}
	return nil
}
