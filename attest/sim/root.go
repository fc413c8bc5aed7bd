package sim

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/go-tdx-guest/pcs"
	"github.com/google/go-tdx-guest/verify/trust"
)

// ErrPublicOnly is returned by NewQuoter on a Root loaded with OpenPublic, which has no private keys.
var ErrPublicOnly = errors.New("development root of trust opened without its private keys")

// Options shape a development root of trust made by New.
type Options struct {
	Now                time.Time              // zero = time.Now(); the clock for certificate and collateral validity
	CollateralValidity time.Duration          // zero = 30 days; tcbInfo/QE identity/CRL nextUpdate = Now + this
	TCBStatus          pcs.TcbComponentStatus // zero = UpToDate; the status of the TCB level the simulated platform matches
	ModuleTCBStatus    pcs.TcbComponentStatus // zero = UpToDate; the status of the TDX module identity level it matches
	QETCBStatus        pcs.TcbComponentStatus // zero = UpToDate; the status of the QE identity level its quoting enclave matches
	RevokePCK          bool                   // put the PCK leaf's serial in the PCK CRL (for tests)
	// Lifetimes of single certificates from Now, for tests of expiry; zero = 10 years.
	PCKValidity        time.Duration // the PCK leaf
	PlatformCAValidity time.Duration // the PCK platform CA, the chain's intermediate
	TCBSigningValidity time.Duration // the TCB signing certificate, issuer of the TCB info and QE identity
}

func (o Options) withDefaults() (Options, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	switch {
	case o.CollateralValidity == 0:
		o.CollateralValidity = defaultCollateralValidity
	case o.CollateralValidity < 0:
		return o, fmt.Errorf("negative collateral validity %v", o.CollateralValidity)
	}
	for _, st := range []*pcs.TcbComponentStatus{&o.TCBStatus, &o.ModuleTCBStatus, &o.QETCBStatus} {
		if *st == "" {
			*st = pcs.TcbComponentStatusUpToDate
		}
		if !validStatus(*st) {
			return o, fmt.Errorf("unknown TCB status %q", *st)
		}
	}
	return o, nil
}

// Root is a development root of trust: its certificates, the collateral they sign and, unless it
// was loaded with OpenPublic, the private keys that make quotes. It is safe for concurrent use.
type Root struct {
	certs *certSet
	keys  *keySet // nil when public
	dir   string  // "" when in memory

	mu        sync.Mutex
	coll      *collateral
	lastCheck time.Time // of the directory, when collateral nears expiry

	// The issuer-chain headers, encoded once: a verifier asks for them at every handshake.
	chainsOnce         sync.Once
	tcbChain, crlChain string
}

// New makes a fresh in-memory development root of trust (for tests).
func New(opts Options) (*Root, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("new development root: %w", err)
	}
	ks, cs, err := newHierarchy(opts.Now, lifetimes{pck: opts.PCKValidity, platformCA: opts.PlatformCAValidity, tcbSigning: opts.TCBSigningValidity})
	if err != nil {
		return nil, fmt.Errorf("new development root: %w", err)
	}
	c, err := signCollateral(cs, ks, collateralSpecFor(opts))
	if err != nil {
		return nil, fmt.Errorf("new development root: %w", err)
	}
	return &Root{certs: cs, keys: ks, coll: c}, nil
}

func collateralSpecFor(o Options) collateralSpec {
	return collateralSpec{now: o.Now, validity: o.CollateralValidity, status: o.TCBStatus, moduleStatus: o.ModuleTCBStatus,
		qeStatus: o.QETCBStatus, revokePCK: o.RevokePCK}
}

// Certificate returns the development root CA: what a verifier that accepts simulated quotes puts
// in verify.Options.TrustedRoots.
func (r *Root) Certificate() *x509.Certificate { return r.certs.root }

// Collateral returns the getter to put in verify.Options.Getter. It answers the URLs go-tdx-guest
// requests from Intel's PCS (TCB info for the simulated FMSPC, TD QE identity, platform PCK CRL)
// and the root CA's CRL distribution points, with the issuer-chain headers PCS sends; any other
// URL is an error, so nothing reaches the network.
func (r *Root) Collateral() trust.HTTPSGetter { return getter{r} }

type getter struct{ r *Root }

func (g getter) Get(u string) (map[string][]string, []byte, error) {
	c := g.r.current()
	cs := g.r.certs
	g.r.chainsOnce.Do(func() {
		g.r.tcbChain, g.r.crlChain = issuerChain(cs.tcbSigning, cs.root), issuerChain(cs.platformCA, cs.root)
	})
	var chain string
	var hdr string
	var body []byte
	switch {
	case u == pcs.TcbInfoURL(fmspcHex()):
		hdr, chain, body = hdrTCBInfoChain, g.r.tcbChain, c.tcbInfo
	case u == pcs.QeIdentityURL():
		hdr, chain, body = hdrQEIdentityChain, g.r.tcbChain, c.qeIdentity
	case u == pcs.PckCrlURL(platformCAID):
		hdr, chain, body = hdrPCKCRLChain, g.r.crlChain, c.pckCRL
	case slices.Contains(cs.root.CRLDistributionPoints, u):
		return map[string][]string{"Content-Type": {"application/pkix-crl"}}, slices.Clone(c.rootCRL), nil
	default:
		return nil, nil, fmt.Errorf("development root of trust serves no %s", u)
	}
	return map[string][]string{hdr: {chain}}, slices.Clone(body), nil
}

// current returns the collateral to serve. A root kept in a directory renews collateral that is
// about to expire (re-signing it, or re-reading what another process re-signed), so long-running
// processes keep verifying; an in-memory root serves what New signed, so tests control expiry.
func (r *Root) current() *collateral {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if r.dir == "" || now.Before(r.coll.nextUpdate.Add(-refreshMargin)) || now.Sub(r.lastCheck) < time.Minute {
		return r.coll
	}
	r.lastCheck = now
	// On failure keep serving what we have: the verifier reports the expiry precisely.
	if c, err := refreshDir(r.dir, r.certs, r.keys, now); err == nil {
		r.coll = c
	}
	return r.coll
}
