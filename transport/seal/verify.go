package seal

import (
	"crypto/ed25519"
	"sync"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// The records' signatures are checked with the rules of crypto/ed25519, with which workers sign
// (voi's StdLib preset accepts exactly what it accepts), against a key expanded once: a client
// checks a receipt, and a proxy a usage record, for every request to the same few workers, and
// the expanded key makes each check about half as costly.
var stdLibRules = &voi.Options{Verify: voi.VerifyOptionsStdLib}

// maxExpandedKeys bounds the expanded keys kept; the keys are attested workers', so the bound is
// reached only by a very large network, and then the cache starts again.
const maxExpandedKeys = 4096

var expanded = struct {
	sync.Mutex
	keys map[[ed25519.PublicKeySize]byte]*voi.ExpandedPublicKey
}{keys: map[[ed25519.PublicKeySize]byte]*voi.ExpandedPublicKey{}}

// sign signs label‖fields with priv. Ed25519 signatures are deterministic, so voi's is the very
// signature crypto/ed25519 makes, in half the time; a worker signs twice per request.
func sign(priv ed25519.PrivateKey, label string, fields []byte) []byte {
	return voi.Sign(voi.PrivateKey(priv), append([]byte(label), fields...))
}

// verify reports whether sig signs label‖fields under pub.
func verify(pub ed25519.PublicKey, label string, fields, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	msg := append([]byte(label), fields...)
	k := expandedKey(pub)
	if k == nil {
		// voi does not expand every encoding crypto/ed25519 reads (a non-canonical one): that
		// check decides it.
		return ed25519.Verify(pub, msg, sig)
	}
	return voi.VerifyExpandedWithOptions(k, msg, sig, stdLibRules)
}

// expandedKey is pub expanded, from the cache or made now; nil when voi cannot expand it.
func expandedKey(pub ed25519.PublicKey) *voi.ExpandedPublicKey {
	id := [ed25519.PublicKeySize]byte(pub)
	expanded.Lock()
	k, ok := expanded.keys[id]
	expanded.Unlock()
	if ok {
		return k
	}
	k, err := voi.NewExpandedPublicKey(voi.PublicKey(pub))
	if err != nil {
		k = nil
	}
	expanded.Lock()
	defer expanded.Unlock()
	if len(expanded.keys) >= maxExpandedKeys {
		clear(expanded.keys)
	}
	expanded.keys[id] = k
	return k
}
