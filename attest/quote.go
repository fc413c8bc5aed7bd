package attest

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/google/go-tdx-guest/abi"
	pb "github.com/google/go-tdx-guest/proto/tdx"
)

// MaxQuoteSize bounds a quote before it is parsed; real TDX quotes are about 5 KiB.
const MaxQuoteSize = 64 << 10

// tdAttrDebug is bit 0 of TDATTRIBUTES: the host may read and write the TD's memory.
const tdAttrDebug = 0x01

// Measurements are the registers that identify what a TD booted.
type Measurements struct {
	MRTD         [48]byte    // initial TD contents: the firmware
	RTMR         [4][48]byte // runtime measurement registers: firmware config, kernel, command line, application
	MRSeam       [48]byte    // the TDX module
	MRConfigID   [48]byte    // host-provided configuration ID
	TDAttributes [8]byte
	XFAM         [8]byte
}

// ImageHash is SHA-256(MRTD || RTMR0 || RTMR1 || RTMR2 || RTMR3): what the policy and the registry
// name as an allowed image.
func (m *Measurements) ImageHash() ImageHash {
	h := sha256.New()
	h.Write(m.MRTD[:])
	for i := range m.RTMR {
		h.Write(m.RTMR[i][:])
	}
	var out ImageHash
	h.Sum(out[:0])
	return out
}

// Debug reports whether the TD was launched with the DEBUG attribute.
func (m *Measurements) Debug() bool { return m.TDAttributes[0]&tdAttrDebug != 0 }

// ImageHash identifies a TD image.
type ImageHash [32]byte

func (h ImageHash) String() string { return hex.EncodeToString(h[:]) }

// ParseImageHash parses the hex form.
func ParseImageHash(s string) (ImageHash, error) {
	var h ImageHash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("image hash %q: want %d hex bytes", s, len(h))
	}
	copy(h[:], b)
	return h, nil
}

// TD quote body types of a v5 quote: the TD report of a TDX 1.0 or of a TDX 1.5 module.
const (
	BodyTDX10 = 2
	BodyTDX15 = 3
)

// Quote is a parsed TDX quote, v4 or v5. Parsing checks structure only; Verifier checks signatures.
type Quote struct {
	Raw     []byte
	Version uint32
	TeeType uint32
	// BodyType is the TD report's format: BodyTDX10, or BodyTDX15 (v5 quotes of TDX 1.5 modules,
	// which add TEE_TCB_SVN2 and MRSERVICETD).
	BodyType     int
	Measurements Measurements
	TeeTCBSVN    [16]byte
	// TeeTCBSVN2 is the TDX module's SVN after a TD-preserving update (BodyTDX15 only).
	TeeTCBSVN2 [16]byte
	// MRServiceTD measures the service TDs bound to this TD, such as a migration TD (BodyTDX15 only).
	MRServiceTD [48]byte
	ReportData  [64]byte
	// Root is the last certificate of the quote's PCK chain: the root the chain claims to end in.
	Root *x509.Certificate
	// PCK is the chain's leaf, the platform's PCK certificate (FMSPC, TCB SVNs).
	PCK *x509.Certificate

	proto  quoteProto // *pb.QuoteV4 or *pb.QuoteV5, as go-tdx-guest verifies it
	body   tdBody
	signed *pb.Ecdsa256BitQuoteV4AuthData
	chain  *parsedChain
}

// parsedChain is a quote's PCK chain, parsed.
type parsedChain struct {
	pck, root *x509.Certificate
	// notAfter is the earliest expiry in the chain: no verification of the quote holds after it;
	// notBefore the latest start of validity.
	notAfter, notBefore time.Time
}

