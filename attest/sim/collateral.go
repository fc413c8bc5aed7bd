package sim

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/google/go-tdx-guest/pcs"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Response headers that carry issuer chains, spelled as go-tdx-guest looks them up.
const (
	hdrTCBInfoChain    = "Tcb-Info-Issuer-Chain"
	hdrQEIdentityChain = "Sgx-Enclave-Identity-Issuer-Chain"
	hdrPCKCRLChain     = "Sgx-Pck-Crl-Issuer-Chain"
)

// The JSON shapes of Intel PCS v4 responses. go-tdx-guest's pcs types only unmarshal (its
// HexBytes has no MarshalJSON), so the signer has its own.
type (
	jsonTCBInfo struct {
		ID                      string               `json:"id"`
		Version                 int                  `json:"version"`
		IssueDate               time.Time            `json:"issueDate"`
		NextUpdate              time.Time            `json:"nextUpdate"`
		FMSPC                   string               `json:"fmspc"`
		PCEID                   string               `json:"pceId"`
		TCBType                 int                  `json:"tcbType"`
		TCBEvaluationDataNumber int                  `json:"tcbEvaluationDataNumber"`
		TDXModule               jsonTDXModule        `json:"tdxModule"`
		TDXModuleIdentities     []jsonModuleIdentity `json:"tdxModuleIdentities"`
		TCBLevels               []jsonTCBLevel       `json:"tcbLevels"`
	}
	jsonTDXModule struct {
		MRSIGNER       string `json:"mrsigner"`
		Attributes     string `json:"attributes"`
		AttributesMask string `json:"attributesMask"`
	}
	jsonModuleIdentity struct {
		ID string `json:"id"`
		jsonTDXModule
		TCBLevels []jsonTCBLevel `json:"tcbLevels"`
	}
	jsonTCBLevel struct {
		TCB         jsonTCB  `json:"tcb"`
		TCBDate     string   `json:"tcbDate"`
		TCBStatus   string   `json:"tcbStatus"`
		AdvisoryIDs []string `json:"advisoryIDs,omitempty"`
	}
	jsonTCB struct {
		SGXComponents []jsonComponent `json:"sgxtcbcomponents,omitempty"`
		PCESVN        *uint16         `json:"pcesvn,omitempty"`
		TDXComponents []jsonComponent `json:"tdxtcbcomponents,omitempty"`
		ISVSVN        *uint16         `json:"isvsvn,omitempty"`
	}
	jsonComponent struct {
		SVN      byte   `json:"svn"`
		Category string `json:"category,omitempty"`
		Type     string `json:"type,omitempty"`
	}
	jsonQEIdentity struct {
		ID                      string         `json:"id"`
		Version                 int            `json:"version"`
		IssueDate               time.Time      `json:"issueDate"`
		NextUpdate              time.Time      `json:"nextUpdate"`
		TCBEvaluationDataNumber int            `json:"tcbEvaluationDataNumber"`
		MiscSelect              string         `json:"miscselect"`
		MiscSelectMask          string         `json:"miscselectMask"`
		Attributes              string         `json:"attributes"`
		AttributesMask          string         `json:"attributesMask"`
		MRSIGNER                string         `json:"mrsigner"`
		ISVProdID               uint16         `json:"isvprodid"`
		TCBLevels               []jsonTCBLevel `json:"tcbLevels"`
	}
)

// collateralSpec says what to sign: the clock, the lifetime and the test knobs of Options.
type collateralSpec struct {
	now      time.Time
	validity time.Duration
	status   pcs.TcbComponentStatus
	// moduleStatus and qeStatus rate the TDX module and the quoting enclave the platform runs.
	moduleStatus, qeStatus pcs.TcbComponentStatus
	revokePCK              bool
	crlNumber              *big.Int
}

// collateral is what Root.Collateral serves: response bodies exactly as they are stored on disk.
type collateral struct {
	tcbInfo, qeIdentity, pckCRL, rootCRL []byte
	// nextUpdate is the earliest expiry among the four.
	nextUpdate time.Time
}

func u16(v uint16) *uint16 { return &v }

func components(svns []byte, label func(int) (string, string)) []jsonComponent {
	out := make([]jsonComponent, len(svns))
	for i, s := range svns {
		out[i].SVN = s
		out[i].Category, out[i].Type = label(i)
	}
	return out
}

