package attest

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"fmt"

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

// Quote is a parsed TDX v4 quote. Parsing checks structure only; Verifier checks signatures.
type Quote struct {
	Raw          []byte
	Version      uint32
	TeeType      uint32
	Measurements Measurements
	TeeTCBSVN    [16]byte
	ReportData   [64]byte
	// Root is the last certificate of the quote's PCK chain: the root the chain claims to end in.
	Root *x509.Certificate
	// PCK is the chain's leaf, the platform's PCK certificate (FMSPC, TCB SVNs).
	PCK *x509.Certificate

	proto *pb.QuoteV4
}

// ParseQuote parses a raw quote from untrusted bytes. It refuses quotes that go-tdx-guest would
// parse but that carry bytes its serialisation does not reproduce, so that every byte of an accepted
// quote is covered by a signature or by the structure itself.
func ParseQuote(raw []byte) (*Quote, error) {
	if len(raw) > MaxQuoteSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformedQuote, len(raw), MaxQuoteSize)
	}
	// go-tdx-guest v0.3.1 parses and verifies v4 quotes only. v5 (TDX 1.5 modules) adds a body
	// descriptor that the signature covers, so it cannot be mapped onto v4 and verified honestly.
	if len(raw) >= 2 && binary.LittleEndian.Uint16(raw) == 5 {
		return nil, fmt.Errorf("%w: TDX quote v5 (TDX 1.5 module) is not supported yet; this verifier checks v4 quotes", ErrQuoteVersion)
	}
	any, err := quoteToProto(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedQuote, err)
	}
	q4, ok := any.(*pb.QuoteV4)
	if !ok {
		return nil, fmt.Errorf("%w: unsupported quote type %T", ErrMalformedQuote, any)
	}
	if err := abi.CheckQuoteV4(q4); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedQuote, err)
	}
	again, err := abi.QuoteToAbiBytes(q4)
	if err != nil || !bytes.Equal(again, raw) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrMalformedQuote)
	}
	// go-tdx-guest ignores bytes after the signed data and tolerates padding in the PCK chain: the
	// length fields around them are not signed. Refuse both, so that no unsigned byte carries meaning.
	// Zero padding after the quote (a fixed-size buffer from the quoting library) is tolerated.
	if len(bytes.Trim(q4.GetExtraBytes(), "\x00")) > 0 {
		return nil, fmt.Errorf("%w: %d bytes after the signed data", ErrMalformedQuote, len(q4.GetExtraBytes()))
	}
	chain := q4.GetSignedData().GetCertificationData().GetQeReportCertificationData().GetPckCertificateChainData().GetPckCertChain()
	if !canonicalChain(chain) {
		return nil, fmt.Errorf("%w: PCK chain is not three plain PEM certificates", ErrMalformedQuote)
	}
	q := &Quote{Raw: raw, Version: q4.GetHeader().GetVersion(), TeeType: q4.GetHeader().GetTeeType(), proto: q4}
	body := q4.GetTdQuoteBody()
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
	certs, err := chainCerts(chain)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedQuote, err)
	}
	q.PCK, q.Root = certs[0], certs[len(certs)-1]
	return q, nil
}

// canonicalChain reports whether chain is exactly three PEM certificates as pem.Encode writes
// them, optionally followed by the single NUL that Intel's quoting library appends.
func canonicalChain(chain []byte) bool {
	chain = bytes.TrimSuffix(chain, []byte{0})
	var again []byte
	rest := chain
	for range 3 {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil || b.Type != "CERTIFICATE" || len(b.Headers) != 0 {
			return false
		}
		again = append(again, pem.EncodeToMemory(b)...)
	}
	return len(rest) == 0 && bytes.Equal(again, chain)
}

// chainCerts parses the certificates of a PEM chain, leaf first.
func chainCerts(chain []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := chain; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse PCK chain certificate %d: %v", len(certs), err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("no certificate in PCK chain")
	}
	return certs, nil
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
