package client

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

func newKey(t testing.TB) ed25519.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return pub
}

// held answers after release is closed, and says when a request arrived.
func held(arrived chan<- struct{}, release <-chan struct{}) script {
	return func(p *stubProxy, s *transport.Stream, req *wire.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-s.Context().Done():
			return
		}
		answerStream(p, s, req)
	}
}

func (p *stubProxy) connections() []*transport.Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*transport.Conn(nil), p.conns...)
}

// asyncPost posts a chat request and delivers its status (0: the request failed).
func (h *harness) asyncPost(t *testing.T) <-chan int {
	t.Helper()
	out := make(chan int, 1)
	go func() {
		req, err := http.NewRequest(http.MethodPost, h.url+"/v1/chat/completions", strings.NewReader(chatBody))
		if err != nil {
			out <- 0
			return
		}
		resp, err := h.http.Do(req)
		if err != nil {
			out <- 0
			return
		}
		defer resp.Body.Close()
		_ = newSSEReader(resp.Body).all(t)
		out <- resp.StatusCode
	}()
	return out
}

func within(t *testing.T, ch <-chan int, d time.Duration) int {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("no answer within %s", d)
		return 0
	}
}

func targets(stubs ...*stubProxy) []ProxyTarget {
	var ts []ProxyTarget
	for _, s := range stubs {
		ts = append(ts, ProxyTarget{Endpoint: s.addr, PaymentKey: s.paymentKey, Name: "stub " + s.addr})
	}
	return ts
}

// TestSetProxiesAddRemove: a proxy added while the client runs takes requests without a restart;
// a proxy removed takes no new request, its running request finishes and then its connection closes.
func TestSetProxiesAddRemove(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	arrived, release := make(chan struct{}, 8), make(chan struct{})
	// Keyless, as configured by hand: a target whose payment key changes is a new proxy.
	a := newStub(t, held(arrived, release))
	b := newStub(t, answerStream)
	h := startClient(t, []*stubProxy{a})
	h.waitConnected(t, 1)

	require.NoError(h.c.SetProxies(targets(a, b)))
	h.waitConnected(t, 2)
	running := h.asyncPost(t)
	for {
		// Requests spread over both; keep going until one is held on a.
		select {
		case <-arrived:
		case status := <-running:
			require.Equal(http.StatusOK, status)
			running = h.asyncPost(t)
			continue
		case <-time.After(10 * time.Second):
			t.Fatal("no request reached the added proxy set")
		}
		break
	}

	require.NoError(h.c.SetProxies(targets(b)))
	require.Eventually(func() bool { return len(h.c.snapshot().Proxies) == 1 }, 5*time.Second, 5*time.Millisecond)
	for i := range 3 {
		resp := h.post(t, "/v1/chat/completions", chatBody)
		require.Equal(http.StatusOK, resp.StatusCode, "request %d", i)
		assert.Equal(b.addr, resp.Header.Get("X-Cocoon-Proxy"), "a removed proxy takes no new request")
	}
	conns := a.connections()
	require.Len(conns, 1)
	select {
	case <-conns[0].Done():
		t.Fatal("the removed proxy's connection closed under a running request")
	default:
	}
	close(release)
	assert.Equal(http.StatusOK, within(t, running, 10*time.Second), "the running request finishes")
	select {
	case <-conns[0].Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the removed proxy's connection stayed open")
	}
	assert.Equal(1, a.acceptedConns(), "not dialled again")
	assert.Contains(h.logs.String(), "proxy leaves the set")
}

// TestSetProxiesPaymentKey: a proxy must present the payment key its target lists.
func TestSetProxiesPaymentKey(t *testing.T) {
	key := newKey(t)
	testCases := map[string]struct {
		presented ed25519.PublicKey
		listed    ed25519.PublicKey
		wantOK    bool
	}{
		"listed key":            {presented: key, listed: key, wantOK: true},
		"configured by hand":    {presented: key, wantOK: true},
		"another key":           {presented: newKey(t), listed: key},
		"no key presented":      {listed: key},
		"hand-configured, none": {wantOK: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			stub := newKeyedStub(t, tc.presented, answerStream)
			h := startClient(t, nil, withConfig(func(c *Config) { c.Discover = true }), withConnectWait(50*time.Millisecond))
			require.NoError(h.c.SetProxies([]ProxyTarget{{Endpoint: stub.addr, PaymentKey: tc.listed}}))
			if tc.wantOK {
				h.waitConnected(t, 1)
				resp := h.post(t, "/v1/chat/completions", chatBody)
				assert.Equal(http.StatusOK, resp.StatusCode)
				assert.Empty(h.c.snapshot().Proxies[0].Refused)
				return
			}
			require.Eventually(func() bool { return h.c.snapshot().Proxies[0].Refused != "" }, 10*time.Second, 5*time.Millisecond)
			st := h.c.snapshot().Proxies[0]
			assert.False(st.Connected)
			assert.Contains(st.Refused, "proxy at "+stub.addr+" presents payment key ")
			assert.Contains(st.Refused, "the registry lists "+hex.EncodeToString(key)+" for that endpoint")
			assert.Contains(st.Refused, ErrPaymentKeyMismatch.Error())
			resp := h.post(t, "/v1/chat/completions", chatBody)
			assert.Equal(http.StatusServiceUnavailable, resp.StatusCode)
			assert.Empty(stub.seen(), "not a byte of a request reaches a proxy with another key")
			assert.Equal(1, stub.acceptedConns(), "retried only after the slow backoff")
			assert.Equal(1, strings.Count(h.logs.String(), "proxy not used: refused"), "logged once")
		})
	}
}

