package client

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
	"github.com/cocoon-network/cocoon/attest/ratls"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/seal"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// fakeWorker is an attested worker identity a sealing stub answers as: its certificate, the HPKE
// key its claims name and the key that signs its receipts.
type fakeWorker struct {
	der       []byte
	hpke      *seal.PrivateKey
	signer    ed25519.PrivateKey
	quoteHash seal.Digest
}

func newFakeWorker(t testing.TB) *fakeWorker {
	t.Helper()
	id, err := transport.NewIdentity(transport.IdentityConfig{Claims: attesttest.Claims(attest.RoleWorker),
		Quoter: attesttest.Quoter(t, attesttest.Measurements(attest.RoleWorker))})
	require.NoError(t, err)
	cert := id.Certificate()
	rc, err := ratls.ParseCertificate(cert.Certificate[:1], time.Now(), 0)
	require.NoError(t, err)
	peer, err := attesttest.Verifier(t, attesttest.OpenPolicy()).Verify(rc.Evidence())
	require.NoError(t, err)
	k, ok := id.HPKEKey(peer.Claims.HPKEKey)
	require.True(t, ok)
	priv, err := seal.FromHPKE(k)
	require.NoError(t, err)
	return &fakeWorker{der: cert.Certificate[0], hpke: priv, signer: cert.PrivateKey.(ed25519.PrivateKey), quoteHash: seal.HashQuote(rc.Quote)}
}

// sealedAnswer is what a sealing stub does to the answer it sends, to play a proxy that tampers.
type sealedAnswer struct {
	offer      func(der []byte) []byte       // changes the offered certificate
	frames     func(f [][]byte) [][]byte     // changes the sealed chunk frames
	noEnd      bool                          // leaves out the end marker
	answerHash func(seal.Digest) seal.Digest // changes the hash the receipt names
	recordID   string                        // the usage record's request id; "": the request's
	recordKey  ed25519.PrivateKey            // signs the usage record; nil: the worker's key
	cost       uint64
	usageChunk string // sent sealed as the stream's usage chunk, after the chunks
	// takePreseal answers a presealed request without an offer, as a proxy does that picks the
	// worker it was sealed to; it reports each request's presealing to presealed, if not nil.
	takePreseal bool
	presealed   chan<- bool
}

var sealedUsage = settle.Usage{PromptTokens: 11, CompletionTokens: 3}

