package proxy

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/seal"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// workerAct scripts a stub worker's answer; it gets the worker's connection, to kill it.
type workerAct func(c *transport.Conn, s *transport.Stream, req *wire.Request)

// stubWorker registers a paid worker of model "m" at coefficient coef with the proxy at addr.
func stubWorker(t *testing.T, addr string, coef, maxActive uint32, act workerAct) {
	t.Helper()
	reg := &wire.Register{Model: "m", WeightsDigest: attesttest.Claims(attest.RoleWorker).WeightsDigest,
		Coefficient: coef, MaxActive: maxActive, OwnerAddress: ownerAddr}
	serveFake(t, addr, reg, func(c *transport.Conn, s *transport.Stream, payload []byte) {
		m, err := wire.Unmarshal(wire.TypeRequest, payload)
		if err == nil {
			act(c, s, m.(*wire.Request))
		}
	}, tconfig(t, attest.RoleWorker, "m"))
}

// answerWith answers with a head, chunks content chunks and a Done carrying u, and the usage
// record of u signed with the worker's certificate key, as workers do (nil: no usage, no record).
func answerWith(chunks int, u *wire.Usage) workerAct {
	return func(c *transport.Conn, s *transport.Stream, req *wire.Request) {
		done := signedDone(c, req, u)
		_ = s.Send(&wire.ResponseHead{HttpStatus: 200})
		for range chunks {
			_ = s.SendFrame(wire.TypeChunk, []byte(`{"x":1}`))
		}
		_ = s.Send(done)
		_ = s.CloseSend()
	}
}

// signedDone is the Done of an answer that used u, with u's usage record signed by the worker's
// certificate key on c, as workers do; nil u: no usage and no record.
func signedDone(c *transport.Conn, req *wire.Request, u *wire.Usage) *wire.Done {
	done := &wire.Done{Usage: u}
	if u != nil {
		r := seal.UsageRecord{RequestID: req.GetId(), Model: req.GetModel(), Usage: wire.DecodeUsage(u)}
		if r.Sign(c.LocalCertificate().PrivateKey.(ed25519.PrivateKey)) == nil {
			done.UsageRecord, _ = r.Marshal()
		}
	}
	return done
}

// send sends req on a new stream and reads the answer to its end.
func send(c *transport.Conn, req *wire.Request) (answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.OpenStream(ctx)
	if err != nil {
		return answer{}, err
	}
	if err := s.Send(req); err != nil {
		return answer{}, err
	}
	_ = s.CloseSend()
	var a answer
	for {
		typ, payload, err := s.RecvFrame()
		if errors.Is(err, io.EOF) {
			return a, nil
		}
		if err != nil {
			a.reset = err
			return a, nil
		}
		if typ.Raw() {
			a.chunks = append(a.chunks, nil)
			continue
		}
		m, err := wire.Unmarshal(typ, payload)
		if err != nil {
			return a, err
		}
		switch m := m.(type) {
		case *wire.ResponseHead:
			a.head = m
		case *wire.Done:
			a.done = m
		case *wire.Error:
			a.err = m
		}
	}
}

// paidRequest sends one streamed chat request with body from a funded client through a paying
// proxy to a stub worker that answers with act, and returns the answer and what was charged.
func paidRequest(t *testing.T, body string, act workerAct) (payingProxy, answer, uint64) {
	t.Helper()
	require := require.New(t)
	pp := startPayingProxy(t)
	stubWorker(t, pp.addr, 1000, 8, act)
	c, acct := clientConn(t, pp.addr)
	require.NoError(pp.ledger.Deposit(acct, 1<<50, 0))
	a, err := send(c, bounded(&wire.Request{Id: "1", Kind: wire.Kind_KIND_CHAT, Model: "m", Stream: true, Body: []byte(body)}))
	require.NoError(err)
	require.NotNil(a.done)
	return pp, a, settled(t, pp, acct)
}

