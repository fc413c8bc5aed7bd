package sim

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/pcs"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/verify"
	"github.com/google/go-tdx-guest/verify/trust"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testMeasurements() Measurements {
	var m Measurements
	fill := func(b []byte, v byte) {
		for i := range b {
			b[i] = v + byte(i)
		}
	}
	fill(m.MRTD[:], 0x10)
	for i := range m.RTMR {
		fill(m.RTMR[i][:], byte(0x20+0x10*i))
	}
	fill(m.MRConfigID[:], 0x60)
	fill(m.MROwner[:], 0x70)
	fill(m.MROwnerConfig[:], 0x80)
	m.TDAttributes = [8]byte{0, 0, 0, 0x10}
	m.XFAM = [8]byte{0xe7, 0x02, 0x06}
	return m
}

func testReportData() [64]byte {
	var rd [64]byte
	for i := range rd {
		rd[i] = byte(0xa0 + i)
	}
	return rd
}

// verifyOptions are the options a verifier that accepts the development root uses. They are
// fresh each time because go-tdx-guest stores state in them.
func verifyOptions(trusted *x509.Certificate, getter trust.HTTPSGetter, now time.Time) *verify.Options {
	var pool *x509.CertPool
	if trusted != nil {
		pool = x509.NewCertPool()
		pool.AddCert(trusted)
	}
	return &verify.Options{
		GetCollateral:    true,
		CheckRevocations: true,
		TrustedRoots:     pool,
		Getter:           getter,
		Now:              &verify.TimeSet{PckCertChain: now, TcbInfo: now, QeIdentity: now, PckCrl: now, RootCaCrl: now},
	}
}

func newQuote(t testing.TB, r *Root) []byte {
	q, err := r.NewQuoter(testMeasurements())
	require.New(t).NoError(err)
	raw, err := q.Quote(testReportData())
	require.New(t).NoError(err)
	return raw
}

func TestQuoteVerifiesAndParses(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)

	r, err := New(Options{})
	require.NoError(err)
	raw := newQuote(t, r)

	require.NoError(verify.RawTdxQuote(raw, verifyOptions(r.Certificate(), r.Collateral(), time.Now())))

	parsed, err := abi.QuoteToProto(raw)
	require.NoError(err)
	quote, ok := parsed.(*pb.QuoteV4)
	require.True(ok)
	m, rd := testMeasurements(), testReportData()
	body := quote.GetTdQuoteBody()
	assert.Equal(m.MRTD[:], body.GetMrTd())
	for i := range m.RTMR {
		assert.Equal(m.RTMR[i][:], body.GetRtmrs()[i], "RTMR%d", i)
	}
	assert.Equal(m.MRConfigID[:], body.GetMrConfigId())
	assert.Equal(m.MROwner[:], body.GetMrOwner())
	assert.Equal(m.MROwnerConfig[:], body.GetMrOwnerConfig())
	assert.Equal(m.TDAttributes[:], body.GetTdAttributes())
	assert.Equal(m.XFAM[:], body.GetXfam())
	assert.Equal(rd[:], body.GetReportData())
	assert.Equal(platformMRSEAM[:], body.GetMrSeam())
	assert.Equal([]byte(UserDataMarker), quote.GetHeader().GetUserData())
	assert.Equal(qeVendorID[:], quote.GetHeader().GetQeVendorId())
	assert.Empty(quote.GetExtraBytes())

	// Nothing in the quote is outside what the parser models: re-encoding gives the input back.
	again, err := abi.QuoteToAbiBytes(quote)
	require.NoError(err)
	assert.Equal(raw, again)
}

func TestQuotesDiffer(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)

	r, err := New(Options{})
	require.NoError(err)
	q, err := r.NewQuoter(testMeasurements())
	require.NoError(err)
	a, err := q.Quote([64]byte{1})
	require.NoError(err)
	b, err := q.Quote([64]byte{2})
	require.NoError(err)
	assert.NotEqual(a, b)
	for _, raw := range [][]byte{a, b} {
		assert.NoError(verify.RawTdxQuote(raw, verifyOptions(r.Certificate(), r.Collateral(), time.Now())))
	}
}

