package attestcmd

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tdxtesting "github.com/google/go-tdx-guest/testing"
	tdxdata "github.com/google/go-tdx-guest/testing/testdata"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
	"github.com/cocoon-network/cocoon/attest/sim"
)

// recordedAt is inside the validity of go-tdx-guest's recorded collateral.
var recordedAt = time.Date(2023, time.July, 1, 1, 0, 0, 0, time.UTC)

// intelQuoteFile writes go-tdx-guest's recorded Intel quote, without the test text after it.
func intelQuoteFile(t *testing.T) string {
	t.Helper()
	q := bytes.TrimSuffix(bytes.Clone(tdxdata.RawQuote), []byte("\nextra bytes(only for testing purpose)\n"))
	path := filepath.Join(t.TempDir(), "quote.dat")
	require.NoError(t, os.WriteFile(path, q, 0o644))
	return path
}

// newPCCS serves the recorded collateral under Intel's paths, as a PCCS does.
func newPCCS(t *testing.T) *httptest.Server {
	t.Helper()
	routes := map[string]tdxtesting.HTTPResponse{}
	for u, r := range tdxtesting.TestGetter.Responses {
		if rest, ok := strings.CutPrefix(u, attest.IntelPCSURL); ok {
			routes[rest] = r
		} else {
			routes["/sgx/certification/v4/rootcacrl"] = r
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, ok := routes[r.URL.RequestURI()]
		if !ok {
			http.NotFound(w, r)
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		_, _ = w.Write(resp.Body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestVerifyRecordedIntelQuote(t *testing.T) {
	srv := newPCCS(t)
	quote := intelQuoteFile(t)
	fetched := filepath.Join(t.TempDir(), "bundle")
	var out bytes.Buffer
	require.NoError(t, runCollateralFetch(CollateralFetchOptions{Quote: quote, Out: fetched, URL: srv.URL}, &out))
	bundle := filepath.Join(t.TempDir(), "bundle.json")
	require.NoError(t, runCollateralFetch(CollateralFetchOptions{FMSPC: "50806F000000", Out: bundle, URL: srv.URL}, &out))
	assert.Contains(t, out.String(), "skipped  https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=processor")

	testCases := map[string]struct {
		opts     VerifyOptions
		wantErr  error
		wantText []string
	}{
		// The recorded platform matches no TCB level of the recorded TCB info: everything else passes.
		"from a PCCS": {
			opts:    VerifyOptions{Collateral: srv.URL},
			wantErr: attest.ErrTCBStatus,
			wantText: []string{"quote           version 4, TEE type 0x81 (TDX), TDX 1.0 TD report", "MRTD            6363b804", "RTMR3", "MRSEAM",
				"TD attributes   0000004000000000 (PKS; debug off)", "image hash", "report data     6c62dec1",
				"root of trust   Intel SGX Root CA", "PCK chain       verified", "FMSPC         50806f000000",
				"TCB info      issued 2023-06-18T08:42:58Z, next update 2023-07-18T08:42:58Z", "revocation    checked",
				"TCB status      NONE: no TCB level", "QE            UpToDate (TCB date 2023-02-15T00:00:00Z)",
				"result          FAILED: platform TCB status not accepted"},
		},
		"offline from a fetched directory": {
			opts: VerifyOptions{Collateral: fetched, Offline: true}, wantErr: attest.ErrTCBStatus,
			wantText: []string{"revocation    checked", "(offline)"},
		},
		"offline from a bundle file": {opts: VerifyOptions{Collateral: bundle}, wantErr: attest.ErrTCBStatus, wantText: []string{"revocation    checked"}},
		"offline without collateral": {
			opts: VerifyOptions{Offline: true},
			wantText: []string{"PCK chain       verified", "collateral      NOT CHECKED (offline without collateral)",
				"result          OK (signature chain only: collateral not checked)"},
		},
		"expired collateral": {
			opts:    VerifyOptions{Collateral: fetched, Offline: true, At: time.Date(2023, 8, 1, 0, 0, 0, 0, time.UTC)},
			wantErr: attest.ErrCollateralExpired,
		},
		"simulated root not trusted for Intel": {
			opts:    VerifyOptions{Offline: true, Policy: &attest.Policy{Roles: map[attest.Role]attest.RolePolicy{attest.RoleProxy: {MRTDs: []string{strings.Repeat("00", 48)}}}}},
			wantErr: attest.ErrMeasurementMismatch, wantText: []string{"policy          measurement not allowed"},
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			o := tc.opts
			if o.At.IsZero() {
				o.At = recordedAt
			}
			o.SimDir, o.CacheDir = t.TempDir(), t.TempDir()
			var out bytes.Buffer
			err := runVerify(quote, o, &out)
			if tc.wantErr != nil {
				require.ErrorIs(err, tc.wantErr)
			} else {
				require.NoError(err)
			}
			for _, w := range tc.wantText {
				assert.Contains(out.String(), w)
			}

			o.JSON = true
			out.Reset()
			_ = runVerify(quote, o, &out)
			var res map[string]any
			require.NoError(json.Unmarshal(out.Bytes(), &res), out.String())
			assert.Equal(tc.wantErr == nil, res["ok"])
			assert.Equal("6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb", res["mrtd"])
		})
	}
}

// A verifier that requires real TDX refuses a simulated certificate and says it is simulated.
func TestVerifySimulatedCertificate(t *testing.T) {
	simDir := filepath.Join(t.TempDir(), "sim")
	certDir := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, runCert(CertOptions{Simulated: true, SimDir: simDir, Role: attest.RoleWorker, Out: certDir, Version: "test"}, &out))
	cert := filepath.Join(certDir, "cert.pem")

	testCases := map[string]struct {
		allow    bool
		wantErr  error
		wantText []string
	}{
		"allowed":       {allow: true, wantText: []string{"role            worker", "development root of trust (SIMULATED)", "TCB status      UpToDate", "result          OK (SIMULATED"}},
		"real TDX only": {wantErr: attest.ErrSimulatedNotAllowed, wantText: []string{"result          FAILED: simulated TDX quote not allowed by policy: the quote is SIMULATED"}},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			err := runVerify(cert, VerifyOptions{AllowSimulated: tc.allow, SimDir: simDir, CacheDir: t.TempDir()}, &out)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
			} else {
				require.NoError(t, err, out.String())
			}
			for _, w := range tc.wantText {
				assert.Contains(t, out.String(), w)
			}
		})
	}
}

