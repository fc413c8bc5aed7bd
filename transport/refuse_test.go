package transport

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

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
	"github.com/cocoon-network/cocoon/transport/wire"
)

const testRegistry = "kQregistry"

// logBuffer collects a node's log lines for assertions.
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

func (b *logBuffer) logger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.MultiLevelWriter(b, zerolog.NewTestWriter(t)))
}

// registryPolicy is the open policy narrowed to a registry that lists workers.
func registryPolicy(t testing.TB, workers ...attest.ImageHash) attest.Policy {
	list := make([][32]byte, len(workers))
	for i, h := range workers {
		list[i] = h
	}
	var model [32]byte // attesttest.Claims' weights digest
	p, err := attest.PolicyFromRegistry(attest.RegistryLists{Address: testRegistry, Version: 7,
		WorkerImages: list, Models: [][32]byte{model}}, attesttest.OpenPolicy())
	require.NoError(t, err)
	return p
}

// workerWith is a worker whose image differs from the default worker's by its RTMR3.
func workerWith(t testing.TB, variant byte) *node {
	m := attesttest.Measurements(attest.RoleWorker)
	m.RTMR[3][0] ^= variant
	return nodeWith(t, attest.RoleWorker, attesttest.Quoter(t, m))
}

// TestRefusalTellsWhy: a worker whose image is not on the registry's list completes the handshake
// only to be told why: Dial returns a *RefusedError naming the image, the registry, its version
// and the fix; both sides log it, and the listener accepts nothing.
func TestRefusalTellsWhy(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	server := newNode(t, attest.RoleProxy)
	server.policy = registryPolicy(t) // no worker image listed
	var logs logBuffer
	cfg := server.config(t)
	cfg.Log = logs.logger(t)
	var rej rejections
	l, err := Listen("127.0.0.1:0", cfg, WithRejectHook(rej.add))
	require.NoError(err)
	t.Cleanup(func() { _ = l.Close() })

	m := attesttest.Measurements(attest.RoleWorker)
	image := m.ImageHash().String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = Dial(ctx, l.Addr().String(), newNode(t, attest.RoleWorker).config(t))
	var re *RefusedError
	require.ErrorAs(err, &re)
	assert.True(re.ByPeer)
	assert.Contains(re.Reason, "worker image "+image+" is not on registry "+testRegistry+"'s worker list (version 7)")
	assert.Equal(`the owner adds it with "cocoon chain registry allow `+testRegistry+` worker-image `+image+`"`, re.Fix)
	assert.Contains(err.Error(), re.Fix, "the error shows the fix")
	code, ok := ErrorCode(err)
	require.True(ok)
	assert.Equal(wire.CodePolicyRefused, code)

	require.Len(rej.all(), 1)
	assert.ErrorIs(rej.all()[0], attest.ErrImageNotAllowed)
	assert.Contains(logs.String(), "refused peer at handshake")
	assert.Contains(logs.String(), image)
	assert.Empty(l.accepted)
}

// TestDialerRefusalTellsListener: a worker whose policy does not allow the proxy's image closes
// the connection with the reason; the proxy logs it and accepts nothing.
func TestDialerRefusalTellsListener(t *testing.T) {
	require := require.New(t)
	var logs logBuffer
	cfg := newNode(t, attest.RoleProxy).config(t)
	cfg.Log = logs.logger(t)
	l, err := Listen("127.0.0.1:0", cfg)
	require.NoError(err)
	t.Cleanup(func() { _ = l.Close() })

	client := newNode(t, attest.RoleWorker)
	client.policy.Roles[attest.RoleProxy] = attest.RolePolicy{ImageHashes: []string{strings.Repeat("11", 32)}}
	_, err = Dial(context.Background(), l.Addr().String(), client.config(t))
	var re *RefusedError
	require.ErrorAs(err, &re)
	require.False(re.ByPeer)
	require.ErrorIs(err, attest.ErrImageNotAllowed)
	require.Eventually(func() bool { return strings.Contains(logs.String(), "refused by the dialing peer") },
		10*time.Second, 5*time.Millisecond)
	require.Contains(logs.String(), "roles.proxy.image_hashes")
	require.Empty(l.accepted)
}