// parseChain parses the PEM of a PCK chain: exactly three certificates.
func parseChain(b []byte) (*parsedChain, error) {
	ders, ok := splitChain(b)
	if !ok {
		return nil, fmt.Errorf("%w: PCK chain is not three plain PEM certificates", ErrMalformedQuote)
	}
	c := &parsedChain{}
	var certs [3]*x509.Certificate
	for i, der := range ders {
		var err error
		if certs[i], err = x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("%w: parse PCK chain certificate %d: %v", ErrMalformedQuote, i, err)
		}
		if i == 0 || certs[i].NotAfter.Before(c.notAfter) {
			c.notAfter = certs[i].NotAfter
		}
		if certs[i].NotBefore.After(c.notBefore) {
			c.notBefore = certs[i].NotBefore
		}
	}
	c.pck, c.root = certs[0], certs[2]
	return c, nil
}

// quoteProto is what go-tdx-guest's v4 and v5 quotes have in common.
type quoteProto interface {
	GetHeader() *pb.Header
	GetSignedData() *pb.Ecdsa256BitQuoteV4AuthData
	GetExtraBytes() []byte
}

// tdBody is what the v4 TD quote body and the v5 ones have in common.
type tdBody interface {
	GetTeeTcbSvn() []byte
	GetMrSeam() []byte
	GetMrSignerSeam() []byte
	GetSeamAttributes() []byte
	GetTdAttributes() []byte
	GetXfam() []byte
	GetMrTd() []byte
	GetMrConfigId() []byte
	GetRtmrs() [][]byte
	GetReportData() []byte
}

// ParseQuote parses a raw quote from untrusted bytes. It refuses quotes that go-tdx-guest would
// parse but that carry bytes its serialisation does not reproduce, so that every byte of an accepted
// quote is covered by a signature or by the structure itself.
func ParseQuote(raw []byte) (*Quote, error) { return parseQuote(raw, nil) }

// parseQuote is ParseQuote, taking the parsed PCK chain from known when it returns one for the
// quote's chain bytes (the chains of verified platforms: each of their quotes carries the same).
func parseQuote(raw []byte, known func(chain []byte) *parsedChain) (*Quote, error) {
	if len(raw) > MaxQuoteSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformedQuote, len(raw), MaxQuoteSize)
	}
	if len(raw) >= 2 {
		if v := binary.LittleEndian.Uint16(raw); v != abi.QuoteVersionV4 && v != abi.QuoteVersionV5 {
			return nil, fmt.Errorf("%w: version %d (this verifier checks TDX quotes v4 and v5)", ErrQuoteVersion, v)
		}
	}
	parsed, err := quoteToProto(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedQuote, err)
	}
	q := &Quote{Raw: raw}
	switch p := parsed.(type) {
	case *pb.QuoteV4:
		q.proto, q.body, q.BodyType = p, p.GetTdQuoteBody(), BodyTDX10
	case *pb.QuoteV5:
		d := p.GetTdQuoteBodyDescriptor()
		q.proto, q.BodyType = p, int(d.GetTdQuoteBodyType())
		if b := d.GetTdQuoteBodyV5(); b != nil {
			q.body = b
			copy(q.TeeTCBSVN2[:], b.GetTeeTcbSvn2())
			copy(q.MRServiceTD[:], b.GetMrServiceTd())
		}
	default:
		return nil, fmt.Errorf("%w: unsupported quote type %T", ErrMalformedQuote, parsed)
	}
	if err := abi.CheckQuote(q.proto); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedQuote, err)
	}
	again, err := abi.QuoteToAbiBytes(q.proto)
	if err != nil || !bytes.Equal(again, raw) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrMalformedQuote)
	}
	// go-tdx-guest ignores bytes after the signed data and tolerates padding in the PCK chain: the
	// length fields around them are not signed. Refuse both, so that no unsigned byte carries meaning.
	// Zero padding after the quote (a fixed-size buffer from the quoting library) is tolerated.
	if len(bytes.Trim(q.proto.GetExtraBytes(), "\x00")) > 0 {
		return nil, fmt.Errorf("%w: %d bytes after the signed data", ErrMalformedQuote, len(q.proto.GetExtraBytes()))
	}
	q.signed = q.proto.GetSignedData()
	if known != nil {
		q.chain = known(q.pckChain())
	}
	if q.chain == nil {
		if q.chain, err = parseChain(q.pckChain()); err != nil {
			return nil, err
		}
	}
	q.PCK, q.Root = q.chain.pck, q.chain.root
	q.Version, q.TeeType = q.proto.GetHeader().GetVersion(), q.proto.GetHeader().GetTeeType()
	body := q.body
	copy(q.Measurements.MRTD[:], body.GetMrTd())
	for i, r := range body.GetRtmrs() {
		if i < len(q.Measurements.RTMR) {
			copy(q.Measurements.RTMR[i][:], r)
		}
	}
	copy(q.Measurements.MRSeam[:], body.GetMrSeam())
	copy(q.Measurements.MRConfigID[:], body.GetMrConfigId())
	copy(q.Measurements.TDAttributes[:], body.GetTdAttributes())
	copy(q.Measurements.XFAM[:], body.GetXfam())
	copy(q.TeeTCBSVN[:], body.GetTeeTcbSvn())
	copy(q.ReportData[:], body.GetReportData())
	return q, nil
}

