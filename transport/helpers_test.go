package transport

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
)

// node is one end of a test connection.
type node struct {
	role     attest.Role
	identity *Identity
	policy   attest.Policy
}

func newNode(t testing.TB, role attest.Role) *node {
	t.Helper()
	var q attest.Quoter
	if role != attest.RoleClient {
		q = attesttest.Quoter(t, attesttest.Measurements(role))
	}
	return nodeWith(t, role, q)
}

// newNodeV5 is newNode on a platform with a TDX 1.5 module, whose quotes are v5.
func newNodeV5(t testing.TB, role attest.Role) *node {
	t.Helper()
	q, err := attesttest.Root(t).QuoterV5(attesttest.Measurements(role))
	require.NoError(t, err)
	return nodeWith(t, role, q)
}

func nodeWith(t testing.TB, role attest.Role, q attest.Quoter) *node {
	t.Helper()
	id, err := NewIdentity(IdentityConfig{Claims: attesttest.Claims(role), Quoter: q})
	require.NoError(t, err)
	return &node{role: role, identity: id, policy: attesttest.OpenPolicy()}
}

// fixedIdentity presents a given certificate, however malformed.
func fixedIdentity(role attest.Role, cert tls.Certificate) *Identity {
	return &Identity{cfg: IdentityConfig{Claims: attest.Claims{Role: role}}, cert: &cert}
}

func (n *node) config(t testing.TB) Config {
	return Config{
		Identity: n.identity,
		Verifier: attesttest.Verifier(t, n.policy),
		Log:      zerolog.New(zerolog.NewTestWriter(t)),
	}
}

// rejections records the listener's refusals.
type rejections struct {
	mu   sync.Mutex
	errs []error
}

func (r *rejections) add(_ string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

func (r *rejections) all() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

func listen(t testing.TB, n *node, opts ...ListenOption) *Listener {
	t.Helper()
	l, err := Listen("127.0.0.1:0", n.config(t), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// pair dials server from client and returns both ends.
func pair(t testing.TB, server, client *node) (*Conn, *Conn) {
	t.Helper()
	return pairConfigs(t, server.config(t), client.config(t))
}

// pairConfigs is pair for ends configured by hand.
func pairConfigs(t testing.TB, server, client Config) (*Conn, *Conn) {
	t.Helper()
	l, err := Listen("127.0.0.1:0", server)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, err := Dial(ctx, l.Addr().String(), client)
	require.NoError(t, err)
	sc, err := l.Accept(ctx)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = cc.Close(0, "")
		_ = sc.Close(0, "")
		<-cc.Done()
		<-sc.Done()
	})
	return sc, cc
}

func newKey(t testing.TB) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return k
}

// onStreams opens n request streams on c at once and runs f on each (i is its index); it returns
// the errors, once every f has returned.
func onStreams(ctx context.Context, c *Conn, n int, f func(i int, s *Stream) error) []error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := c.OpenStream(ctx)
			if err == nil {
				err = f(i, s)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}