func TestQuoteConcurrently(t *testing.T) {
	require := require.New(t)
	r, err := New(Options{})
	require.NoError(err)
	q, err := r.NewQuoter(testMeasurements())
	require.NoError(err)
	cert, getter, now := r.Certificate(), r.Collateral(), time.Now()

	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 3 {
				raw, err := q.Quote([64]byte{byte(g), byte(i)})
				if assert.NoError(t, err) {
					assert.NoError(t, verify.RawTdxQuote(raw, verifyOptions(cert, getter, now)))
				}
			}
		})
	}
	wg.Wait()
}

func TestVerification(t *testing.T) {
	now := time.Now()
	other, err := New(Options{})
	require.NoError(t, err)

	testCases := map[string]struct {
		opts Options
		// trustIntel verifies against go-tdx-guest's embedded Intel root instead of the dev root.
		trustIntel  bool
		trustOther  bool // trust a different development root
		otherGetter bool // fetch collateral from a different development root
		verifyAt    time.Time
		wantErr     string // substring; "" = must verify
	}{
		"up to date": {},
		"default Intel root": {
			trustIntel: true,
			wantErr:    "certificate signed by unknown authority",
		},
		"another development root": {
			trustOther: true,
			wantErr:    "certificate signed by unknown authority",
		},
		"collateral of another development root": {
			otherGetter: true,
			wantErr:     "root CA CRL verification failed",
		},
		"collateral still valid": {
			opts:     Options{Now: now.Add(-29 * 24 * time.Hour)},
			verifyAt: now,
		},
		"expired collateral": {
			opts:     Options{Now: now.Add(-31 * 24 * time.Hour)},
			verifyAt: now,
			wantErr:  "expired",
		},
		"short collateral validity": {
			opts:     Options{Now: now, CollateralValidity: time.Hour},
			verifyAt: now.Add(2 * time.Hour),
			wantErr:  "expired",
		},
		"before the certificates": {
			opts:     Options{Now: now},
			verifyAt: now.Add(-2 * clockSkew),
			wantErr:  "certificate has expired or is not yet valid",
		},
		"revoked PCK": {
			opts:    Options{RevokePCK: true},
			wantErr: "PCK Leaf certificate in PCK certificate chain was revoked",
		},
		"TDX module out of date": {
			opts:    Options{ModuleTCBStatus: pcs.TcbComponentStatusOutOfDate},
			wantErr: "it is now OutOfDate",
		},
		"TDX module needs software hardening": {
			opts:    Options{ModuleTCBStatus: pcs.TcbComponentStatusSwHardeningNeeded},
			wantErr: `found "SWHardeningNeeded"`,
		},
		"QE out of date": {
			opts:    Options{QETCBStatus: pcs.TcbComponentStatusOutOfDate},
			wantErr: "Enclave TCB, it is now OutOfDate",
		},
		// go-tdx-guest rates only the TDX module's level when the module's major version is above 0
		// (ours is 1), so a platform level out of date passes it; attest rates every component.
		"platform out of date, module up to date": {
			opts: Options{TCBStatus: pcs.TcbComponentStatusOutOfDate},
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)

			r, err := New(tc.opts)
			require.NoError(err)
			raw := newQuote(t, r)

			trusted, getter := r.Certificate(), r.Collateral()
			switch {
			case tc.trustIntel:
				trusted = nil
			case tc.trustOther:
				trusted = other.Certificate()
			}
			if tc.otherGetter {
				getter = other.Collateral()
			}
			at := tc.verifyAt
			if at.IsZero() {
				at = now
			}
			err = verify.RawTdxQuote(raw, verifyOptions(trusted, getter, at))
			if tc.wantErr == "" {
				assert.NoError(err)
				return
			}
			require.Error(err)
			assert.Contains(err.Error(), tc.wantErr)
			t.Log(err)
		})
	}
}

