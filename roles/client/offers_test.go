package client

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOffersParsedOnce: a certificate offered again is the one parsed before, shared (so the
// receipts of its answers hold one copy); once expired it is parsed, and refused, again.
func TestOffersParsedOnce(t *testing.T) {
	w := newFakeWorker(t)
	var o offers
	now := time.Now()
	a, err := o.parse(append([]byte(nil), w.der...), now, 0)
	require.NoError(t, err)
	b, err := o.parse(append([]byte(nil), w.der...), now, 0)
	require.NoError(t, err)
	assert.Same(t, a, b)
	assert.Equal(t, w.quoteHash, a.quoteHash)
	_, err = o.parse(w.der, a.notAfter.Add(time.Second), 0)
	assert.Error(t, err, "an expired certificate is refused, not served from the cache")
	bad := append([]byte(nil), w.der...)
	bad[len(bad)/2] ^= 1
	_, err = o.parse(bad, now, 0)
	assert.Error(t, err)
}

// TestSealSessionRenewed: requests to one worker share a seal session, for sessionLifetime; then
// the next request makes a new one.
func TestSealSessionRenewed(t *testing.T) {
	w := newFakeWorker(t)
	var o offers
	now := time.Now()
	ow, err := o.parse(w.der, now, 0)
	require.NoError(t, err)
	pub := w.hpke.PublicKey()
	a, err := ow.sealSession(pub, now)
	require.NoError(t, err)
	b, err := ow.sealSession(pub, now.Add(sessionLifetime-time.Second))
	require.NoError(t, err)
	assert.Same(t, a, b)
	c, err := ow.sealSession(pub, now.Add(sessionLifetime))
	require.NoError(t, err)
	assert.NotSame(t, a, c)
	d, err := ow.sealSession(pub, now.Add(-time.Hour))
	require.NoError(t, err)
	assert.NotSame(t, c, d, "a clock set back makes a new session too")
}
