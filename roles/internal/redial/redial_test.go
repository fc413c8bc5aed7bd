package redial

import (
	"bytes"
	"context"
	"strings"
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

// listen starts a listener that accepts every connection, closed at the test's end.
func listen(t *testing.T, cfg transport.Config) *transport.Listener {
	l, err := transport.Listen("127.0.0.1:0", cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			if _, err := l.Accept(context.Background()); err != nil {
				return
			}
		}
	}()
	return l
}

// A connection whose certificate is about to expire is replaced before it ends: the replacement is
// up while the old connection still serves, and the old session runs until its connection closes.
func TestReplaceBeforeExpiry(t *testing.T) {
	require := require.New(t)
	l := listen(t, config(t, attest.RoleProxy, 0, nil))

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

func TestRefusedBackoff(t *testing.T) {
	testCases := map[string]struct {
		b        Backoff
		attempt  int
		lo, high time.Duration
	}{
		"default, first":  {b: DefaultBackoff, attempt: 0, lo: 30 * time.Second, high: time.Minute},
		"default, capped": {b: DefaultBackoff, attempt: 20, lo: 5 * time.Minute, high: 10 * time.Minute},
		"configured":      {b: Backoff{RefusedMin: time.Second, RefusedMax: 4 * time.Second}, attempt: 1, lo: time.Second, high: 2 * time.Second},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			for range 100 {
				d := tc.b.refused().Delay(tc.attempt)
				assert.GreaterOrEqual(t, d, tc.lo)
				assert.LessOrEqual(t, d, tc.high)
			}
		})
	}
}

// logBuffer collects log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// refusals records what the hooks saw.
type refusals struct {
	mu      sync.Mutex
	refused []*transport.RefusedError
	dials   []error
}

func (r *refusals) hooks() Hooks {
	return Hooks{
		DialFailed: func(err error) { r.mu.Lock(); r.dials = append(r.dials, err); r.mu.Unlock() },
		Refused:    func(re *transport.RefusedError) { r.mu.Lock(); r.refused = append(r.refused, re); r.mu.Unlock() },
	}
}

func (r *refusals) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.refused)
}

// TestRefusedByProxy: a worker the proxy refuses logs the reason and the fix, waits the long
// refusal backoff (not the network one), and connects at once when its own policy changes (as it
// does with the registry change that admits it). When a later policy change at the proxy closes
// the connection, that is a refusal too.
func TestRefusedByProxy(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	m := attesttest.Measurements(attest.RoleWorker)
	image := m.ImageHash()
	var model [32]byte
	registry := func(version uint32, workers ...[32]byte) attest.Policy {
		p, err := attest.PolicyFromRegistry(attest.RegistryLists{Address: "kQreg", Version: version,
			WorkerImages: workers, Models: [][32]byte{model}}, attesttest.OpenPolicy())
		require.NoError(err)
		return p
	}
	pcfg := config(t, attest.RoleProxy, 0, nil)
	require.NoError(pcfg.Verifier.SetPolicy(registry(1)))
	l := listen(t, pcfg)

	var logs logBuffer
	var seen refusals
	wcfg := config(t, attest.RoleWorker, 0, nil)
	sessions := make(chan *transport.Conn, 4)
	ctx, cancel := context.WithCancel(context.Background())
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		Loop(ctx, l.Addr().String(), wcfg, Backoff{Min: time.Millisecond, Max: 2 * time.Millisecond, RefusedMin: time.Hour, RefusedMax: time.Hour},
			zerolog.New(zerolog.MultiLevelWriter(&logs, zerolog.NewTestWriter(t))),
			func(ctx context.Context, c *transport.Conn) {
				sessions <- c
				select {
				case <-c.Done():
				case <-ctx.Done():
				}
			}, seen.hooks())
	}()
	require.Eventually(func() bool { return seen.count() == 1 }, 10*time.Second, time.Millisecond)
	require.Eventually(func() bool { return strings.Contains(logs.String(), "refused by the proxy") }, 10*time.Second, time.Millisecond)
	line := logs.String()
	assert.Contains(line, "refused by the proxy: image hash not allowed by policy: worker image "+image.String()+" is not on registry kQreg's worker list (version 1); retrying in ")
	assert.Contains(line, `(a refusal will not clear by itself: the owner adds it with \"cocoon chain registry allow kQreg worker-image `+image.String())
	assert.Contains(line, `"level":"error"`)
	seen.mu.Lock()
	require.Len(seen.dials, 1)
	var re *transport.RefusedError
	require.ErrorAs(seen.dials[0], &re, "the hook gets the refusal")
	assert.True(re.ByPeer)
	seen.mu.Unlock()

	// The registry admits the image: the proxy's policy and the worker's own change, and the
	// worker connects at once instead of after an hour.
	require.NoError(pcfg.Verifier.SetPolicy(registry(2, image)))
	require.NoError(wcfg.Verifier.SetPolicy(attesttest.OpenPolicy()))
	var c *transport.Conn
	select {
	case c = <-sessions:
	case <-time.After(10 * time.Second):
		t.Fatal("not connected after the policy change")
	}
	assert.Equal(1, seen.count(), "no other attempt in between")

	// The registry drops the image again: the proxy closes the connection with the reason.
	require.NoError(pcfg.Verifier.SetPolicy(registry(3)))
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the connection of a dropped worker stayed open")
	}
	require.Eventually(func() bool { return seen.count() == 2 }, 10*time.Second, time.Millisecond)
	seen.mu.Lock()
	assert.Contains(seen.refused[1].Reason, "(version 3)")
	seen.mu.Unlock()
	cancel()
	<-loopDone
}
