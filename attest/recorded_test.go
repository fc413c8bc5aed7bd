package attest_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/pcs"
	tdxtesting "github.com/google/go-tdx-guest/testing"
	tdxdata "github.com/google/go-tdx-guest/testing/testdata"
	"github.com/google/go-tdx-guest/verify/trust"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
)

// recordedAt is inside the validity of go-tdx-guest's recorded collateral (TCB info issued
// 2023-06-18, QE identity and PCK CRL next update 2023-07-08), as its own tests use.
var recordedAt = time.Date(2023, time.July, 1, 1, 0, 0, 0, time.UTC)

// intelQuote is go-tdx-guest's recorded Intel-signed quote (Sapphire Rapids, TDX module 1.0)
// without the text its authors appended after the signed data.
func intelQuote() []byte {
	return bytes.TrimSuffix(bytes.Clone(tdxdata.RawQuote), []byte("\nextra bytes(only for testing purpose)\n"))
}

// The recorded quote's MRTD.
const recordedMRTD = "6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb"

func intelVerifier(t testing.TB, p attest.Policy, at time.Time, getter trust.HTTPSGetter) *attest.Verifier {
	t.Helper()
	v, err := attest.NewVerifier(attest.VerifierConfig{
		Roots: []attest.TrustedRoot{attest.IntelRoot(getter)}, Policy: p, CacheTTL: -1,
		Now: func() time.Time { return at },
	})
	require.NoError(t, err)
	return v
}

func anyImage() attest.Policy {
	p := attesttest.OpenPolicy()
	p.AllowSimulated = false
	return p
}

// The recorded quote checks out all the way through Intel's collateral: PCK chain to the pinned
// Intel root, QE report, attestation key, quote signature, TCB info and QE identity signatures,
// both CRLs. Its platform, though, is older than every TCB level of the recorded TCB info (TEE TCB
// SVN 03 00 04 against 03 00 05; go-tdx-guest's own TestNegativeRawQuoteVerifyWithCollateral says
// the same), so the TCB is refused: exactly what Intel's verification concludes.
func TestRecordedIntelQuoteWithCollateral(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	v := intelVerifier(t, anyImage(), recordedAt, tdxtesting.TestGetter)

	rep, err := v.Examine(intelQuote(), false)
	require.ErrorIs(err, attest.ErrTCBStatus)
	assert.ErrorContains(err, "no TCB level of the collateral matches the platform")
	assert.Equal("Intel SGX Root CA", rep.Root)
	assert.False(rep.Simulated)
	assertCheckedAgainst(t, rep, "50806f000000", 15)
	assert.Equal(time.Date(2023, 7, 18, 8, 42, 58, 0, time.UTC), rep.Collateral.TCBInfoNextUpdate)
	assert.Equal(time.Date(2023, 7, 8, 7, 24, 59, 0, time.UTC), rep.Collateral.NextUpdate())
	require.NotNil(rep.TCB)
	assert.Nil(rep.TCB.Platform)
	require.NotNil(rep.TCB.QE, "the quoting enclave is still rated")
	assert.EqualValues("UpToDate", rep.TCB.QE.Status)
	assert.Contains(rep.Policy, "TCB status")

	// Accepting lesser statuses does not accept a platform that matches no level at all.
	p := anyImage()
	p.AcceptTCBStatuses = []pcs.TcbComponentStatus{pcs.TcbComponentStatusSwHardeningNeeded,
		pcs.TcbComponentStatusConfigurationNeeded, pcs.TcbComponentStatusConfigurationAndSWHardeningNeeded}
	_, err = intelVerifier(t, p, recordedAt, tdxtesting.TestGetter).Examine(intelQuote(), false)
	require.ErrorIs(err, attest.ErrTCBStatus)
}

