package sim

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/pcs"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/testing/testdata"
	"github.com/google/go-tdx-guest/verify"
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

// Not every byte of a quote is signed. The size fields of the signed data, certification data and
// PCK chain, the PEM armour of the chain and anything after the signed data are checked for
// consistency only, so a quote can be re-encoded without invalidating it. This records what
// go-tdx-guest v0.3.1 tolerates, so that callers never treat the raw bytes (or their hash) as an
// identity, and reject trailing bytes themselves.
func TestUnsignedReencodingsVerify(t *testing.T) {
	r, err := New(Options{})
	require.New(t).NoError(err)
	raw := newQuote(t, r)

	const signedSizeAt, certDataAt = 0x278, 0x27c + 0x80
	qeAuthAt := certDataAt + 6 + 0x1c0
	chainAt := qeAuthAt + 2 + int(binary.LittleEndian.Uint16(raw[qeAuthAt:]))
	// grow rewrites the chain and keeps the three unsigned size fields consistent.
	grow := func(newChain []byte) []byte {
		d := uint32(len(newChain) - (len(raw) - chainAt - 6))
		b := append(bytes.Clone(raw[:chainAt+6]), newChain...)
		for _, at := range []int{signedSizeAt, certDataAt + 2, chainAt + 2} {
			binary.LittleEndian.PutUint32(b[at:], binary.LittleEndian.Uint32(b[at:])+d)
		}
		return b
	}
	chain := raw[chainAt+6:]
	testCases := map[string][]byte{
		"trailing bytes after the signed data": append(bytes.Clone(raw), 1, 2, 3),
		"NUL after the PCK chain":              grow(append(bytes.Clone(chain), 0)),
		"blank line between PEM blocks": grow(bytes.Replace(chain,
			[]byte("-----\n-----BEGIN"), []byte("-----\n\n-----BEGIN"), 1)),
	}
	for name, b := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			assert.NotEqual(raw, b)
			assert.NoError(verify.RawTdxQuote(b, verifyOptions(r.Certificate(), r.Collateral(), time.Now())))
		})
	}
}
