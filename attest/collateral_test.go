package attest_test

import (
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tdxtesting "github.com/google/go-tdx-guest/testing"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
)

// pccs serves go-tdx-guest's recorded collateral the way a PCCS does: Intel's paths under its own
// base URL, the root CA CRL at /sgx/certification/v4/rootcacrl, hex-encoded.
type pccs struct {
	*httptest.Server
	hits atomic.Int64
}

func newPCCS(t testing.TB) *pccs {
	t.Helper()
	p := &pccs{}
	routes := map[string]tdxtesting.HTTPResponse{}
	for u, r := range tdxtesting.TestGetter.Responses {
		if rest, ok := strings.CutPrefix(u, attest.IntelPCSURL); ok {
			routes[rest] = r
		} else {
			routes["/sgx/certification/v4/rootcacrl"] = tdxtesting.HTTPResponse{Body: []byte(hex.EncodeToString(r.Body))}
		}
	}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
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
	t.Cleanup(p.Close)
	return p
}

func examineWith(t *testing.T, g *attest.CollateralGetter, at time.Time) (*attest.Report, error) {
	t.Helper()
	return intelVerifier(t, anyImage(), at, g).Examine(intelQuote(), false)
}

func TestCollateralGetterCachesUntilNextUpdate(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	srv := newPCCS(t)
	dir := t.TempDir()
	clock := recordedAt
	getter := func(offline bool, dir string) *attest.CollateralGetter {
		g, err := attest.NewCollateralGetter(attest.CollateralConfig{URL: srv.URL, Dir: dir, Offline: offline,
			Now: func() time.Time { return clock }})
		require.NoError(err)
		return g
	}

	// The recorded platform matches no TCB level (see TestRecordedIntelQuoteWithCollateral), so
	// verification gets as far as the TCB status: all four documents were fetched and verified.
	rep, err := examineWith(t, getter(false, dir), clock)
	require.ErrorIs(err, attest.ErrTCBStatus)
	require.NotNil(rep.Collateral)
	assert.True(rep.RevocationChecked)
	assert.EqualValues(4, srv.hits.Load(), "TCB info, QE identity, PCK CRL, root CRL")

	_, err = examineWith(t, getter(false, dir), clock)
	require.ErrorIs(err, attest.ErrTCBStatus)
	assert.EqualValues(4, srv.hits.Load(), "a new getter on the same directory fetches nothing")

	_, err = examineWith(t, getter(true, dir), clock)
	require.ErrorIs(err, attest.ErrTCBStatus, "offline from the cache")

	_, err = examineWith(t, getter(true, t.TempDir()), clock)
	require.ErrorIs(err, attest.ErrCollateralUnavailable, "offline with an empty cache")
	assert.ErrorContains(err, "offline")

	// Past the QE identity's and PCK CRL's next update (2023-07-08) those two are fetched again;
	// the TCB info (2023-07-18) and root CRL (2024) are still current.
	clock = time.Date(2023, 7, 9, 0, 0, 0, 0, time.UTC)
	_, err = examineWith(t, getter(false, dir), clock)
	require.ErrorIs(err, attest.ErrCollateralExpired, "the PCCS has nothing newer")
	assert.EqualValues(6, srv.hits.Load())
}

func TestCollateralBundleOffline(t *testing.T) {
	require := require.New(t)
	srv := newPCCS(t)
	g, err := attest.NewCollateralGetter(attest.CollateralConfig{URL: srv.URL})
	require.NoError(err)
	for _, u := range attest.CollateralURLs("50806f000000", "platform") {
		_, err := g.Fetch(u)
		require.NoError(err, u)
	}
	bundle := filepath.Join(t.TempDir(), "bundle.json")
	require.NoError(attest.WriteCollateralBundle(bundle, g.Entries()))
	srv.Close()

	offline, err := attest.NewCollateralGetter(attest.CollateralConfig{Bundle: bundle, Offline: true})
	require.NoError(err)
	rep, err := examineWith(t, offline, recordedAt)
	require.ErrorIs(err, attest.ErrTCBStatus)
	require.True(rep.RevocationChecked)
}

func TestCollateralGetterRefusesBadBaseURL(t *testing.T) {
	_, err := attest.NewCollateralGetter(attest.CollateralConfig{URL: "pccs.local:8081"})
	require.ErrorContains(t, err, "http")
}

// An unreachable PCCS costs one attempt per URL per backoff period, not one per verification.
func TestCollateralGetterBacksOffAfterFailure(t *testing.T) {
	assert := assert.New(t)
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	clock := recordedAt
	g, err := attest.NewCollateralGetter(attest.CollateralConfig{URL: srv.URL, Now: func() time.Time { return clock }})
	require.NoError(t, err)
	for range 3 {
		_, err := examineWith(t, g, recordedAt)
		require.ErrorIs(t, err, attest.ErrCollateralUnavailable)
	}
	assert.EqualValues(1, hits.Load(), "the TCB info is asked for once")
	clock = clock.Add(time.Minute)
	_, err = examineWith(t, g, recordedAt)
	require.ErrorIs(t, err, attest.ErrCollateralUnavailable)
	assert.EqualValues(2, hits.Load(), "and again after the backoff")
}
