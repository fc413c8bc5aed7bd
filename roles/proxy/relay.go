package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// attempt outcomes.
type outcome int

const (
	answered outcome = iota // the client got an answer or a final error
	retry                   // the worker failed before the first byte: try another
)

// relay runs one request: choose a worker, forward, relay the answer; fail over before the first
// byte, fail fast after it.
func (p *Proxy) relay(ctx context.Context, cs *transport.Stream, req *wire.Request) {
	start := time.Now()
	timeout := p.cfg.RequestTimeout
	if t := time.Duration(req.GetTimeoutMs()) * time.Millisecond; t > 0 && t < timeout {
		timeout = t
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The client's cancellation (the stream's context) ends the request and, through rctx, the worker's stream.
	stop := context.AfterFunc(cs.Context(), cancel)
	defer stop()
	log := p.log.With().Str("request", req.GetId()).Str("model", req.GetModel()).Logger()
	p.stats.requests.Add(1)

	if !p.reg.hasModel(req.GetModel()) {
		p.fail(cs, wire.CodeNotFound, fmt.Sprintf("model %q is not served by any worker", req.GetModel()))
		p.stats.notFound.Add(1)
		return
	}
	tried := map[*workerEntry]bool{}
	var lastErr error
	for range p.cfg.MaxAttempts {
		w := p.reg.choose(req.GetModel(), req.GetMaxCoefficient(), tried)
		if w == nil {
			break
		}
		tried[w] = true
		out, err := p.try(rctx, cs, req, w, log)
		w.active.Add(-1)
		if out == answered {
			if err == nil {
				w.served.Add(1)
				w.observe(time.Since(start))
				p.stats.served.Add(1)
			} else {
				p.stats.failed.Add(1)
			}
			p.stats.latency.observe(time.Since(start))
			return
		}
		w.failures.Add(1)
		lastErr = err
		log.Warn().Err(err).Str("worker_id", w.id).Msg("worker failed before answering; trying another")
		if rctx.Err() != nil {
			break
		}
	}
	p.stats.failed.Add(1)
	switch {
	case cs.Context().Err() != nil:
		cs.Cancel(wire.CodeCancelled)
	case rctx.Err() != nil:
		p.fail(cs, wire.CodeTimeout, fmt.Sprintf("no answer within %s", timeout))
	case len(tried) == 0:
		p.fail(cs, wire.CodeOverloaded, fmt.Sprintf("no worker for model %q has capacity now", req.GetModel()))
	default:
		p.fail(cs, wire.CodeUpstream, fmt.Sprintf("%d worker(s) failed before answering: %v", len(tried), lastErr))
	}
}

// try forwards the request to one worker and relays its answer.
func (p *Proxy) try(rctx context.Context, cs *transport.Stream, req *wire.Request, w *workerEntry, log zerolog.Logger) (outcome, error) {
	ws, err := w.conn.OpenStream(rctx)
	if err != nil {
		return retry, err
	}
	stop := context.AfterFunc(rctx, func() { ws.Cancel(wire.CodeCancelled) })
	defer stop()
	if err := ws.Send(req); err != nil {
		return retry, err
	}
	_ = ws.CloseSend()

	t, payload, err := ws.RecvFrame()
	if err != nil {
		return retry, fmt.Errorf("worker stream: %w", err)
	}
	switch t {
	case wire.TypeError:
		m, err := wire.Unmarshal(t, payload)
		if err != nil {
			return retry, err
		}
		e := m.(*wire.Error)
		code := quic.ApplicationErrorCode(e.GetCode())
		// The engine's own refusal (a bad request) would be the same on any worker: pass it on.
		if e.GetHttpStatus() != 0 || code == wire.CodeBadRequest {
			_ = cs.Send(e)
			_ = cs.CloseSend()
			return answered, errors.New(e.GetMessage())
		}
		return retry, fmt.Errorf("worker refused (code %d): %s", code, e.GetMessage())
	case wire.TypeResponseHead:
	default:
		return retry, fmt.Errorf("worker sent frame type %d before the answer head", t)
	}
	m, err := wire.Unmarshal(t, payload)
	if err != nil {
		return retry, err
	}
	head := m.(*wire.ResponseHead)
	head.Worker = &wire.WorkerInfo{ImageHash: w.image, Attestation: w.attestation, WeightsDigest: w.digest, Coefficient: w.coefficient}
	if err := cs.Send(head); err != nil {
		return answered, err
	}
	// From here on the client has seen the answer start: no retry, and any failure ends its stream.
	for {
		t, payload, err := ws.RecvFrame()
		if err != nil {
			return answered, p.endMidStream(rctx, cs, err, log)
		}
		switch t {
		case wire.TypeChunk, wire.TypeUsageChunk:
			if err := cs.SendFrame(t, payload); err != nil {
				ws.Cancel(wire.CodeCancelled)
				return answered, err
			}
		case wire.TypeDone, wire.TypeError:
			m, err := wire.Unmarshal(t, payload)
			if err != nil {
				return answered, p.endMidStream(rctx, cs, err, log)
			}
			if err := cs.Send(m); err != nil {
				return answered, err
			}
			_ = cs.CloseSend()
			if e, ok := m.(*wire.Error); ok {
				return answered, errors.New(e.GetMessage())
			}
			return answered, nil
		default:
			return answered, p.endMidStream(rctx, cs, fmt.Errorf("unexpected frame type %d", t), log)
		}
	}
}

// endMidStream tells the client at once that an answer it started to receive will not finish.
func (p *Proxy) endMidStream(rctx context.Context, cs *transport.Stream, err error, log zerolog.Logger) error {
	switch {
	case cs.Context().Err() != nil:
		cs.Cancel(wire.CodeCancelled)
		return err
	case rctx.Err() != nil:
		p.fail(cs, wire.CodeTimeout, "request timed out mid-answer")
	case errors.Is(err, io.EOF):
		p.fail(cs, wire.CodeUpstream, "worker ended the answer without completing it")
	default:
		p.fail(cs, wire.CodeUpstream, "worker failed mid-answer")
	}
	log.Warn().Err(err).Msg("answer cut off")
	return err
}

func (p *Proxy) fail(cs *transport.Stream, code quic.ApplicationErrorCode, msg string) {
	_ = cs.Send(&wire.Error{Code: uint32(code), Message: msg})
	_ = cs.CloseSend()
}

var _ proto.Message = (*wire.Error)(nil)
