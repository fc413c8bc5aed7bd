package transport

import (
	"crypto/hpke"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
	"github.com/cocoon-network/cocoon/attest/ratls"
)

// clock is a settable time for an Identity, read from the connections' goroutines too.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// workerIdentity is a worker identity on clk with certificates valid for an hour.
func workerIdentity(t *testing.T, clk *clock) *Identity {
	t.Helper()
	id, err := NewIdentity(IdentityConfig{Claims: attesttest.Claims(attest.RoleWorker), Validity: time.Hour,
		Quoter: attesttest.Quoter(t, attesttest.Measurements(attest.RoleWorker)), Now: clk.now})
	require.NoError(t, err)
	return id
}

// claimedHPKEKey is the HPKE public key the identity's current certificate names.
func claimedHPKEKey(t *testing.T, id *Identity) []byte {
	t.Helper()
	c := id.Certificate()
	rc, err := ratls.ParseCertificate(c.Certificate, c.Leaf.NotBefore.Add(ratls.Backdate), 0)
	require.NoError(t, err)
	claims, err := attest.DecodeClaims(rc.Claims)
	require.NoError(t, err)
	return claims.HPKEKey
}

// sealOpen seals a message to pub and opens it with priv.
func sealOpen(t *testing.T, pub []byte, priv hpke.PrivateKey) {
	t.Helper()
	pk, err := attest.HPKEKEM().NewPublicKey(pub)
	require.NoError(t, err)
	sealed, err := hpke.Seal(pk, hpke.HKDFSHA256(), hpke.AES256GCM(), nil, []byte("prompt"))
	require.NoError(t, err)
	opened, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), nil, sealed)
	require.NoError(t, err)
	require.Equal(t, "prompt", string(opened))
}

// Each worker certificate names a fresh HPKE key whose private half the identity holds; other
// roles' identities have none.
func TestIdentityHPKEKeyPerCertificate(t *testing.T) {
	testCases := map[string]struct {
		role     attest.Role
		wantKeys bool
	}{
		"worker": {role: attest.RoleWorker, wantKeys: true},
		"proxy":  {role: attest.RoleProxy},
		"client": {role: attest.RoleClient},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			clk := &clock{t: time.Now()}
			cfg := IdentityConfig{Claims: attesttest.Claims(tc.role), Now: clk.now}
			if tc.role != attest.RoleClient {
				cfg.Quoter = attesttest.Quoter(t, attesttest.Measurements(tc.role))
			}
			id, err := NewIdentity(cfg)
			require.NoError(err)
			first := claimedHPKEKey(t, id)
			if !tc.wantKeys {
				assert.Nil(first)
				assert.Empty(id.keys)
				_, ok := id.HPKEKey(attesttest.HPKEPublicKey())
				assert.False(ok)
				return
			}
			require.NotEqual(attesttest.HPKEPublicKey(), first, "the identity's own key, not the claims template's")
			priv, ok := id.HPKEKey(first)
			require.True(ok)
			sealOpen(t, first, priv)

			clk.advance(time.Minute)
			require.NoError(id.Rotate())
			clk.advance(retireGrace) // past the replaced certificate's grace, not its life
			second := claimedHPKEKey(t, id)
			assert.NotEqual(first, second, "a fresh key with each certificate")
			priv, ok = id.HPKEKey(second)
			require.True(ok)
			sealOpen(t, second, priv)
			_, ok = id.HPKEKey(first)
			assert.False(ok, "no connection holds the replaced certificate's key")
			_, ok = id.HPKEKey(nil)
			assert.False(ok)
		})
	}
}

// A connection made with a certificate keeps its HPKE key available after rotation, for requests
// sealed to it that still arrive on it; once the connection ends, the key is dropped.
func TestIdentityHPKEKeyKeptWhileConnectionLives(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	clk := &clock{t: time.Now()}
	worker := newNode(t, attest.RoleWorker)
	id := workerIdentity(t, clk)
	worker.identity = id
	sc, cc := pair(t, newNode(t, attest.RoleProxy), worker)

	old := sc.Peer().Claims.HPKEKey
	require.Equal(claimedHPKEKey(t, id), old, "the proxy reads the worker's HPKE key from its verified claims")
	priv, ok := cc.HPKEKey()
	require.True(ok)
	sealOpen(t, old, priv)
	_, ok = sc.HPKEKey()
	assert.False(ok, "the proxy has no HPKE key")

	clk.advance(10 * time.Minute)
	require.NoError(id.Rotate())
	clk.advance(retireGrace) // only the connection holds the old key now
	current := claimedHPKEKey(t, id)
	require.NotEqual(old, current)
	priv, ok = cc.HPKEKey()
	require.True(ok, "the connection still opens with its certificate's key")
	sealOpen(t, old, priv)
	_, ok = id.HPKEKey(old)
	assert.True(ok)
	_, ok = id.HPKEKey(current)
	assert.True(ok)
	keys := id.HPKEKeys()
	require.Len(keys, 2)
	assert.Equal(current, keys[0].PublicKey().Bytes(), "the current key first")
	assert.Equal(old, keys[1].PublicKey().Bytes())

	require.NoError(cc.Close(0, ""))
	<-cc.Done()
	require.Eventually(func() bool { _, ok := id.HPKEKey(old); return !ok }, 5*time.Second, 10*time.Millisecond,
		"the old key outlived its last connection")
	_, ok = id.HPKEKey(current)
	assert.True(ok, "the current key stays")
	assert.Len(id.HPKEKeys(), 1)
	_, ok = cc.HPKEKey()
	assert.False(ok)
}

// When a replaced certificate's HPKE key is dropped: after retireGrace without a connection, and
// when the certificate expires whatever holds it.
func TestIdentityHPKEKeyRetired(t *testing.T) {
	testCases := map[string]struct {
		hold    bool          // a connection made with the old certificate lives
		advance time.Duration // after the rotation
		want    bool
	}{
		"within the grace, no connection":  {advance: retireGrace / 2, want: true},
		"after the grace, no connection":   {advance: retireGrace},
		"after the grace, with connection": {hold: true, advance: retireGrace, want: true},
		"expired, with connection":         {hold: true, advance: 30 * time.Minute},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			clk := &clock{t: time.Now()}
			id := workerIdentity(t, clk)
			old := claimedHPKEKey(t, id)
			if tc.hold {
				pub, release := id.hold(id.Certificate())
				require.Equal(t, old, pub)
				t.Cleanup(release)
			}
			clk.advance(30 * time.Minute)
			require.NoError(t, id.Rotate())
			clk.advance(tc.advance)
			_, ok := id.HPKEKey(old)
			assert.Equal(t, tc.want, ok)
			_, ok = id.HPKEKey(claimedHPKEKey(t, id))
			assert.True(t, ok, "the current certificate's key is always held")
		})
	}
}
