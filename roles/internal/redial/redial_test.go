package redial

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
	"github.com/cocoon-network/cocoon/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func config(t *testing.T, role attest.Role, validity time.Duration, now func() time.Time) transport.Config {
	t.Helper()
	id, err := transport.NewIdentity(transport.IdentityConfig{Claims: attesttest.Claims(role),
		Quoter: attesttest.Quoter(t, attesttest.Measurements(role)), Validity: validity, Now: now})
	require.NoError(t, err)
	return transport.Config{Identity: id, Verifier: attesttest.Verifier(t, attesttest.OpenPolicy()),
		Log: zerolog.New(zerolog.NewTestWriter(t))}
}

// A connection whose certificate is about to expire is replaced before it ends: the replacement is
// up while the old connection still serves, and the old session runs until its connection closes.
func TestReplaceBeforeExpiry(t *testing.T) {
	require := require.New(t)
	l, err := transport.Listen("127.0.0.1:0", config(t, attest.RoleProxy, 0, nil))
	require.NoError(err)
	defer l.Close()
	go func() {
		for {
			if _, err := l.Accept(context.Background()); err != nil {
				return
			}
		}
	}()

	// The worker's certificates live 4 s; each session renews it as if 2 s had passed, so the next
	// connection ends later than the one it replaces.
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	cfg := config(t, attest.RoleWorker, 4*time.Second, now)
	type session struct {
		c     *transport.Conn
		ended chan struct{}
	}
	sessions := make(chan session, 8)
	ctx, cancel := context.WithCancel(context.Background())
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		Loop(ctx, l.Addr().String(), cfg, DefaultBackoff, zerolog.New(zerolog.NewTestWriter(t)),
			func(ctx context.Context, c *transport.Conn) {
				s := session{c: c, ended: make(chan struct{})}
				defer close(s.ended)
				sessions <- s
				mu.Lock()
				clock = clock.Add(2 * time.Second)
				mu.Unlock()
				_ = cfg.Identity.Rotate()
				select {
				case <-c.Done():
				case <-ctx.Done():
				}
			}, Hooks{})
	}()
	next := func() session {
		select {
		case s := <-sessions:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("no connection")
			return session{}
		}
	}
	first := next()
	second := next()
	require.True(first.c.IsDraining(), "replaced only once draining")
	select {
	case <-first.ended:
		t.Fatal("the old session ended before its replacement was up")
	default:
	}
	require.True(second.c.Ends().After(first.c.Ends()))
	select {
	case <-first.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the old session outlived its connection")
	}
	cancel()
	<-loopDone
}

func TestBackoff(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second}
	testCases := map[string]struct {
		attempt  int
		lo, high time.Duration
	}{
		"first":      {attempt: 0, lo: 50 * time.Millisecond, high: 100 * time.Millisecond},
		"third":      {attempt: 2, lo: 200 * time.Millisecond, high: 400 * time.Millisecond},
		"capped":     {attempt: 10, lo: time.Second, high: 2 * time.Second},
		"very large": {attempt: 1000, lo: time.Second, high: 2 * time.Second},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			for range 100 {
				d := b.Delay(tc.attempt)
				assert.GreaterOrEqual(t, d, tc.lo)
				assert.LessOrEqual(t, d, tc.high)
			}
		})
	}
}
