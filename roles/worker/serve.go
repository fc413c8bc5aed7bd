package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/rs/zerolog"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/roles/internal/bounds"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/seal"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// serve answers one request stream from a proxy. Its steps are functions of their own, so that
// while the engine generates, the stream's goroutine holds only the frames of the relay: a
// goroutine's stack halves at a collection only while it uses less than a quarter of it.
func (w *Worker) serve(ctx context.Context, c *transport.Conn, s *transport.Stream) {
	j := w.accept(c, s)
	if j == nil {
		return
	}
	if w.active.Add(1) > int64(w.cfg.MaxActive) {
		w.active.Add(-1)
		w.stats.refused.Add(1)
		w.refuse(s, wire.CodeOverloaded, fmt.Sprintf("worker at capacity (%d requests)", w.cfg.MaxActive))
		return
	}
	defer w.active.Add(-1)
	if !w.prepare(s, j) {
		return
	}
	// The stream's context ends when the proxy cancels the stream: the engine request stops with it.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.Context(), cancel)
	defer stop()
	w.finish(rctx, s, j, w.generate(rctx, s, j))
}

// job is a request the worker accepted, and what it decided about it.
type job struct {
	req     *wire.Request
	log     zerolog.Logger
	ev      evidence
	sealer  *seal.AnswerSealer // a sealed request's: seals the answer
	sealBuf []byte             // the sealed frame of the chunk being sent
	opened  []byte             // the body as the client sent it
	kind    gpu.Kind
	engine  gpu.Request // what the engine is asked
}

// outcome is what the engine's answer came to.
type outcome struct {
	usage         settle.Usage
	err           error
	headSent      bool
	chunks, bytes int
	dur           time.Duration
}

// accept reads the request, opens a sealed body and checks that it is one to serve; it answers
// the proxy and returns nil for one it refuses.
func (w *Worker) accept(c *transport.Conn, s *transport.Stream) *job {
	m, err := s.Recv()
	if err != nil {
		s.Cancel(wire.CodeProtocol)
		return nil
	}
	// The request is all the proxy sends on the stream: the slot frees once both sides are done,
	// and the proxy's end may arrive after the frame, where no read would ever take it.
	s.CloseRead()
	req, ok := m.(*wire.Request)
	if !ok {
		_ = s.Send(&wire.Error{Code: uint32(wire.CodeProtocol), Message: fmt.Sprintf("expected a request, got %T", m)})
		_ = s.CloseSend()
		return nil
	}
	log := w.log.With().Str("request", req.GetId()).Logger()
	if req.GetModel() != w.cfg.Model {
		w.refuse(s, wire.CodeNotFound, "this worker serves "+w.cfg.Model)
		return nil
	}
	// The worker signs what it metered (and, for a sealed request, its receipt) with the key of
	// the certificate it presented here, which the proxy verified.
	ev, err := w.evidence.of(c)
	if err != nil {
		w.refuse(s, wire.CodeInternal, "worker cannot sign usage: "+err.Error())
		return nil
	}
	var sealer *seal.AnswerSealer
	if len(req.GetSealedBody()) > 0 {
		if len(req.GetBody()) > 0 {
			w.stats.refused.Add(1)
			w.refuse(s, wire.CodeBadRequest, "request carries both a plain and a sealed body")
			return nil
		}
		if sealer, err = openSealed(ev, req); err != nil {
			w.stats.refused.Add(1)
			log.Warn().Err(err).Msg("sealed request refused")
			w.refuse(s, wire.CodeBadRequest, "sealed request: "+err.Error())
			return nil
		}
	}
	kind, known := bounds.EngineKind(req.GetKind())
	if !known {
		w.stats.refused.Add(1)
		w.refuse(s, wire.CodeBadRequest, fmt.Sprintf("request kind %v is not one this worker serves", req.GetKind()))
		return nil
	}
	// The engine acts on the body, the network routed and priced by the wire fields: they must agree.
	if msg := bodyDisagrees(req, kind, w.cfg.Model); msg != "" {
		w.stats.refused.Add(1)
		log.Info().Str("kind", kind.String()).Str("reason", msg).Msg("request refused: its body disagrees with its routing")
		w.refuse(s, wire.CodeBadRequest, msg)
		return nil
	}
	// The body as the client sent it, before the limits: what the receipt names.
	return &job{req: req, log: log, ev: ev, sealer: sealer, opened: req.GetBody(), kind: kind}
}

