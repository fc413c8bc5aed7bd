package node

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/sim"
	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/transport"
)

// Transport builds a role's attested transport: its identity (certificate, quote, claims), the
// verifier with its trusted roots and policy, and the roles it accepts on the other end.
//
// key, when given, signs every certificate (a client's wallet key); otherwise each certificate
// gets a fresh key.
func Transport(c *config.Config, role attest.Role, claims attest.Claims, version string, log zerolog.Logger, key ...ed25519.PrivateKey) (transport.Config, error) {
	claims.Role, claims.Version = role, version
	claims.ConfigDigest = c.Digest(string(role))

	policy, err := peerPolicy(c, role, log)
	if err != nil {
		return transport.Config{}, err
	}
	var root *sim.Root
	if c.Attestation.Simulated || policy.AllowSimulated {
		var err error
		if root, err = sim.Open(c.SimRoot()); err != nil {
			return transport.Config{}, fmt.Errorf("development root of trust: %w", err)
		}
	}
	var quoter attest.Quoter
	if role != attest.RoleClient {
		if c.Attestation.Simulated {
			m, err := SimulatedMeasurements(*c, role)
			if err != nil {
				return transport.Config{}, err
			}
			if quoter, err = root.Quoter(m); err != nil {
				return transport.Config{}, err
			}
			log.Warn().Str("image_hash", m.ImageHash().String()).Str("sim_dir", c.SimRoot()).
				Msg("SIMULATED TDX: quotes are signed by the development root of trust and prove nothing about hardware")
		} else {
			q, err := attest.NewTDXQuoter()
			if err != nil {
				return transport.Config{}, fmt.Errorf("%w (set attestation.simulated for a development run)", err)
			}
			quoter = q
		}
	}

	dir := c.Attestation.CollateralDir
	if dir == "" {
		dir = filepath.Join(c.Data, "collateral")
	}
	collateral, err := attest.NewCollateralGetter(attest.CollateralConfig{URL: c.Attestation.CollateralURL, Dir: dir,
		Bundle: c.Attestation.CollateralBundle, Offline: c.Attestation.Offline})
	if err != nil {
		return transport.Config{}, fmt.Errorf("attestation collateral: %w", err)
	}
	roots := []attest.TrustedRoot{attest.IntelRoot(collateral)}
	if root != nil {
		roots = append(roots, root.TrustedRoot())
	}
	if policy.AllowSimulated {
		log.Warn().Msg("accepting peers with SIMULATED TDX quotes (allow_simulated)")
	}
	verifier, err := attest.NewVerifier(attest.VerifierConfig{Roots: roots, Policy: policy})
	if err != nil {
		return transport.Config{}, err
	}
	idc := transport.IdentityConfig{Claims: claims, Quoter: quoter, Validity: time.Duration(c.Attestation.CertValidity)}
	if len(key) > 0 {
		idc.Key = key[0]
	}
	id, err := transport.NewIdentity(idc)
	if err != nil {
		return transport.Config{}, fmt.Errorf("make %s certificate: %w", role, err)
	}
	// A connection drains before its certificates expire for longer than a request may last, so
	// that requests under way finish before it closes.
	longest := time.Duration(max(c.Proxy.RequestTimeout, c.Client.RequestTimeout))
	tc := transport.Config{Identity: id, Verifier: verifier, SoftwareVersion: version, Log: log,
		MaxCertValidity: 24 * time.Hour, DrainBefore: max(transport.DefaultDrainBefore, longest+time.Minute)}
	if role == attest.RoleWorker {
		// The proxy opens a stream per request it routes here: the worker must see each one, to
		// answer those over max_active with CodeOverloaded rather than leave the proxy waiting.
		tc.MaxStreams = max(transport.DefaultDialMaxStreams, 2*int64(c.Worker.MaxActive))
	}
	if role != attest.RoleProxy {
		tc.PeerRoles = []attest.Role{attest.RoleProxy}
	}
	switch role {
	case attest.RoleClient:
		// A proxy killed outright sends nothing more, and QUIC has no reset to say so: only an
		// unanswered ping tells. Pinging every 250ms with a 750ms deadline finds it within a
		// second, so requests waiting on it fail over to another proxy within 2s. A client has a
		// few proxies, so the pings cost nothing that matters.
		tc.PingInterval, tc.PingTimeout = 250*time.Millisecond, 750*time.Millisecond
	case attest.RoleProxy:
		// Idle peers are pinged every few seconds; the proxy pings a worker every 250ms while it
		// serves requests (roles/proxy), so a request cut off mid-answer fails within seconds.
		tc.PingInterval, tc.PingTimeout = transport.IdlePingInterval, time.Second
	}
	return tc, nil
}

// peerPolicy loads the configured policy file, or builds the permissive default for the role.
func peerPolicy(c *config.Config, role attest.Role, log zerolog.Logger) (attest.Policy, error) {
	if c.Attestation.Policy != "" {
		p, err := attest.LoadPolicy(c.Attestation.Policy)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return p, fmt.Errorf("attestation.policy: %w", err)
			}
			return p, fmt.Errorf("attestation.policy %s: %w", c.Attestation.Policy, err)
		}
		p.AllowSimulated = p.AllowSimulated || c.Attestation.AllowSimulated
		return p, nil
	}
	log.Warn().Msg("no attestation policy file: accepting any attested image hash (set attestation.policy)")
	anyImage := attest.RolePolicy{ImageHashes: []string{attest.AnyImage}}
	p := attest.Policy{AllowSimulated: c.Attestation.AllowSimulated, Roles: map[attest.Role]attest.RolePolicy{}}
	if role == attest.RoleProxy {
		p.Roles[attest.RoleWorker] = anyImage
		p.Roles[attest.RoleClient] = attest.RolePolicy{WithoutQuote: true}
	} else {
		p.Roles[attest.RoleProxy] = anyImage
	}
	if role == attest.RoleClient {
		// A client verifies the worker each request is sealed to, as the proxy offers it.
		p.Roles[attest.RoleWorker] = anyImage
	}
	return p, nil
}