func TestOptionsValidation(t *testing.T) {
	testCases := map[string]Options{
		"negative validity": {CollateralValidity: -time.Second},
		"unknown status":    {TCBStatus: "Fine"},
	}
	for name, opts := range testCases {
		t.Run(name, func(t *testing.T) {
			_, err := New(opts)
			assert.New(t).Error(err)
		})
	}
}

// Every byte of a quote matters: flipping any one makes verification fail. The quote is parsed
// once per flip, so this also shows that no byte is silently ignored by the parser.
func TestEveryByteIsCovered(t *testing.T) {
	require := require.New(t)
	r, err := New(Options{})
	require.NoError(err)
	raw := newQuote(t, r)
	cert, getter, now := r.Certificate(), r.Collateral(), time.Now()
	require.NoError(verify.RawTdxQuote(raw, verifyOptions(cert, getter, now)))

	// 0xff changes every bit; 0x01 changes only the lowest, which is what could slip through
	// lenient decoders (base64 padding bits in the PEM chain, for instance).
	masks := []byte{0xff, 0x01}
	if testing.Short() {
		masks = masks[:1]
	}
	type flip struct {
		off  int
		mask byte
	}
	var (
		mu       sync.Mutex
		accepted []flip
		panicked []flip
		wg       sync.WaitGroup
	)
	// go-tdx-guest v0.3.1's parser panics on some malformed lengths instead of returning an
	// error; a panic still rejects the quote, and callers must recover from it.
	check := func(b []byte) (ok, panics bool) {
		defer func() {
			if recover() != nil {
				ok, panics = false, true
			}
		}()
		return verify.RawTdxQuote(b, verifyOptions(cert, getter, now)) == nil, false
	}
	work := make(chan flip)
	for range 8 {
		wg.Go(func() {
			for f := range work {
				b := bytes.Clone(raw)
				b[f.off] ^= f.mask
				ok, panics := check(b)
				mu.Lock()
				if ok {
					accepted = append(accepted, f)
				}
				if panics {
					panicked = append(panicked, f)
				}
				mu.Unlock()
			}
		})
	}
	for _, m := range masks {
		for i := range raw {
			work <- flip{i, m}
		}
	}
	close(work)
	wg.Wait()
	for _, f := range panicked {
		t.Logf("go-tdx-guest panics on byte 0x%x ^ 0x%02x (%s)", f.off, f.mask, region(raw, f.off))
	}
	for _, f := range accepted {
		t.Errorf("quote with byte 0x%x ^ 0x%02x (%s) still verifies", f.off, f.mask, region(raw, f.off))
	}
}

// region names the part of a quote an offset falls in, for failure messages.
func region(raw []byte, off int) string {
	const bodyStart, sigData = 0x30, 0x27c
	switch {
	case off < bodyStart:
		return "header"
	case off < sigData-4:
		return "td quote body"
	case off < sigData:
		return "signed data size"
	case off < sigData+0x40:
		return "quote signature"
	case off < sigData+0x80:
		return "attestation key"
	case off < sigData+0x86:
		return "certification data header"
	case off < sigData+0x86+0x180:
		return "qe report"
	case off < sigData+0x86+0x1c0:
		return "qe report signature"
	case off < sigData+0x86+0x1c2:
		return "qe auth data size"
	}
	return fmt.Sprintf("qe auth data or pck chain (%q)", raw[off])
}

func TestPCKCertificate(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)

	r, err := New(Options{})
	require.NoError(err)
	pck := r.certs.pck
	assert.Len(pck.Extensions, 6)
	ext, err := pcs.PckCertificateExtensions(pck)
	require.NoError(err)
	assert.Equal(fmspcHex(), ext.FMSPC)
	assert.Equal("0000", ext.PCEID)
	assert.Equal(hex.EncodeToString(platformPPID[:]), ext.PPID)
	assert.Equal(platformPCESVN, ext.TCB.PCESvn)
	assert.Equal(platformSGXComponents[:], ext.TCB.CPUSvn)
	assert.Equal(platformSGXComponents[:], ext.TCB.CPUSvnComponents)
	for _, c := range []*x509.Certificate{r.certs.root, r.certs.platformCA, pck, r.certs.tcbSigning} {
		assert.Equal([]string{Organization}, c.Subject.Organization)
		assert.Equal(x509.ECDSAWithSHA256, c.SignatureAlgorithm)
	}
	assert.Equal([]string{RootCRLURL}, r.Certificate().CRLDistributionPoints)
}