// prepare makes the engine's request: a transcription's form written again, the reserved limits
// imposed. It answers the proxy and returns false for a body it cannot make one of.
func (w *Worker) prepare(s *transport.Stream, j *job) bool {
	body, contentType := j.req.GetBody(), ""
	if j.kind == gpu.KindTranscription {
		// The engine reads the form exactly as it was read here: written again, canonically.
		form, err := gpu.ParseForm(body, j.req.GetContentType())
		if err != nil { // bodyDisagrees parsed it already
			w.stats.refused.Add(1)
			w.refuse(s, wire.CodeBadRequest, "request body: "+err.Error())
			return false
		}
		body, contentType = form.Encode()
	}
	if limit := j.req.GetReservedCompletionTokens(); limit > 0 {
		// The proxy reserved the request's cost for these limits: the engine obeys them, whatever
		// the body said (its own limits, duplicates, spellings an engine might also read).
		var err error
		if body, err = gpu.WithLimits(body, j.kind, limit, max(j.req.GetReservedChoices(), 1)); err != nil {
			w.stats.refused.Add(1)
			w.refuse(s, wire.CodeBadRequest, "request body: "+err.Error())
			return false
		}
	}
	j.engine = gpu.Request{Kind: j.kind, Body: body, Stream: j.req.GetStream(), ContentType: contentType}
	return true
}

// generate asks the engine and relays its answer, chunk by chunk.
func (w *Worker) generate(ctx context.Context, s *transport.Stream, j *job) outcome {
	var o outcome
	start := time.Now()
	o.usage, o.err = w.engine.Do(ctx, j.engine, func(ch gpu.Chunk) error {
		if !o.headSent {
			if err := s.Send(&wire.ResponseHead{HttpStatus: 200, Model: w.cfg.Model}); err != nil {
				return err
			}
			o.headSent = true
		}
		t := wire.TypeChunk
		if ch.Usage {
			// Every stream ends with the usage the worker asked for, to meter it. The app sees it
			// only if it asked too; otherwise it travels in Done alone.
			if !j.req.GetIncludeUsage() {
				if ch.More {
					return nil
				}
				return s.Flush()
			}
			t = wire.TypeUsageChunk
		}
		o.chunks++
		o.bytes += len(ch.Data)
		data := ch.Data
		if j.sealer != nil {
			var err error
			// Sealed into the job's own buffer: the frame is copied out before the next chunk.
			if j.sealBuf, err = j.sealer.AppendSeal(j.sealBuf[:0], data); err != nil {
				return err
			}
			data = j.sealBuf
		}
		if ch.More {
			s.QueueFrame(t, data) // the next chunk is already here: one write for both
			return nil
		}
		return s.SendFrame(t, data)
	})
	o.dur = time.Since(start)
	return o
}

// finish ends the stream: the failure, or the sealed answer's end and Done with the usage.
func (w *Worker) finish(ctx context.Context, s *transport.Stream, j *job, o outcome) {
	req, log, usage, err, headSent, dur := j.req, j.log, o.usage, o.err, o.headSent, o.dur
	w.stats.tokens.add(usage)
	if err != nil {
		if ctx.Err() != nil {
			w.stats.cancelled.Add(1)
			log.Debug().Dur("after", dur).Msg("request cancelled")
			s.Cancel(wire.CodeCancelled)
			return
		}
		var he *gpu.HTTPError
		if callerMistake(err, headSent) {
			// The request's own fault (a 4xx from the engine, a body it cannot take): no engine
			// failure. The reason is logged as the engine said it, without anything it quoted.
			w.stats.refused.Add(1)
			ev := log.Info().Str("kind", j.kind.String())
			if errors.As(err, &he) {
				ev = ev.Int("status", he.Status).Bool("no_endpoint", he.NoEndpoint)
				if r := engineReason(he.Body); r.message != "" {
					ev = ev.Str("reason", r.message).Str("param", r.param).Str("code", r.code)
				}
			} else {
				ev = ev.Err(err)
			}
			ev.Msg("engine refused the request")
		} else {
			w.stats.failed.Add(1)
			log.Warn().Err(err).Bool("answer_started", headSent).Int("chunks", o.chunks).Msg("engine request failed")
		}
		switch {
		case errors.As(err, &he) && !headSent:
			code := wire.CodeUpstream
			if he.Status >= 400 && he.Status < 500 {
				code = wire.CodeBadRequest
			}
			_ = s.Send(&wire.Error{Code: uint32(code), Message: fmt.Sprintf("engine answered %d", he.Status),
				HttpStatus: uint32(he.Status), Body: he.Body})
		case errors.Is(err, gpu.ErrBadRequest):
			_ = s.Send(&wire.Error{Code: uint32(wire.CodeBadRequest), Message: "request body: " + strings.TrimPrefix(err.Error(), "prepare engine request: ")})
		default:
			_ = s.Send(&wire.Error{Code: uint32(wire.CodeUpstream), Message: "inference engine failed: " + err.Error()})
		}
		_ = s.CloseSend()
		return
	}
	record, err := w.usageRecord(j.ev, req, usage)
	if err != nil {
		// Unsigned usage would be charged as the reservation: say so rather than send it.
		log.Error().Err(err).Msg("usage record not signed")
		s.Cancel(wire.CodeInternal)
		return
	}
	if j.sealer != nil {
		if !headSent {
			if err := s.Send(&wire.ResponseHead{HttpStatus: 200, Model: w.cfg.Model}); err != nil {
				s.Cancel(wire.CodeCancelled)
				return
			}
		}
		end, err := w.endSealed(j.ev, j.sealer, req, j.opened, record, usage)
		if err == nil {
			err = s.SendFrame(wire.TypeSealedEnd, end)
		}
		if err != nil {
			log.Warn().Err(err).Msg("sealed answer not ended")
			s.Cancel(wire.CodeInternal)
			return
		}
	}
	if err := s.Send(&wire.Done{Usage: wire.EncodeUsage(usage), UsageRecord: record}); err != nil {
		s.Cancel(wire.CodeCancelled)
		return
	}
	_ = s.CloseSend()
	w.stats.served.Add(1)
	w.stats.latency.Observe(dur)
	log.Debug().Dur("duration", dur).Int("chunks", o.chunks).Int("bytes", o.bytes).
		Uint64("prompt_tokens", usage.PromptTokens).Uint64("completion_tokens", usage.CompletionTokens).Msg("request served")
}

