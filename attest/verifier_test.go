package attest_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
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
	"github.com/cocoon-network/cocoon/attest/sim"
)

// evidence makes claims for role with a fresh key and a quote over them from q.
func evidence(t testing.TB, role attest.Role, q attest.Quoter) attest.Evidence {
	t.Helper()
	c := attesttest.Claims(role)
	c.PublicKey = make([]byte, 32)
	c.PublicKey[0] = byte(len(role))
	enc, err := c.Encode()
	require.NoError(t, err)
	quote, err := q.Quote(attest.ReportData(enc))
	require.NoError(t, err)
	return attest.Evidence{Quote: quote, Claims: enc, Key: c.PublicKey, NotAfter: time.Now().Add(time.Hour)}
}

// quoteVersions make simulated quotes in each format the verifier takes: v4, and v5 with a TDX 1.5
// TD report. The tests below run for both.
var quoteVersions = map[string]func(*sim.Root, attest.Measurements) (attest.Quoter, error){
	"v4": (*sim.Root).Quoter,
	"v5": (*sim.Root).QuoterV5,
}

func forEachVersion(t *testing.T, f func(t *testing.T, newQuoter func(*sim.Root, attest.Measurements) (attest.Quoter, error))) {
	for name, nq := range quoteVersions {
		t.Run(name, func(t *testing.T) { f(t, nq) })
	}
}

func TestVerifySimulated(t *testing.T) {
	forEachVersion(t, func(t *testing.T, newQuoter func(*sim.Root, attest.Measurements) (attest.Quoter, error)) {
		assert := assert.New(t)
		require := require.New(t)
		m := attesttest.Measurements(attest.RoleWorker)
		q, err := newQuoter(attesttest.Root(t), m)
		require.NoError(err)
		ev := evidence(t, attest.RoleWorker, q)
		v := attesttest.Verifier(t, attesttest.OpenPolicy())

		p, err := v.Verify(ev)
		require.NoError(err)
		assert.True(p.Quoted)
		assert.True(p.Simulated)
		assert.Equal(m.ImageHash(), p.ImageHash)
		assert.Equal(attest.RoleWorker, p.Claims.Role)
		assert.Equal("test-model", p.Claims.Model)
		assert.Equal("UpToDate", p.TCBStatus)

		parsed, err := attest.ParseQuote(ev.Quote)
		require.NoError(err)
		if parsed.Version == 5 {
			assert.Equal(attest.BodyTDX15, parsed.BodyType)
			assert.Equal(parsed.TeeTCBSVN, parsed.TeeTCBSVN2)
		}
	})
}

func TestVerifyRefusals(t *testing.T) {
	worker := attesttest.Measurements(attest.RoleWorker)
	testCases := map[string]struct {
		root    sim.Options
		verify  func(*attest.VerifierConfig)
		tamper  func(*attest.Evidence)
		wantErr error
	}{
		"expired collateral": {
			root:    sim.Options{Now: time.Now().Add(-60 * 24 * time.Hour), CollateralValidity: 24 * time.Hour},
			wantErr: attest.ErrCollateralExpired,
		},
		"revoked PCK":      {root: sim.Options{RevokePCK: true}, wantErr: attest.ErrRevoked},
		"TCB out of date":  {root: sim.Options{TCBStatus: pcs.TcbComponentStatusOutOfDate}, wantErr: attest.ErrTCBStatus},
		"untrusted root":   {verify: func(c *attest.VerifierConfig) { c.Roots = []attest.TrustedRoot{attest.IntelRoot(nil)} }, wantErr: attest.ErrUntrustedRoot},
		"wrong claims key": {tamper: func(e *attest.Evidence) { e.Key = make([]byte, 32) }, wantErr: attest.ErrKeyMismatch},
		"truncated quote":  {tamper: func(e *attest.Evidence) { e.Quote = e.Quote[:len(e.Quote)-10] }, wantErr: attest.ErrMalformedQuote},
		"empty quote":      {tamper: func(e *attest.Evidence) { e.Quote = []byte{} }, wantErr: attest.ErrMalformedQuote},
		"model not allowed": {
			verify: func(c *attest.VerifierConfig) {
				rp := c.Policy.Roles[attest.RoleWorker]
				rp.ModelDigests = []string{"sha256:other"}
				c.Policy.Roles[attest.RoleWorker] = rp
			},
			wantErr: attest.ErrModelNotAllowed,
		},
	}
	for name, tc := range testCases {
		forEachVersion(t, func(t *testing.T, newQuoter func(*sim.Root, attest.Measurements) (attest.Quoter, error)) {
			t.Run(name, func(t *testing.T) { verifyRefusal(t, newQuoter, worker, tc.root, tc.verify, tc.tamper, tc.wantErr) })
		})
	}
}

