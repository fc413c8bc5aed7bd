package paysync

import (
	"crypto/ed25519"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/ton"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/paystate"
	"github.com/cocoon-network/cocoon/transport/wire"
)

type stubConn struct{ sent []proto.Message }

func (c *stubConn) SendControl(m proto.Message) error {
	c.sent = append(c.sent, m)
	return nil
}

func TestSync(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	store, err := paystate.Open(t.TempDir(), settle.KindWorkerEarned, ton.AccountID{})
	require.NoError(t, err)
	testCases := map[string]struct {
		states   *paystate.Store
		key      ed25519.PublicKey
		wantNil  bool
		wantTook bool // a payment state is taken
	}{
		"payments off":          {key: pub, wantNil: true},
		"proxy without key":     {states: store, wantNil: true},
		"payments on, no state": {states: store, key: pub, wantTook: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			c := &stubConn{}
			s := Start(tc.states, tc.key, c, zerolog.New(zerolog.NewTestWriter(t)))
			assert.Equal(tc.wantNil, s == nil)
			assert.Empty(c.sent, "nothing held, nothing shown")
			assert.True(s.Handle(&wire.PaymentState{Signed: []byte("not a state")}), "a payment state is the exchange's, even when refused")
			assert.False(s.Handle(&wire.Registered{}), "other control messages are the caller's")
		})
	}
}

// TestSyncKeepsNewest: states taken in the background end with the newest kept; a stale one
// changes nothing, and a refused one does not stop the next from being kept.
func TestSyncKeepsNewest(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	_, other, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	store, err := paystate.Open(t.TempDir(), settle.KindWorkerEarned, ton.AccountID{})
	require.NoError(t, err)
	s := Start(store, pub, &stubConn{}, zerolog.New(zerolog.NewTestWriter(t)))
	state := func(seqno uint64, key ed25519.PrivateKey) *wire.PaymentState {
		st, err := settle.Sign(settle.State{Kind: settle.KindWorkerEarned, Seqno: seqno, Total: 10 * seqno}, key)
		require.NoError(t, err)
		b, err := st.MarshalBinary()
		require.NoError(t, err)
		return &wire.PaymentState{Signed: b}
	}
	latest := func() uint64 {
		require.Eventually(t, s.Idle, 10*time.Second, time.Millisecond)
		st, ok := store.Latest(pub)
		require.True(t, ok)
		return st.State.Seqno
	}
	for i := range uint64(200) {
		require.True(t, s.Handle(state(i+1, priv)))
	}
	assert.Equal(t, uint64(200), latest())
	s.Handle(state(10, priv))
	assert.Equal(t, uint64(200), latest(), "a stale state changes nothing")
	s.Handle(state(300, other))
	assert.Equal(t, uint64(200), latest(), "a state signed by another key is refused")
	s.Handle(state(201, priv))
	assert.Equal(t, uint64(201), latest())

	// A refused state newer than the ones waiting with it does not hide them.
	s.mu.Lock()
	s.draining = true // hold the drain, so the three wait together
	s.mu.Unlock()
	s.Handle(state(202, priv))
	s.Handle(state(500, other))
	s.Handle(state(203, priv))
	s.drain()
	st, _ := store.Latest(pub)
	assert.Equal(t, uint64(203), st.State.Seqno)
	assert.Equal(t, uint64(2030), st.State.Total)
	assert.True(t, s.Idle())

	// At most maxPending wait: the newest.
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	for i := range uint64(20) {
		s.Handle(state(1000-i, priv))
	}
	s.mu.Lock()
	assert.Len(t, s.pending, maxPending)
	assert.Equal(t, uint64(1000-maxPending+1), slices.MinFunc(s.pending, byState).seqno)
	s.mu.Unlock()
	s.drain()
	assert.Equal(t, uint64(1000), latest())
}
