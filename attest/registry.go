package attest

import (
	"bytes"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
)

// RegistryLists is what the on-chain registry allows to serve: its allow-lists of proxy images,
// worker images and model weights digests, and where they came from. attest takes them as plain
// values; the registry contract itself is read elsewhere (settle).
type RegistryLists struct {
	// Address is the registry contract's address as people write it; refusals name it.
	Address string
	// Version is the registry's version counter (it grows with every change); refusals name it.
	Version      uint32
	ProxyImages  [][32]byte
	WorkerImages [][32]byte
	// Models are the allowed weights digests: the SHA-256 that a worker claims as "sha256:<hex>".
	Models [][32]byte
}

// PolicyFromRegistry is the local policy narrowed to the registry's lists: a proxy or worker is
// accepted only if its image is on the registry's list for its role, a worker only if its weights
// digest is on the registry's model list, and either only if the local policy accepts it too. The
// local policy can narrow the registry, never widen it: an image it lists that the registry does
// not is refused, and its "*" means "whatever the registry lists". An empty registry list allows
// nothing. Everything else (allow_simulated, allow_debug, TCB, platform and client rules) is the
// local policy's alone, as are roles without a registry list (clients).
//
// Nodes without a registry use their local policy as it is.
func PolicyFromRegistry(reg RegistryLists, local Policy) (Policy, error) {
	p := local
	p.Roles = maps.Clone(local.Roles)
	p.Registry = &RegistryLists{Address: reg.Address, Version: reg.Version,
		ProxyImages: sortedHashes(reg.ProxyImages), WorkerImages: sortedHashes(reg.WorkerImages), Models: sortedHashes(reg.Models)}
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// images is the registry's image list for role and its name in messages; listed is false when
// there is no registry or it has no list for role.
func (r *RegistryLists) images(role Role) (list [][32]byte, name string, listed bool) {
	if r == nil {
		return nil, "", false
	}
	switch role {
	case RoleProxy:
		return r.ProxyImages, "proxy", true
	case RoleWorker:
		return r.WorkerImages, "worker", true
	}
	return nil, "", false
}

func sortedHashes(list [][32]byte) [][32]byte {
	out := slices.Clone(list)
	slices.SortFunc(out, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(out)
}

func containsHash(sorted [][32]byte, h [32]byte) bool {
	_, found := slices.BinarySearchFunc(sorted, h, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	return found
}

// parseDigest reads a weights digest as workers claim it, "sha256:<64 hex>".
func parseDigest(s string) ([32]byte, bool) {
	var d [32]byte
	rest, ok := strings.CutPrefix(s, "sha256:")
	if !ok {
		return d, false
	}
	b, err := hex.DecodeString(rest)
	if err != nil || len(b) != len(d) {
		return d, false
	}
	copy(d[:], b)
	return d, true
}

// PolicyError is a refusal by policy of evidence that verified: the certificate, the quote's
// signatures and collateral, and the bindings between quote, claims and key all checked out, but
// the policy does not accept what the quote shows (its image, model, platform or TCB status).
// Such a refusal may be told to the peer (transport closes the connection with the reason);
// cryptographic failures never are. The message names what was refused and the list it is
// missing from, and never any secret of the quote.
type PolicyError struct {
	// Err wraps the sentinel of the failed check (ErrImageNotAllowed, ErrTCBStatus, …).
	Err error
	// Fix says how the peer gets admitted, when that is known: who adds what to which list.
	Fix string
}

func (e *PolicyError) Error() string { return e.Err.Error() }
func (e *PolicyError) Unwrap() error { return e.Err }

// asPolicyError wraps err, unless nil or already a PolicyError.
func asPolicyError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(*PolicyError); ok {
		return err
	}
	return &PolicyError{Err: err}
}
