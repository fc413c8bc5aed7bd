// Package attesttest provides a shared development root of trust, policies, quoters and verifiers
// for tests of packages that build on attest. It is a non-test package so that any package's tests
// can import it; production code never does.
package attesttest

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
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
		Roots:  append([]attest.TrustedRoot{Root(t).TrustedRoot()}, extra...),
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
	q, err := Root(t).Quoter(m)
	if err != nil {
		t.Fatalf("simulated quoter: %v", err)
	}
	return q
}

// Claims returns plausible claims for a role (the key is filled in when a certificate is made, and
// so is a worker's HPKE key, which here is one shared public key nobody holds the private half of).
func Claims(role attest.Role) attest.Claims {
	c := attest.Claims{Role: role, Version: "test"}
	if role == attest.RoleWorker {
		c.HPKEKey = HPKEPublicKey()
		c.Model = "test-model"
		c.WeightsDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	}
	return c
}

// HPKEPublicKey returns a valid worker HPKE public key (attest.HPKEKEM), the same one on every call.
func HPKEPublicKey() []byte { return bytes.Clone(sharedHPKEKey()) }

var sharedHPKEKey = sync.OnceValue(func() []byte {
	k, err := attest.HPKEKEM().GenerateKey()
	if err != nil {
		panic(err)
	}
	return k.PublicKey().Bytes()
})

// EventLog encodes events as a crypto-agile CC event log with SHA-384 digests, as TDX firmware
// writes it, followed by 0xFF padding as in the CCEL area.
func EventLog(events []attest.Event) []byte {
	le32 := func(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
	le16 := func(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
	spec := append([]byte("Spec ID Event03\x00"), 0, 0, 0, 0, 0, 2, 0, 2) // platform class, version 2.0, errata, uintn size
	spec = le32(spec, 1)
	spec = le16(le16(spec, 0x000c), 48)
	spec = append(spec, 0) // no vendor info
	var b []byte
	b = le32(le32(b, 0), 3) // MR 0, EV_NO_ACTION
	b = append(b, make([]byte, 20)...)
	b = append(le32(b, uint32(len(spec))), spec...)
	for _, e := range events {
		b = le32(le32(b, e.MRIndex), e.Type)
		b = le16(le32(b, 1), 0x000c)
		b = append(b, e.Digest[:]...)
		b = append(le32(b, uint32(len(e.Data))), e.Data...)
	}
	return append(b, bytes.Repeat([]byte{0xff}, 64)...)
}
