package attest_test

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/pcs"
	tdxtesting "github.com/google/go-tdx-guest/testing"
	tdxdata "github.com/google/go-tdx-guest/testing/testdata"
	"github.com/google/go-tdx-guest/verify"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
)

// go-tdx-guest's recorded v5 quote comes from a TDX 1.5 module (Emerald Rapids, FMSPC
// 90c06f000000); its PCK certificate was issued on 2026-01-27 and its TDX TCB info on 2026-02-01.
var recordedV5At = time.Date(2026, time.February, 3, 1, 0, 0, 0, time.UTC)

func intelQuoteV5() []byte { return bytes.Clone(tdxdata.RawQuoteV5) }

// recordedDocumentTimes checks each recorded document at a fixed instant inside its own validity,
// since no single instant lies inside all of them:
//   - the quote's PCK chain at recordedV5At;
//   - the QE identity and the CRLs, recorded in 2023 for the v4 quote, at recordedAt;
//   - the TCB info for the v5 platform (issued 2026-02-01) at 2025-05-01. Its signature verifies
//     with the key of the TCB signing certificate recorded beside it, which expired on 2025-05-21:
//     Intel renewed that certificate with the same key, and the recording kept the old one.
func recordedDocumentTimes(time.Time) *verify.TimeSet {
	return &verify.TimeSet{PckCertChain: recordedV5At, TcbInfo: recordedTCBSignerValid, QeIdentity: recordedAt, PckCrl: recordedAt, RootCaCrl: recordedAt}
}

var recordedTCBSignerValid = time.Date(2025, time.May, 1, 0, 0, 0, 0, time.UTC)

func TestRecordedIntelQuoteV5Parse(t *testing.T) {
	assert := assert.New(t)
	q, err := attest.ParseQuote(intelQuoteV5())
	require.NoError(t, err)
	assert.EqualValues(5, q.Version)
	assert.EqualValues(0x81, q.TeeType)
	assert.Equal(attest.BodyTDX15, q.BodyType)
	assert.Equal("0b010400000000000000000000000000", hex.EncodeToString(q.TeeTCBSVN[:]))
	assert.Equal("0d010400000000000000000000000000", hex.EncodeToString(q.TeeTCBSVN2[:]))
	assert.Equal("SEPT_VE_DISABLE", attest.TDAttributeNames(q.Measurements.TDAttributes))
	assert.Equal("Intel SGX PCK Platform CA", q.PCK.Issuer.CommonName)
}

// Offline, the v5 quote's signature chain checks out: PCK chain to the pinned Intel root, QE
// report, attestation key, and the quote signature over the header and the TD 1.5 body descriptor.
func TestRecordedIntelQuoteV5ChainOnly(t *testing.T) {
	rep, err := intelVerifier(t, anyImage(), recordedV5At, failingGetter{}).Examine(intelQuoteV5(), true)
	require.NoError(t, err)
	assert.True(t, rep.ChainVerified)
	assert.Equal(t, "Intel SGX Root CA", rep.Root)
	assert.Nil(t, rep.Collateral)
	assert.Equal(t, "passed", rep.Policy)
}