// Labels as Intel's TCB info gives them, for readers of tcbinfo.json.
func sgxComponentLabel(i int) (string, string) {
	switch i {
	case 0:
		return "BIOS", "Early Microcode Update"
	case 1:
		return "OS/VMM", "SGX Late Microcode Update"
	case 2:
		return "OS/VMM", "TXT SINIT"
	case 7:
		return "OS/VMM", "SEAMLDR ACM"
	}
	return "", ""
}

func tdxComponentLabel(i int) (string, string) {
	switch i {
	case 0, 1:
		return "OS/VMM", "TDX Module"
	case 2:
		return "OS/VMM", "TDX Late Microcode Update"
	}
	return "", ""
}

func tcbInfoJSON(spec collateralSpec) ([]byte, error) {
	oldSGX := platformSGXComponents
	oldTEE := platformTEETCBSVN
	oldTEE[2]-- // an older late-microcode SVN: the level platforms below ours match
	module := jsonTDXModule{
		MRSIGNER:       hex.EncodeToString(platformMRSIGNERSEAM[:]),
		Attributes:     hex.EncodeToString(platformSEAMAttributes[:]),
		AttributesMask: "ffffffffffffffff",
	}
	info := jsonTCBInfo{
		ID:                      "TDX",
		Version:                 3,
		IssueDate:               spec.now,
		NextUpdate:              spec.now.Add(spec.validity),
		FMSPC:                   fmspcHex(),
		PCEID:                   hex.EncodeToString(platformPCEID[:]),
		TCBType:                 0,
		TCBEvaluationDataNumber: tcbEvaluationDataNumber,
		TDXModule:               module,
		TDXModuleIdentities: []jsonModuleIdentity{{
			ID:            fmt.Sprintf("TDX_%02x", platformTEETCBSVN[1]),
			jsonTDXModule: module,
			TCBLevels: []jsonTCBLevel{
				{TCB: jsonTCB{ISVSVN: u16(uint16(platformTEETCBSVN[0]))}, TCBDate: tcbDate.Format(time.RFC3339), TCBStatus: string(spec.moduleStatus)},
				{TCB: jsonTCB{ISVSVN: u16(0)}, TCBDate: oldTCBDate.Format(time.RFC3339), TCBStatus: string(pcs.TcbComponentStatusOutOfDate)},
			},
		}},
		TCBLevels: []jsonTCBLevel{
			{
				TCB: jsonTCB{
					SGXComponents: components(platformSGXComponents[:], sgxComponentLabel),
					PCESVN:        u16(platformPCESVN),
					TDXComponents: components(platformTEETCBSVN[:], tdxComponentLabel),
				},
				TCBDate:   tcbDate.Format(time.RFC3339),
				TCBStatus: string(spec.status),
			},
			{
				TCB: jsonTCB{
					SGXComponents: components(oldSGX[:], sgxComponentLabel),
					PCESVN:        u16(platformPCESVN - 2),
					TDXComponents: components(oldTEE[:], tdxComponentLabel),
				},
				TCBDate:   oldTCBDate.Format(time.RFC3339),
				TCBStatus: string(pcs.TcbComponentStatusOutOfDate),
			},
		},
	}
	b, err := json.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("marshal tcb info: %w", err)
	}
	return b, nil
}

func qeIdentityJSON(spec collateralSpec) ([]byte, error) {
	mask := [16]byte{0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	misc := binary.LittleEndian.AppendUint32(nil, qeMiscSelect)
	id := jsonQEIdentity{
		ID:                      "TD_QE",
		Version:                 2,
		IssueDate:               spec.now,
		NextUpdate:              spec.now.Add(spec.validity),
		TCBEvaluationDataNumber: tcbEvaluationDataNumber,
		MiscSelect:              hex.EncodeToString(misc),
		MiscSelectMask:          "ffffffff",
		Attributes:              hex.EncodeToString(qeAttributes[:]),
		AttributesMask:          hex.EncodeToString(mask[:]),
		MRSIGNER:                hex.EncodeToString(qeMRSIGNER[:]),
		ISVProdID:               qeProdID,
		TCBLevels: []jsonTCBLevel{
			{TCB: jsonTCB{ISVSVN: u16(qeISVSVN)}, TCBDate: tcbDate.Format(time.RFC3339), TCBStatus: string(spec.qeStatus)},
			{TCB: jsonTCB{ISVSVN: u16(0)}, TCBDate: oldTCBDate.Format(time.RFC3339), TCBStatus: string(pcs.TcbComponentStatusOutOfDate)},
		},
	}
	b, err := json.Marshal(id)
	if err != nil {
		return nil, fmt.Errorf("marshal qe identity: %w", err)
	}
	return b, nil
}

// signRaw returns the ECDSA signature over SHA-256(msg) as 64 bytes r||s, the encoding of quotes
// and of PCS response signatures.
func signRaw(key *ecdsa.PrivateKey, msg []byte) ([]byte, error) {
	digest := sha256.Sum256(msg)
	der, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		return nil, err
	}
	var r, s big.Int
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1Integer(&r) || !seq.ReadASN1Integer(&s) {
		return nil, fmt.Errorf("malformed ECDSA signature")
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out, nil
}

// signedBody wraps an inner object the way PCS does: the signature covers the inner JSON bytes
// exactly as they appear in the body, so the body is assembled by hand rather than re-marshalled.
func signedBody(name string, inner []byte, key *ecdsa.PrivateKey) ([]byte, error) {
	sig, err := signRaw(key, inner)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", name, err)
	}
	body := make([]byte, 0, len(inner)+200)
	body = append(body, `{"`+name+`":`...)
	body = append(body, inner...)
	body = append(body, `,"signature":"`+hex.EncodeToString(sig)+`"}`...)
	return body, nil
}

