package proxy

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	mrand "math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/ledger"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

var testPrices = settle.Prices{PricePerToken: 1000, WorkerFeePerToken: 700, PromptMult: 10000, CachedPromptMult: 2500,
	CompletionMult: 20000, ReasoningMult: 20000}

// accountOf stands in for the wallet address of a key.
func accountOf(pub ed25519.PublicKey) (ton.AccountID, error) {
	return ton.AccountID{Address: sha256.Sum256(pub)}, nil
}

const ownerAddr = "0:1111111111111111111111111111111111111111111111111111111111111111"

type payingProxy struct {
	p      *Proxy
	addr   string
	ledger *ledger.Ledger
	pub    ed25519.PublicKey
	key    ed25519.PrivateKey
}

// testLedger is a ledger in the test's directory, signing with key.
func testLedger(t *testing.T, key ed25519.PrivateKey) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open(filepath.Join(t.TempDir(), "ledger.db"), ton.AccountID{Address: [32]byte{0xee}}, key, ledger.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func startPayingProxy(t *testing.T) payingProxy {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	l := testLedger(t, key)
	pm := &Payments{Ledger: l, Prices: func() settle.Prices { return testPrices }, Account: accountOf, PaymentKey: pub}
	p, addr := startProxyWith(t, Config{Listen: "127.0.0.1:0", RequestTimeout: 5 * time.Second, Payments: pm}, tconfig(t, attest.RoleProxy, ""))
	return payingProxy{p: p, addr: addr, ledger: l, pub: pub, key: key}
}

// usageWorker answers every request with a usage drawn from the request id.
func usageWorker(c *transport.Conn, s *transport.Stream, req *wire.Request) {
	var seed uint64
	_, _ = fmt.Sscanf(req.GetId(), "%d", &seed)
	rng := mrand.New(mrand.NewPCG(seed, 7))
	u := &wire.Usage{PromptTokens: rng.Uint64N(300), CompletionTokens: rng.Uint64N(200)}
	u.CachedTokens = rng.Uint64N(u.GetPromptTokens() + 1)
	u.ReasoningTokens = rng.Uint64N(u.GetCompletionTokens() + 1)
	_ = s.Send(&wire.ResponseHead{HttpStatus: 200})
	_ = s.SendFrame(wire.TypeChunk, []byte(`{}`))
	_ = s.Send(signedDone(c, req, u))
	_ = s.CloseSend()
}

func registerWithOwner(t *testing.T, addr string, b workerAct) (*transport.Conn, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := transport.Dial(ctx, addr, tconfig(t, attest.RoleWorker, "m"))
	require.NoError(t, err)
	require.NoError(t, c.SendControl(&wire.Register{Model: "m", WeightsDigest: "sha256:0000000000000000000000000000000000000000000000000000000000000000",
		Coefficient: 1000, MaxActive: 64, OwnerAddress: ownerAddr}))
	go func() {
		for {
			s, err := c.AcceptStream(ctx)
			if err != nil {
				return
			}
			go func() {
				m, err := s.Recv()
				if err == nil {
					b(c, s, m.(*wire.Request))
				}
			}()
		}
	}()
	return c, func() { cancel(); _ = c.Close(0, "") }
}

func clientConn(t *testing.T, addr string) (*transport.Conn, ton.AccountID) {
	t.Helper()
	cfg := tconfig(t, attest.RoleClient, "")
	c, err := transport.Dial(context.Background(), addr, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(0, "") })
	acct, _ := accountOf(cfg.Identity.Certificate().Leaf.PublicKey.(ed25519.PublicKey))
	return c, acct
}

func askID(t *testing.T, c *transport.Conn, id string) answer {
	t.Helper()
	s, err := c.OpenStream(context.Background())
	require.NoError(t, err)
	require.NoError(t, s.Send(bounded(&wire.Request{Id: id, Kind: wire.Kind_KIND_CHAT, Model: "m", Stream: true,
		// The prompt a worker reports is at most one token per body byte: pad the body accordingly.
		Body: []byte(`{"model":"m","max_tokens":200,"messages":[{"role":"user","content":"` + strings.Repeat("word ", 80) + `"}]}`)})))
	require.NoError(t, s.CloseSend())
	var a answer
	for {
		typ, payload, err := s.RecvFrame()
		if err != nil {
			return a
		}
		if typ.Raw() {
			a.chunks = append(a.chunks, nil)
			continue
		}
		m, err := wire.Unmarshal(typ, payload)
		require.NoError(t, err)
		switch m := m.(type) {
		case *wire.Done:
			a.done = m
		case *wire.Error:
			a.err = m
		case *wire.ResponseHead:
			a.head = m
		}
	}
}