// With the recorded collateral — each document checked inside its own validity — the v5 quote
// passes everything: signatures, collateral signatures, revocation, and a TCB that is UpToDate for
// the platform, the TDX 1.5 module (TDX_01, SVN 11) and the quoting enclave.
func TestRecordedIntelQuoteV5WithCollateral(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	v := intelVerifier(t, anyImage(), recordedV5At, tdxtesting.TestGetter)
	attest.SetDocumentTimes(v, recordedDocumentTimes)

	rep, err := v.Examine(intelQuoteV5(), false)
	require.NoError(err)
	assertCheckedAgainst(t, rep, "90c06f000000", 18)
	require.NotNil(rep.TCB)
	assert.Empty(rep.TCB.Problem)
	assert.Equal(pcs.TcbComponentStatusUpToDate, rep.TCB.Status)
	require.NotNil(rep.TCB.Platform)
	assert.Equal(pcs.TcbComponentStatusUpToDate, rep.TCB.Platform.Status)
	assert.Equal("2024-11-13T00:00:00Z", rep.TCB.Platform.Date)
	require.NotNil(rep.TCB.Module)
	assert.Equal(pcs.TcbComponentStatusUpToDate, rep.TCB.Module.Status)
	require.NotNil(rep.TCB.QE)
	assert.Equal(pcs.TcbComponentStatusUpToDate, rep.TCB.QE.Status)
	assert.Equal("passed", rep.Policy)

	peer, err := v.VerifyQuote(intelQuoteV5())
	require.NoError(err)
	assert.True(peer.Quoted)
	assert.False(peer.Simulated)
	assert.Equal("UpToDate", peer.TCBStatus)
	assert.Equal("tdx", peer.Label())
}

func TestRecordedIntelQuoteV5Refusals(t *testing.T) {
	// Offsets: 48-byte header, then the body descriptor's type (2 bytes) and size (4 bytes), then
	// the TDX 1.5 TD report: TEE_TCB_SVN at 0, MRTD at 136, REPORTDATA at 520, TEE_TCB_SVN2 at 584.
	const body = 48 + 6
	testCases := map[string]struct {
		quote   func([]byte) []byte
		at      time.Time
		policy  func(*attest.Policy)
		wantErr error
		wantMsg string
	}{
		"tampered MRTD":         {quote: func(q []byte) []byte { q[body+136] ^= 1; return q }, wantErr: attest.ErrQuoteSignature},
		"tampered TEE_TCB_SVN2": {quote: func(q []byte) []byte { q[body+584] ^= 1; return q }, wantErr: attest.ErrQuoteSignature},
		"tampered report data":  {quote: func(q []byte) []byte { q[body+520] ^= 1; return q }, wantErr: attest.ErrQuoteSignature},
		"TDX 1.0 body type over a TDX 1.5 body": {
			quote: func(q []byte) []byte { q[48] = attest.BodyTDX10; return q }, wantErr: attest.ErrMalformedQuote,
		},
		"body size changed": {quote: func(q []byte) []byte { q[50]++; return q }, wantErr: attest.ErrMalformedQuote},
		"truncated":         {quote: func(q []byte) []byte { return q[:len(q)-100] }, wantErr: attest.ErrMalformedQuote},
		"bytes after the signed data": {
			quote: func(q []byte) []byte { return append(q, "unsigned"...) }, wantErr: attest.ErrMalformedQuote,
		},
		"TCB info expired": {at: time.Date(2026, time.March, 4, 0, 0, 0, 0, time.UTC), wantErr: attest.ErrCollateralExpired},
		"TEE TCB SVN below the policy's": {
			policy:  func(p *attest.Policy) { p.MinTEETCBSVN = "0c010400000000000000000000000000" },
			wantErr: attest.ErrMeasurementMismatch, wantMsg: "min_tee_tcb_svn",
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			p := anyImage()
			if tc.policy != nil {
				tc.policy(&p)
			}
			v := intelVerifier(t, p, recordedV5At, tdxtesting.TestGetter)
			if !tc.at.IsZero() {
				at := tc.at
				attest.SetDocumentTimes(v, func(time.Time) *verify.TimeSet {
					ts := recordedDocumentTimes(at)
					ts.TcbInfo = at
					return ts
				})
			} else {
				attest.SetDocumentTimes(v, recordedDocumentTimes)
			}
			q := intelQuoteV5()
			if tc.quote != nil {
				q = tc.quote(q)
			}
			_, err := v.Examine(q, false)
			require.ErrorIs(t, err, tc.wantErr)
			if tc.wantMsg != "" {
				require.ErrorContains(t, err, tc.wantMsg)
			}
		})
	}
}