// sealedStub plays proxy and worker of the sealed protocol: it offers w, opens the body the client
// seals to it and answers with chunks sealed to the client, a receipt and a signed usage record,
// changed as a says. bodies receives each body it opened.
func sealedStub(t testing.TB, w *fakeWorker, a sealedAnswer, chunks []string, bodies chan<- []byte) script {
	return func(_ *stubProxy, s *transport.Stream, req *wire.Request) {
		if !assert.True(t, req.GetSeal()) || !assert.Empty(t, req.GetBody(), "a sealed request carries no body in clear") {
			return
		}
		if a.presealed != nil {
			a.presealed <- len(req.GetSealedBody()) > 0
		}
		sealedBody := req.GetSealedBody()
		if !a.takePreseal || len(sealedBody) == 0 {
			der := w.der
			if a.offer != nil {
				der = a.offer(bytes.Clone(der))
			}
			if s.Send(&wire.WorkerOffer{Certificate: der, Worker: &wire.WorkerInfo{Coefficient: 1000}}) != nil {
				return
			}
			typ, payload, err := s.RecvFrame()
			if err != nil {
				return
			}
			m, err := wire.Unmarshal(typ, payload)
			if err != nil {
				return
			}
			sb, ok := m.(*wire.SealedBody)
			if !ok {
				_ = s.Send(&wire.Error{Code: uint32(wire.CodeUpstream), Message: "1 worker(s) failed before answering"})
				_ = s.CloseSend()
				return
			}
			sealedBody = sb.GetSealed()
		}
		body, sealer, err := seal.OpenRequest(w.hpke, seal.Binding{RequestID: req.GetId(), Model: req.GetModel(), QuoteHash: w.quoteHash}, sealedBody)
		if !assert.NoError(t, err) {
			return
		}
		if bodies != nil {
			bodies <- body
		}
		_ = s.Send(&wire.ResponseHead{HttpStatus: 200, Model: req.GetModel()})
		var frames [][]byte
		for _, c := range chunks {
			f, err := sealer.Seal([]byte(c))
			require.NoError(t, err)
			frames = append(frames, f)
		}
		if a.frames != nil {
			frames = a.frames(frames)
		}
		for _, f := range frames {
			_ = s.SendFrame(wire.TypeChunk, f)
		}
		if a.usageChunk != "" {
			f, err := sealer.Seal([]byte(a.usageChunk))
			require.NoError(t, err)
			_ = s.SendFrame(wire.TypeUsageChunk, f)
		}
		hash := sealer.AnswerHash()
		if a.answerHash != nil {
			hash = a.answerHash(hash)
		}
		// The worker's own record, which its receipt names; Done may carry another (a.recordID, a.recordKey).
		record := func(id string, key ed25519.PrivateKey) []byte {
			rec := seal.UsageRecord{RequestID: id, Model: req.GetModel(), Usage: sealedUsage}
			require.NoError(t, rec.Sign(key))
			rb, err := rec.Marshal()
			require.NoError(t, err)
			return rb
		}
		rb := record(req.GetId(), w.signer)
		r := seal.Receipt{RequestID: req.GetId(), Model: req.GetModel(), WeightsDigest: "sha256:00", QuoteHash: w.quoteHash,
			BodyHash: sha256.Sum256(body), AnswerHash: hash, RecordHash: sha256.Sum256(rb), Usage: sealedUsage, Time: time.Now(),
			WorkerKey: w.signer.Public().(ed25519.PublicKey)}
		require.NoError(t, r.Sign(w.signer))
		trailer, err := r.Marshal()
		require.NoError(t, err)
		if !a.noEnd {
			end, err := sealer.End(trailer)
			require.NoError(t, err)
			_ = s.SendFrame(wire.TypeSealedEnd, end)
		}
		if a.recordID != "" || a.recordKey != nil {
			id, key := req.GetId(), w.signer
			if a.recordID != "" {
				id = a.recordID
			}
			if a.recordKey != nil {
				key = a.recordKey
			}
			rb = record(id, key)
		}
		_ = s.Send(&wire.Done{Usage: wire.EncodeUsage(sealedUsage), UsageRecord: rb, TotalCost: a.cost})
		_ = s.CloseSend()
	}
}

func sealedClient(t *testing.T, stub *stubProxy, opts ...harnessOption) *harness {
	t.Helper()
	h := startClient(t, []*stubProxy{stub}, append([]harnessOption{withConfig(func(c *Config) { c.PlaintextDev = false })}, opts...)...)
	h.waitConnected(t, 1)
	return h
}