// TestReadEvidenceDER: a certificate in DER (as `cocoon receipt verify --save-cert` writes it) is
// read as the certificate, not as the PEM PCK chain inside its quote.
func TestReadEvidenceDER(t *testing.T) {
	simDir, certDir := filepath.Join(t.TempDir(), "sim"), t.TempDir()
	var out bytes.Buffer
	require.NoError(t, runCert(CertOptions{Simulated: true, SimDir: simDir, Role: attest.RoleWorker, Out: certDir, Version: "test"}, &out))
	b, err := os.ReadFile(filepath.Join(certDir, "cert.pem"))
	require.NoError(t, err)
	blk, _ := pem.Decode(b)
	require.NotNil(t, blk)
	der := filepath.Join(certDir, "cert.der")
	require.NoError(t, os.WriteFile(der, blk.Bytes, 0o600))
	ev, err := ReadEvidence(der)
	require.NoError(t, err)
	require.NotNil(t, ev.Cert)
	assert.Equal(t, blk.Bytes, ev.Cert.X509.Raw)
	require.NoError(t, runVerify(der, VerifyOptions{AllowSimulated: true, SimDir: simDir, CacheDir: t.TempDir()}, &out))
}

func TestInspectEventLog(t *testing.T) {
	var events []attest.Event
	for i, name := range []string{"td-hob", "kernel", "cmdline console=hvc0", "cocoon app"} {
		e := attest.Event{MRIndex: uint32(i + 1), Type: 0x0000000d, Data: []byte(name)}
		e.Digest = sha512.Sum384([]byte(name))
		events = append(events, e)
	}
	root, err := sim.New(sim.Options{})
	require.NoError(t, err)
	m := attesttest.Measurements(attest.RoleProxy)
	m.RTMR = attest.ReplayRTMRs(events)
	q, err := root.Quoter(m)
	require.NoError(t, err)
	raw, err := q.Quote([64]byte{})
	require.NoError(t, err)
	dir := t.TempDir()
	quote := filepath.Join(dir, "quote.dat")
	require.NoError(t, os.WriteFile(quote, raw, 0o644))
	good := filepath.Join(dir, "ccel.bin")
	require.NoError(t, os.WriteFile(good, attesttest.EventLog(events), 0o644))
	events[1].Digest[0] ^= 1
	bad := filepath.Join(dir, "ccel-bad.bin")
	require.NoError(t, os.WriteFile(bad, attesttest.EventLog(events), 0o644))

	testCases := map[string]struct {
		log      string
		wantErr  string
		wantText []string
	}{
		"matches": {log: good, wantText: []string{"4 events", "RTMR0          replay matches", "RTMR2          replay matches",
			`EV_IPL`, `"cmdline console=hvc0"`, hex.EncodeToString(m.RTMR[3][:])}},
		"tampered": {log: bad, wantErr: "does not match 1 RTMR", wantText: []string{"RTMR1          replay MISMATCH", "RTMR3          replay matches"}},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			err := runInspect(quote, InspectOptions{SimDir: t.TempDir(), EventLog: tc.log}, &out)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
			} else {
				require.NoError(t, err)
			}
			for _, w := range tc.wantText {
				assert.Contains(t, out.String(), w)
			}
		})
	}
}