// settled waits until the client has no money reserved and returns its account.
func settled(t *testing.T, pp payingProxy, acct ton.AccountID) (charged uint64) {
	t.Helper()
	require.Eventually(t, func() bool {
		cl, err := pp.ledger.Client(acct)
		return err == nil && cl.Reserved == 0
	}, 5*time.Second, time.Millisecond)
	cl, err := pp.ledger.Client(acct)
	require.NoError(t, err)
	return cl.Charged
}

func cost(t *testing.T, u settle.Usage) uint64 {
	t.Helper()
	c, err := settle.Cost(u, testPrices, 1000)
	require.NoError(t, err)
	return c
}

const chatMsgs = `"messages":[{"role":"user","content":"hello there"}]`

// The reservation reads the body as the engine does, and bounds every choice and prompt it runs;
// the worker is told the limits it was reserved for. Usage within them is charged in full.
func TestReservationReadsBodyAsEngine(t *testing.T) {
	image := `"messages":[{"role":"user","content":[{"type":"text","text":"what is it?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]`
	testCases := map[string]struct {
		kind        wire.Kind
		body        string
		usage       settle.Usage
		wantLimit   uint64 // completion tokens per choice the worker is told
		wantChoices uint64
		wantCode    uint32 // a refusal
	}{
		"case-variant key beside the real one": {body: `{"model":"m","MAX_TOKENS":1,"max_tokens":2000,` + chatMsgs + `}`,
			usage: settle.Usage{PromptTokens: 20, CompletionTokens: 2000}, wantLimit: 2000, wantChoices: 1},
		"duplicate key, the last wins": {body: `{"model":"m","max_tokens":1,"max_tokens":2000,` + chatMsgs + `}`,
			usage: settle.Usage{PromptTokens: 20, CompletionTokens: 2000}, wantLimit: 2000, wantChoices: 1},
		"n choices": {body: `{"model":"m","n":8,"max_tokens":2000,` + chatMsgs + `}`,
			usage: settle.Usage{PromptTokens: 20, CompletionTokens: 16000}, wantLimit: 2000, wantChoices: 8},
		"max_completion_tokens": {body: `{"model":"m","max_tokens":5,"max_completion_tokens":300,` + chatMsgs + `}`,
			usage: settle.Usage{PromptTokens: 20, CompletionTokens: 300}, wantLimit: 300, wantChoices: 1},
		"no limit: the default, which the worker is told": {body: `{"model":"m",` + chatMsgs + `}`,
			usage: settle.Usage{PromptTokens: 20, CompletionTokens: 4096}, wantLimit: 4096, wantChoices: 1},
		"list of prompts": {kind: wire.Kind_KIND_COMPLETION, body: `{"model":"m","prompt":["a","b","c","d"],"n":2,"max_tokens":100}`,
			usage: settle.Usage{PromptTokens: 8, CompletionTokens: 800}, wantLimit: 100, wantChoices: 2},
		"image": {body: `{"model":"m","max_tokens":10,` + image + `}`,
			usage: settle.Usage{PromptTokens: 2000, CompletionTokens: 10}, wantLimit: 10, wantChoices: 1},
		"audio cannot be bounded": {body: `{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]}`,
			wantCode: uint32(wire.CodeBadRequest)},
		"limit a string":     {body: `{"model":"m","max_tokens":"2000",` + chatMsgs + `}`, wantCode: uint32(wire.CodeBadRequest)},
		"n beyond any price": {body: `{"model":"m","n":4611686018427387904,` + chatMsgs + `}`, wantCode: uint32(wire.CodeBadRequest)},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			pp := startPayingProxy(t)
			seen := make(chan *wire.Request, 1)
			stubWorker(t, pp.addr, 1000, 8, func(c *transport.Conn, s *transport.Stream, req *wire.Request) {
				seen <- req
				answerWith(1, wire.EncodeUsage(tc.usage))(c, s, req)
			})
			c, acct := clientConn(t, pp.addr)
			require.NoError(pp.ledger.Deposit(acct, 1<<60, 0))
			kind := tc.kind
			if kind == wire.Kind_KIND_UNSPECIFIED {
				kind = wire.Kind_KIND_CHAT
			}
			a, err := send(c, bounded(&wire.Request{Id: "1", Kind: kind, Model: "m", Body: []byte(tc.body)}))
			require.NoError(err)
			charged := settled(t, pp, acct)
			if tc.wantCode != 0 {
				require.NotNil(a.err)
				assert.Equal(tc.wantCode, a.err.GetCode(), a.err.GetMessage())
				assert.Zero(charged)
				assert.Empty(seen, "the worker never got the request")
				return
			}
			require.Nil(a.err)
			require.NotNil(a.done)
			req := <-seen
			assert.Equal(tc.wantLimit, req.GetReservedCompletionTokens())
			assert.Equal(tc.wantChoices, req.GetReservedChoices())
			assert.Equal(cost(t, tc.usage), charged, "usage within the limits is charged in full")
			assert.Equal(charged, a.done.GetTotalCost())
		})
	}
}

