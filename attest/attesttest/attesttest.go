// Package attesttest provides a shared development root of trust, policies, quoters and verifiers
// for tests of packages that build on attest. It is a non-test package so that any package's tests
// can import it; production code never does.
package attesttest

import (
	"crypto/sha512"
	"sync"
	"testing"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/sim"
)

var (
	rootOnce sync.Once
	root     *sim.Root
	errRoot  error
)

// Root returns a development root of trust shared by all tests of one process.
func Root(t testing.TB) *sim.Root {
	t.Helper()
	rootOnce.Do(func() { root, errRoot = sim.New(sim.Options{}) })
	if errRoot != nil {
		t.Fatalf("development root of trust: %v", errRoot)
	}
	return root
}

// OpenPolicy accepts simulated quotes, any proxy and worker image, and clients without a quote.
func OpenPolicy() attest.Policy {
	return attest.Policy{
		AllowSimulated: true,
		Roles: map[attest.Role]attest.RolePolicy{
			attest.RoleProxy:  {ImageHashes: []string{attest.AnyImage}},
			attest.RoleWorker: {ImageHashes: []string{attest.AnyImage}},
			attest.RoleClient: {WithoutQuote: true},
		},
	}
}

// Verifier returns a verifier for policy p that trusts Root(t) and any extra roots.
func Verifier(t testing.TB, p attest.Policy, extra ...attest.TrustedRoot) *attest.Verifier {
	t.Helper()
	v, err := attest.NewVerifier(attest.VerifierConfig{
		Roots:  append([]attest.TrustedRoot{attest.SimulatedRoot(Root(t))}, extra...),
		Policy: p,
	})
	if err != nil {
		t.Fatalf("verifier: %v", err)
	}
	return v
}

// Measurements are the simulated measurements of a test binary in the given role.
func Measurements(role attest.Role) attest.Measurements {
	d := sha512.Sum384([]byte("cocoon test binary"))
	return attest.SimulatedMeasurements(d[:], role, [32]byte{})
}

// Quoter returns a simulated quoter for m.
func Quoter(t testing.TB, m attest.Measurements) attest.Quoter {
	t.Helper()
	q, err := attest.NewSimulatedQuoter(Root(t), m)
	if err != nil {
		t.Fatalf("simulated quoter: %v", err)
	}
	return q
}

// Claims returns plausible claims for a role (the key is filled in when a certificate is made).
func Claims(role attest.Role) attest.Claims {
	c := attest.Claims{Role: role, Version: "test"}
	if role == attest.RoleWorker {
		c.Model = "test-model"
		c.WeightsDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	}
	return c
}
