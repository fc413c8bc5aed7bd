package seal

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSessionSealsManyRequests: a session's requests carry one enc, the worker decapsulates it
// once, and every request still has keys of its own, also when sealed twice for one binding.
func TestSessionSealsManyRequests(t *testing.T) {
	k := newKey(t)
	s, err := NewSession(k.PublicKey())
	require.NoError(t, err)
	var encs [][]byte
	for i := range 20 {
		b := testBinding()
		b.RequestID = fmt.Sprintf("req-%d", i%10) // each binding twice, as a reseal would
		body := fmt.Appendf(nil, `{"n":%d}`, i)
		sealed, opener, err := s.SealRequest(b, body)
		require.NoError(t, err)
		got, sealer, err := OpenRequest(k, b, sealed)
		require.NoError(t, err)
		assert.Equal(t, body, got)
		frame, err := sealer.Seal([]byte("answer"))
		require.NoError(t, err)
		p, err := opener.Open(frame)
		require.NoError(t, err)
		assert.Equal(t, []byte("answer"), p)
		encs = append(encs, sealed[requestHeaderSize:requestHeaderSize+encSize])
	}
	for _, e := range encs {
		assert.Equal(t, encs[0], e)
	}
	assert.Equal(t, 1, k.sessions.len(), "one decapsulation kept for the session")

	// One binding and one body sealed twice: two ciphertexts, under two keys.
	a, _, err := s.SealRequest(testBinding(), []byte("same"))
	require.NoError(t, err)
	b, _, err := s.SealRequest(testBinding(), []byte("same"))
	require.NoError(t, err)
	assert.NotEqual(t, a[requestHeaderSize+encSize:], b[requestHeaderSize+encSize:])
	assert.NotEqual(t, a[:requestHeaderSize], b[:requestHeaderSize], "fresh seal nonce")
}

// TestSessionForgedEncNotKept: a request whose body does not open leaves nothing in the cache,
// and a cached session still refuses a changed ciphertext or seal nonce.
func TestSessionForgedEncNotKept(t *testing.T) {
	k := newKey(t)
	s, err := NewSession(k.PublicKey())
	require.NoError(t, err)
	sealed, _, err := s.SealRequest(testBinding(), []byte("body"))
	require.NoError(t, err)
	for _, i := range []int{requestHeaderSize, requestHeaderSize + encSize - 1} {
		_, _, err = OpenRequest(k, testBinding(), flip(sealed, i))
		require.ErrorIs(t, err, ErrTampered)
	}
	assert.Equal(t, 0, k.sessions.len())

	_, _, err = OpenRequest(k, testBinding(), sealed)
	require.NoError(t, err)
	require.Equal(t, 1, k.sessions.len())
	for name, i := range map[string]int{"seal nonce": requestHeaderSize - 1, "ciphertext": requestHeaderSize + encSize + 1, "tag": len(sealed) - 1} {
		_, _, err = OpenRequest(k, testBinding(), flip(sealed, i))
		assert.ErrorIs(t, err, ErrTampered, name)
	}
	other := testBinding()
	other.Model = "other"
	_, _, err = OpenRequest(k, other, sealed)
	assert.ErrorIs(t, err, ErrBinding)
}

// TestSessionCacheBounded: the cache holds at most MaxSessions secrets, dropping the oldest.
func TestSessionCacheBounded(t *testing.T) {
	var c sessions
	enc := func(i int) []byte { return fmt.Appendf(nil, "enc-%d", i) }
	for i := range MaxSessions + 10 {
		c.put(enc(i), []byte{byte(i)})
	}
	assert.Equal(t, MaxSessions, c.len())
	k := newKey(t)
	_, cached, _ := c.secret(k, enc(0))
	assert.False(t, cached, "the oldest was dropped")
	got, cached, err := c.secret(k, enc(MaxSessions+9))
	require.NoError(t, err)
	assert.True(t, cached)
	assert.Equal(t, []byte{byte((MaxSessions + 9) % 256)}, got)
}

// TestSessionConcurrent: one session seals, and one key opens, from many goroutines at once.
func TestSessionConcurrent(t *testing.T) {
	k := newKey(t)
	s, err := NewSession(k.PublicKey())
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			b := testBinding()
			b.RequestID = fmt.Sprintf("req-%d", i)
			body := bytes.Repeat([]byte{byte(i)}, 100)
			sealed, _, err := s.SealRequest(b, body)
			assert.NoError(t, err)
			got, _, err := OpenRequest(k, b, sealed)
			assert.NoError(t, err)
			assert.Equal(t, body, got)
		})
	}
	wg.Wait()
	assert.Equal(t, 1, k.sessions.len())
}
