package client

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/quic-go/quic-go"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// maxAnswerBytes bounds a non-streamed answer, which the client must hold whole before sending it.
const maxAnswerBytes = 64 << 20

// maxOffers bounds the workers one proxy may offer for one request (it tries at most
// proxy.max_attempts, 3 by default).
const maxOffers = 16

// drainTimeout bounds the wait for a proxy's end of stream after its last message.
const drainTimeout = 2 * time.Second

// call is one OpenAI completion request on its way through a proxy and back.
type call struct {
	c            *Client
	w            http.ResponseWriter
	id           string
	kind         kind
	model        string
	stream       bool
	includeUsage bool
	body         []byte
	bounds       *wire.Bounds
	start        time.Time
	deadline     time.Time
	// What end releases: the share of c.bodies the body takes, the request's context and the
	// controller of the app's connection, whose write deadline it resets.
	bodyHeld int64
	cancel   context.CancelFunc
	rc       *http.ResponseController
	// ex is the attempt under way. It lives here, not on attempt's stack, which stays put while
	// the answer streams (see attempt).
	ex exchange

	sse       *sseWriter
	committed bool // status and headers are written: the answer can no longer change course
	started   bool // an answer chunk arrived: no failover from here
	head      *wire.ResponseHead
	headAt    time.Duration
	proxy     string
	attempts  int
	reqBytes  int
	respBytes int64
	chunks    int
	done      *wire.Done
	err       *apiError
	// sealed is the worker the answer's body was sealed to, once its answer started; refusals are
	// the reasons this client refused the workers proxies offered.
	sealed   *sealed
	refusals []string
	// tail is the stream of the last attempt when the proxy ended it with a message (Done or
	// Error): its end of stream is read after the app got its answer, so the app never waits for it.
	tail *transport.Stream
}

// closeTail finishes the last attempt's stream: wait for the proxy's end if the answer was
// delivered, cut it off if another proxy is about to be tried.
func (x *call) closeTail(wait bool) {
	if x.tail == nil {
		return
	}
	if wait {
		drain(x.tail)
	} else {
		x.tail.Cancel(wire.CodeOK)
	}
	x.tail = nil
}

// fail sends e to the app in whatever shape the answer is in by now.
func (x *call) fail(e *apiError) {
	x.err = e
	switch {
	case e.status == statusClientClosed:
		// Nobody is listening any more.
	case x.committed:
		// Mid-stream: one error event and no [DONE], so SDKs raise instead of returning a truncated answer.
		if x.sse != nil {
			_ = x.sse.data(e.JSON())
		}
	default:
		writeError(x.w, e)
	}
}

// attempt runs the request on one proxy. It returns nil when the answer was delivered, or the
// error and whether another proxy may be tried.
func (x *call) attempt(ctx context.Context, t target) (*apiError, bool) {
	x.head, x.proxy = nil, t.p.addr
	conn, s, apiErr, retry := x.open(ctx, t)
	if apiErr != nil {
		return apiErr, retry
	}
	e := &x.ex
	x.ex = exchange{}
	e.x, e.t, e.conn, e.s, e.sealing = x, t, conn, s, !x.c.cfg.PlaintextDev
	e.stop = context.AfterFunc(ctx, func() { s.Cancel(cancelCode(ctx)) })
	defer e.close() // one deferred call, not three: each would take its own slots in the frame
	if err := e.send(); err != nil {
		return x.recvError(ctx, t, err)
	}
	// The loop is all that stays on the stack while the answer streams; each frame is handled a
	// call deeper. An app connection waiting for its answer then keeps its goroutine's stack small
	// enough for the collector to halve it.
	for {
		typ, payload, err := s.RecvFrame()
		if apiErr, retry, end := e.frame(ctx, typ, payload, err); end {
			return apiErr, retry
		}
	}
}

// open takes a connection to t's proxy and opens a stream on it; the connection goes back with
// t.p.release once the stream is done. It fails with the error and whether another proxy may be tried.
func (x *call) open(ctx context.Context, t target) (*transport.Conn, *transport.Stream, *apiError, bool) {
	conn, err := t.p.acquire(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctxError(ctx), false
		}
		return nil, nil, errProxyLost(), true // it left the set or lost its connection since the request chose it
	}
	s, err := conn.OpenStream(ctx)
	if err != nil {
		t.p.release(conn)
		if ctx.Err() != nil {
			return nil, nil, ctxError(ctx), false
		}
		t.p.failed()
		return nil, nil, errProxyLost(), true
	}
	return conn, s, nil, false
}

// exchange is one attempt's stream and what the client has received on it so far.
type exchange struct {
	x    *call
	t    target
	conn *transport.Conn
	s    *transport.Stream
	// stop ends the watch that resets the stream when the app goes away or the deadline passes,
	// so that proxy, worker and engine stop working on an answer nobody will read.
	stop    func() bool
	sealing bool
	sl      *sealed // the worker this attempt's body is sealed to, once one was accepted
	offers  int
	// held is the stream's usage chunk, kept until the next frame: when that is Done (after the
	// sealed end marker, if sealed), the cost the proxy charged is added to it, so the app sees what
	// it paid next to the tokens.
	held  []byte
	whole bytes.Buffer // a non-streamed answer so far
	clean bool         // the proxy ended the stream with a message: its end is read, not cut off
}

