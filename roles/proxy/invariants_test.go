package proxy

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// How a scripted request ends.
type ending int

const (
	endNormal        ending = iota // Done with usage within the limits
	endNoUsage                     // Done without usage
	endZeroUsage                   // Done with all-zero usage
	endOverflow                    // Done with usage that overflows pricing
	endBeyond                      // Done with usage beyond the limits
	endWorkerCloses                // the worker ends its stream without Done
	endWorkerResets                // the worker resets its stream
	endClientCancels               // the client cancels after the first chunk
	endings
)

// script is one random request and how it goes.
type script struct {
	kind   wire.Kind
	body   []byte
	bound  settle.Usage // what the reservation must cover, from the request's parameters
	chunks int
	end    ending
	seed   uint64
	mu     sync.Mutex
	sent   *wire.Usage // the usage the worker reported
}

// randomScript draws a request: chat or completion, a limit under its own or a case-variant or
// duplicated key (or none), n, prompt lists, images, and an ending.
func randomScript(rng *mrand.Rand) *script {
	sc := &script{kind: wire.Kind_KIND_CHAT, chunks: 1 + rng.IntN(5), end: ending(rng.IntN(int(endings))), seed: rng.Uint64()}
	var members []string
	limit := uint64(defaultCompletion)
	switch rng.IntN(5) {
	case 0: // none: the default
	case 1:
		limit = 1 + rng.Uint64N(300)
		members = append(members, fmt.Sprintf(`"MAX_TOKENS":1,"max_tokens":%d`, limit))
	case 2:
		limit = 1 + rng.Uint64N(300)
		members = append(members, fmt.Sprintf(`"max_tokens":1,"max_tokens":%d`, limit))
	case 3:
		limit = 1 + rng.Uint64N(300)
		members = append(members, fmt.Sprintf(`"max_tokens":1,"max_completion_tokens":%d`, limit))
	default:
		limit = 1 + rng.Uint64N(300)
		members = append(members, fmt.Sprintf(`"max_tokens":%d`, limit))
	}
	n := uint64(1)
	if rng.IntN(3) == 0 {
		n = 1 + rng.Uint64N(4)
		members = append(members, fmt.Sprintf(`"N":1,"n":%d`, n))
	}
	prompts, images := uint64(1), uint64(0)
	text := strings.Repeat("w", 1+rng.IntN(400))
	if rng.IntN(5) == 0 {
		sc.kind = wire.Kind_KIND_COMPLETION
		prompts = 1 + rng.Uint64N(3)
		list := make([]string, prompts)
		for i := range list {
			list[i] = `"` + text + `"`
		}
		members = append(members, `"prompt":[`+strings.Join(list, ",")+`]`)
	} else {
		content := `"` + text + `"`
		if rng.IntN(4) == 0 {
			images = 1 + rng.Uint64N(2)
			content = `[{"type":"text","text":"` + text + `"}` + strings.Repeat(`,{"type":"image_url","image_url":{"url":"data:,x"}}`, int(images)) + `]`
		}
		members = append(members, `"messages":[{"role":"user","content":`+content+`}]`)
	}
	rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	sc.body = []byte(`{"model":"m",` + strings.Join(members, ",") + `}`)
	sc.bound = settle.Usage{PromptTokens: uint64(len(sc.body)) + prompts*promptMargin + images*imageTokens,
		CompletionTokens: prompts * n * limit}
	return sc
}

// act answers as the script says, with usage drawn within (or beyond) the limits the proxy told.
func (sc *script) act(c *transport.Conn, s *transport.Stream, req *wire.Request) {
	_ = s.Send(&wire.ResponseHead{HttpStatus: 200})
	for range sc.chunks {
		_ = s.SendFrame(wire.TypeChunk, []byte(`{"choices":[{"delta":{"content":"x"}}]}`))
	}
	rng := mrand.New(mrand.NewPCG(sc.seed, 1))
	most := sc.bound.CompletionTokens
	if told := req.GetReservedCompletionTokens() * max(req.GetReservedChoices(), 1); told > 0 && told < most && sc.kind == wire.Kind_KIND_CHAT {
		most = told
	}
	var u *wire.Usage
	switch sc.end {
	case endNormal:
		u = &wire.Usage{PromptTokens: 1 + rng.Uint64N(sc.bound.PromptTokens), CompletionTokens: 1 + rng.Uint64N(most)}
		u.CachedTokens = rng.Uint64N(u.GetPromptTokens() + 1)
		u.ReasoningTokens = rng.Uint64N(u.GetCompletionTokens() + 1)
	case endZeroUsage:
		u = &wire.Usage{}
	case endOverflow:
		u = &wire.Usage{PromptTokens: 1 << 62, CompletionTokens: 1 << 62}
	case endBeyond:
		u = &wire.Usage{PromptTokens: 10, CompletionTokens: 10*sc.bound.CompletionTokens + 1}
	case endWorkerCloses:
		_ = s.CloseSend()
		return
	case endWorkerResets:
		s.Cancel(wire.CodeInternal)
		return
	case endClientCancels:
		<-s.Context().Done()
		return
	}
	sc.mu.Lock()
	sc.sent = u
	sc.mu.Unlock()
	_ = s.Send(signedDone(c, req, u))
	_ = s.CloseSend()
}