// TestFailoverWhenProxyDies: a request held by a proxy that goes down before answering is
// answered by the next proxy within 2 s.
func TestFailoverWhenProxyDies(t *testing.T) {
	require := require.New(t)
	arrived := make(chan struct{}, 8)
	dying := newStub(t, held(arrived, make(chan struct{})))
	good := newStub(t, answerStream)
	h := startClient(t, []*stubProxy{dying, good})
	h.waitConnected(t, 2)
	var running <-chan int
	for i := 0; ; i++ {
		require.Less(i, 10, "no request reached the proxy that dies")
		running = h.asyncPost(t)
		select {
		case <-arrived:
		case status := <-running:
			require.Equal(http.StatusOK, status)
			continue
		case <-time.After(10 * time.Second):
			t.Fatal("request not answered")
		}
		break
	}
	start := time.Now()
	go dying.stop()
	require.Equal(http.StatusOK, within(t, running, 2*time.Second))
	require.Less(time.Since(start), 2*time.Second)
	require.EqualValues(1, h.c.snapshot().Requests.Failovers)
}

// TestSpreadsLoad: requests go to the proxy with fewer under way.
func TestSpreadsLoad(t *testing.T) {
	require := require.New(t)
	arrived, release := make(chan struct{}, 8), make(chan struct{})
	a, b := newStub(t, held(arrived, release)), newStub(t, held(arrived, release))
	h := startClient(t, []*stubProxy{a, b})
	h.waitConnected(t, 2)
	var running []<-chan int
	for range 4 {
		running = append(running, h.asyncPost(t))
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("request not forwarded")
		}
	}
	require.Len(a.seen(), 2, "two requests each: the one with fewer under way takes the next")
	require.Len(b.seen(), 2)
	close(release)
	for _, r := range running {
		require.Equal(http.StatusOK, within(t, r, 10*time.Second))
	}
}

// TestMaxProxies: with more proxies than client.max_proxies, the client connects to that many,
// those that answer a probe, and lists the others as standby.
func TestMaxProxies(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	a, b, down := newStub(t, answerStream), newStub(t, answerStream), newStub(t, answerStream)
	down.stop()
	h := startClient(t, nil, withConfig(func(c *Config) {
		c.Proxies, c.MaxProxies = []string{down.addr, a.addr, b.addr}, 2
	}), func(_ testing.TB, _ *Config, _ *transport.Config, c *Client) {
		if c != nil {
			c.reselectGap = 10 * time.Millisecond
		}
	})
	h.waitConnected(t, 2)
	st := h.c.snapshot().Proxies
	require.Len(st, 3)
	var standby []string
	for _, p := range st {
		if p.Standby {
			standby = append(standby, p.Address)
		}
	}
	assert.Equal([]string{down.addr}, standby)
	assert.Equal(2, a.acceptedConns(), "the probe's connection, then the kept one")
	resp := h.post(t, "/v1/chat/completions", chatBody)
	assert.Equal(http.StatusOK, resp.StatusCode)
}

func TestChoose(t *testing.T) {
	ts := []ProxyTarget{{Endpoint: "a:1"}, {Endpoint: "b:1"}, {Endpoint: "c:1"}, {Endpoint: "d:1"}}
	ms := time.Millisecond
	testCases := map[string]struct {
		live   map[string]time.Duration
		probes map[string]probe
		n      int
		want   []string
	}{
		"lowest probe RTT first": {probes: map[string]probe{"a:1": {rtt: 9 * ms}, "b:1": {rtt: 3 * ms}, "c:1": {rtt: 5 * ms}, "d:1": {rtt: 1 * ms}},
			n: 2, want: []string{"d:1", "b:1"}},
		"unreachable last, in order": {probes: map[string]probe{"a:1": {err: errors.New("down")}, "b:1": {err: errors.New("down")}, "c:1": {rtt: 5 * ms}},
			n: 3, want: []string{"c:1", "a:1", "b:1"}},
		"connected kept unless clearly slower": {live: map[string]time.Duration{"a:1": 10 * ms},
			probes: map[string]probe{"b:1": {rtt: 9 * ms}, "c:1": {rtt: 7 * ms}}, n: 1, want: []string{"c:1"}},
		"connected kept over a slightly faster one": {live: map[string]time.Duration{"a:1": 10 * ms},
			probes: map[string]probe{"b:1": {rtt: 9 * ms}}, n: 1, want: []string{"a:1"}},
		"more room than targets": {n: 9, want: []string{"a:1", "b:1", "c:1", "d:1"}},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, t := range choose(ts, tc.live, tc.probes, tc.n) {
				got = append(got, t.Endpoint)
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestSetProxiesValidates(t *testing.T) {
	h := startClient(t, nil, withConfig(func(c *Config) { c.Discover = true }))
	testCases := map[string]struct {
		ts      []ProxyTarget
		wantErr string
	}{
		"no port":     {ts: []ProxyTarget{{Endpoint: "localhost"}}, wantErr: "proxies[0]"},
		"twice":       {ts: []ProxyTarget{{Endpoint: "a:1"}, {Endpoint: "a:1"}}, wantErr: "listed twice"},
		"short key":   {ts: []ProxyTarget{{Endpoint: "a:1", PaymentKey: make([]byte, 7)}}, wantErr: "payment key"},
		"empty is ok": {},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			err := h.c.SetProxies(tc.ts)
			if tc.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tc.wantErr)
		})
	}
}