func verifyRefusal(t *testing.T, newQuoter func(*sim.Root, attest.Measurements) (attest.Quoter, error), m attest.Measurements,
	opts sim.Options, configure func(*attest.VerifierConfig), tamper func(*attest.Evidence), wantErr error) {
	require := require.New(t)
	root, err := sim.New(opts)
	require.NoError(err)
	q, err := newQuoter(root, m)
	require.NoError(err)
	ev := evidence(t, attest.RoleWorker, q)
	if tamper != nil {
		tamper(&ev)
	}
	cfg := attest.VerifierConfig{Roots: []attest.TrustedRoot{root.TrustedRoot()}, Policy: attesttest.OpenPolicy()}
	if configure != nil {
		configure(&cfg)
	}
	v, err := attest.NewVerifier(cfg)
	require.NoError(err)
	_, err = v.Verify(ev)
	require.ErrorIs(err, wantErr)
}

// Every byte of a quote is covered by a signature or by its structure: flipping any one is refused.
func TestVerifyEveryFlippedByte(t *testing.T) {
	forEachVersion(t, verifyEveryFlippedByte)
}

func verifyEveryFlippedByte(t *testing.T, newQuoter func(*sim.Root, attest.Measurements) (attest.Quoter, error)) {
	q, err := newQuoter(attesttest.Root(t), attesttest.Measurements(attest.RoleProxy))
	require.NoError(t, err)
	ev := evidence(t, attest.RoleProxy, q)
	v := attesttest.Verifier(t, attesttest.OpenPolicy())
	// The genuine quote first: its platform's collateral is then known, and every flipped quote
	// below goes through the short path for known platforms (platforms.go), which must refuse
	// exactly what the full verification refuses.
	_, err = v.Verify(ev)
	require.NoError(t, err)
	classes := []error{attest.ErrMalformedQuote, attest.ErrQuoteSignature, attest.ErrCollateral,
		attest.ErrUntrustedRoot, attest.ErrReportDataMismatch, attest.ErrDebugTD, attest.ErrImageNotAllowed}
	step := 1
	if testing.Short() {
		step = 13
	}
	// Four interleaved parallel shards: each byte is still checked, in a quarter of the time on 4 cores.
	const shards = 4
	for shard := range shards {
		t.Run(fmt.Sprintf("shard %d", shard), func(t *testing.T) {
			t.Parallel()
			for i := shard * step; i < len(ev.Quote); i += shards * step {
				bad := ev
				bad.Quote = append([]byte(nil), ev.Quote...)
				bad.Quote[i] ^= 0x10
				_, err := v.Verify(bad)
				if err == nil {
					t.Fatalf("quote with byte %d flipped was accepted", i)
				}
				named := false
				for _, c := range classes {
					named = named || errors.Is(err, c)
				}
				if !named {
					t.Fatalf("byte %d: error %v wraps no named class", i, err)
				}
			}
		})
	}
}

