package attest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/google/go-tdx-guest/pcs"
)

// Policy says which peers a node accepts. One format serves real and simulated quotes: the
// simulated ones only need AllowSimulated on top.
type Policy struct {
	// AllowSimulated accepts quotes that rest on the development root of trust. Off unless configured.
	AllowSimulated bool `json:"allow_simulated"`
	// AllowDebug accepts TDs launched with the DEBUG attribute. For debugging a TD image only: a debug
	// TD's memory is readable by its host.
	AllowDebug bool `json:"allow_debug"`
	// AcceptTCBStatuses are the TCB statuses accepted besides UpToDate, which always is:
	// SWHardeningNeeded, ConfigurationNeeded or ConfigurationAndSWHardeningNeeded. OutOfDate and
	// Revoked platforms are never accepted.
	AcceptTCBStatuses []pcs.TcbComponentStatus `json:"accept_tcb_statuses,omitempty"`
	// MinTEETCBSVN is the lowest TEE_TCB_SVN accepted, 16 bytes hex, compared byte by byte (the TDX
	// module's SVNs). Empty accepts any.
	MinTEETCBSVN string `json:"min_tee_tcb_svn,omitempty"`
	// MRSEAMs are the allowed TDX module measurements, 48 bytes hex. Empty accepts any Intel-signed module.
	MRSEAMs []string `json:"mrseams,omitempty"`
	// TDAttributes are the allowed TDATTRIBUTES values, 8 bytes hex as in the quote. Empty accepts
	// any (the DEBUG bit is governed by AllowDebug either way).
	TDAttributes []string `json:"td_attributes,omitempty"`
	// XFAMs are the allowed XFAM values (CPU extended state the TD may use), 8 bytes hex. Empty accepts any.
	XFAMs []string `json:"xfams,omitempty"`
	// MaxCollateralAge refuses collateral (TCB info, QE identity, PCK CRL) issued longer ago than
	// this, even before its next-update time, e.g. "168h". Zero: only the next-update times count.
	MaxCollateralAge Duration `json:"max_collateral_age,omitempty"`
	// Roles lists the roles that may connect and what each must show; a role absent here is refused.
	Roles map[Role]RolePolicy `json:"roles"`

	// Registry, when set, is the on-chain registry whose allow-lists a peer must also be on
	// (PolicyFromRegistry): the local rules above can only narrow them. It is never read from a
	// policy file, and refusals name it, its version and how to be added.
	Registry *RegistryLists `json:"-"`
}

// RolePolicy is what the policy asks of one role. ImageHashes, MRTDs and RTMRs each restrict the
// TD image when not empty; at least one must be given for a role that connects with a quote.
type RolePolicy struct {
	// ImageHashes are the allowed image hashes, hex. "*" allows any image that passes the other checks.
	ImageHashes []string `json:"image_hashes,omitempty"`
	// MRTDs are the allowed firmware measurements, 48 bytes hex.
	MRTDs []string `json:"mrtds,omitempty"`
	// RTMRs are allowed sets of RTMR0–3, 48 bytes hex each; "*" in a position accepts any value there.
	RTMRs [][4]string `json:"rtmrs,omitempty"`
	// ModelDigests are the allowed model weights digests (workers). Empty or "*" allows any.
	ModelDigests []string `json:"model_digests,omitempty"`
	// WithoutQuote lets this role connect with a certificate that carries no quote (clients, which
	// run outside a TEE). Such a peer is authenticated by its key only.
	WithoutQuote bool `json:"without_quote,omitempty"`
}

// AnyImage is the wildcard for RolePolicy.ImageHashes, ModelDigests and RTMRs positions.
const AnyImage = "*"

// Duration is a time.Duration written as in Go ("168h", "30m") in JSON.
type Duration time.Duration

// MarshalJSON writes the Go duration syntax.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads the Go duration syntax.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"168h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// LoadPolicy reads a JSON policy file.
func LoadPolicy(path string) (Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Policy{}, fmt.Errorf("read policy: %w", err)
	}
	return ParsePolicy(b)
}

// ParsePolicy parses and validates a JSON policy. Unknown fields are refused, so a misspelt
// restriction cannot silently allow more than intended.
func ParsePolicy(b []byte) (Policy, error) {
	var p Policy
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Policy{}, fmt.Errorf("parse policy: %w", err)
	}
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// acceptableStatuses are the statuses a policy may list; the rest mean a vulnerable platform.
var acceptableStatuses = []pcs.TcbComponentStatus{
	pcs.TcbComponentStatusUpToDate, pcs.TcbComponentStatusSwHardeningNeeded,
	pcs.TcbComponentStatusConfigurationNeeded, pcs.TcbComponentStatusConfigurationAndSWHardeningNeeded,
}