// An answer that started and did not finish is charged for its prompt (the bound the reservation
// used) and the completion chunks relayed, whoever cut it off.
func TestCutAnswerCharged(t *testing.T) {
	body := `{"model":"m","max_tokens":50,"messages":[{"role":"user","content":"` + strings.Repeat("long prompt ", 200) + `"}]}`
	const chunks = 3
	testCases := map[string]struct {
		clientCancels bool
		act           func(c *transport.Conn, s *transport.Stream, cut <-chan struct{})
	}{
		"client cancels": {clientCancels: true, act: func(_ *transport.Conn, s *transport.Stream, _ <-chan struct{}) {
			<-s.Context().Done()
		}},
		"worker killed": {act: func(c *transport.Conn, _ *transport.Stream, cut <-chan struct{}) {
			<-cut
			_ = c.Close(wire.CodeInternal, "killed")
		}},
		"worker resets the stream": {act: func(_ *transport.Conn, s *transport.Stream, cut <-chan struct{}) {
			<-cut
			s.Cancel(wire.CodeInternal)
		}},
		"worker reports an error": {act: func(_ *transport.Conn, s *transport.Stream, cut <-chan struct{}) {
			<-cut
			_ = s.Send(&wire.Error{Code: uint32(wire.CodeUpstream), Message: "engine died"})
			_ = s.CloseSend()
		}},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			pp := startPayingProxy(t)
			cut := make(chan struct{})
			stubWorker(t, pp.addr, 1000, 8, func(c *transport.Conn, s *transport.Stream, _ *wire.Request) {
				_ = s.Send(&wire.ResponseHead{HttpStatus: 200})
				for range chunks {
					_ = s.SendFrame(wire.TypeChunk, []byte(`{"x":1}`))
				}
				tc.act(c, s, cut)
			})
			c, acct := clientConn(t, pp.addr)
			require.NoError(pp.ledger.Deposit(acct, 1<<50, 0))
			s, err := c.OpenStream(context.Background())
			require.NoError(err)
			require.NoError(s.Send(bounded(&wire.Request{Id: "1", Kind: wire.Kind_KIND_CHAT, Model: "m", Stream: true, Body: []byte(body)})))
			require.NoError(s.CloseSend())
			for range 1 + chunks { // the head and every chunk reached the client
				_, _, err := s.RecvFrame()
				require.NoError(err)
			}
			if tc.clientCancels {
				s.Cancel(wire.CodeCancelled)
			} else {
				close(cut)
			}
			charged := settled(t, pp, acct)
			atLeast := cost(t, settle.Usage{PromptTokens: uint64(len(body)), CompletionTokens: chunks})
			assert.GreaterOrEqual(charged, atLeast, "the prompt is charged once the answer has begun")
			assert.LessOrEqual(charged, cost(t, settle.Usage{PromptTokens: uint64(len(body)) + 1024, CompletionTokens: 50}),
				"and no more than the reservation")
		})
	}
}