func TestCollateralGetter(t *testing.T) {
	r, err := New(Options{})
	require.NoError(t, err)
	testCases := map[string]struct {
		url     string
		header  string
		wantErr bool
	}{
		"tcb info":       {url: pcs.TcbInfoURL(fmspcHex()), header: hdrTCBInfoChain},
		"qe identity":    {url: pcs.QeIdentityURL(), header: hdrQEIdentityChain},
		"pck crl":        {url: pcs.PckCrlURL("platform"), header: hdrPCKCRLChain},
		"root crl":       {url: RootCRLURL},
		"processor crl":  {url: pcs.PckCrlURL("processor"), wantErr: true},
		"other fmspc":    {url: pcs.TcbInfoURL("00906ed50000"), wantErr: true},
		"intel root crl": {url: "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der", wantErr: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			hdr, body, err := r.Collateral().Get(tc.url)
			if tc.wantErr {
				assert.Error(err)
				return
			}
			require.NoError(t, err)
			assert.NotEmpty(body)
			if tc.header != "" {
				assert.Len(hdr[tc.header], 1)
			}
			// Callers may scribble on what they get.
			body[0] ^= 0xff
			_, again, err := r.Collateral().Get(tc.url)
			require.NoError(t, err)
			assert.NotEqual(body[0], again[0])
		})
	}
}

func TestOpen(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	dir := filepath.Join(t.TempDir(), "devroot")

	_, err := OpenPublic(dir)
	assert.Error(err, "OpenPublic never creates a root")

	r1, err := Open(dir)
	require.NoError(err)
	r2, err := Open(dir)
	require.NoError(err)
	assert.Equal(r1.Certificate().Raw, r2.Certificate().Raw)

	for _, name := range []string{fileRootKey, filePlatformKey, filePCKKey, fileTCBSigningKey} {
		fi, err := os.Stat(filepath.Join(dir, name))
		require.NoError(err)
		assert.Equal(os.FileMode(0o600), fi.Mode().Perm(), name)
	}

	pub, err := OpenPublic(dir)
	require.NoError(err)
	assert.Equal(r1.Certificate().Raw, pub.Certificate().Raw)
	_, err = pub.NewQuoter(testMeasurements())
	assert.ErrorIs(err, ErrPublicOnly)

	// A quote from one process verifies with what another loads.
	raw := newQuote(t, r1)
	assert.NoError(verify.RawTdxQuote(raw, verifyOptions(pub.Certificate(), pub.Collateral(), time.Now())))
	assert.NoError(verify.RawTdxQuote(newQuote(t, r2), verifyOptions(r1.Certificate(), r1.Collateral(), time.Now())))
}

func TestOpenRejectsMismatchedFiles(t *testing.T) {
	require := require.New(t)
	a, b := t.TempDir(), t.TempDir()
	_, err := Open(a)
	require.NoError(err)
	_, err = Open(b)
	require.NoError(err)
	// A PCK certificate from another root no longer chains to this one.
	pck, err := os.ReadFile(filepath.Join(b, filePCKCert))
	require.NoError(err)
	require.NoError(os.WriteFile(filepath.Join(a, filePCKCert), pck, 0o644))
	_, err = Open(a)
	require.Error(err)
	_, err = OpenPublic(a)
	require.Error(err)
}