func TestVerifyCache(t *testing.T) {
	require := require.New(t)
	now := time.Now()
	clock := func() time.Time { return now }
	ev := evidence(t, attest.RoleWorker, attesttest.Quoter(t, attesttest.Measurements(attest.RoleWorker)))
	ev.NotAfter = now.Add(2 * time.Minute)
	v, err := attest.NewVerifier(attest.VerifierConfig{
		Roots: []attest.TrustedRoot{attesttest.Root(t).TrustedRoot()}, Policy: attesttest.OpenPolicy(),
		CacheTTL: 5 * time.Minute, Now: clock,
	})
	require.NoError(err)
	first, err := v.Verify(ev)
	require.NoError(err)
	again, err := v.Verify(ev)
	require.NoError(err)
	require.Same(first, again, "second verification is served from the cache")

	now = now.Add(3 * time.Minute) // past the certificate's expiry, within the TTL
	third, err := v.Verify(ev)
	require.NoError(err)
	require.NotSame(first, third, "a cached result never outlives the certificate")
}

func TestPolicyParse(t *testing.T) {
	testCases := map[string]struct {
		json    string
		wantErr string
	}{
		"ok": {json: `{"allow_simulated":true,"roles":{"worker":{"image_hashes":["*"]},"client":{"without_quote":true}}}`},
		"full": {json: `{"accept_tcb_statuses":["SWHardeningNeeded"],"min_tee_tcb_svn":"03000400000000000000000000000000",
			"mrseams":["` + strings.Repeat("ab", 48) + `"],"td_attributes":["0000004000000000"],"xfams":["e71a060000000000"],
			"max_collateral_age":"720h","roles":{"proxy":{"mrtds":["` + strings.Repeat("00", 48) + `"],
			"rtmrs":[["*","*","` + strings.Repeat("01", 48) + `","*"]]}}}`},
		"OutOfDate never acceptable": {json: `{"accept_tcb_statuses":["OutOfDate"]}`, wantErr: "accept_tcb_statuses[0]"},
		"unknown status":             {json: `{"accept_tcb_statuses":["Fine"]}`, wantErr: "unexpected tcb status"},
		"short MRSEAM":               {json: `{"mrseams":["abcd"]}`, wantErr: "mrseams[0]"},
		"bad RTMR":                   {json: `{"roles":{"worker":{"rtmrs":[["*","*","*","xx"]]}}}`, wantErr: "roles.worker.rtmrs[0][3]"},
		"bad duration":               {json: `{"max_collateral_age":"soon"}`, wantErr: "duration"},
		"misspelt field":             {json: `{"roles":{},"allow_debugg":true}`, wantErr: "allow_debugg"},
		"bad role":                   {json: `{"roles":{"boss":{}}}`, wantErr: "roles.boss"},
		"bad hash":                   {json: `{"roles":{"proxy":{"image_hashes":["xyz"]}}}`, wantErr: "roles.proxy.image_hashes[0]"},
		"not json":                   {json: `{`, wantErr: "parse policy"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			_, err := attest.ParsePolicy([]byte(tc.json))
			if tc.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestIntelRootPinned(t *testing.T) {
	r := attest.IntelRoot(nil)
	assert.Equal(t, "Intel SGX Root CA", r.Cert.Subject.CommonName)
	assert.False(t, r.Simulated)
}

// go-tdx-guest accepts only UpToDate; the policy may accept lesser statuses it lists, and only those.
func TestVerifyTCBStatusPolicy(t *testing.T) {
	swh := []pcs.TcbComponentStatus{pcs.TcbComponentStatusSwHardeningNeeded}
	testCases := map[string]tcbStatusCase{
		"UpToDate by default":         {status: pcs.TcbComponentStatusUpToDate},
		"SWHardeningNeeded refused":   {root: sim.Options{TCBStatus: pcs.TcbComponentStatusSwHardeningNeeded}, wantErr: "platform TCB status SWHardeningNeeded"},
		"SWHardeningNeeded listed":    {root: sim.Options{TCBStatus: pcs.TcbComponentStatusSwHardeningNeeded}, accept: swh, status: pcs.TcbComponentStatusSwHardeningNeeded},
		"ConfigurationNeeded refused": {root: sim.Options{TCBStatus: pcs.TcbComponentStatusConfigurationNeeded}, wantErr: "platform TCB status ConfigurationNeeded"},
		"ConfigurationNeeded listed": {
			root:   sim.Options{TCBStatus: pcs.TcbComponentStatusConfigurationNeeded},
			accept: []pcs.TcbComponentStatus{pcs.TcbComponentStatusConfigurationNeeded}, status: pcs.TcbComponentStatusConfigurationNeeded,
		},
		"ConfigurationAndSWHardeningNeeded needs its own listing": {
			root:    sim.Options{TCBStatus: pcs.TcbComponentStatusConfigurationAndSWHardeningNeeded},
			accept:  []pcs.TcbComponentStatus{pcs.TcbComponentStatusSwHardeningNeeded, pcs.TcbComponentStatusConfigurationNeeded},
			wantErr: "platform TCB status ConfigurationAndSWHardeningNeeded",
		},
		"OutOfDate whatever is listed": {
			root:    sim.Options{TCBStatus: pcs.TcbComponentStatusOutOfDate},
			accept:  []pcs.TcbComponentStatus{pcs.TcbComponentStatusSwHardeningNeeded, pcs.TcbComponentStatusConfigurationAndSWHardeningNeeded},
			wantErr: "platform TCB status OutOfDate",
		},
		"Revoked platform": {root: sim.Options{TCBStatus: pcs.TcbComponentStatusRevoked}, wantErr: "platform TCB status Revoked"},
		"OutOfDateConfigurationNeeded": {
			root:    sim.Options{TCBStatus: pcs.TcbComponentStatusOutOfDateConfigurationNeeded},
			accept:  []pcs.TcbComponentStatus{pcs.TcbComponentStatusConfigurationNeeded},
			wantErr: "platform TCB status OutOfDateConfigurationNeeded",
		},
		// go-tdx-guest stops at the module's status before checking the QE report; we check it.
		"TDX module OutOfDate":          {root: sim.Options{ModuleTCBStatus: pcs.TcbComponentStatusOutOfDate}, accept: swh, wantErr: "TDX module TCB status OutOfDate"},
		"TDX module SWHardeningNeeded":  {root: sim.Options{ModuleTCBStatus: pcs.TcbComponentStatusSwHardeningNeeded}, wantErr: "TDX module TCB status SWHardeningNeeded"},
		"TDX module SWHardening listed": {root: sim.Options{ModuleTCBStatus: pcs.TcbComponentStatusSwHardeningNeeded}, accept: swh, status: pcs.TcbComponentStatusSwHardeningNeeded},
		// go-tdx-guest's last check: everything else has passed.
		"QE OutOfDate":          {root: sim.Options{QETCBStatus: pcs.TcbComponentStatusOutOfDate}, accept: swh, wantErr: "quoting enclave TCB status OutOfDate"},
		"QE SWHardeningNeeded":  {root: sim.Options{QETCBStatus: pcs.TcbComponentStatusSwHardeningNeeded}, wantErr: "quoting enclave TCB status SWHardeningNeeded"},
		"QE SWHardening listed": {root: sim.Options{QETCBStatus: pcs.TcbComponentStatusSwHardeningNeeded}, accept: swh, status: pcs.TcbComponentStatusSwHardeningNeeded},
		"worst component named": {
			root:   sim.Options{TCBStatus: pcs.TcbComponentStatusSwHardeningNeeded, QETCBStatus: pcs.TcbComponentStatusConfigurationNeeded},
			accept: []pcs.TcbComponentStatus{pcs.TcbComponentStatusSwHardeningNeeded, pcs.TcbComponentStatusConfigurationNeeded},
			status: pcs.TcbComponentStatusConfigurationNeeded,
		},
	}
	for name, tc := range testCases {
		forEachVersion(t, func(t *testing.T, newQuoter func(*sim.Root, attest.Measurements) (attest.Quoter, error)) {
			t.Run(name, func(t *testing.T) { tc.run(t, newQuoter) })
		})
	}
}

type tcbStatusCase struct {
	root    sim.Options
	accept  []pcs.TcbComponentStatus
	wantErr string // the refused component and status; "" accepted
	status  pcs.TcbComponentStatus
}

func (tc tcbStatusCase) run(t *testing.T, newQuoter func(*sim.Root, attest.Measurements) (attest.Quoter, error)) {
	assert := assert.New(t)
	require := require.New(t)
	root, err := sim.New(tc.root)
	require.NoError(err)
	q, err := newQuoter(root, attesttest.Measurements(attest.RoleWorker))
	require.NoError(err)
	p := attesttest.OpenPolicy()
	p.AcceptTCBStatuses = tc.accept
	v, err := attest.NewVerifier(attest.VerifierConfig{Roots: []attest.TrustedRoot{root.TrustedRoot()}, Policy: p})
	require.NoError(err)
	peer, err := v.Verify(evidence(t, attest.RoleWorker, q))
	if tc.wantErr != "" {
		require.ErrorIs(err, attest.ErrTCBStatus)
		assert.ErrorContains(err, tc.wantErr)
		return
	}
	require.NoError(err)
	assert.Equal(string(tc.status), peer.TCBStatus)
}

// The platform and image rules of the one policy format, applied to simulated quotes.
func TestVerifyMeasurementPolicy(t *testing.T) {
	m := attesttest.Measurements(attest.RoleProxy)
	hexOf := func(b []byte) string { return hex.EncodeToString(b) }
	zero48 := hexOf(make([]byte, 48))
	testCases := map[string]struct {
		measure func(*attest.Measurements)
		policy  func(*attest.Policy, *attest.RolePolicy)
		wantErr error
	}{
		"all listed": {policy: func(p *attest.Policy, rp *attest.RolePolicy) {
			p.XFAMs = []string{hexOf(m.XFAM[:])}
			p.TDAttributes = []string{"0000000000000000"}
			p.MinTEETCBSVN = "05010200000000000000000000000000"
			rp.MRTDs = []string{hexOf(m.MRTD[:])}
			rp.RTMRs = [][4]string{{zero48, zero48, zero48, zero48}, {hexOf(m.RTMR[0][:]), "*", "*", hexOf(m.RTMR[3][:])}}
			rp.ImageHashes = nil
		}},
		"debug TD": {measure: func(m *attest.Measurements) { m.TDAttributes[0] |= 1 }, wantErr: attest.ErrDebugTD},
		"debug TD allowed": {
			measure: func(m *attest.Measurements) { m.TDAttributes[0] |= 1 },
			policy:  func(p *attest.Policy, _ *attest.RolePolicy) { p.AllowDebug = true },
		},
		"wrong MRTD":   {policy: func(_ *attest.Policy, rp *attest.RolePolicy) { rp.MRTDs = []string{zero48} }, wantErr: attest.ErrMeasurementMismatch},
		"wrong RTMRs":  {policy: func(_ *attest.Policy, rp *attest.RolePolicy) { rp.RTMRs = [][4]string{{"*", "*", zero48, "*"}} }, wantErr: attest.ErrMeasurementMismatch},
		"wrong XFAM":   {policy: func(p *attest.Policy, _ *attest.RolePolicy) { p.XFAMs = []string{"0300000000000000"} }, wantErr: attest.ErrMeasurementMismatch},
		"wrong MRSEAM": {policy: func(p *attest.Policy, _ *attest.RolePolicy) { p.MRSEAMs = []string{zero48} }, wantErr: attest.ErrMeasurementMismatch},
		"TEE TCB SVN too low": {
			policy:  func(p *attest.Policy, _ *attest.RolePolicy) { p.MinTEETCBSVN = "06010200000000000000000000000000" },
			wantErr: attest.ErrMeasurementMismatch,
		},
		"TD attributes not listed": {
			measure: func(m *attest.Measurements) { m.TDAttributes[3] |= 0x10 }, // SEPT_VE_DISABLE
			policy:  func(p *attest.Policy, _ *attest.RolePolicy) { p.TDAttributes = []string{"0000000000000000"} },
			wantErr: attest.ErrMeasurementMismatch,
		},
		"no image rule": {policy: func(_ *attest.Policy, rp *attest.RolePolicy) { rp.ImageHashes = nil }, wantErr: attest.ErrImageNotAllowed},
		"collateral too old": {
			policy:  func(p *attest.Policy, _ *attest.RolePolicy) { p.MaxCollateralAge = attest.Duration(time.Nanosecond) },
			wantErr: attest.ErrCollateralExpired,
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			require := require.New(t)
			mm := m
			if tc.measure != nil {
				tc.measure(&mm)
			}
			p := attesttest.OpenPolicy()
			rp := p.Roles[attest.RoleProxy]
			if tc.policy != nil {
				tc.policy(&p, &rp)
			}
			p.Roles[attest.RoleProxy] = rp
			require.NoError(p.Validate())
			v := attesttest.Verifier(t, p)
			_, err := v.Verify(evidence(t, attest.RoleProxy, attesttest.Quoter(t, mm)))
			if tc.wantErr == nil {
				require.NoError(err)
				return
			}
			require.ErrorIs(err, tc.wantErr)
		})
	}
}

// A proxy whose policy requires real TDX refuses a simulated worker, and says why.
func TestVerifySimulatedRefusedWhenRealTDXRequired(t *testing.T) {
	p := attesttest.OpenPolicy()
	p.AllowSimulated = false
	v := attesttest.Verifier(t, p, attest.IntelRoot(failingGetter{}))
	_, err := v.Verify(evidence(t, attest.RoleWorker, attesttest.Quoter(t, attesttest.Measurements(attest.RoleWorker))))
	require.ErrorIs(t, err, attest.ErrSimulatedNotAllowed)
	require.ErrorContains(t, err, "SIMULATED")
	require.ErrorContains(t, err, "requires real TDX")
}

// BenchmarkVerify measures a handshake's verification: a simulated quote through the whole path
// (first: nothing cached; cached: the verifier's result cache), and go-tdx-guest's recorded Intel
// quote with its recorded collateral (chain only; collateral from the in-memory cache; collateral
// fetched from a local PCCS every time). The recorded quote's platform matches no TCB level of the
// recorded TCB info, so those runs end in ErrTCBStatus after every signature and collateral check.
func BenchmarkVerify(b *testing.B) {
	ev := evidence(b, attest.RoleWorker, attesttest.Quoter(b, attesttest.Measurements(attest.RoleWorker)))
	b.Run("simulated/first", func(b *testing.B) {
		v, err := attest.NewVerifier(attest.VerifierConfig{
			Roots: []attest.TrustedRoot{attesttest.Root(b).TrustedRoot()}, Policy: attesttest.OpenPolicy(), CacheTTL: -1})
		require.NoError(b, err)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("simulated-v5/first", func(b *testing.B) {
		q, err := attesttest.Root(b).QuoterV5(attesttest.Measurements(attest.RoleWorker))
		require.NoError(b, err)
		ev5 := evidence(b, attest.RoleWorker, q)
		v, err := attest.NewVerifier(attest.VerifierConfig{
			Roots: []attest.TrustedRoot{attesttest.Root(b).TrustedRoot()}, Policy: attesttest.OpenPolicy(), CacheTTL: -1})
		require.NoError(b, err)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ev5); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("simulated/cached", func(b *testing.B) {
		v := attesttest.Verifier(b, attesttest.OpenPolicy())
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	quote := intelQuote()
	intel := func(b *testing.B, getter func() trust.HTTPSGetter, skip bool, want error) {
		b.ReportAllocs()
		for b.Loop() {
			v := intelVerifier(b, anyImage(), recordedAt, getter())
			if _, err := v.Examine(quote, skip); !errors.Is(err, want) {
				b.Fatal(err)
			}
		}
	}
	b.Run("intel-recorded/chain-only", func(b *testing.B) {
		intel(b, func() trust.HTTPSGetter { return failingGetter{} }, true, nil)
	})
	b.Run("intel-recorded/collateral-cached", func(b *testing.B) {
		g, err := attest.NewCollateralGetter(attest.CollateralConfig{HTTP: tdxtesting.TestGetter})
		require.NoError(b, err)
		intel(b, func() trust.HTTPSGetter { return g }, false, attest.ErrTCBStatus)
	})
	// The recorded v5 quote passes every check, TCB status included (see recorded_v5_test.go).
	intelV5 := func(b *testing.B, getter trust.HTTPSGetter, skip bool) {
		b.ReportAllocs()
		for b.Loop() {
			v := intelVerifier(b, anyImage(), recordedV5At, getter)
			attest.SetDocumentTimes(v, recordedDocumentTimes)
			if _, err := v.Examine(tdxdata.RawQuoteV5, skip); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("intel-recorded-v5/chain-only", func(b *testing.B) { intelV5(b, failingGetter{}, true) })
	b.Run("intel-recorded-v5/collateral-cached", func(b *testing.B) {
		g, err := attest.NewCollateralGetter(attest.CollateralConfig{HTTP: tdxtesting.TestGetter})
		require.NoError(b, err)
		intelV5(b, g, false)
	})
	b.Run("intel-recorded/collateral-fetched", func(b *testing.B) {
		srv := newPCCS(b)
		intel(b, func() trust.HTTPSGetter {
			g, err := attest.NewCollateralGetter(attest.CollateralConfig{URL: srv.URL})
			require.NoError(b, err)
			return g
		}, false, attest.ErrTCBStatus)
	})
}

// switchingGetter serves its inner collateral, or, once tampered, a TCB info with one byte changed.
type switchingGetter struct {
	inner interface {
		Get(string) (map[string][]string, []byte, error)
	}
	tampered atomic.Bool
}

func (g *switchingGetter) Get(u string) (map[string][]string, []byte, error) {
	h, b, err := g.inner.Get(u)
	if err == nil && g.tampered.Load() && strings.Contains(u, "/tcb?") {
		b = bytes.Replace(b, []byte(`"tcbEvaluationDataNumber":`), []byte(`"tcbEvaluationDataNumber": `), 1)
	}
	return h, b, err
}

// TestKnownPlatform: a platform's collateral is checked in full once; later quotes from it are
// accepted through the short path only while the very same collateral is served and unexpired.
func TestKnownPlatform(t *testing.T) {
	require := require.New(t)
	root := attesttest.Root(t)
	g := &switchingGetter{inner: root.Collateral()}
	now := time.Now()
	clock := func() time.Time { return now }
	v, err := attest.NewVerifier(attest.VerifierConfig{
		Roots:  []attest.TrustedRoot{{Cert: root.Certificate(), Collateral: g, Simulated: true}},
		Policy: attesttest.OpenPolicy(), CacheTTL: -1, Now: clock,
	})
	require.NoError(err)
	q := attesttest.Quoter(t, attesttest.Measurements(attest.RoleWorker))

	first, err := v.Verify(evidence(t, attest.RoleWorker, q))
	require.NoError(err)
	again, err := v.Verify(evidence(t, attest.RoleWorker, q))
	require.NoError(err, "a second quote from the same platform")
	require.Equal(first.TCBStatus, again.TCBStatus)
	require.Equal(first.ImageHash, again.ImageHash)

	// The TCB info now served is not the one verified: the short path is not taken and the full
	// verification refuses the changed document.
	g.tampered.Store(true)
	_, err = v.Verify(evidence(t, attest.RoleWorker, q))
	require.ErrorIs(err, attest.ErrCollateral)
	g.tampered.Store(false)
	_, err = v.Verify(evidence(t, attest.RoleWorker, q))
	require.NoError(err)

	// Past the collateral's next update the platform is checked in full again, and refused.
	now = now.Add(60 * 24 * time.Hour)
	_, err = v.Verify(evidence(t, attest.RoleWorker, q))
	require.ErrorIs(err, attest.ErrCollateralExpired)
}

// A cached verification never outlives a certificate it relied on: the PCK leaf and intermediate
// of the quote's chain, and the issuer of the collateral.
func TestVerifyCacheCertificateExpiry(t *testing.T) {
	testCases := map[string]struct {
		root    sim.Options
		wantErr error
	}{
		"PCK leaf":             {root: sim.Options{PCKValidity: 5 * time.Minute}, wantErr: attest.ErrQuoteSignature},
		"PCK platform CA":      {root: sim.Options{PlatformCAValidity: 5 * time.Minute}, wantErr: attest.ErrQuoteSignature},
		"TCB signing cert":     {root: sim.Options{TCBSigningValidity: 5 * time.Minute}, wantErr: attest.ErrCollateralExpired},
		"collateral by itself": {root: sim.Options{CollateralValidity: 5 * time.Minute}, wantErr: attest.ErrCollateralExpired},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			require := require.New(t)
			now := time.Now().Truncate(time.Second)
			tc.root.Now = now
			root, err := sim.New(tc.root)
			require.NoError(err)
			q, err := root.Quoter(attesttest.Measurements(attest.RoleWorker))
			require.NoError(err)
			ev := evidence(t, attest.RoleWorker, q)
			ev.NotAfter = now.Add(time.Hour)
			v, err := attest.NewVerifier(attest.VerifierConfig{
				Roots: []attest.TrustedRoot{root.TrustedRoot()}, Policy: attesttest.OpenPolicy(),
				Now: func() time.Time { return now },
			})
			require.NoError(err)
			_, err = v.Verify(ev)
			require.NoError(err)

			now = now.Add(6 * time.Minute) // past the certificate's expiry, within the cache's 10 minutes
			_, err = v.Verify(ev)
			require.ErrorIs(err, tc.wantErr)
		})
	}
}

// go-tdx-guest's refusal of a TCB that this verifier rates UpToDate wins on both paths: the full
// verification and the one for a platform whose collateral is known.
func TestVerifyTCBDriftGuard(t *testing.T) {
	testCases := map[string]sim.Options{
		"TDX module refused by go-tdx-guest":      {ModuleTCBStatus: pcs.TcbComponentStatusOutOfDate},
		"quoting enclave refused by go-tdx-guest": {QETCBStatus: pcs.TcbComponentStatusOutOfDate},
	}
	for name, opts := range testCases {
		t.Run(name, func(t *testing.T) {
			forEachVersion(t, func(t *testing.T, newQuoter func(*sim.Root, attest.Measurements) (attest.Quoter, error)) {
				require := require.New(t)
				root, err := sim.New(opts)
				require.NoError(err)
				q, err := newQuoter(root, attesttest.Measurements(attest.RoleWorker))
				require.NoError(err)
				v, err := attest.NewVerifier(attest.VerifierConfig{
					Roots: []attest.TrustedRoot{root.TrustedRoot()}, Policy: attesttest.OpenPolicy(), CacheTTL: -1})
				require.NoError(err)
				attest.RateEverythingUpToDate(v)
				for _, path := range []string{"full", "known platform"} {
					_, err := v.Verify(evidence(t, attest.RoleWorker, q))
					require.ErrorIs(err, attest.ErrTCBStatus, path)
					require.ErrorContains(err, "go-tdx-guest refused the TCB", path)
				}
			})
		})
	}
}
