package paysync

import (
	"crypto/ed25519"
	"testing"

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