// TestSealedAnswer: the body reaches the worker sealed, the answer reaches the app opened, and the
// answer names its receipt, which the client serves and which verifies offline.
func TestSealedAnswer(t *testing.T) {
	for _, stream := range []bool{true, false} {
		t.Run(map[bool]string{true: "streamed", false: "plain"}[stream], func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			w := newFakeWorker(t)
			bodies := make(chan []byte, 1)
			chunks := []string{chunkHello, chunkWorld, chunkStop}
			if !stream {
				chunks = []string{`{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hello world"}}],`, `"usage":{"prompt_tokens":11,"completion_tokens":3}}`}
			}
			a := sealedAnswer{cost: 1234}
			if stream {
				a.usageChunk = chunkUsage
			}
			stub := newStub(t, sealedStub(t, w, a, chunks, bodies))
			h := sealedClient(t, stub, withConfig(func(c *Config) {
				c.Prices = func() (settle.Prices, bool) { return settle.Prices{PricePerToken: 1}, false }
			}))
			body := `{"model":"test-model","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"secret prompt 4711"}]}`
			if !stream {
				body = `{"model":"test-model","messages":[{"role":"user","content":"secret prompt 4711"}]}`
			}
			resp := h.post(t, "/v1/chat/completions", body)
			require.Equal(http.StatusOK, resp.StatusCode)
			served := readAll(t, resp.Body)
			assert.Equal(body, string(<-bodies), "the worker opened the body as the app sent it")
			for _, r := range stub.seen() {
				assert.NotContains(string(r.GetBody()), "secret prompt", "the proxy never sees the prompt")
			}
			assert.Contains(served, "Hello")
			if stream {
				assert.Contains(served, `"total_cost":1234`, "the usage chunk, after the sealed end, carries what was charged")
			}
			m := attesttest.Measurements(attest.RoleWorker)
			assert.Equal(m.ImageHash().String(), resp.Header.Get("X-Cocoon-Worker-Image"),
				"from the verified attestation, not from what the proxy says")
			id := resp.Header.Get("X-Cocoon-Request-Id")
			require.Equal(receiptPath+id, resp.Header.Get("X-Cocoon-Receipt"))

			rr := h.do(t, t.Context(), http.MethodGet, receiptPath+id, "")
			require.Equal(http.StatusOK, rr.StatusCode)
			doc := readAll(t, rr.Body)
			var got Receipt
			require.NoError(json.Unmarshal([]byte(doc), &got))
			assert.Equal(id, got.RequestID)
			assert.Equal(uint64(1234), got.ChargedNanoTON)
			assert.Equal("prices unknown", got.ChargeCheck)
			st := h.c.sealingStats()
			assert.Equal(sealingStats{Mode: "sealed", Receipts: 1, ReceiptsKept: 1}, st)
			lines, err := VerifyReceipt([]byte(doc), []byte(body), []byte(served))
			require.NoError(err)
			assert.NotEmpty(lines)
			_, err = VerifyReceipt([]byte(doc), []byte(body), []byte(strings.Replace(served, "Hello", "Hellp", 1)))
			assert.ErrorIs(err, seal.ErrAnswerMismatch, "a changed answer does not match its receipt")
			_, err = VerifyReceipt([]byte(doc), []byte(body+" "), nil)
			assert.ErrorIs(err, seal.ErrAnswerMismatch, "nor a changed request")

			missing := h.do(t, t.Context(), http.MethodGet, receiptPath+"req_none", "")
			assert.Equal(http.StatusNotFound, missing.StatusCode)
			assert.Contains(readAll(t, missing.Body), "receipt_not_found")
		})
	}
}