// assertCheckedAgainst asserts that rep's quote went through its signature chain, collateral and
// revocation checks, with the TCB info of fmspc at the given evaluation data number.
func assertCheckedAgainst(t *testing.T, rep *attest.Report, fmspc string, evaluationDataNumber int) {
	t.Helper()
	assert.True(t, rep.ChainVerified)
	assert.True(t, rep.RevocationChecked)
	require.NotNil(t, rep.Collateral)
	assert.Equal(t, fmspc, rep.Collateral.FMSPC)
	assert.Equal(t, "platform", rep.Collateral.CA)
	assert.Equal(t, evaluationDataNumber, rep.Collateral.TCBEvaluationDataNumber)
}

// Offline, without collateral, the signature chain alone is checked, and passes.
func TestRecordedIntelQuoteChainOnly(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	v := intelVerifier(t, anyImage(), recordedAt, failingGetter{})
	rep, err := v.Examine(intelQuote(), true)
	require.NoError(err)
	assert.True(rep.ChainVerified)
	assert.Nil(rep.Collateral, "collateral was not checked")
	assert.Nil(rep.TCB)
	assert.Equal("passed", rep.Policy)
	assert.Equal(recordedMRTD, hex.EncodeToString(rep.Quote.Measurements.MRTD[:]))
	assert.Equal("PKS", attest.TDAttributeNames(rep.Quote.Measurements.TDAttributes))
}

func TestRecordedIntelQuoteRefusals(t *testing.T) {
	otherRoot := selfSignedIntelLookalike(t)
	testCases := map[string]struct {
		quote          func([]byte) []byte
		at             time.Time
		roots          []attest.TrustedRoot
		policy         func(*attest.Policy)
		skipCollateral bool
		wantErr        error
		wantMsg        string
	}{
		"expired collateral": {at: time.Date(2023, time.August, 1, 0, 0, 0, 0, time.UTC), wantErr: attest.ErrCollateralExpired},
		"collateral older than policy allows": {
			policy:  func(p *attest.Policy) { p.MaxCollateralAge = attest.Duration(24 * time.Hour) },
			wantErr: attest.ErrCollateralExpired, wantMsg: "max_collateral_age",
		},
		"PCK chain expired": {at: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), skipCollateral: true, wantErr: attest.ErrQuoteSignature},
		"wrong root: only the development root trusted": {
			roots: []attest.TrustedRoot{attesttest.Root(t).TrustedRoot()}, wantErr: attest.ErrUntrustedRoot,
		},
		"wrong root: an Intel-named root with another key": {
			roots: []attest.TrustedRoot{{Cert: otherRoot, Collateral: tdxtesting.TestGetter}}, wantErr: attest.ErrUntrustedRoot,
		},
		"wrong MRTD": {
			policy: func(p *attest.Policy) {
				p.Roles = map[attest.Role]attest.RolePolicy{attest.RoleWorker: {MRTDs: []string{hex.EncodeToString(make([]byte, 48))}}}
			},
			wantErr: attest.ErrMeasurementMismatch, wantMsg: "MRTD " + recordedMRTD,
		},
		"wrong MRSEAM": {
			policy:  func(p *attest.Policy) { p.MRSEAMs = []string{hex.EncodeToString(make([]byte, 48))} },
			wantErr: attest.ErrMeasurementMismatch, wantMsg: "MRSEAM",
		},
		"TD attributes not listed": {
			policy:  func(p *attest.Policy) { p.TDAttributes = []string{"0000000000000000"} },
			wantErr: attest.ErrMeasurementMismatch, wantMsg: "PKS",
		},
		"image not allowed": {
			policy: func(p *attest.Policy) {
				p.Roles = map[attest.Role]attest.RolePolicy{attest.RoleProxy: {ImageHashes: []string{hex.EncodeToString(make([]byte, 32))}}}
			},
			wantErr: attest.ErrImageNotAllowed,
		},
		"tampered MRTD": {
			quote:   func(q []byte) []byte { q[48+136] ^= 1; return q }, // header, then TEE_TCB_SVN…XFAM
			wantErr: attest.ErrQuoteSignature,
		},
		"tampered report data": {quote: func(q []byte) []byte { q[48+584-1] ^= 1; return q }, wantErr: attest.ErrQuoteSignature},
		"truncated":            {quote: func(q []byte) []byte { return q[:len(q)-100] }, wantErr: attest.ErrMalformedQuote},
		"text after the signed data": {
			quote: func([]byte) []byte { return bytes.Clone(tdxdata.RawQuote) }, wantErr: attest.ErrMalformedQuote,
		},
		"version 3": {
			quote:   func(q []byte) []byte { q[0] = 3; return q },
			wantErr: attest.ErrQuoteVersion, wantMsg: "version 3",
		},
		"v4 body under a v5 header": {quote: func(q []byte) []byte { q[0] = 5; return q }, wantErr: attest.ErrMalformedQuote},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			require := require.New(t)
			p := anyImage()
			if tc.policy != nil {
				tc.policy(&p)
			}
			at := recordedAt
			if !tc.at.IsZero() {
				at = tc.at
			}
			roots := tc.roots
			if roots == nil {
				roots = []attest.TrustedRoot{attest.IntelRoot(tdxtesting.TestGetter)}
			}
			v, err := attest.NewVerifier(attest.VerifierConfig{Roots: roots, Policy: p, CacheTTL: -1, Now: func() time.Time { return at }})
			require.NoError(err)
			q := intelQuote()
			if tc.quote != nil {
				q = tc.quote(q)
			}
			_, err = v.Examine(q, tc.skipCollateral)
			require.ErrorIs(err, tc.wantErr)
			if tc.wantMsg != "" {
				require.ErrorContains(err, tc.wantMsg)
			}
		})
	}
}