func (q *Quote) qeReport() *pb.EnclaveReport {
	return q.signed.GetCertificationData().GetQeReportCertificationData().GetQeReport()
}

func (q *Quote) pckChain() []byte {
	return q.signed.GetCertificationData().GetQeReportCertificationData().GetPckCertificateChainData().GetPckCertChain()
}

// The lines around a PEM certificate as pem.Encode writes them.
const (
	pemBegin = "-----BEGIN CERTIFICATE-----\n"
	pemEnd   = "-----END CERTIFICATE-----\n"
	pemLine  = 64 // base64 characters per line
)

// splitChain returns the DER of the three certificates of a PCK chain if the chain is exactly
// what pem.Encode writes for them (no headers, base64 in lines of 64), optionally followed by
// the single NUL that Intel's quoting library appends. Reading that one form directly costs a
// base64 decoding per certificate, where decoding with encoding/pem and comparing its re-encoding
// cost more than parsing the certificates (every handshake parses a quote, and so does every
// fuzzing execution).
func splitChain(chain []byte) (ders [3][]byte, ok bool) {
	rest := bytes.TrimSuffix(chain, []byte{0})
	for i := range ders {
		if ders[i], rest, ok = pemCertificate(rest); !ok {
			return ders, false
		}
	}
	return ders, len(rest) == 0
}

func pemCertificate(b []byte) (der, rest []byte, ok bool) {
	body, ok := bytes.CutPrefix(b, []byte(pemBegin))
	if !ok {
		return nil, nil, false
	}
	end := bytes.Index(body, []byte(pemEnd))
	if end < 0 {
		return nil, nil, false
	}
	text, rest := body[:end], body[end+len(pemEnd):]
	der, err := base64.StdEncoding.Strict().AppendDecode(make([]byte, 0, len(text)*3/4), text)
	if err != nil || len(der) == 0 {
		return nil, nil, false
	}
	// The decoder skips newlines wherever they are: the text must be the encoding, line by line.
	enc := base64.StdEncoding.AppendEncode(make([]byte, 0, len(text)), der)
	for len(enc) > 0 {
		n := min(pemLine, len(enc))
		if len(text) <= n || !bytes.Equal(text[:n], enc[:n]) || text[n] != '\n' {
			return nil, nil, false
		}
		text, enc = text[n+1:], enc[n:]
	}
	return der, rest, len(text) == 0
}

// quoteToProto runs go-tdx-guest's parser, which indexes slices by sizes read from the quote and
// panics on some inconsistent sizes (a hostile peer must not be able to crash a node that way).
func quoteToProto(raw []byte) (q any, err error) {
	defer func() {
		if r := recover(); r != nil {
			q, err = nil, fmt.Errorf("inconsistent sizes in quote: %v", r)
		}
	}()
	return abi.QuoteToProto(raw)
}
