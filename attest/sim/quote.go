package sim

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/google/go-tdx-guest/abi"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"google.golang.org/protobuf/proto"
)

// Measurements are the TD's own registers, as a TDX module would report them.
type Measurements struct {
	MRTD                               [48]byte
	RTMR                               [4][48]byte
	MRConfigID, MROwner, MROwnerConfig [48]byte
	TDAttributes                       [8]byte // bit 0 of byte 0 = DEBUG
	XFAM                               [8]byte
}

// Layout constants of TDX quotes that go-tdx-guest's abi package keeps unexported.
const (
	quoteVersion          = 4
	certDataTypeQEReport  = 6 // certification data: QE report certification data
	certDataTypePCKChain  = 5 // certification data: concatenated PCK certificate chain
	enclaveReportSize     = 0x180
	rawSignatureSize      = 0x40
	attestationKeySize    = 0x40
	qeAuthSizeFieldSize   = 2
	certDataHeaderSize    = 6 // type (2) + size (4)
	quoteAuthDataHeadSize = rawSignatureSize + attestationKeySize
	tdReportTDX15         = 3   // v5 body descriptor type: TDX 1.5 TD report
	tdReportTDX15Size     = 648 // its size: the TDX 1.0 report, TEE_TCB_SVN2 and MRSERVICETD
)

// A Quoter makes simulated TDX quotes for one TD. Like a quoting enclave it has its own
// attestation key, certified by a QE report that the PCK key signs. It is safe for concurrent use.
type Quoter struct {
	attestKey  *ecdsa.PrivateKey
	header     *pb.Header
	body       *pb.TDQuoteBody // ReportData left empty; Quote fills a copy
	signedData *pb.Ecdsa256BitQuoteV4AuthData
	signedSize uint32
}

// QE describes the quoting enclave a Quoter stands for; the zero value is Intel's TD quoting enclave.
type QE struct {
	// ProdID replaces the ISV PRODID of Intel's TD QE: a quoting enclave that the QE identity does
	// not describe, though its report is signed by the platform's PCK key (for tests).
	ProdID uint16
}

// NewQuoter returns a Quoter whose quotes report m. It fails on a Root opened with OpenPublic.
func (r *Root) NewQuoter(m Measurements) (*Quoter, error) { return r.NewQuoterQE(m, QE{}) }

// NewQuoterQE is NewQuoter for the quoting enclave qe.
func (r *Root) NewQuoterQE(m Measurements, qe QE) (*Quoter, error) {
	prodID := qeProdID
	if qe.ProdID != 0 {
		prodID = qe.ProdID
	}
	if r.keys == nil {
		return nil, ErrPublicOnly
	}
	ak, err := newKey()
	if err != nil {
		return nil, fmt.Errorf("new attestation key: %w", err)
	}
	akRaw, err := ak.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		return nil, fmt.Errorf("encode attestation key: %w", err)
	}
	akRaw = akRaw[1:]

	// The QE report binds the attestation key: its report data is SHA-256(key || QE auth data).
	reportData := make([]byte, 64)
	h := sha256.Sum256(append(append([]byte{}, akRaw...), qeAuthData...))
	copy(reportData, h[:])
	qeReport := &pb.EnclaveReport{
		CpuSvn:     platformSGXComponents[:],
		MiscSelect: qeMiscSelect,
		Reserved1:  make([]byte, 28),
		Attributes: qeAttributes[:],
		MrEnclave:  qeMRENCLAVE[:],
		Reserved2:  make([]byte, 32),
		MrSigner:   qeMRSIGNER[:],
		Reserved3:  make([]byte, 96),
		IsvProdId:  uint32(prodID),
		IsvSvn:     uint32(qeISVSVN),
		Reserved4:  make([]byte, 60),
		ReportData: reportData,
	}
	rawReport, err := abi.EnclaveReportToAbiBytes(qeReport)
	if err != nil {
		return nil, fmt.Errorf("encode qe report: %w", err)
	}
	qeSig, err := signRaw(r.keys.pck, rawReport)
	if err != nil {
		return nil, fmt.Errorf("sign qe report: %w", err)
	}
	chain := append(append(pemCert(r.certs.pck), pemCert(r.certs.platformCA)...), pemCert(r.certs.root)...)
	qeCertData := &pb.QEReportCertificationData{
		QeReport:          qeReport,
		QeReportSignature: qeSig,
		QeAuthData:        &pb.QeAuthData{ParsedDataSize: uint32(len(qeAuthData)), Data: qeAuthData},
		PckCertificateChainData: &pb.PCKCertificateChainData{
			CertificateDataType: certDataTypePCKChain,
			Size:                uint32(len(chain)),
			PckCertChain:        chain,
		},
	}
	qeCertSize := enclaveReportSize + rawSignatureSize + qeAuthSizeFieldSize + len(qeAuthData) + certDataHeaderSize + len(chain)
	signedData := &pb.Ecdsa256BitQuoteV4AuthData{
		EcdsaAttestationKey: akRaw,
		CertificationData: &pb.CertificationData{
			CertificateDataType:       certDataTypeQEReport,
			Size:                      uint32(qeCertSize),
			QeReportCertificationData: qeCertData,
		},
	}

	rtmrs := make([][]byte, len(m.RTMR))
	for i := range m.RTMR {
		rtmrs[i] = clone(m.RTMR[i][:])
	}
	userData := []byte(UserDataMarker)
	return &Quoter{
		attestKey: ak,
		header: &pb.Header{
			Version:            quoteVersion,
			AttestationKeyType: abi.AttestationKeyType,
			TeeType:            abi.TeeTDX,
			PceSvn:             binary.LittleEndian.AppendUint16(nil, platformPCESVN),
			QeSvn:              binary.LittleEndian.AppendUint16(nil, qeISVSVN),
			QeVendorId:         qeVendorID[:],
			UserData:           userData,
		},
		body: &pb.TDQuoteBody{
			TeeTcbSvn:      platformTEETCBSVN[:],
			MrSeam:         platformMRSEAM[:],
			MrSignerSeam:   platformMRSIGNERSEAM[:],
			SeamAttributes: platformSEAMAttributes[:],
			TdAttributes:   clone(m.TDAttributes[:]),
			Xfam:           clone(m.XFAM[:]),
			MrTd:           clone(m.MRTD[:]),
			MrConfigId:     clone(m.MRConfigID[:]),
			MrOwner:        clone(m.MROwner[:]),
			MrOwnerConfig:  clone(m.MROwnerConfig[:]),
			Rtmrs:          rtmrs,
		},
		signedData: signedData,
		signedSize: uint32(quoteAuthDataHeadSize + certDataHeaderSize + qeCertSize),
	}, nil
}

