package attest

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
)

// Policy says which peers a node accepts.
type Policy struct {
	// AllowSimulated accepts quotes that rest on the development root of trust. Off unless configured.
	AllowSimulated bool `json:"allow_simulated"`
	// AllowDebug accepts TDs launched with the DEBUG attribute. For debugging a TD image only: a debug
	// TD's memory is readable by its host.
	AllowDebug bool `json:"allow_debug"`
	// Roles lists the roles that may connect and what each must show; a role absent here is refused.
	Roles map[Role]RolePolicy `json:"roles"`
}

// RolePolicy is what the policy asks of one role.
type RolePolicy struct {
	// ImageHashes are the allowed image hashes, hex. "*" allows any image that passes the other checks.
	ImageHashes []string `json:"image_hashes,omitempty"`
	// ModelDigests are the allowed model weights digests (workers). Empty or "*" allows any.
	ModelDigests []string `json:"model_digests,omitempty"`
	// WithoutQuote lets this role connect with a certificate that carries no quote (clients, which
	// run outside a TEE). Such a peer is authenticated by its key only.
	WithoutQuote bool `json:"without_quote,omitempty"`
}

// AnyImage is the wildcard for RolePolicy.ImageHashes and ModelDigests.
const AnyImage = "*"

// LoadPolicy reads a JSON policy file.
func LoadPolicy(path string) (Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Policy{}, fmt.Errorf("read policy: %w", err)
	}
	return ParsePolicy(b)
}

// ParsePolicy parses and validates a JSON policy.
func ParsePolicy(b []byte) (Policy, error) {
	var p Policy
	if err := json.Unmarshal(b, &p); err != nil {
		return Policy{}, fmt.Errorf("parse policy: %w", err)
	}
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// Validate checks role names and hash syntax, naming the offending field.
func (p *Policy) Validate() error {
	for role, rp := range p.Roles {
		if !role.Valid() {
			return fmt.Errorf("policy: roles.%s: unknown role", role)
		}
		for i, h := range rp.ImageHashes {
			if h == AnyImage {
				continue
			}
			if _, err := ParseImageHash(h); err != nil {
				return fmt.Errorf("policy: roles.%s.image_hashes[%d]: %w", role, i, err)
			}
		}
	}
	return nil
}

// checkRole applies the policy's role rules to a peer with or without a quote.
func (p *Policy) checkRole(role Role, quoted bool) (RolePolicy, error) {
	rp, ok := p.Roles[role]
	if !ok {
		return rp, fmt.Errorf("%w: %s", ErrRoleNotAllowed, role)
	}
	if !quoted && !rp.WithoutQuote {
		return rp, fmt.Errorf("%w: %s", ErrQuoteRequired, role)
	}
	return rp, nil
}

// checkImage applies the image, debug and model rules to an attested peer.
func (p *Policy) checkImage(rp RolePolicy, c *Claims, m *Measurements) error {
	if m.Debug() && !p.AllowDebug {
		return ErrDebugTD
	}
	hash := m.ImageHash().String()
	if !slices.Contains(rp.ImageHashes, AnyImage) && !slices.Contains(rp.ImageHashes, hash) {
		return fmt.Errorf("%w: %s image %s", ErrImageNotAllowed, c.Role, hash)
	}
	if c.Role == RoleWorker && len(rp.ModelDigests) > 0 && !slices.Contains(rp.ModelDigests, AnyImage) &&
		!slices.Contains(rp.ModelDigests, c.WeightsDigest) {
		return fmt.Errorf("%w: %q", ErrModelNotAllowed, c.WeightsDigest)
	}
	return nil
}