// TestMoneyInvariants runs random requests through a metering proxy with stub workers at three
// coefficients and a real ledger: random cancels, workers cutting answers off, case-variant and
// duplicate keys, n, prompt lists, images, missing, zero, overflowing and excessive usage. Per
// request: an answer with content is charged, never more than its reservation, and complete usage
// within the limits exactly; in all: what clients were charged is what workers earned plus the
// commission, nothing stays reserved, and the signed states hold exactly the ledger's totals.
func TestMoneyInvariants(t *testing.T) {
	const clients, perClient = 4, 250
	pp := startPayingProxy(t)
	rng := mrand.New(mrand.NewPCG(20260101, 42))
	scripts := map[string]*script{}
	for c := range clients {
		for i := range perClient {
			scripts[fmt.Sprintf("%d-%d", c, i)] = randomScript(rng)
		}
	}
	owners := map[uint32]ton.AccountID{}
	for i, coef := range []uint32{800, 1000, 1500} {
		owner := ton.AccountID{Address: [32]byte{byte(0x20 + i)}}
		owners[coef] = owner
		reg := &wire.Register{Model: "m", WeightsDigest: attesttest.Claims(attest.RoleWorker).WeightsDigest,
			Coefficient: coef, MaxActive: 8, OwnerAddress: owner.ToRaw()}
		serveFake(t, pp.addr, reg, func(c *transport.Conn, s *transport.Stream, payload []byte) {
			m, err := wire.Unmarshal(wire.TypeRequest, payload)
			if err == nil {
				req := m.(*wire.Request)
				scripts[req.GetId()].act(c, s, req)
			}
		}, tconfig(t, attest.RoleWorker, "m"))
	}
	require.Eventually(t, func() bool { return pp.p.WorkerCount() == 3 }, 5*time.Second, time.Millisecond)

	type clientEnd struct {
		conn *transport.Conn
		acct ton.AccountID
	}
	ends := make([]clientEnd, clients)
	const deposit = 1 << 60
	for c := range ends {
		ends[c].conn, ends[c].acct = clientConn(t, pp.addr)
		require.NoError(t, pp.ledger.Deposit(ends[c].acct, deposit, 0))
	}
	var withContent, charged0 atomic.Int64 // answers with content; requests charged nothing
	var completeMu sync.Mutex
	complete := map[uint32]int{} // answers with usage within the limits, by the coefficient of the worker
	var wg sync.WaitGroup
	for c, ce := range ends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var prev uint64
			for i := range perClient {
				id := fmt.Sprintf("%d-%d", c, i)
				sc := scripts[id]
				coef, content, done, ok := runScript(t, ce.conn, id, sc)
				if !ok {
					return
				}
				var charged uint64
				if !assert.Eventually(t, func() bool {
					cl, _ := pp.ledger.Client(ce.acct)
					charged = cl.Charged
					return cl.Reserved == 0
				}, 5*time.Second, 100*time.Microsecond, "request %s: reservation never settled", id) {
					return
				}
				delta := charged - prev
				prev = charged
				if !content {
					charged0.Add(1)
					assert.Zero(t, delta, "request %s: no content, no charge", id)
					continue
				}
				withContent.Add(1)
				assert.Positive(t, delta, "request %s (ending %d): an answer with content is charged", id, sc.end)
				if coef == 0 {
					continue
				}
				reserved, err := settle.Cost(sc.bound, testPrices, coef)
				require.NoError(t, err)
				assert.LessOrEqual(t, delta, reserved, "request %s: never more than the reservation", id)
				if done == nil {
					continue
				}
				assert.Equal(t, delta, done.GetTotalCost(), "request %s: Done says what was charged", id)
				sc.mu.Lock()
				sent := sc.sent
				sc.mu.Unlock()
				switch sc.end {
				case endNormal:
					want, err := settle.Cost(wire.DecodeUsage(sent), testPrices, coef)
					require.NoError(t, err)
					assert.Equal(t, want, delta, "request %s: usage within the limits is charged exactly", id)
					completeMu.Lock()
					complete[coef]++
					completeMu.Unlock()
				case endNoUsage, endZeroUsage, endOverflow:
					assert.Equal(t, reserved, delta, "request %s (ending %d): charged the reservation", id, sc.end)
				case endBeyond:
					cost, err := settle.Cost(wire.DecodeUsage(sent), testPrices, coef)
					require.NoError(t, err)
					assert.Equal(t, min(cost, reserved), delta, "request %s: usage beyond the limits is charged up to the reservation", id)
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d answers with content, %d requests without", withContent.Load(), charged0.Load())
	assert.Equal(t, int64(clients*perClient), withContent.Load()+charged0.Load())
	assert.Greater(t, withContent.Load(), int64(clients*perClient/2))

	cls, wks, totals, err := pp.ledger.Snapshot()
	require.NoError(t, err)
	var charged, earned uint64
	for _, ce := range ends {
		cl := cls[ce.acct]
		assert.Zero(t, cl.Reserved)
		assert.LessOrEqual(t, cl.Charged, uint64(deposit))
		charged += cl.Charged
		// The latest state the client received is the ledger's total, signed by the payment key.
		var last settle.SignedState
		for len(ce.conn.Control()) > 0 || last.State.Seqno < cl.Seqno {
			select {
			case m := <-ce.conn.Control():
				if ps, ok := m.(*wire.PaymentState); ok {
					st, err := settle.ParseSignedState(ps.GetSigned())
					require.NoError(t, err)
					require.NoError(t, st.Verify(pp.pub))
					// States of consecutive requests may cross on the way: the client keeps the latest.
					if st.State.Seqno > last.State.Seqno {
						last = st
					}
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("client states stopped at seqno %d of %d", last.State.Seqno, cl.Seqno)
			}
		}
		assert.Equal(t, cl.Charged, last.State.Total, "the client's signed total is its charge")
	}
	for coef, owner := range owners {
		w := wks[owner]
		earned += w.Earned
		st, err := pp.ledger.Current(owner, settle.KindWorkerEarned)
		require.NoError(t, err)
		require.NoError(t, st.Verify(pp.pub))
		assert.Equal(t, w.Earned, st.State.Total, "worker at %d: signed total is its earnings", coef)
		// Which worker a request went to depends on the others' load at the time, so a worker may
		// have served no complete answer; one that did has earned.
		if complete[coef] > 0 {
			assert.Positive(t, w.Earned, "worker at %d earned for its %d complete answers", coef, complete[coef])
		}
	}
	assert.GreaterOrEqual(t, len(complete), 2, "complete answers came from more than one worker: %v", complete)
	assert.Equal(t, totals.Charged, charged)
	assert.Equal(t, totals.Earned, earned)
	assert.Equal(t, charged, earned+totals.Commission, "clients paid what workers earned plus commission")
	assert.LessOrEqual(t, earned, charged, "the proxy never pays workers more than clients paid")
	assert.Positive(t, totals.Commission)
}

// runScript sends one scripted request and reads its answer: the coefficient of the worker that
// answered (0: none did), whether content reached the client, and the Done if one came.
func runScript(t *testing.T, c *transport.Conn, id string, sc *script) (coef uint32, content bool, done *wire.Done, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.OpenStream(ctx)
	if !assert.NoError(t, err) {
		return 0, false, nil, false
	}
	if !assert.NoError(t, s.Send(bounded(&wire.Request{Id: id, Kind: sc.kind, Model: "m", Stream: true, Body: sc.body}))) {
		return 0, false, nil, false
	}
	_ = s.CloseSend()
	for {
		typ, payload, err := s.RecvFrame()
		if err != nil {
			return coef, content, done, true
		}
		if typ.Raw() {
			content = true
			if sc.end == endClientCancels {
				s.Cancel(wire.CodeCancelled)
				return coef, content, nil, true
			}
			continue
		}
		m, err := wire.Unmarshal(typ, payload)
		if !assert.NoError(t, err) {
			return 0, false, nil, false
		}
		switch m := m.(type) {
		case *wire.ResponseHead:
			coef = m.GetWorker().GetCoefficient()
		case *wire.Done:
			done = m
		case *wire.Error:
			assert.NotEqual(t, uint32(wire.CodeBadRequest), m.GetCode(), "request %s refused: %s", id, m.GetMessage())
		}
	}
}
