package proxyset

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func key(b byte) ed25519.PublicKey {
	k := make(ed25519.PublicKey, ed25519.PublicKeySize)
	k[0] = b
	return k
}

func TestCheckPaymentKey(t *testing.T) {
	testCases := map[string]struct {
		listed, presented ed25519.PublicKey
		wantErr           string
	}{
		"same":           {listed: key(1), presented: key(1)},
		"not listed":     {presented: key(1)},
		"neither":        {},
		"another":        {listed: key(1), presented: key(2), wantErr: "presents payment key 02"},
		"none presented": {listed: key(1), wantErr: "presents payment key none, the registry lists 01"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			err := CheckPaymentKey(Target{Endpoint: "p:1", PaymentKey: tc.listed}, &attest.Peer{Claims: &attest.Claims{PaymentKey: tc.presented}})
			if tc.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, ErrPaymentKeyMismatch)
			assert.ErrorContains(t, err, "proxy at p:1 "+tc.wantErr)
			assert.Equal(t, err.Error(), Refusal(err), "a mismatch is a refusal")
		})
	}
}

func TestRefusal(t *testing.T) {
	testCases := map[string]struct {
		err  error
		want string
	}{
		"nil":             {},
		"unreachable":     {err: errors.New("dial p:1: timeout: no recent network activity")},
		"our policy":      {err: fmt.Errorf("dial p:1: %w: image not allowed", transport.ErrPeerRefused), want: "dial p:1: refused peer: image not allowed"},
		"peer refused us": {err: fmt.Errorf("dial p:1: %w", &quic.ApplicationError{Remote: true, ErrorCode: wire.CodeProtocol, ErrorMessage: "peer not verified"}), want: "proxy refused this node: peer not verified"},
		"peer stopping":   {err: &quic.ApplicationError{Remote: true, ErrorCode: wire.CodeShutdown, ErrorMessage: "listener closed"}},
		"we closed":       {err: &quic.ApplicationError{ErrorCode: wire.CodeProtocol}},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, Refusal(tc.err))
		})
	}
}

// TestSetUpdate: members join and start, leave and stop once their sessions end, and a changed
// payment key makes a new member.
func TestSetUpdate(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	var mu sync.Mutex
	running := map[string]int{}
	sessions := make(chan func(), 4)
	s := New(func(t Target) string { return t.Endpoint }, func(ctx context.Context, m *Member[string]) {
		mu.Lock()
		running[m.Value]++
		mu.Unlock()
		sessions <- m.Hold()
		<-ctx.Done()
		mu.Lock()
		running[m.Value]--
		mu.Unlock()
	})
	count := func(ep string) int {
		mu.Lock()
		defer mu.Unlock()
		return running[ep]
	}
	joined, _ := s.Update([]Target{{Endpoint: "a:1"}})
	require.Len(joined, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	releaseA := <-sessions

	joined, left := s.Update([]Target{{Endpoint: "b:1", PaymentKey: key(1)}})
	require.Len(joined, 1)
	require.Len(left, 1)
	releaseB := <-sessions
	assert.Len(s.Members(), 1)
	<-left[0].Retired()
	assert.Equal(1, count("a:1"), "a left member runs on while a session holds it")
	releaseA()
	require.Eventually(func() bool { return count("a:1") == 0 }, 5*time.Second, time.Millisecond)

	joined, left = s.Update([]Target{{Endpoint: "b:1", PaymentKey: key(2), Name: "b"}})
	assert.Len(joined, 1, "a new payment key is a new member")
	assert.Len(left, 1)
	releaseB()
	<-sessions
	_, left = s.Update([]Target{{Endpoint: "b:1", PaymentKey: key(2), Name: "renamed"}})
	assert.Empty(left, "a new name is the same member")
	assert.Equal("renamed", s.Members()[0].Name())
	cancel()
	<-done
}