// TestThousandPaidRequests: client charged = Σ answers' total_cost, worker earned = Σ earnings,
// commission = the difference; both receive signed states that verify.
func TestThousandPaidRequests(t *testing.T) {
	require := require.New(t)
	pp := startPayingProxy(t)
	wc, stop := registerWithOwner(t, pp.addr, usageWorker)
	defer stop()
	require.Eventually(func() bool { return pp.p.WorkerCount() == 1 }, 5*time.Second, 5*time.Millisecond)
	c, acct := clientConn(t, pp.addr)
	require.NoError(pp.ledger.Deposit(acct, 1<<50, 0))

	var sumCost, sumEarn uint64
	for i := range 1000 {
		a := askID(t, c, fmt.Sprint(i))
		require.Nil(a.err)
		require.NotNil(a.done)
		u := wire.DecodeUsage(a.done.GetUsage())
		cost, err := settle.Cost(u, testPrices, 1000)
		require.NoError(err)
		earn, err := settle.WorkerEarning(u, testPrices, 1000)
		require.NoError(err)
		require.Equal(cost, a.done.GetTotalCost(), "request %d", i)
		sumCost += cost
		sumEarn += earn
	}
	cl, err := pp.ledger.Client(acct)
	require.NoError(err)
	owner := ton.MustParseAccountID(ownerAddr)
	wk, err := pp.ledger.Worker(owner)
	require.NoError(err)
	assert.Equal(t, sumCost, cl.Charged)
	assert.Equal(t, sumEarn, wk.Earned)
	_, _, totals, err := pp.ledger.Snapshot()
	require.NoError(err)
	assert.Equal(t, sumCost-sumEarn, totals.Commission)
	assert.Zero(t, cl.Reserved)

	// The latest states reached client and worker, signed by the payment key.
	last := func(c *transport.Conn) settle.SignedState {
		var st settle.SignedState
		for {
			select {
			case m := <-c.Control():
				ps, ok := m.(*wire.PaymentState)
				if !ok {
					continue
				}
				s, err := settle.ParseSignedState(ps.GetSigned())
				require.NoError(err)
				require.NoError(s.Verify(pp.pub))
				require.Greater(s.State.Seqno, st.State.Seqno, "sequence numbers only grow")
				st = s
				if st.State.Seqno == 1000 {
					return st
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("states stopped at seqno %d", st.State.Seqno)
			}
		}
	}
	cs := last(c)
	assert.Equal(t, sumCost, cs.State.Total)
	assert.Equal(t, settle.KindClientCharged, cs.State.Kind)
	ws := last(wc)
	assert.Equal(t, sumEarn, ws.State.Total)
}

func TestPaymentRequired(t *testing.T) {
	pp := startPayingProxy(t)
	_, stop := registerWithOwner(t, pp.addr, usageWorker)
	defer stop()
	require.Eventually(t, func() bool { return pp.p.WorkerCount() == 1 }, 5*time.Second, 5*time.Millisecond)
	c, acct := clientConn(t, pp.addr)
	require.NoError(t, pp.ledger.Deposit(acct, 10, 0))
	a := askID(t, c, "1")
	require.NotNil(t, a.err)
	assert.Equal(t, uint32(wire.CodePaymentRequired), a.err.GetCode())
	assert.Contains(t, a.err.GetMessage(), "insufficient funds")
	assert.Equal(t, 402, wire.HTTPStatus(wire.CodePaymentRequired))
	cl, err := pp.ledger.Client(acct)
	require.NoError(t, err)
	assert.Zero(t, cl.Charged)
	assert.Zero(t, cl.Reserved)
}

// TestRollbackDetected: a client holding a state the ledger never reached makes the proxy stop
// serving (not crash), and say why.
func TestRollbackDetected(t *testing.T) {
	pp := startPayingProxy(t)
	_, stop := registerWithOwner(t, pp.addr, usageWorker)
	defer stop()
	require.Eventually(t, func() bool { return pp.p.WorkerCount() == 1 }, 5*time.Second, 5*time.Millisecond)
	c, acct := clientConn(t, pp.addr)
	require.NoError(t, pp.ledger.Deposit(acct, 1<<40, 0))
	require.NotNil(t, askID(t, c, "1").done)

	future := settle.State{Proxy: pp.ledger.Proxy(), Party: acct, Kind: settle.KindClientCharged, Seqno: 99, Total: 1 << 20}
	send := func(key ed25519.PrivateKey) {
		st, err := settle.Sign(future, key)
		require.NoError(t, err)
		b, err := st.MarshalBinary()
		require.NoError(t, err)
		require.NoError(t, c.SendControl(&wire.PaymentState{Signed: b}))
	}
	// A forged state (another key) is refused and changes nothing.
	_, forger, _ := ed25519.GenerateKey(rand.Reader)
	send(forger)
	require.NotNil(t, askID(t, c, "2").done, "a forged state does not stop the proxy")
	require.NoError(t, pp.p.Healthy())

	// A genuine state from the future, as a client would hold if the proxy's ledger were restored
	// from an old copy.
	send(pp.key)
	require.Eventually(t, func() bool { return pp.p.Healthy() != nil }, 5*time.Second, 5*time.Millisecond)
	assert.ErrorIs(t, pp.p.Healthy(), ledger.ErrRollback)
	a := askID(t, c, "3")
	require.NotNil(t, a.err)
	assert.Equal(t, uint32(wire.CodeInternal), a.err.GetCode())
}

// TestStateOnRequest: a client that asks (an empty PaymentState) gets its latest signed total.
func TestStateOnRequest(t *testing.T) {
	pp := startPayingProxy(t)
	_, stop := registerWithOwner(t, pp.addr, usageWorker)
	defer stop()
	require.Eventually(t, func() bool { return pp.p.WorkerCount() == 1 }, 5*time.Second, 5*time.Millisecond)
	c, acct := clientConn(t, pp.addr)
	require.NoError(t, pp.ledger.Deposit(acct, 1<<40, 0))
	a := askID(t, c, "7")
	require.NotNil(t, a.done)
	<-c.Control() // the state sent after the request
	require.NoError(t, c.SendControl(&wire.PaymentState{}))
	select {
	case m := <-c.Control():
		ps, ok := m.(*wire.PaymentState)
		require.True(t, ok, "got %T", m)
		st, err := settle.ParseSignedState(ps.GetSigned())
		require.NoError(t, err)
		require.NoError(t, st.Verify(pp.pub))
		assert.Equal(t, uint64(1), st.State.Seqno)
		assert.Equal(t, a.done.GetTotalCost(), st.State.Total)
	case <-time.After(10 * time.Second):
		t.Fatal("no state sent on request")
	}
}