// TestPolicyChangeDrainsRefusedPeer: two workers are connected to a proxy; a new policy removes
// one's image. That connection drains at once: the proxy can open no new stream on it and the
// worker's new streams are reset, while the request under way finishes; then it closes with
// CodePolicyRefused and the reason, which the worker sees. The other worker keeps working.
func TestPolicyChangeDrainsRefusedPeer(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	kept, dropped := workerWith(t, 0), workerWith(t, 1)
	keptImage, droppedImage := imageOfNode(t, kept), imageOfNode(t, dropped)
	require.NotEqual(keptImage, droppedImage)
	server := newNode(t, attest.RoleProxy)
	server.policy = registryPolicy(t, keptImage, droppedImage)
	scfg := server.config(t)
	l, err := Listen("127.0.0.1:0", scfg)
	require.NoError(err)
	t.Cleanup(func() { _ = l.Close() })

	conns := map[attest.ImageHash][2]*Conn{} // proxy end, worker end
	for _, w := range []*node{kept, dropped} {
		cc, err := Dial(ctx, l.Addr().String(), w.config(t))
		require.NoError(err)
		sc, err := l.Accept(ctx)
		require.NoError(err)
		t.Cleanup(func() {
			_ = cc.Close(0, "")
			_ = sc.Close(0, "")
			<-cc.Done()
			<-sc.Done()
		})
		conns[sc.Peer().ImageHash] = [2]*Conn{sc, cc}
	}
	keptProxy, keptWorker := conns[keptImage][0], conns[keptImage][1]
	droppedProxy, droppedWorker := conns[droppedImage][0], conns[droppedImage][1]
	require.NotNil(keptProxy)
	require.NotNil(droppedProxy)
	go echo(ctx, keptWorker)

	// A request under way on the worker to be dropped.
	running, err := droppedProxy.OpenStream(ctx)
	require.NoError(err)
	require.NoError(running.Send(&wire.Request{Id: "under way"}))
	require.NoError(running.CloseSend())
	answering, err := droppedWorker.AcceptStream(ctx)
	require.NoError(err)
	_, err = answering.Recv()
	require.NoError(err)

	require.NoError(scfg.Verifier.SetPolicy(registryPolicy(t, keptImage)))

	require.True(droppedProxy.IsDraining())
	assert.Contains(droppedProxy.DrainReason(), "no longer allows")
	assert.Contains(droppedProxy.DrainReason(), droppedImage.String())
	assert.False(keptProxy.IsDraining())
	assert.Empty(keptProxy.DrainReason())
	require.NotNil(droppedProxy.Refusal())
	assert.Contains(droppedProxy.Refusal().Reason, droppedImage.String())
	assert.Nil(keptProxy.Refusal())

	// No new streams for it: the proxy opens none, and one the worker opens is reset.
	_, err = droppedProxy.OpenStream(ctx)
	var re *RefusedError
	require.ErrorAs(err, &re)
	assert.Contains(re.Reason, droppedImage.String())
	acceptCtx, stopAccept := context.WithCancel(ctx)
	accepted := make(chan *Stream, 1)
	go func() {
		if s, err := droppedProxy.AcceptStream(acceptCtx); err == nil {
			accepted <- s
		}
	}()
	fresh, err := droppedWorker.OpenStream(ctx)
	require.NoError(err)
	require.NoError(fresh.Send(&wire.Request{Id: "too late"}))
	_, err = fresh.Recv()
	code, ok := ErrorCode(err)
	require.True(ok, "reset: %v", err)
	assert.Equal(wire.CodePolicyRefused, code)
	stopAccept()
	assert.Empty(accepted, "a new stream of a refused peer is not accepted")

	// The request under way finishes; then the connection closes, with the reason.
	select {
	case <-droppedProxy.Done():
		t.Fatal("closed with a request under way")
	default:
	}
	require.NoError(answering.Send(&wire.Done{}))
	require.NoError(answering.CloseSend())
	m, err := running.Recv()
	require.NoError(err)
	assert.IsType(&wire.Done{}, m)
	for _, c := range []*Conn{droppedProxy, droppedWorker} {
		select {
		case <-c.Done():
		case <-ctx.Done():
			t.Fatal("the refused connection stayed open after its last request")
		}
	}
	var own, told *RefusedError
	require.ErrorAs(droppedProxy.Err(), &own)
	assert.False(own.ByPeer)
	require.ErrorAs(droppedWorker.Err(), &told)
	assert.True(told.ByPeer)
	assert.Contains(told.Reason, "worker image "+droppedImage.String()+" is not on registry "+testRegistry+"'s worker list (version 7)")
	assert.Contains(told.Fix, "cocoon chain registry allow "+testRegistry+" worker-image "+droppedImage.String())

	// The other worker keeps working.
	s, err := keptProxy.OpenStream(ctx)
	require.NoError(err)
	require.NoError(s.Send(&wire.Request{Id: "still served"}))
	m, err = s.Recv()
	require.NoError(err)
	assert.Equal("still served", m.(*wire.Request).GetId())
	require.NoError(s.CloseSend())
	assert.False(keptProxy.IsDraining())
	_, err = keptWorker.Ping(ctx)
	require.NoError(err)
}

// TestPolicyChangeAtDialer: a worker whose new policy no longer allows its proxy drains and, with
// nothing under way, closes the connection; the proxy sees the reason.
func TestPolicyChangeAtDialer(t *testing.T) {
	require := require.New(t)
	server, worker := newNode(t, attest.RoleProxy), newNode(t, attest.RoleWorker)
	wcfg := worker.config(t)
	sc, cc := pairConfigs(t, server.config(t), wcfg)

	p := attesttest.OpenPolicy()
	p.Roles[attest.RoleProxy] = attest.RolePolicy{ImageHashes: []string{strings.Repeat("11", 32)}}
	require.NoError(wcfg.Verifier.SetPolicy(p))
	require.True(cc.IsDraining())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case <-sc.Done():
	case <-ctx.Done():
		t.Fatal("not closed")
	}
	var re *RefusedError
	require.ErrorAs(sc.Err(), &re)
	require.True(re.ByPeer)
	require.Contains(re.Reason, "roles.proxy.image_hashes")
}

// imageOfNode is the image hash n's certificate shows, as a verifier sees it.
func imageOfNode(t testing.TB, n *node) attest.ImageHash {
	t.Helper()
	c := newNode(t, attest.RoleProxy).config(t)
	cfg, err := c.withDefaults()
	require.NoError(t, err)
	p, err := newPeerVerifier(&cfg).verify(n.identity.Certificate().Certificate)
	require.NoError(t, err)
	return p.ImageHash
}
