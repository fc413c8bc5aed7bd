package worker

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/gpu/scripted"
	"github.com/cocoon-network/cocoon/roles/internal/redial"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

func newKey(t *testing.T) ed25519.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return pub
}

// runDiscovering runs a worker whose proxies come from SetProxies only.
func runDiscovering(t *testing.T, engine gpu.Engine) *Worker {
	t.Helper()
	claims := attesttest.Claims(attest.RoleWorker)
	w, err := New(Config{Discover: true, Model: claims.Model, WeightsDigest: claims.WeightsDigest,
		MaxActive: 2, HealthInterval: 20 * time.Millisecond,
		Backoff: redial.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}},
		engine, tconfig(t, attest.RoleWorker), zerolog.New(zerolog.NewTestWriter(t)))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return w
}

func accepted(t *testing.T, sp *stubProxy) *transport.Conn {
	t.Helper()
	select {
	case c := <-sp.conns:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not connect")
		return nil
	}
}

func proxyStats(w *Worker) []proxyState { return w.Stats().(map[string]any)["proxies"].([]proxyState) }

// TestSetProxies: a proxy added while the worker runs gets its registration; a proxy removed is
// told the worker unregisters, its running request finishes and then its connection closes.
func TestSetProxies(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	step := make(chan struct{})
	eng := scripted.New(scripted.Config{Chunks: 2, Model: "test-model", Step: step})
	t.Cleanup(eng.Close)
	e, err := gpu.NewHTTP(gpu.HTTPConfig{BaseURL: eng.URL})
	require.NoError(err)
	first := newStubProxy(t)
	w, c1 := startWorkerWith(t, first, e, 2, tconfig(t, attest.RoleWorker))
	expectRegister(t, c1, 2)

	key := newKey(t)
	added := newKeyedStubProxy(t, key)
	require.NoError(w.SetProxies([]ProxyTarget{{Endpoint: first.l.Addr().String()},
		{Endpoint: added.l.Addr().String(), PaymentKey: key, Name: "added"}}))
	c2 := accepted(t, added)
	expectRegister(t, c2, 2)

	_, read := request(t, c1, chat, true)
	_, err = eng.Await(context.Background(), 1)
	require.NoError(err)
	require.NoError(w.SetProxies([]ProxyTarget{{Endpoint: added.l.Addr().String(), PaymentKey: key, Name: "added"}}))
	m := nextControl(t, c1)
	require.IsType(&wire.Unregister{}, m, "the removed proxy hears the worker leave")
	select {
	case <-c1.Done():
		t.Fatal("the removed proxy's connection closed under a running request")
	default:
	}
	close(step)
	r := read()
	require.NotNil(r.done, "the running request finishes")
	select {
	case <-c1.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the removed proxy's connection stayed open")
	}
	ps := proxyStats(w)
	require.Len(ps, 1)
	assert.Equal("added", ps[0].Name)
	assert.Equal(hex.EncodeToString(key), ps[0].PaymentKey)
	assert.True(ps[0].Registered)
	select {
	case c := <-first.conns:
		t.Fatalf("the removed proxy was dialled again from %s", c.RemoteAddr())
	default:
	}
}

// TestPaymentKeyMismatch: a proxy that presents another payment key than its target lists is
// closed before the worker registers, and the reason shows in the stats.
func TestPaymentKeyMismatch(t *testing.T) {
	listed := newKey(t)
	testCases := map[string]struct{ presented ed25519.PublicKey }{
		"another key": {presented: newKey(t)},
		"no key":      {},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			sp := newKeyedStubProxy(t, tc.presented)
			w := runDiscovering(t, gpuBuiltinFake{})
			require.NoError(w.SetProxies([]ProxyTarget{{Endpoint: sp.l.Addr().String(), PaymentKey: listed}}))
			c := accepted(t, sp)
			select {
			case <-c.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("the worker kept the connection")
			}
			for m := range c.Control() {
				assert.NotEqual("Register", string(m.ProtoReflect().Descriptor().Name()), "registered with a proxy of another key")
			}
			require.Eventually(func() bool { return proxyStats(w)[0].Refused != "" }, 5*time.Second, 5*time.Millisecond)
			ps := proxyStats(w)[0]
			assert.Contains(ps.Refused, ErrPaymentKeyMismatch.Error())
			assert.Contains(ps.Refused, "the registry lists "+hex.EncodeToString(listed)+" for that endpoint")
			assert.False(ps.Registered)
			assert.ErrorContains(w.Healthy(), "not registered")
			select {
			case <-sp.conns:
				t.Fatal("dialled again before the slow backoff")
			default:
			}
		})
	}
}