// When usage cannot be priced, or an answer with content reports none, the client is charged the
// reservation, never nothing; usage beyond the reservation is charged as the reservation and
// counted.
func TestPricingFailsClosed(t *testing.T) {
	body := `{"model":"m","max_tokens":200,` + chatMsgs + `}`
	floor := settle.Usage{PromptTokens: uint64(len(body)), CompletionTokens: 200} // what any reservation covers
	testCases := map[string]struct {
		act      workerAct
		wantFull bool   // charged the reservation
		stat     string // the billing counter that counts it
	}{
		"usage overflows pricing": {act: answerWith(2, &wire.Usage{PromptTokens: 1 << 62, CompletionTokens: 1}),
			wantFull: true, stat: "pricing_errors"},
		"zero usage with content": {act: answerWith(2, &wire.Usage{}), wantFull: true, stat: "zero_usage"},
		"no usage with content":   {act: answerWith(2, nil), wantFull: true, stat: "zero_usage"},
		"usage beyond the reservation": {act: answerWith(2, &wire.Usage{PromptTokens: 10, CompletionTokens: 1_000_000}),
			wantFull: true, stat: "beyond_reservation"},
		"zero usage, no content": {act: answerWith(0, &wire.Usage{})},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			pp, a, charged := paidRequest(t, body, tc.act)
			if !tc.wantFull {
				assert.Zero(charged)
				return
			}
			assert.GreaterOrEqual(charged, cost(t, floor), "the reservation is charged")
			assert.Equal(charged, a.done.GetTotalCost())
			b, err := json.Marshal(pp.p.Stats())
			require.NoError(err)
			var doc struct {
				Billing map[string]int64 `json:"billing"`
			}
			require.NoError(json.Unmarshal(b, &doc))
			assert.Equal(int64(1), doc.Billing[tc.stat], "counted in /jsonstats billing")
		})
	}
}

// Price is a choice: with a 1.0x and a 1000x worker idle, identical requests go to the 1.0x worker
// while it has capacity, even when it is the busier one.
func TestCheaperWorkerPreferred(t *testing.T) {
	require := require.New(t)
	p, addr := startProxy(t)
	const requests = 20
	var mu sync.Mutex
	got := map[uint32]int{}
	all := make(chan struct{})
	hold := func(coef uint32) workerAct {
		return func(c *transport.Conn, s *transport.Stream, req *wire.Request) {
			mu.Lock()
			got[coef]++
			if got[1000]+got[1_000_000] == requests {
				close(all)
			}
			mu.Unlock()
			<-all // every request is in flight before any ends
			answerWith(1, &wire.Usage{PromptTokens: 1, CompletionTokens: 1})(c, s, req)
		}
	}
	reg := func(coef uint32) *wire.Register {
		return &wire.Register{Model: "m", WeightsDigest: attesttest.Claims(attest.RoleWorker).WeightsDigest, Coefficient: coef, MaxActive: 64}
	}
	for _, coef := range []uint32{1000, 1_000_000} {
		act := hold(coef)
		serveFake(t, addr, reg(coef), func(c *transport.Conn, s *transport.Stream, payload []byte) {
			m, err := wire.Unmarshal(wire.TypeRequest, payload)
			if err == nil {
				act(c, s, m.(*wire.Request))
			}
		}, tconfig(t, attest.RoleWorker, "m"))
	}
	require.Eventually(func() bool { return len(p.reg.all()) == 2 }, 5*time.Second, 5*time.Millisecond)
	c := dialClient(t, addr)
	var wg sync.WaitGroup
	errs := make(chan error, requests)
	for i := range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := send(c, bounded(&wire.Request{Id: fmt.Sprint(i), Kind: wire.Kind_KIND_CHAT, Model: "m", Body: []byte(`{"model":"m"}`)}))
			if err == nil && a.done == nil {
				err = fmt.Errorf("request %d not answered: %v %v", i, a.err, a.reset)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(err)
	}
	assert.Equal(t, map[uint32]int{1000: requests}, got)
}