// close ends the attempt: a stream the proxy did not end with a message is reset, and the
// connection goes back to its proxy.
func (e *exchange) close() {
	if !e.clean {
		e.s.Cancel(wire.CodeOK)
	}
	e.stop()
	e.t.p.release(e.conn)
}

// send sends the request: sealed to the worker this proxy answered the model's last request with,
// which the proxy takes without an offer when it picks it, or else (later) to the worker it offers.
func (e *exchange) send() error {
	x := e.x
	req := &wire.Request{Id: x.id, Kind: x.kind, Model: x.model, Stream: x.stream, IncludeUsage: x.includeUsage, Body: x.body,
		Bounds: x.bounds, MaxCoefficient: x.c.cfg.MaxCoefficient, TimeoutMs: uint64(max(time.Until(x.deadline).Milliseconds(), 1))}
	if e.sealing {
		req.Body, req.Seal = nil, true
		if l, ok := x.c.offers.lastFor(e.t.p.addr, x.model, x.c.tc.Now()); ok {
			var refusal string
			if e.sl, req.SealedBody, refusal = x.sealTo(l.w, l.info); refusal != "" {
				x.c.offers.forget(e.t.p.addr, x.model)
			}
		}
	}
	if err := e.s.Send(req); err != nil {
		return err
	}
	if !e.sealing {
		return e.s.CloseSend()
	}
	return nil
}

// frame handles what RecvFrame returned. end is set when the attempt is over, with its outcome.
func (e *exchange) frame(ctx context.Context, typ wire.Type, payload []byte, err error) (apiErr *apiError, retry, end bool) {
	x := e.x
	if e.held != nil && (err != nil || (typ != wire.TypeDone && typ != wire.TypeSealedEnd)) {
		if werr := x.sse.data(e.held); werr != nil {
			return x.appGone(ctx), false, true
		}
		e.held = nil
	}
	if err != nil {
		apiErr, retry = x.recvError(ctx, e.t, err)
		return apiErr, retry, true
	}
	switch typ {
	case wire.TypeWorkerOffer:
		return e.offer(ctx, typ, payload)
	case wire.TypeResponseHead:
		return e.responseHead(typ, payload)
	case wire.TypeSealedEnd:
		if e.sl == nil || x.head == nil {
			e.s.Cancel(wire.CodeProtocol)
			return errProtocol("unexpected sealed end"), !x.started, true
		}
		if _, err := e.sl.open(payload); err != nil || !e.sl.opener.Ended() {
			e.s.Cancel(wire.CodeProtocol)
			return x.errSealed(cmp.Or(err, errSealedAnswer)), !x.started, true
		}
		return nil, false, false
	case wire.TypeChunk, wire.TypeUsageChunk:
		return e.chunk(ctx, typ, payload)
	case wire.TypeDone:
		return e.done(ctx, typ, payload)
	case wire.TypeError:
		return e.failure(typ, payload)
	default:
		e.s.Cancel(wire.CodeProtocol)
		return errProtocol("unexpected frame type " + strconv.Itoa(int(typ))), !x.started, true
	}
}

// offer answers a worker the proxy offers with the body sealed to it, or with why it is refused.
func (e *exchange) offer(ctx context.Context, typ wire.Type, payload []byte) (*apiError, bool, bool) {
	x := e.x
	m, err := wire.Unmarshal(typ, payload)
	if err != nil || !e.sealing || x.head != nil {
		e.s.Cancel(wire.CodeProtocol)
		return errProtocol("unexpected worker offer"), !x.started, true
	}
	if e.offers++; e.offers > maxOffers {
		// Each offer costs a verification and a seal: a proxy does not get to make this client
		// seal without end.
		e.s.Cancel(wire.CodeProtocol)
		return errProtocol("more than " + strconv.Itoa(maxOffers) + " worker offers for one request"), true, true
	}
	var body []byte
	var refusal string
	e.sl, body, refusal = x.acceptOffer(m.(*wire.WorkerOffer))
	var reply proto.Message = &wire.SealedBody{Sealed: body}
	if refusal != "" {
		x.refusals = append(x.refusals, refusal)
		x.c.receipts.refusedWorker(refusal)
		x.c.log.Warn().Str("request_id", x.id).Str("proxy", e.t.p.addr).Str("reason", refusal).Msg("refused the worker a proxy offered")
		reply = &wire.OfferRefused{Reason: refusal}
	}
	if err := e.s.Send(reply); err != nil {
		apiErr, retry := x.recvError(ctx, e.t, err)
		return apiErr, retry, true
	}
	return nil, false, false
}

