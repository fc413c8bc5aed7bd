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
	conn, err := t.p.acquire(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctxError(ctx), false
		}
		return errProxyLost(), true // it left the set or lost its connection since the request chose it
	}
	defer t.p.release(conn)
	s, err := conn.OpenStream(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctxError(ctx), false
		}
		t.p.failed()
		return errProxyLost(), true
	}
	// When the app goes away or the deadline passes, reset the stream so that proxy, worker and
	// engine stop working on an answer nobody will read.
	stop := context.AfterFunc(ctx, func() { s.Cancel(cancelCode(ctx)) })
	defer stop()
	clean := false
	defer func() {
		if !clean {
			s.Cancel(wire.CodeOK)
		}
	}()

	req := &wire.Request{Id: x.id, Kind: x.kind, Model: x.model, Stream: x.stream, IncludeUsage: x.includeUsage, Body: x.body,
		Bounds: x.bounds, MaxCoefficient: x.c.cfg.MaxCoefficient, TimeoutMs: uint64(max(time.Until(x.deadline).Milliseconds(), 1))}
	sealing := !x.c.cfg.PlaintextDev
	var sl *sealed // the worker this attempt's body is sealed to, once one was accepted
	if sealing {
		// The body goes sealed: to the worker this proxy answered the model's last request with,
		// which the proxy takes without an offer when it picks it, or else to the worker it offers.
		req.Body, req.Seal = nil, true
		if l, ok := x.c.offers.lastFor(t.p.addr, x.model, x.c.tc.Now()); ok {
			var refusal string
			if sl, req.SealedBody, refusal = x.sealTo(l.w, l.info); refusal != "" {
				x.c.offers.forget(t.p.addr, x.model)
			}
		}
	}
	if err := s.Send(req); err != nil {
		return x.recvError(ctx, t, err)
	}
	if !sealing {
		if err := s.CloseSend(); err != nil {
			return x.recvError(ctx, t, err)
		}
	}
	offers := 0

	// held is the stream's usage chunk, kept until the next frame: when that is Done (after the
	// sealed end marker, if sealed), the cost the proxy charged is added to it, so the app sees what
	// it paid next to the tokens.
	var held []byte
	var whole bytes.Buffer
	for {
		typ, payload, err := s.RecvFrame()
		if held != nil && (err != nil || (typ != wire.TypeDone && typ != wire.TypeSealedEnd)) {
			if werr := x.sse.data(held); werr != nil {
				return x.appGone(ctx), false
			}
			held = nil
		}
		if err != nil {
			return x.recvError(ctx, t, err)
		}
		switch typ {
		case wire.TypeWorkerOffer:
			m, err := wire.Unmarshal(typ, payload)
			if err != nil || !sealing || x.head != nil {
				s.Cancel(wire.CodeProtocol)
				return errProtocol("unexpected worker offer"), !x.started
			}
			if offers++; offers > maxOffers {
				// Each offer costs a verification and a seal: a proxy does not get to make this
				// client seal without end.
				s.Cancel(wire.CodeProtocol)
				return errProtocol("more than " + strconv.Itoa(maxOffers) + " worker offers for one request"), true
			}
			var body []byte
			var refusal string
			sl, body, refusal = x.acceptOffer(m.(*wire.WorkerOffer))
			var reply proto.Message = &wire.SealedBody{Sealed: body}
			if refusal != "" {
				x.refusals = append(x.refusals, refusal)
				x.c.receipts.refusedWorker(refusal)
				x.c.log.Warn().Str("request_id", x.id).Str("proxy", t.p.addr).Str("reason", refusal).Msg("refused the worker a proxy offered")
				reply = &wire.OfferRefused{Reason: refusal}
			}
			if err := s.Send(reply); err != nil {
				return x.recvError(ctx, t, err)
			}
		case wire.TypeResponseHead:
			m, err := wire.Unmarshal(typ, payload)
			if err != nil || x.head != nil || (sealing && sl == nil) {
				s.Cancel(wire.CodeProtocol)
				return errProtocol("bad response head"), !x.started
			}
			x.head = m.(*wire.ResponseHead)
			x.headAt = time.Since(x.start)
			if sealing {
				// No more offers: the answer is this worker's. What the app is told of it comes
				// from its verified attestation, not from the proxy.
				_ = s.CloseSend()
				x.sealed = sl
				x.c.offers.remember(t.p.addr, x.model, sl.offered, sl.info)
				x.head.Worker = sl.workerInfo()
				x.w.Header().Set("X-Cocoon-Receipt", receiptPath+x.id)
			}
		case wire.TypeSealedEnd:
			if sl == nil || x.head == nil {
				s.Cancel(wire.CodeProtocol)
				return errProtocol("unexpected sealed end"), !x.started
			}
			if _, err := sl.open(payload); err != nil || !sl.opener.Ended() {
				s.Cancel(wire.CodeProtocol)
				return x.errSealed(cmp.Or(err, errSealedAnswer)), !x.started
			}
		case wire.TypeChunk, wire.TypeUsageChunk:
			if x.head == nil {
				s.Cancel(wire.CodeProtocol)
				return errProtocol("chunk before response head"), true
			}
			if sl != nil {
				if payload, err = sl.open(payload); err != nil || sl.opener.Ended() {
					s.Cancel(wire.CodeProtocol)
					return x.errSealed(cmp.Or(err, errSealedAnswer)), !x.started
				}
			}
			if typ == wire.TypeUsageChunk && (!x.stream || !x.includeUsage) {
				// The worker passes the usage chunk on only when the app asked for it (IncludeUsage).
				continue
			}
			x.started = true
			x.chunks++
			if !x.stream {
				if whole.Len()+len(payload) > maxAnswerBytes {
					s.Cancel(wire.CodeFrameTooLarge)
					return errProtocol("answer over " + formatBytes(maxAnswerBytes)), false
				}
				whole.Write(payload)
				continue
			}
			if err := x.commit(); err != nil {
				return x.appGone(ctx), false
			}
			if x.sse.pending == nil {
				x.sse.pending = s.FrameBuffered
			}
			if typ == wire.TypeUsageChunk {
				held = append([]byte(nil), payload...)
				continue
			}
			if err := x.sse.data(payload); err != nil {
				return x.appGone(ctx), false
			}
		case wire.TypeDone:
			m, err := wire.Unmarshal(typ, payload)
			if err != nil || x.head == nil {
				s.Cancel(wire.CodeProtocol)
				return errProtocol("bad done"), !x.started
			}
			x.done = m.(*wire.Done)
			if sl != nil {
				usage, err := sl.finish(x, x.done)
				if err != nil {
					s.Cancel(wire.CodeProtocol)
					return x.errSealed(err), false
				}
				x.keepReceipt(usage)
			}
			x.tail, clean = s, true
			return x.finishAnswer(ctx, held, whole.Bytes()), false
		case wire.TypeError:
			m, err := wire.Unmarshal(typ, payload)
			if err != nil {
				s.Cancel(wire.CodeProtocol)
				return errProtocol("bad error message"), !x.started
			}
			we := m.(*wire.Error)
			_ = s.CloseSend()
			x.tail, clean = s, true
			code := quic.ApplicationErrorCode(we.GetCode())
			if code == wire.CodeOverloaded || code == wire.CodeShutdown {
				t.p.failed()
			}
			engineErr := we.GetHttpStatus() != 0 && len(we.GetBody()) > 0
			if len(x.refusals) > 0 && code == wire.CodeUpstream {
				// Another proxy may offer a worker this client's policy accepts.
				return errWorkersRefused(x.refusals[len(x.refusals)-1]), true
			}
			return errFromWire(we), !engineErr && retryable(code)
		default:
			s.Cancel(wire.CodeProtocol)
			return errProtocol("unexpected frame type " + strconv.Itoa(int(typ))), !x.started
		}
	}
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
