package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// maxAnswerBytes bounds a non-streamed answer, which the client must hold whole before sending it.
const maxAnswerBytes = 64 << 20

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

// run tries the connected proxies in turn until one answers. A failure before the first chunk
// moves on to the next proxy; once a chunk arrived the answer is that proxy's, success or not.
func (x *call) run(ctx context.Context) {
	targets := x.c.waitCandidates(ctx)
	if len(targets) == 0 {
		if ctx.Err() != nil {
			x.fail(ctxError(ctx))
			return
		}
		x.fail(errNoProxy())
		return
	}
	var report *apiError
	for i, t := range targets {
		x.attempts++
		e, retry := x.attempt(ctx, t)
		if e == nil {
			x.closeTail(true)
			return
		}
		if !retry || x.started || ctx.Err() != nil {
			x.fail(e)
			x.closeTail(true)
			return
		}
		x.closeTail(false)
		if i+1 < len(targets) {
			x.c.stats.failover()
			x.c.log.Debug().Str("request_id", x.id).Str("proxy", t.p.addr).Int("status", e.status).
				Str("reason", e.msg).Msg("failing over to the next proxy")
		}
		report = pickError(report, e)
	}
	x.fail(report)
}

// pickError chooses which of two failures the app hears when every proxy failed: the one that says
// most about the request (no funds, no capacity, no such model) over a broken connection.
func pickError(a, b *apiError) *apiError {
	rank := func(e *apiError) int {
		switch e.status {
		case http.StatusPaymentRequired:
			return 5
		case http.StatusServiceUnavailable:
			return 4
		case http.StatusNotFound:
			return 3
		case http.StatusGatewayTimeout:
			return 2
		}
		return 1
	}
	if a == nil || rank(b) >= rank(a) {
		return b
	}
	return a
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

func ctxError(ctx context.Context) *apiError {
	if errors.Is(context.Cause(ctx), errRequestTimeout) {
		return errTimeout()
	}
	return newError(statusClientClosed, "invalid_request_error", "cancelled", "request cancelled")
}

// cancelCode is the stream reset code that tells the proxy why we gave up.
func cancelCode(ctx context.Context) quic.ApplicationErrorCode {
	if errors.Is(context.Cause(ctx), errRequestTimeout) {
		return wire.CodeTimeout
	}
	return wire.CodeCancelled
}

func errProxyLost() *apiError {
	return newError(http.StatusBadGateway, "server_error", "upstream_error", "connection to the proxy failed")
}

func errProtocol(what string) *apiError {
	return newError(http.StatusBadGateway, "server_error", "upstream_error", "proxy broke the protocol: "+what)
}

// attempt runs the request on one proxy. It returns nil when the answer was delivered, or the
// error and whether another proxy may be tried.
func (x *call) attempt(ctx context.Context, t target) (*apiError, bool) {
	x.head, x.proxy = nil, t.p.addr
	s, err := t.conn.OpenStream(ctx)
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
		MaxCoefficient: x.c.cfg.MaxCoefficient, TimeoutMs: uint64(max(time.Until(x.deadline).Milliseconds(), 1))}
	if err := s.Send(req); err != nil {
		return x.recvError(ctx, t, err)
	}
	if err := s.CloseSend(); err != nil {
		return x.recvError(ctx, t, err)
	}

	// held is the stream's usage chunk, kept until the next frame: when that is Done, the cost the
	// proxy charged is added to it, so the app sees what it paid next to the tokens.
	var held []byte
	var whole bytes.Buffer
	for {
		typ, payload, err := s.RecvFrame()
		if held != nil && (err != nil || typ != wire.TypeDone) {
			if werr := x.sse.data(held); werr != nil {
				return x.appGone(ctx), false
			}
			held = nil
		}
		if err != nil {
			return x.recvError(ctx, t, err)
		}
		switch typ {
		case wire.TypeResponseHead:
			m, err := wire.Unmarshal(typ, payload)
			if err != nil || x.head != nil {
				s.Cancel(wire.CodeProtocol)
				return errProtocol("bad response head"), !x.started
			}
			x.head = m.(*wire.ResponseHead)
			x.headAt = time.Since(x.start)
		case wire.TypeChunk, wire.TypeUsageChunk:
			if x.head == nil {
				s.Cancel(wire.CodeProtocol)
				return errProtocol("chunk before response head"), true
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
			x.tail, clean = s, true
			return x.finishAnswer(ctx, held, whole.Bytes()), false
		case wire.TypeError:
			m, err := wire.Unmarshal(typ, payload)
			if err != nil {
				s.Cancel(wire.CodeProtocol)
				return errProtocol("bad error message"), !x.started
			}
			we := m.(*wire.Error)
			x.tail, clean = s, true
			code := quic.ApplicationErrorCode(we.GetCode())
			if code == wire.CodeOverloaded || code == wire.CodeShutdown {
				t.p.failed()
			}
			engineErr := we.GetHttpStatus() != 0 && len(we.GetBody()) > 0
			return errFromWire(we), !engineErr && retryable(code)
		default:
			s.Cancel(wire.CodeProtocol)
			return errProtocol("unexpected frame type " + strconv.Itoa(int(typ))), !x.started
		}
	}
}

// retryable says whether another proxy might answer where this one refused before the first chunk.
// Proxies differ in workers, load and the client's balance, so "no such model", "no capacity" and
// "payment required" are worth another try; a malformed request or an expired deadline is not.
func retryable(code quic.ApplicationErrorCode) bool {
	switch code {
	case wire.CodeBadRequest, wire.CodeFrameTooLarge, wire.CodeTimeout:
		return false
	}
	return true
}

// recvError classifies a failed read or write on the request stream.
func (x *call) recvError(ctx context.Context, t target, err error) (*apiError, bool) {
	if ctx.Err() != nil {
		return ctxError(ctx), false
	}
	var se *quic.StreamError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		t.p.failed()
		return errProtocol("answer ended before done"), true
	case errors.Is(err, wire.ErrFrameTooLarge), errors.Is(err, wire.ErrMalformedFrame):
		return errProtocol("bad frame"), true
	case errors.As(err, &se) && se.Remote:
		// The proxy reset the request stream with a code saying why.
		code := quic.ApplicationErrorCode(se.ErrorCode)
		if code == wire.CodeOverloaded || code == wire.CodeShutdown || code == wire.CodeInternal {
			t.p.failed()
		}
		return errFromCode(code, "proxy reset the request ("+codeName(code)+")"), retryable(code)
	}
	// The connection itself failed: closed, timed out or reset.
	t.p.failed()
	return errProxyLost(), true
}