func (w *Worker) refuse(s *transport.Stream, code quic.ApplicationErrorCode, msg string) {
	_ = s.Send(&wire.Error{Code: uint32(code), Message: msg})
	_ = s.CloseSend()
}

// bodyDisagrees says why the body of req would make the engine do something other than what the
// request was routed and charged for, or "" when it agrees: the body must name the model this
// worker serves (an engine serving several models, such as Ollama or vLLM with LoRA adapters,
// would otherwise serve whichever the body names) and stream exactly when the request says so.
// The body is read as the engine reads it (gpu.ReadKindFacts; a transcription's form field model).
//
// A metered request (reserved limits set) was reserved for the bounds the client read from the
// body, which the proxy could not check: a body beyond them is refused too.
func bodyDisagrees(req *wire.Request, kind gpu.Kind, model string) string {
	f, err := gpu.ReadKindFacts(kind, req.GetBody(), req.GetContentType())
	if err == nil && req.GetReservedCompletionTokens() > 0 {
		if msg := bounds.Exceeds(f.Limits, len(req.GetBody()), req.GetBounds()); msg != "" {
			return msg
		}
	}
	switch {
	case err != nil:
		return "request body: " + err.Error()
	case !f.HasModel:
		return fmt.Sprintf("request body names no model; this worker serves %q", model)
	case f.Model != model:
		return fmt.Sprintf("request body names model %q but the request was routed to %q", f.Model, model)
	case f.Stream != req.GetStream():
		return fmt.Sprintf("request body has stream=%t but the request says stream=%t", f.Stream, req.GetStream())
	}
	return ""
}

// callerMistake says whether an engine request failed for the request's own fault: the engine
// refused it with a 4xx before answering, or it was not something the engine could be asked.
func callerMistake(err error, answerStarted bool) bool {
	var he *gpu.HTTPError
	if errors.As(err, &he) {
		return !answerStarted && he.Status >= 400 && he.Status < 500
	}
	return errors.Is(err, gpu.ErrBadRequest)
}

// reason is what an engine's error answer says, for the log.
type reason struct{ message, param, code string }

// maxReason bounds the engine's message in a log line.
const maxReason = 300

// engineReason reads the message, param and code of an engine's error answer, in OpenAI's shape
// ({"error":{…}}) or vLLM's older flat one. The message is cut where an engine starts quoting the
// request (pydantic's "'input': …" and "input_value=…"), so no prompt reaches the log.
func engineReason(body []byte) reason {
	type detail struct {
		Message string          `json:"message"`
		Param   json.RawMessage `json:"param"`
		Code    json.RawMessage `json:"code"`
	}
	var v struct {
		Error json.RawMessage `json:"error"`
		detail
	}
	if json.Unmarshal(body, &v) != nil {
		return reason{}
	}
	d := v.detail
	var nested detail
	if json.Unmarshal(v.Error, &nested) == nil && nested.Message != "" {
		d = nested
	}
	msg := d.Message
	for _, quote := range [...]string{"'input'", `"input"`, "input_value=", "'input_value'"} {
		if i := strings.Index(msg, quote); i >= 0 {
			msg = msg[:i] + "…"
		}
	}
	if len(msg) > maxReason {
		msg = strings.ToValidUTF8(msg[:maxReason], "") + "…"
	}
	scalar := func(raw json.RawMessage) string {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		if len(raw) > 0 && string(raw) != "null" && len(raw) < 32 {
			return string(raw) // a numeric code
		}
		return ""
	}
	return reason{message: msg, param: scalar(d.Param), code: scalar(d.Code)}
}