// Validate checks role names, statuses and hex syntax, naming the offending field.
func (p *Policy) Validate() error {
	for i, s := range p.AcceptTCBStatuses {
		if !slices.Contains(acceptableStatuses, s) {
			return fmt.Errorf("policy: accept_tcb_statuses[%d]: %q is not acceptable (want one of %v)", i, s, acceptableStatuses)
		}
	}
	if p.MinTEETCBSVN != "" {
		if err := checkHex(p.MinTEETCBSVN, 16, false); err != nil {
			return fmt.Errorf("policy: min_tee_tcb_svn: %w", err)
		}
	}
	for name, list := range map[string][]string{"mrseams": p.MRSEAMs, "td_attributes": p.TDAttributes, "xfams": p.XFAMs} {
		size := 48
		if name != "mrseams" {
			size = 8
		}
		for i, h := range list {
			if err := checkHex(h, size, false); err != nil {
				return fmt.Errorf("policy: %s[%d]: %w", name, i, err)
			}
		}
	}
	if p.MaxCollateralAge < 0 {
		return fmt.Errorf("policy: max_collateral_age: negative")
	}
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
		for i, h := range rp.MRTDs {
			if err := checkHex(h, 48, false); err != nil {
				return fmt.Errorf("policy: roles.%s.mrtds[%d]: %w", role, i, err)
			}
		}
		for i, set := range rp.RTMRs {
			for j, h := range set {
				if err := checkHex(h, 48, true); err != nil {
					return fmt.Errorf("policy: roles.%s.rtmrs[%d][%d]: %w", role, i, j, err)
				}
			}
		}
	}
	return nil
}