// /jsonstats shows the payments in aggregate: no client's wallet or charged total.
func TestStatsHideClients(t *testing.T) {
	require := require.New(t)
	pp := startPayingProxy(t)
	stubWorker(t, pp.addr, 1000, 8, answerWith(1, &wire.Usage{PromptTokens: 5, CompletionTokens: 5}))
	c, acct := clientConn(t, pp.addr)
	require.NoError(pp.ledger.Deposit(acct, 1<<50, 0))
	a, err := send(c, bounded(&wire.Request{Id: "1", Kind: wire.Kind_KIND_CHAT, Model: "m", Body: []byte(`{"model":"m"}`)}))
	require.NoError(err)
	require.NotNil(a.done)
	settled(t, pp, acct)
	b, err := json.Marshal(pp.p.Stats())
	require.NoError(err)
	assert.NotContains(t, string(b), acct.ToRaw())
	assert.NotContains(t, string(b), strings.TrimPrefix(acct.ToRaw(), "0:"))
	assert.Contains(t, string(b), `"charged"`, "the aggregate is there")
}

// Per-client payments are shown on the stats port to loopback and to the stats token only.
func TestStatsPerClientGated(t *testing.T) {
	pp := startPayingProxy(t)
	pp.p.cfg.StatsToken = "s3cret"
	_, acct := clientConn(t, pp.addr)
	require.NoError(t, pp.ledger.Deposit(acct, 1<<50, 0))
	h := pp.p.statsHandler()
	testCases := map[string]struct {
		remote, auth string
		wantDetail   bool
	}{
		"remote":                {remote: "192.0.2.7:4000"},
		"remote, wrong token":   {remote: "192.0.2.7:4000", auth: "Bearer nope"},
		"remote, stats token":   {remote: "192.0.2.7:4000", auth: "Bearer s3cret", wantDetail: true},
		"loopback":              {remote: "127.0.0.1:4000", wantDetail: true},
		"loopback IPv6":         {remote: "[::1]:4000", wantDetail: true},
		"docker bridge gateway": {remote: "172.17.0.1:4000"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			for _, path := range []string{"/jsonstats", "/stats"} {
				r := httptest.NewRequest(http.MethodGet, path, nil)
				r.RemoteAddr = tc.remote
				if tc.auth != "" {
					r.Header.Set("Authorization", tc.auth)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				assert.Equal(http.StatusOK, w.Code)
				addr := strings.TrimPrefix(acct.ToRaw(), "0:")
				if tc.wantDetail {
					assert.Contains(w.Body.String(), addr, path)
				} else {
					assert.NotContains(w.Body.String(), addr, path)
					assert.Contains(w.Body.String(), "commission", path)
				}
			}
		})
	}
}

// A worker whose coefficient exceeds the registry's cap is refused at registration, told the
// cap and the fix.
func TestCoefficientCapAtRegistration(t *testing.T) {
	pp := startPayingProxy(t)
	pp.p.cfg.Payments.CoefficientCap = func() uint32 { return 4000 }
	c, err := transport.Dial(context.Background(), pp.addr, tconfig(t, attest.RoleWorker, "m"))
	require.NoError(t, err)
	defer c.Close(0, "")
	require.NoError(t, c.SendControl(&wire.Register{Model: "m", WeightsDigest: attesttest.Claims(attest.RoleWorker).WeightsDigest,
		Coefficient: 1_000_000, MaxActive: 1, OwnerAddress: ownerAddr}))
	refused(t, c, "exceeds the registry's cap of 4000 (4x): set worker.coefficient to 4000 or less")
	stubWorker(t, pp.addr, 4000, 1, answerWith(1, &wire.Usage{PromptTokens: 1, CompletionTokens: 1}))
	assert.Equal(t, 1, pp.p.WorkerCount(), "a worker at the cap registers")
}