// Quote returns a raw TDX v4 quote over reportData, signed by the Quoter's attestation key.
func (q *Quoter) Quote(reportData [64]byte) ([]byte, error) {
	body := q.tdBody(reportData)
	rawBody, err := abi.TdQuoteBodyToAbiBytes(body)
	if err != nil {
		return nil, fmt.Errorf("encode td quote body: %w", err)
	}
	header := q.header
	signed, err := q.sign(header, rawBody)
	if err != nil {
		return nil, err
	}
	raw, err := abi.QuoteToAbiBytes(&pb.QuoteV4{Header: header, TdQuoteBody: body, SignedDataSize: q.signedSize, SignedData: signed})
	if err != nil {
		return nil, fmt.Errorf("encode quote: %w", err)
	}
	return raw, nil
}

// QuoteV5 returns a raw TDX v5 quote over reportData with a TDX 1.5 TD report, as the quoting
// enclave of a platform with a TDX 1.5 module makes them: the TD report adds TEE_TCB_SVN2 (here the
// same module, never updated in place) and MRSERVICETD (no service TD bound).
func (q *Quoter) QuoteV5(reportData [64]byte) ([]byte, error) {
	b := q.tdBody(reportData)
	descriptor := &pb.TDQuoteBodyDescriptor{
		TdQuoteBodyType: tdReportTDX15,
		TdQuoteBodySize: tdReportTDX15Size,
		TdQuoteBodyV5: &pb.TDQuoteBodyV5{
			TeeTcbSvn: b.TeeTcbSvn, MrSeam: b.MrSeam, MrSignerSeam: b.MrSignerSeam, SeamAttributes: b.SeamAttributes,
			TdAttributes: b.TdAttributes, Xfam: b.Xfam, MrTd: b.MrTd, MrConfigId: b.MrConfigId, MrOwner: b.MrOwner,
			MrOwnerConfig: b.MrOwnerConfig, Rtmrs: b.Rtmrs, ReportData: b.ReportData,
			TeeTcbSvn2: b.TeeTcbSvn, MrServiceTd: make([]byte, 48),
		},
	}
	rawDescriptor, err := abi.TdQuoteBodyDescriptorToAbiBytes(descriptor)
	if err != nil {
		return nil, fmt.Errorf("encode td quote body descriptor: %w", err)
	}
	header := proto.Clone(q.header).(*pb.Header)
	header.Version = abi.QuoteVersionV5
	signed, err := q.sign(header, rawDescriptor)
	if err != nil {
		return nil, err
	}
	raw, err := abi.QuoteToAbiBytes(&pb.QuoteV5{Header: header, TdQuoteBodyDescriptor: descriptor,
		SignedDataSize: int32(q.signedSize), SignedData: signed})
	if err != nil {
		return nil, fmt.Errorf("encode quote: %w", err)
	}
	return raw, nil
}

func (q *Quoter) tdBody(reportData [64]byte) *pb.TDQuoteBody {
	return &pb.TDQuoteBody{
		TeeTcbSvn:      q.body.TeeTcbSvn,
		MrSeam:         q.body.MrSeam,
		MrSignerSeam:   q.body.MrSignerSeam,
		SeamAttributes: q.body.SeamAttributes,
		TdAttributes:   q.body.TdAttributes,
		Xfam:           q.body.Xfam,
		MrTd:           q.body.MrTd,
		MrConfigId:     q.body.MrConfigId,
		MrOwner:        q.body.MrOwner,
		MrOwnerConfig:  q.body.MrOwnerConfig,
		Rtmrs:          q.body.Rtmrs,
		ReportData:     clone(reportData[:]),
	}
}

// sign signs the header and the TD report (v4) or body descriptor (v5) with the attestation key.
func (q *Quoter) sign(header *pb.Header, rawBody []byte) (*pb.Ecdsa256BitQuoteV4AuthData, error) {
	hdr, err := abi.HeaderToAbiBytes(header)
	if err != nil {
		return nil, fmt.Errorf("encode quote header: %w", err)
	}
	sig, err := signRaw(q.attestKey, append(hdr, rawBody...))
	if err != nil {
		return nil, fmt.Errorf("sign quote: %w", err)
	}
	return &pb.Ecdsa256BitQuoteV4AuthData{
		Signature:           sig,
		EcdsaAttestationKey: q.signedData.EcdsaAttestationKey,
		CertificationData:   q.signedData.CertificationData,
	}, nil
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