func checkHex(s string, size int, wildcard bool) error {
	if wildcard && s == AnyImage {
		return nil
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != size {
		return fmt.Errorf("%q: want %d bytes hex", s, size)
	}
	return nil
}

// hexIn reports whether b, hex-encoded, is in list (case-insensitive).
func hexIn(list []string, b []byte) bool {
	for _, h := range list {
		if v, err := hex.DecodeString(h); err == nil && bytes.Equal(v, b) {
			return true
		}
	}
	return false
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

// checkPlatform applies the rules that do not depend on the role: debug, TD attributes, XFAM, the
// TDX module and its SVN.
func (p *Policy) checkPlatform(m *Measurements, teeTCBSVN [16]byte) error {
	if m.Debug() && !p.AllowDebug {
		return fmt.Errorf("%w: TD attributes %s", ErrDebugTD, hex.EncodeToString(m.TDAttributes[:]))
	}
	if len(p.TDAttributes) > 0 && !hexIn(p.TDAttributes, m.TDAttributes[:]) {
		return fmt.Errorf("%w: TD attributes %s (%s) not in td_attributes", ErrMeasurementMismatch,
			hex.EncodeToString(m.TDAttributes[:]), TDAttributeNames(m.TDAttributes))
	}
	if len(p.XFAMs) > 0 && !hexIn(p.XFAMs, m.XFAM[:]) {
		return fmt.Errorf("%w: XFAM %s not in xfams", ErrMeasurementMismatch, hex.EncodeToString(m.XFAM[:]))
	}
	if len(p.MRSEAMs) > 0 && !hexIn(p.MRSEAMs, m.MRSeam[:]) {
		return fmt.Errorf("%w: MRSEAM %s not in mrseams", ErrMeasurementMismatch, hex.EncodeToString(m.MRSeam[:]))
	}
	if p.MinTEETCBSVN != "" {
		min, _ := hex.DecodeString(p.MinTEETCBSVN)
		for i := range min {
			if teeTCBSVN[i] < min[i] {
				return fmt.Errorf("%w: TEE TCB SVN %s below min_tee_tcb_svn %s at byte %d", ErrMeasurementMismatch,
					hex.EncodeToString(teeTCBSVN[:]), p.MinTEETCBSVN, i)
			}
		}
	}
	return nil
}

// checkImage applies the registry's lists, then the role's image, MRTD, RTMR and model rules, to
// an attested peer. A refusal is a PolicyError whose Fix says how to be admitted.
func (p *Policy) checkImage(rp RolePolicy, c *Claims, m *Measurements) error {
	if err := p.checkImageHash(rp, c.Role, m); err != nil {
		return err
	}
	if len(rp.MRTDs) > 0 && !hexIn(rp.MRTDs, m.MRTD[:]) {
		return fmt.Errorf("%w: %s MRTD %s not in mrtds", ErrMeasurementMismatch, c.Role, hex.EncodeToString(m.MRTD[:]))
	}
	if len(rp.RTMRs) > 0 && !slices.ContainsFunc(rp.RTMRs, func(set [4]string) bool { return rtmrsMatch(set, m) }) {
		return fmt.Errorf("%w: %s RTMRs match no set in rtmrs", ErrMeasurementMismatch, c.Role)
	}
	if c.Role == RoleWorker {
		return p.checkModel(rp, c.WeightsDigest)
	}
	return nil
}

// checkImageHash checks the image hash against the registry's list for the role and the local
// image_hashes; when both refuse it, the message names both.
func (p *Policy) checkImageHash(rp RolePolicy, role Role, m *Measurements) error {
	if len(rp.ImageHashes) == 0 && len(rp.MRTDs) == 0 && len(rp.RTMRs) == 0 {
		return &PolicyError{Err: fmt.Errorf("%w: the local policy allows no image for %s", ErrImageNotAllowed, role),
			Fix: fmt.Sprintf("the refusing node's operator lists it in roles.%s.image_hashes of its attestation policy", role)}
	}
	hash := m.ImageHash()
	local := len(rp.ImageHashes) == 0 || slices.Contains(rp.ImageHashes, AnyImage) || slices.Contains(rp.ImageHashes, hash.String())
	localFix := fmt.Sprintf("the refusing node's operator adds it to roles.%s.image_hashes of its attestation policy", role)
	list, name, listed := p.Registry.images(role)
	switch {
	case listed && !containsHash(list, hash):
		r := p.Registry
		reason := fmt.Sprintf("%s image %s is not on registry %s's %s list (version %d)", role, hash, r.Address, name, r.Version)
		fix := fmt.Sprintf("the owner adds it with \"cocoon chain registry allow %s %s-image %s\"", r.Address, name, hash)
		if !local {
			reason += fmt.Sprintf(", nor in the local policy's roles.%s.image_hashes", role)
			fix += "; then " + localFix
		}
		return &PolicyError{Err: fmt.Errorf("%w: %s", ErrImageNotAllowed, reason), Fix: fix}
	case !local:
		reason := fmt.Sprintf("%s image %s is not in the local policy's roles.%s.image_hashes", role, hash, role)
		if listed {
			reason += fmt.Sprintf(" (it is on registry %s's %s list, version %d; the local policy narrows it)",
				p.Registry.Address, name, p.Registry.Version)
		}
		return &PolicyError{Err: fmt.Errorf("%w: %s", ErrImageNotAllowed, reason), Fix: localFix}
	}
	return nil
}

// checkModel checks a worker's weights digest against the registry's model list and the local
// model_digests.
func (p *Policy) checkModel(rp RolePolicy, digest string) error {
	if r := p.Registry; r != nil {
		d, ok := parseDigest(digest)
		if !ok || !containsHash(r.Models, d) {
			return &PolicyError{
				Err: fmt.Errorf("%w: worker model digest %q is not on registry %s's model list (version %d)",
					ErrModelNotAllowed, digest, r.Address, r.Version),
				Fix: fmt.Sprintf("the owner adds it with \"cocoon chain registry allow %s model %s\"", r.Address, digest),
			}
		}
	}
	if len(rp.ModelDigests) > 0 && !slices.Contains(rp.ModelDigests, AnyImage) && !slices.Contains(rp.ModelDigests, digest) {
		return &PolicyError{Err: fmt.Errorf("%w: %q is not in the local policy's roles.worker.model_digests", ErrModelNotAllowed, digest),
			Fix: "the refusing node's operator adds it to roles.worker.model_digests of its attestation policy"}
	}
	return nil
}

func rtmrsMatch(set [4]string, m *Measurements) bool {
	for i, h := range set {
		if h != AnyImage && !hexIn([]string{h}, m.RTMR[i][:]) {
			return false
		}
	}
	return true
}

// checkCollateralAge applies MaxCollateralAge.
func (p *Policy) checkCollateralAge(c *CollateralReport, now time.Time) error {
	if p.MaxCollateralAge == 0 || c == nil {
		return nil
	}
	max := time.Duration(p.MaxCollateralAge)
	for _, d := range []struct {
		name   string
		issued time.Time
	}{{"TCB info", c.TCBInfoIssued}, {"QE identity", c.QEIdentityIssued}, {"PCK CRL", c.PCKCRLIssued}} {
		if !d.issued.IsZero() && now.Sub(d.issued) > max {
			return fmt.Errorf("%w: %s issued %s, older than max_collateral_age %s", ErrCollateralExpired,
				d.name, d.issued.UTC().Format(time.RFC3339), max)
		}
	}
	return nil
}

// checkTCB accepts UpToDate components and those the policy lists; anything else, including a
// platform that matches no TCB level of the collateral, is refused.
func (p *Policy) checkTCB(t *TCBReport) error {
	if t == nil {
		return fmt.Errorf("%w: TCB status not evaluated", ErrTCBStatus)
	}
	if t.Problem != "" {
		return fmt.Errorf("%w: %s", ErrTCBStatus, t.Problem)
	}
	ok := func(s pcs.TcbComponentStatus) bool {
		return s == pcs.TcbComponentStatusUpToDate || slices.Contains(p.AcceptTCBStatuses, s)
	}
	for _, c := range t.components() {
		if !ok(c.level.Status) {
			return fmt.Errorf("%w: %s TCB status %s (TCB date %s%s)", ErrTCBStatus, c.name, c.level.Status,
				c.level.Date, advisories(c.level.AdvisoryIDs))
		}
	}
	return nil
}

func advisories(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return fmt.Sprintf(", advisories %v", ids)
}