// responseHead takes the answer's status and headers.
func (e *exchange) responseHead(typ wire.Type, payload []byte) (*apiError, bool, bool) {
	x := e.x
	m, err := wire.Unmarshal(typ, payload)
	if err != nil || x.head != nil || (e.sealing && e.sl == nil) {
		e.s.Cancel(wire.CodeProtocol)
		return errProtocol("bad response head"), !x.started, true
	}
	x.head = m.(*wire.ResponseHead)
	x.headAt = time.Since(x.start)
	if e.sealing {
		// No more offers: the answer is this worker's. What the app is told of it comes from its
		// verified attestation, not from the proxy.
		_ = e.s.CloseSend()
		x.sealed = e.sl
		x.c.offers.remember(e.t.p.addr, x.model, e.sl.offered, e.sl.info)
		x.head.Worker = e.sl.workerInfo()
		x.w.Header().Set("X-Cocoon-Receipt", receiptPath+x.id)
	}
	return nil, false, false
}

// chunk passes a piece of the answer on to the app, or keeps it for a non-streamed answer.
func (e *exchange) chunk(ctx context.Context, typ wire.Type, payload []byte) (*apiError, bool, bool) {
	x := e.x
	if x.head == nil {
		e.s.Cancel(wire.CodeProtocol)
		return errProtocol("chunk before response head"), true, true
	}
	if e.sl != nil {
		var err error
		if payload, err = e.sl.open(payload); err != nil || e.sl.opener.Ended() {
			e.s.Cancel(wire.CodeProtocol)
			return x.errSealed(cmp.Or(err, errSealedAnswer)), !x.started, true
		}
	}
	if typ == wire.TypeUsageChunk && (!x.stream || !x.includeUsage) {
		// The worker passes the usage chunk on only when the app asked for it (IncludeUsage).
		return nil, false, false
	}
	x.started = true
	x.chunks++
	if !x.stream {
		if e.whole.Len()+len(payload) > maxAnswerBytes {
			e.s.Cancel(wire.CodeFrameTooLarge)
			return errProtocol("answer over " + formatBytes(maxAnswerBytes)), false, true
		}
		e.whole.Write(payload)
		return nil, false, false
	}
	if err := x.commit(); err != nil {
		return x.appGone(ctx), false, true
	}
	if x.sse.pending == nil {
		x.sse.pending = e.s.FrameBuffered
	}
	if typ == wire.TypeUsageChunk {
		e.held = append([]byte(nil), payload...)
		return nil, false, false
	}
	if err := x.sse.data(payload); err != nil {
		return x.appGone(ctx), false, true
	}
	return nil, false, false
}

// done ends the answer: the receipt is checked and kept, and the app gets the rest.
func (e *exchange) done(ctx context.Context, typ wire.Type, payload []byte) (*apiError, bool, bool) {
	x := e.x
	m, err := wire.Unmarshal(typ, payload)
	if err != nil || x.head == nil {
		e.s.Cancel(wire.CodeProtocol)
		return errProtocol("bad done"), !x.started, true
	}
	x.done = m.(*wire.Done)
	if e.sl != nil {
		usage, err := e.sl.finish(x, x.done)
		if err != nil {
			e.s.Cancel(wire.CodeProtocol)
			return x.errSealed(err), false, true
		}
		x.keepReceipt(usage)
	}
	x.tail, e.clean = e.s, true
	return x.finishAnswer(ctx, e.held, e.whole.Bytes()), false, true
}

// failure ends the attempt with the proxy's error, and says whether another proxy may be tried.
func (e *exchange) failure(typ wire.Type, payload []byte) (*apiError, bool, bool) {
	x := e.x
	m, err := wire.Unmarshal(typ, payload)
	if err != nil {
		e.s.Cancel(wire.CodeProtocol)
		return errProtocol("bad error message"), !x.started, true
	}
	we := m.(*wire.Error)
	_ = e.s.CloseSend()
	x.tail, e.clean = e.s, true
	code := quic.ApplicationErrorCode(we.GetCode())
	if code == wire.CodeOverloaded || code == wire.CodeShutdown {
		e.t.p.failed()
	}
	engineErr := we.GetHttpStatus() != 0 && len(we.GetBody()) > 0
	if len(x.refusals) > 0 && code == wire.CodeUpstream {
		// Another proxy may offer a worker this client's policy accepts.
		return errWorkersRefused(x.refusals[len(x.refusals)-1]), true, true
	}
	return errFromWire(we), !engineErr && retryable(code), true
}

// appGone is the outcome when writing to the app fails: it disconnected or stopped reading.
func (x *call) appGone(ctx context.Context) *apiError {
	if ctx.Err() != nil {
		return ctxError(ctx)
	}
	return newError(statusClientClosed, "invalid_request_error", "cancelled", "app stopped reading")
}

// drain reads the proxy's end of stream after its last message, so the stream closes cleanly in
// both directions; a proxy that never closes is cut off after drainTimeout. It reports a clean end.
func drain(s *transport.Stream) bool {
	t := time.AfterFunc(drainTimeout, func() { s.Cancel(wire.CodeOK) })
	defer t.Stop()
	for {
		if _, _, err := s.RecvFrame(); err != nil {
			return errors.Is(err, io.EOF)
		}
	}
}