func TestOpenRefreshesCollateral(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	dir := t.TempDir()
	r, err := Open(dir)
	require.NoError(err)
	raw := newQuote(t, r)

	// Replace the collateral with some that has only hours left.
	stale, err := signCollateral(r.certs, r.keys, defaultSpec(time.Now().Add(-defaultCollateralValidity+time.Hour)))
	require.NoError(err)
	require.NoError(writeCollateral(dir, stale))

	// A verifier cannot re-sign: it serves what is there, which fails a day later.
	pub, err := OpenPublic(dir)
	require.NoError(err)
	err = verify.RawTdxQuote(raw, verifyOptions(pub.Certificate(), pub.Collateral(), time.Now().Add(24*time.Hour)))
	require.Error(err)
	assert.Contains(err.Error(), "expired")

	// The key holder renews it on Open.
	_, err = Open(dir)
	require.NoError(err)
	onDisk, err := os.ReadFile(filepath.Join(dir, fileTCBInfo))
	require.NoError(err)
	assert.NotEqual(stale.tcbInfo, onDisk)
	pub, err = OpenPublic(dir)
	require.NoError(err)
	assert.NoError(verify.RawTdxQuote(raw, verifyOptions(pub.Certificate(), pub.Collateral(), time.Now().Add(24*time.Hour))))
}

func TestCollateralGetterRenews(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	dir := t.TempDir()
	r, err := Open(dir)
	require.NoError(err)
	pub, err := OpenPublic(dir)
	require.NoError(err)
	raw := newQuote(t, r)

	// As if both had been running for a month: their collateral is about to expire.
	stale, err := signCollateral(r.certs, r.keys, defaultSpec(time.Now().Add(-defaultCollateralValidity+time.Hour)))
	require.NoError(err)
	require.NoError(writeCollateral(dir, stale))
	for _, x := range []*Root{r, pub} {
		x.mu.Lock()
		x.coll, x.lastCheck = stale, time.Time{}
		x.mu.Unlock()
	}
	later := time.Now().Add(24 * time.Hour)

	// The key holder re-signs on demand, and a verifier picks the new files up.
	require.NoError(verify.RawTdxQuote(raw, verifyOptions(r.Certificate(), r.Collateral(), later)))
	assert.NoError(verify.RawTdxQuote(raw, verifyOptions(pub.Certificate(), pub.Collateral(), later)))
}

const helperDirEnv = "COCOON_SIM_TEST_OPEN_DIR"

// TestHelperProcessOpen is not a test: TestOpenConcurrent runs the test binary with it to open a
// root from another process.
func TestHelperProcessOpen(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("helper process for TestOpenConcurrent")
	}
	r, err := Open(dir)
	require.NoError(t, err)
	fmt.Printf("root %x\n", sha256.Sum256(r.Certificate().Raw))
}

func TestOpenConcurrent(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	dir := filepath.Join(t.TempDir(), "state", "devroot")
	const goroutines, processes = 8, 4

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		roots = map[string]int{}
	)
	record := func(fp string) {
		mu.Lock()
		roots[fp]++
		mu.Unlock()
	}
	for range processes {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcessOpen$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperDirEnv+"="+dir)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		require.NoError(cmd.Start())
		wg.Go(func() {
			err := cmd.Wait()
			if !assert.NoError(err, out.String()) {
				return
			}
			for line := range strings.Lines(out.String()) {
				if fp, ok := strings.CutPrefix(strings.TrimSpace(line), "root "); ok {
					record(fp)
				}
			}
		})
	}
	for range goroutines {
		wg.Go(func() {
			r, err := Open(dir)
			if assert.NoError(err) {
				record(fmt.Sprintf("%x", sha256.Sum256(r.Certificate().Raw)))
			}
		})
	}
	wg.Wait()
	assert.Len(roots, 1, "all openers see one root")
	leftovers, err := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	require.NoError(err)
	assert.Empty(leftovers, "no temporary files left behind")
	for _, n := range roots {
		assert.Equal(goroutines+processes, n)
	}
}

func BenchmarkQuote(b *testing.B) {
	r, err := New(Options{})
	require.NoError(b, err)
	q, err := r.NewQuoter(testMeasurements())
	require.NoError(b, err)
	rd := testReportData()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := q.Quote(rd); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	r, err := New(Options{})
	require.NoError(b, err)
	raw := newQuote(b, r)
	cert, getter, now := r.Certificate(), r.Collateral(), time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if err := verify.RawTdxQuote(raw, verifyOptions(cert, getter, now)); err != nil {
			b.Fatal(err)
		}
	}
}