func crl(issuer *x509.Certificate, key *ecdsa.PrivateKey, spec collateralSpec, revoked []*big.Int) ([]byte, error) {
	tmpl := &x509.RevocationList{
		Number:             spec.crlNumber,
		ThisUpdate:         spec.now,
		NextUpdate:         spec.now.Add(spec.validity),
		SignatureAlgorithm: x509.ECDSAWithSHA256,
	}
	for _, s := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: s, RevocationTime: spec.now})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer, key)
	if err != nil {
		return nil, fmt.Errorf("create CRL of %q: %w", issuer.Subject.CommonName, err)
	}
	return der, nil
}

// signCollateral signs fresh collateral for the hierarchy.
func signCollateral(cs *certSet, ks *keySet, spec collateralSpec) (*collateral, error) {
	spec.now = spec.now.UTC().Truncate(time.Second) // PCS dates carry whole seconds
	if spec.crlNumber == nil {
		spec.crlNumber = big.NewInt(spec.now.Unix()) // increases with every re-signing
	}
	tcbInner, err := tcbInfoJSON(spec)
	if err != nil {
		return nil, err
	}
	qeInner, err := qeIdentityJSON(spec)
	if err != nil {
		return nil, err
	}
	var c collateral
	if c.tcbInfo, err = signedBody("tcbInfo", tcbInner, ks.tcbSigning); err != nil {
		return nil, err
	}
	if c.qeIdentity, err = signedBody("enclaveIdentity", qeInner, ks.tcbSigning); err != nil {
		return nil, err
	}
	var revoked []*big.Int
	if spec.revokePCK {
		revoked = append(revoked, cs.pck.SerialNumber)
	}
	if c.pckCRL, err = crl(cs.platformCA, ks.platformCA, spec, revoked); err != nil {
		return nil, err
	}
	if c.rootCRL, err = crl(cs.root, ks.root, spec, nil); err != nil {
		return nil, err
	}
	c.nextUpdate = spec.now.Add(spec.validity)
	return &c, nil
}

// parseCollateral checks collateral read from disk and finds when it expires. It checks shape
// and expiry only; signatures are the verifier's business.
func parseCollateral(c *collateral) error {
	var tcb pcs.TdxTcbInfo
	if err := json.Unmarshal(c.tcbInfo, &tcb); err != nil {
		return fmt.Errorf("parse tcb info: %w", err)
	}
	var qe pcs.QeIdentity
	if err := json.Unmarshal(c.qeIdentity, &qe); err != nil {
		return fmt.Errorf("parse qe identity: %w", err)
	}
	next := tcb.TcbInfo.NextUpdate
	if qe.EnclaveIdentity.NextUpdate.Before(next) {
		next = qe.EnclaveIdentity.NextUpdate
	}
	for name, der := range map[string][]byte{"pck crl": c.pckCRL, "root crl": c.rootCRL} {
		l, err := x509.ParseRevocationList(der)
		if err != nil {
			return fmt.Errorf("parse %s: %w", name, err)
		}
		if l.NextUpdate.Before(next) {
			next = l.NextUpdate
		}
	}
	c.nextUpdate = next
	return nil
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// issuerChain is the header value PCS sends: the URL-escaped PEM of the signing certificate
// followed by the root.
func issuerChain(signer, root *x509.Certificate) string {
	return url.QueryEscape(string(append(pemCert(signer), pemCert(root)...)))
}
