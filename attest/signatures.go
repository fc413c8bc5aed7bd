package attest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-tdx-guest/abi"
	pb "github.com/google/go-tdx-guest/proto/tdx"
)

// checkSignatures checks what a quote from a known platform signs for itself (platforms.go): its PCK
// chain is byte for byte one that go-tdx-guest verified under the same trusted root, against CRLs
// still served unchanged, so the chain's five signatures, which are most of a verification's cost,
// are not checked again. What depends on this quote is, as go-tdx-guest's verifyQuote checks it:
//   - the chain is valid at the instant at;
//   - the PCK key signed the QE report;
//   - the QE report binds the attestation key and the QE's authentication data;
//   - the attestation key signed the header and the TD report.
//
// Errors match ErrQuoteSignature.
func checkSignatures(q *Quote, at time.Time) error {
	if err := checkSignaturesOf(q, at); err != nil {
		return fmt.Errorf("%w: %v", ErrQuoteSignature, err)
	}
	return nil
}

func checkSignaturesOf(q *Quote, at time.Time) error {
	if q.TeeType != abi.TeeTDX {
		return fmt.Errorf("TEE type %#x is not TDX", q.TeeType)
	}
	if c := q.chain; at.Before(c.notBefore) || at.After(c.notAfter) {
		return fmt.Errorf("PCK certificate chain is not valid at %v (valid from %v to %v)", at.UTC(), c.notBefore.UTC(), c.notAfter.UTC())
	}
	qe := q.signed.GetCertificationData().GetQeReportCertificationData()
	report, err := abi.EnclaveReportToAbiBytes(qe.GetQeReport())
	if err != nil {
		return fmt.Errorf("QE report: %v", err)
	}
	sig, err := abi.SignatureToDER(qe.GetQeReportSignature())
	if err != nil {
		return fmt.Errorf("QE report signature: %v", err)
	}
	if err := q.PCK.CheckSignature(x509.ECDSAWithSHA256, report, sig); err != nil {
		return fmt.Errorf("QE report signature does not verify with the PCK key: %v", err)
	}
	key := q.signed.GetEcdsaAttestationKey()
	bound := sha256.Sum256(append(append([]byte(nil), key...), qe.GetQeAuthData().GetData()...))
	if !bytes.Equal(qe.GetQeReport().GetReportData(), append(bound[:], make([]byte, 32)...)) {
		return errors.New("QE report data does not bind the attestation key")
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append([]byte{4}, key...))
	if err != nil {
		return fmt.Errorf("attestation key: %v", err)
	}
	msg, err := signedPart(q)
	if err != nil {
		return err
	}
	if sig, err = abi.SignatureToDER(q.signed.GetSignature()); err != nil {
		return fmt.Errorf("quote signature: %v", err)
	}
	digest := sha256.Sum256(msg)
	if !ecdsa.VerifyASN1(pub, digest[:], sig) {
		return errors.New("quote signature does not verify with the attestation key")
	}
	return nil
}

// signedPart is what the attestation key signs: the header and the TD report (v4), or the header
// and the TD report's descriptor (v5).
func signedPart(q *Quote) ([]byte, error) {
	msg, err := abi.HeaderToAbiBytes(q.proto.GetHeader())
	if err != nil {
		return nil, fmt.Errorf("header: %v", err)
	}
	var body []byte
	switch p := q.proto.(type) {
	case *pb.QuoteV4:
		body, err = abi.TdQuoteBodyToAbiBytes(p.GetTdQuoteBody())
	case *pb.QuoteV5:
		body, err = abi.TdQuoteBodyDescriptorToAbiBytes(p.GetTdQuoteBodyDescriptor())
	default:
		err = fmt.Errorf("unsupported quote type %T", q.proto)
	}
	if err != nil {
		return nil, fmt.Errorf("TD report: %v", err)
	}
	return append(msg, body...), nil
}
