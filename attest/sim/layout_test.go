package sim

import (
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/pcs"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/testing/testdata"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A simulated quote has the shape of a real one: compared field by field with the Intel
// production quote (Sapphire Rapids) that go-tdx-guest ships as test data.
func TestLayoutMatchesRealQuote(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)

	parse := func(raw []byte) *pb.QuoteV4 {
		q, err := abi.QuoteToProto(raw)
		require.NoError(err)
		return q.(*pb.QuoteV4)
	}
	intel := parse(testdata.RawQuote)
	r, err := New(Options{})
	require.NoError(err)
	ours := parse(newQuote(t, r))

	rh, sh := intel.GetHeader(), ours.GetHeader()
	assert.Equal(rh.GetVersion(), sh.GetVersion())
	assert.Equal(rh.GetAttestationKeyType(), sh.GetAttestationKeyType())
	assert.Equal(rh.GetTeeType(), sh.GetTeeType())
	assert.Equal(rh.GetQeVendorId(), sh.GetQeVendorId())
	assert.Equal(intel.GetTdQuoteBody().GetMrSignerSeam(), ours.GetTdQuoteBody().GetMrSignerSeam())

	rc, sc := intel.GetSignedData().GetCertificationData(), ours.GetSignedData().GetCertificationData()
	assert.Equal(rc.GetCertificateDataType(), sc.GetCertificateDataType())
	rq, sq := rc.GetQeReportCertificationData(), sc.GetQeReportCertificationData()
	assert.Equal(rq.GetQeAuthData().GetData(), sq.GetQeAuthData().GetData())
	assert.Equal(rq.GetQeReport().GetMrSigner(), sq.GetQeReport().GetMrSigner())
	assert.Equal(rq.GetQeReport().GetIsvProdId(), sq.GetQeReport().GetIsvProdId())
	assert.Equal(rq.GetPckCertificateChainData().GetCertificateDataType(), sq.GetPckCertificateChainData().GetCertificateDataType())

	// The PCK chain: three PEM certificates with the same CNs and extension counts.
	chain, err := extractChain(sq)
	require.NoError(err)
	realChain, err := extractChain(rq)
	require.NoError(err)
	require.Len(realChain, 3)
	require.Len(chain, 3)
	for i := range chain {
		assert.Equal(realChain[i].Subject.CommonName, chain[i].Subject.CommonName)
		assert.Equal(len(realChain[i].Extensions), len(chain[i].Extensions), chain[i].Subject.CommonName)
	}
	realExt, err := pcs.PckCertificateExtensions(realChain[0])
	require.NoError(err)
	simExt, err := pcs.PckCertificateExtensions(chain[0])
	require.NoError(err)
	assert.Len(simExt.TCB.CPUSvnComponents, len(realExt.TCB.CPUSvnComponents))
	assert.Len(simExt.FMSPC, len(realExt.FMSPC))
}

func extractChain(q *pb.QEReportCertificationData) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := q.GetPckCertificateChainData().GetPckCertChain()
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return out, nil
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}