// appGone is the outcome when writing to the app fails: it disconnected or stopped reading.
func (x *call) appGone(ctx context.Context) *apiError {
	if ctx.Err() != nil {
		return ctxError(ctx)
	}
	return newError(statusClientClosed, "invalid_request_error", "cancelled", "app stopped reading")
}

// commit writes the status and headers, once, when the first answer byte is ready.
func (x *call) commit() error {
	if x.committed {
		return nil
	}
	x.committed = true
	h := x.w.Header()
	model := x.head.GetModel()
	if model == "" {
		model = x.model
	}
	h.Set("X-Cocoon-Model", model)
	if wi := x.head.GetWorker(); wi != nil {
		h.Set("X-Cocoon-Worker-Image", wi.GetImageHash())
		h.Set("X-Cocoon-Attestation", wi.GetAttestation())
		if wi.GetCoefficient() != 0 {
			h.Set("X-Cocoon-Worker-Coefficient", strconv.FormatUint(uint64(wi.GetCoefficient()), 10))
		}
	}
	h.Set("X-Cocoon-Proxy", x.proxy)
	h.Set("X-Cocoon-Time-To-Head-Ms", strconv.FormatInt(x.headAt.Milliseconds(), 10))
	status := int(x.head.GetHttpStatus())
	if status < 200 || status > 299 {
		status = http.StatusOK
	}
	if !x.stream {
		h.Set("Content-Type", "application/json")
		x.w.WriteHeader(status)
		return nil
	}
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // tell reverse proxies in front of us not to buffer the stream
	x.w.WriteHeader(status)
	x.sse = newSSEWriter(x.w)
	return x.sse.flush()
}

// finishAnswer writes the end of a successful answer once Done arrived.
func (x *call) finishAnswer(ctx context.Context, usageChunk, whole []byte) *apiError {
	cost := x.done.GetTotalCost()
	if !x.stream {
		body := withCost(whole, cost)
		h := x.w.Header()
		h.Set("Content-Length", strconv.Itoa(len(body)))
		h.Set("X-Cocoon-Total-Ms", strconv.FormatInt(time.Since(x.start).Milliseconds(), 10))
		h.Set("X-Cocoon-Total-Cost", strconv.FormatUint(cost, 10))
		_ = x.commit()
		n, err := x.w.Write(body)
		x.respBytes = int64(n)
		if err != nil {
			return x.appGone(ctx)
		}
		return nil
	}
	if err := x.commit(); err != nil {
		return x.appGone(ctx)
	}
	if usageChunk != nil {
		if err := x.sse.data(withCost(usageChunk, cost)); err != nil {
			return x.appGone(ctx)
		}
	}
	if err := x.sse.data(doneEvent); err != nil {
		return x.appGone(ctx)
	}
	return nil
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

// withCost adds "total_cost" (nanoTON) to the top-level "usage" object of a JSON answer, leaving
// every other byte as the engine wrote it. Answers without a usage object are returned unchanged.
// With duplicate keys the last "usage" is the one changed, as JSON parsers keep the last.
func withCost(b []byte, cost uint64) []byte {
	if cost == 0 || !json.Valid(b) {
		return b
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return b
	}
	at, empty := -1, false // the closing brace of the last usage object
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return b
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return b
		}
		if key, _ := tok.(string); key != "usage" {
			continue
		}
		at = -1
		if len(raw) >= 2 && raw[0] == '{' {
			at = int(dec.InputOffset()) - 1
			empty = len(bytes.TrimSpace(raw[1:len(raw)-1])) == 0
		}
	}
	if at < 0 || at >= len(b) || b[at] != '}' {
		return b
	}
	field := `"total_cost":` + strconv.FormatUint(cost, 10)
	if !empty {
		field = "," + field
	}
	out := make([]byte, 0, len(b)+len(field))
	out = append(out, b[:at]...)
	out = append(out, field...)
	return append(out, b[at:]...)
}

// codeName names a wire code for messages.
func codeName(code quic.ApplicationErrorCode) string {
	switch code {
	case wire.CodeCancelled:
		return "cancelled"
	case wire.CodeProtocol:
		return "protocol error"
	case wire.CodeFrameTooLarge:
		return "frame too large"
	case wire.CodeShutdown:
		return "shutting down"
	case wire.CodeInternal:
		return "internal error"
	case wire.CodeTimeout:
		return "timeout"
	case wire.CodeOverloaded:
		return "overloaded"
	case wire.CodeNotFound:
		return "not found"
	case wire.CodeBadRequest:
		return "bad request"
	case wire.CodeUpstream:
		return "upstream failure"
	case wire.CodeVersion:
		return "version mismatch"
	case wire.CodePaymentRequired:
		return "payment required"
	}
	return "code " + strconv.FormatUint(uint64(code), 10)
}