// TestSealedTampering: whatever a proxy changes in a sealed answer, or in the proof of it, the
// app gets an error that names it, never the changed answer.
func TestSealedTampering(t *testing.T) {
	_, otherKey, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	chunks := []string{chunkHello, chunkWorld, chunkStop}
	testCases := map[string]struct {
		a    sealedAnswer
		want string
	}{
		"flipped byte in a chunk":              {a: sealedAnswer{frames: func(f [][]byte) [][]byte { f[1][len(f[1])-1] ^= 1; return f }}, want: seal.ErrTampered.Error()},
		"dropped chunk":                        {a: sealedAnswer{frames: func(f [][]byte) [][]byte { return append(f[:1], f[2:]...) }}, want: seal.ErrOutOfOrder.Error()},
		"reordered chunks":                     {a: sealedAnswer{frames: func(f [][]byte) [][]byte { f[1], f[2] = f[2], f[1]; return f }}, want: seal.ErrOutOfOrder.Error()},
		"replayed chunk":                       {a: sealedAnswer{frames: func(f [][]byte) [][]byte { return append(f[:2], f[1], f[2]) }}, want: seal.ErrReplayed.Error()},
		"truncated answer":                     {a: sealedAnswer{noEnd: true}, want: seal.ErrTruncated.Error()},
		"usage record, bad signature":          {a: sealedAnswer{recordKey: otherKey}, want: seal.ErrSignature.Error()},
		"usage record of another request":      {a: sealedAnswer{recordID: "req_other"}, want: "req_other"},
		"receipt names another answer":         {a: sealedAnswer{answerHash: func(d seal.Digest) seal.Digest { d[0] ^= 1; return d }}, want: seal.ErrAnswerMismatch.Error()},
		"offered claims name another HPKE key": {a: sealedAnswer{offer: flipHPKEKey(t)}, want: "worker_refused"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			w := newFakeWorker(t)
			h := sealedClient(t, newStub(t, sealedStub(t, w, tc.a, chunks, nil)))
			resp := h.post(t, "/v1/chat/completions", `{"model":"test-model","messages":[{"role":"user","content":"hi"}]}`)
			assert.Equal(http.StatusBadGateway, resp.StatusCode)
			got := readAll(t, resp.Body)
			assert.Contains(got, tc.want)
			assert.NotContains(got, "Hello", "no part of a refused answer reaches the app")
			st := h.c.sealingStats()
			if tc.want == "worker_refused" {
				assert.Equal(uint64(1), st.WorkersRefused)
				assert.Contains(st.LastRefusal, "worker")
			} else {
				assert.Equal(uint64(1), st.AnswersRefused, "counted on the page and in /metrics")
			}
			assert.Zero(st.Receipts)
		})
	}
}

// flipHPKEKey changes the HPKE key the offered certificate's claims name, as a proxy that wants
// the body sealed to itself would.
func flipHPKEKey(t testing.TB) func([]byte) []byte {
	return func(der []byte) []byte {
		rc, err := ratls.ParseCertificate([][]byte{der}, time.Now(), 0)
		require.NoError(t, err)
		peer, err := attesttest.Verifier(t, attesttest.OpenPolicy()).Verify(rc.Evidence())
		require.NoError(t, err)
		i := bytes.Index(der, peer.Claims.HPKEKey)
		require.Positive(t, i)
		der[i+10] ^= 1
		return der
	}
}

// TestRefusesOfferWithoutHPKEKey: an offered certificate that is not a worker's, and so names no
// HPKE key to seal to, is refused with the reason, which the proxy hears, and the app is told that
// the client's policy refused the worker.
func TestRefusesOfferWithoutHPKEKey(t *testing.T) {
	assert := assert.New(t)
	// A proxy certificate offered as the worker: it names no HPKE key.
	proxyDER := proxyConfig(t, nil).Identity.Certificate().Certificate[0]
	refused := make(chan string, 1)
	stub := newStub(t, func(_ *stubProxy, s *transport.Stream, req *wire.Request) {
		_ = s.Send(&wire.WorkerOffer{Certificate: proxyDER})
		typ, payload, err := s.RecvFrame()
		if err == nil {
			if m, err := wire.Unmarshal(typ, payload); err == nil {
				if r, ok := m.(*wire.OfferRefused); ok {
					refused <- r.GetReason()
				}
			}
		}
		_ = s.Send(&wire.Error{Code: uint32(wire.CodeUpstream), Message: "1 worker(s) failed before answering"})
		_ = s.CloseSend()
	})
	h := sealedClient(t, stub)
	resp := h.post(t, "/v1/chat/completions", `{"model":"test-model","messages":[]}`)
	assert.Equal(http.StatusBadGateway, resp.StatusCode)
	assert.Contains(readAll(t, resp.Body), "worker_refused")
	assert.Contains(<-refused, "not a worker's")
}