// The version check must not depend on the rest of the quote being v4- or v5-shaped.
func TestUnknownQuoteVersionIsNamed(t *testing.T) {
	for _, v := range []byte{0, 3, 6} {
		q := intelQuote()
		q[0] = v
		_, err := attest.ParseQuote(q)
		require.ErrorIs(t, err, attest.ErrQuoteVersion)
		require.ErrorIs(t, err, attest.ErrMalformedQuote)
	}
}

func TestRecordedCollateralUnavailable(t *testing.T) {
	v := intelVerifier(t, anyImage(), recordedAt, failingGetter{})
	_, err := v.Examine(intelQuote(), false)
	require.ErrorIs(t, err, attest.ErrCollateralUnavailable)
	require.ErrorIs(t, err, attest.ErrCollateral)
}

type failingGetter struct{}

func (failingGetter) Get(u string) (map[string][]string, []byte, error) {
	return nil, nil, &trust.AttestationRecreationErr{Msg: "no network in tests: " + u}
}

// selfSignedIntelLookalike is a root CA that copies the Intel root's subject with its own key.
func selfSignedIntelLookalike(t testing.TB) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	intel := attest.IntelRoot(nil).Cert
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: intel.Subject, NotBefore: intel.NotBefore, NotAfter: intel.NotAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, SignatureAlgorithm: x509.ECDSAWithSHA256}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	require.Equal(t, pkix.Name(intel.Subject).String(), c.Subject.String())
	return c
}

// testdata/tdx/policy.json, written for the recorded quote, admits it as a proxy on everything but
// its TCB status.
func TestExamplePolicy(t *testing.T) {
	require := require.New(t)
	p, err := attest.LoadPolicy("../testdata/tdx/policy.json")
	require.NoError(err)
	rep, err := intelVerifier(t, p, recordedAt, tdxtesting.TestGetter).Examine(intelQuote(), false)
	require.ErrorIs(err, attest.ErrTCBStatus)
	require.True(rep.ChainVerified)

	p.Roles[attest.RoleProxy] = attest.RolePolicy{MRTDs: []string{strings.Repeat("00", 48)}}
	p.Roles[attest.RoleWorker] = attest.RolePolicy{MRTDs: []string{strings.Repeat("00", 48)}}
	_, err = intelVerifier(t, p, recordedAt, tdxtesting.TestGetter).Examine(intelQuote(), false)
	require.ErrorIs(err, attest.ErrMeasurementMismatch)
}