func TestCollateralFetchArguments(t *testing.T) {
	testCases := map[string]struct {
		opts    CollateralFetchOptions
		wantErr string
	}{
		"neither":   {opts: CollateralFetchOptions{Out: "x"}, wantErr: "--quote FILE or --fmspc HEX"},
		"both":      {opts: CollateralFetchOptions{Quote: "q", FMSPC: "00", Out: "x"}, wantErr: "--quote FILE or --fmspc HEX"},
		"bad fmspc": {opts: CollateralFetchOptions{FMSPC: "zz", Out: "x"}, wantErr: "6 bytes hex"},
		"no out":    {opts: CollateralFetchOptions{FMSPC: "50806f000000"}, wantErr: "--out"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			require.ErrorContains(t, runCollateralFetch(tc.opts, &bytes.Buffer{}), tc.wantErr)
		})
	}
}

// Quotes recorded from real TDs: a v4 quote whose CC event log replays, and a v5 quote from a
// TDX 1.5 module. Offline, each one's signature chain is verified.
func TestRecordedTDs(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b, 0o644))
		return p
	}
	rawQuote, rawLog := attesttest.RecordedTD(t)
	cos, ccel, v5 := write("cos.dat", rawQuote), write("ccel.bin", rawLog), write("v5.dat", tdxdata.RawQuoteV5)

	var out bytes.Buffer
	require.NoError(t, runInspect(cos, InspectOptions{SimDir: t.TempDir(), EventLog: ccel}, &out))
	for _, w := range []string{"43 events", "RTMR0          replay matches", "RTMR1          replay matches",
		"RTMR2          replay matches", "EV_EFI_BOOT_SERVICES_APPLICATION"} {
		assert.Contains(t, out.String(), w)
	}

	// The v5 quote names its platform (FMSPC 90c06f000000) for an offline bundle like a v4 quote.
	out.Reset()
	require.NoError(t, runCollateralFetch(CollateralFetchOptions{Quote: v5, Out: filepath.Join(dir, "bundle"), URL: newPCCS(t).URL}, &out))
	assert.Contains(t, out.String(), "tcb?fmspc=90c06f000000")

	testCases := map[string]struct {
		quote    string
		at       time.Time
		wantText []string
	}{
		"v4 from a Container-Optimized OS TD": {quote: cos, at: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
			wantText: []string{"version 4, TEE type 0x81 (TDX), TDX 1.0 TD report", "SEPT_VE_DISABLE; debug off"}},
		"v5 from a TDX 1.5 module": {quote: v5, at: time.Date(2026, 2, 3, 0, 0, 0, 0, time.UTC),
			wantText: []string{"version 5, TEE type 0x81 (TDX), TDX 1.5 TD report", "TEE TCB SVN     0b010400",
				"TEE TCB SVN2    0d010400", "MRSERVICETD     000000"}},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			o := VerifyOptions{Offline: true, At: tc.at, SimDir: t.TempDir(), CacheDir: t.TempDir()}
			require.NoError(t, runVerify(tc.quote, o, &out))
			for _, w := range append(tc.wantText, "PCK chain       verified", "root of trust   Intel SGX Root CA",
				"result          OK (signature chain only: collateral not checked)") {
				assert.Contains(t, out.String(), w)
			}
		})
	}
}