// TestResealOnFailover: a worker that fails before its first byte brings a second offer, and the
// client seals the body again, to the second worker's key: the first worker's key does not open it.
func TestResealOnFailover(t *testing.T) {
	assert := assert.New(t)
	first, second := newFakeWorker(t), newFakeWorker(t)
	opened := make(chan []byte, 1)
	answer := sealedStub(t, second, sealedAnswer{}, []string{chunkHello}, opened)
	stub := newStub(t, func(p *stubProxy, s *transport.Stream, req *wire.Request) {
		if s.Send(&wire.WorkerOffer{Certificate: first.der, Worker: &wire.WorkerInfo{Coefficient: 1000}}) != nil {
			return
		}
		typ, payload, err := s.RecvFrame()
		if !assert.NoError(err) {
			return
		}
		m, err := wire.Unmarshal(typ, payload)
		if !assert.NoError(err) {
			return
		}
		sealedToFirst := m.(*wire.SealedBody).GetSealed()
		// The first worker fails before its first byte: the proxy offers the second.
		answer(p, s, req)
		_, _, err = seal.OpenRequest(second.hpke, seal.Binding{RequestID: req.GetId(), Model: req.GetModel(), QuoteHash: second.quoteHash}, sealedToFirst)
		assert.Error(err, "what was sealed to the first worker does not open for the second")
	})
	h := sealedClient(t, stub)
	resp := h.post(t, "/v1/chat/completions", `{"model":"test-model","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	assert.Equal(http.StatusOK, resp.StatusCode)
	assert.Contains(readAll(t, resp.Body), "Hello")
	assert.JSONEq(`{"model":"test-model","stream":true,"messages":[{"role":"user","content":"hi"}]}`, string(<-opened),
		"the second worker opened the body sealed again to its key")
}

// TestOffersBounded: a proxy that offers workers without end is cut off, not sealed to forever.
func TestOffersBounded(t *testing.T) {
	w := newFakeWorker(t)
	stub := newStub(t, func(_ *stubProxy, s *transport.Stream, _ *wire.Request) {
		for {
			if s.Send(&wire.WorkerOffer{Certificate: w.der, Worker: &wire.WorkerInfo{Coefficient: 1000}}) != nil {
				return
			}
			if _, _, err := s.RecvFrame(); err != nil {
				return
			}
		}
	})
	h := sealedClient(t, stub)
	resp := h.post(t, "/v1/chat/completions", `{"model":"test-model","messages":[]}`)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.Contains(t, readAll(t, resp.Body), "more than 16 worker offers")
}

// TestPresealed: once a proxy answered a model with a worker, the next request to it comes sealed
// to that worker at once; a proxy that takes it answers without an offer, one that offers another
// (or the same) worker gets the body sealed again.
func TestPresealed(t *testing.T) {
	for _, take := range []bool{true, false} {
		t.Run(map[bool]string{true: "taken", false: "offered again"}[take], func(t *testing.T) {
			w := newFakeWorker(t)
			bodies, presealed := make(chan []byte, 3), make(chan bool, 3)
			stub := newStub(t, sealedStub(t, w, sealedAnswer{takePreseal: take, presealed: presealed},
				[]string{`{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"}}]}`}, bodies))
			h := sealedClient(t, stub)
			for i := range 3 {
				body := fmt.Sprintf(`{"model":"test-model","messages":[{"role":"user","content":"question %d"}]}`, i)
				resp := h.post(t, "/v1/chat/completions", body)
				require.Equal(t, http.StatusOK, resp.StatusCode)
				assert.Contains(t, readAll(t, resp.Body), "Hi")
				assert.Equal(t, i > 0, <-presealed, "request %d presealed", i)
				assert.Equal(t, body, string(<-bodies), "the worker opened request %d as the app sent it", i)
			}
			for _, r := range stub.seen() {
				assert.NotContains(t, string(r.GetSealedBody()), "question", "the presealed body is sealed")
			}
		})
	}
}
