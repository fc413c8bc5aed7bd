package proxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/rs/zerolog"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/ledger"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/seal"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// requester is the client end of a request: its stream, its connection (for payment states) and
// its paying account.
type requester struct {
	stream  *transport.Stream
	conn    *transport.Conn
	account ton.AccountID
}

// inbound is a client's request: decoded once, for the fields the proxy routes and prices by, and
// the frame payload as it arrived, which is what the worker receives.
type inbound struct {
	req     *wire.Request
	payload []byte
}

// attempt outcomes.
type outcome int

const (
	answered outcome = iota // the client got an answer or a final error
	retry                   // the worker failed before the first byte: try another
)

// result is what one attempt produced.
type result struct {
	done    *wire.Done // the worker's Done, not yet sent to the client
	final   *wire.Error
	chunks  int // content chunks relayed to the client
	started bool
}

// relay runs one request: choose a worker, reserve the request's maximum cost, forward, relay the
// answer, charge what was used; fail over before the first byte, fail fast after it.
func (p *Proxy) relay(ctx context.Context, rq requester, in inbound) {
	cs, req := rq.stream, in.req
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

	if err := p.halted.get(); err != nil {
		p.fail(cs, wire.CodeInternal, "proxy stopped signing payments: its ledger is behind a state it signed")
		p.stats.failed.Add(1)
		return
	}
	if !p.reg.hasModel(req.GetModel()) {
		p.fail(cs, wire.CodeNotFound, fmt.Sprintf("model %q is not served by any worker", req.GetModel()))
		p.stats.notFound.Add(1)
		return
	}
	if msg := sealedShape(req); msg != "" {
		p.fail(cs, wire.CodeBadRequest, msg)
		p.stats.badRequest.Add(1)
		return
	}
	payload, maxCoef := in.payload, req.GetMaxCoefficient()
	var lim limits
	if pm := p.cfg.Payments; pm != nil {
		var err error
		if lim, err = pm.limits(req.GetKind(), req.GetBounds()); err != nil {
			p.stats.unpriceable.Add(1)
			p.stats.badRequest.Add(1)
			p.fail(cs, wire.CodeBadRequest, err.Error())
			return
		}
		// The worker makes the engine obey the limits the reservation was made for.
		payload = withReserved(payload, lim)
		if pm.CoefficientCap != nil {
			if c := pm.CoefficientCap(); c != 0 && (maxCoef == 0 || c < maxCoef) {
				maxCoef = c
			}
		}
	}
	// A sealed request may come presealed to the worker the client was last offered: if that
	// worker is chosen, the body goes to it without an offer and its round trip.
	var prefer *seal.KeyID
	if id, ok := seal.RequestKeyID(req.GetSealedBody()); ok && req.GetSeal() {
		prefer = &id
	}
	bare, stripped := payload, len(req.GetSealedBody()) == 0 // the request without a presealed body, made when an offer needs it
	tried := map[*workerEntry]bool{}
	var lastErr error
	for range p.cfg.MaxAttempts {
		w := p.reg.choose(req.GetModel(), maxCoef, tried, prefer)
		presealed := prefer != nil && w != nil && w.hpkeID == *prefer
		prefer = nil // one attempt: after it, every worker is offered
		if w == nil {
			break
		}
		tried[w] = true
		if req.GetSeal() && len(w.conn.Peer().Claims.HPKEKey) == 0 {
			w.release() // a sealed request needs the worker's attested HPKE key
			lastErr = fmt.Errorf("worker %s names no HPKE key to seal the request to", w.id)
			continue
		}
		h, err := p.reserve(rq, req.GetId(), lim, w)
		if err != nil {
			w.release()
			code, count := wire.CodeInternal, &p.stats.failed
			switch {
			case errors.Is(err, ledger.ErrInsufficientFunds):
				code, count = wire.CodePaymentRequired, &p.stats.paymentRequired
			case errors.Is(err, errUnpriceable):
				code, count = wire.CodeBadRequest, &p.stats.badRequest
				p.stats.unpriceable.Add(1)
			}
			p.fail(cs, code, err.Error())
			count.Add(1)
			return
		}
		forward := payload
		if req.GetSeal() && !presealed {
			sealed, refusal, err := p.offer(rctx, cs, w)
			if err != nil {
				// The client went away or broke the exchange: nothing was forwarded.
				w.release()
				p.release(h)
				p.stats.failed.Add(1)
				if cs.Context().Err() != nil || rctx.Err() != nil {
					cs.Cancel(wire.CodeCancelled)
				} else {
					p.fail(cs, wire.CodeProtocol, err.Error())
				}
				log.Debug().Err(err).Msg("worker offer not answered")
				return
			}
			if refusal != "" {
				w.release()
				p.release(h)
				lastErr = fmt.Errorf("the client refused worker %s: %s", w.id, refusal)
				log.Info().Str("worker_id", w.id).Str("reason", refusal).Msg("client refused the offered worker; trying another")
				continue
			}
			if !stripped {
				bare, stripped = withoutSealedBody(payload), true
			}
			forward = withSealedBody(bare, sealed)
		}
		out, r, err := p.try(rctx, cs, forward, w, start, log)
		w.release()
		if out == answered {
			p.finish(rq, w, h, r, log)
			switch {
			case err == nil:
				w.served.Add(1)
				w.observe(time.Since(start))
				p.stats.served.Add(1)
			case !r.started && callersMistake(r.final):
				p.stats.badRequest.Add(1) // the engine refused the request itself: any worker would
			default:
				p.stats.failed.Add(1)
			}
			p.stats.latency.Observe(time.Since(start))
			return
		}
		p.release(h)
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

// callersMistake reports whether e refuses the request for the caller's own mistake: the
// engine's 4xx, or a body the worker found malformed or beyond its bounds.
func callersMistake(e *wire.Error) bool {
	if e == nil {
		return false
	}
	st := e.GetHttpStatus()
	return quic.ApplicationErrorCode(e.GetCode()) == wire.CodeBadRequest || (st >= 400 && st < 500)
}

// offerTimeout bounds how long a client may take to verify an offered worker and seal the body
// to it: the first quote of a platform it sees may need its collateral fetched.
const offerTimeout = 30 * time.Second

// offer hands the client the certificate of worker w, and reads its answer: the body sealed to
// w, or the reason its policy refused w. err: the client broke the exchange or went away.
func (p *Proxy) offer(rctx context.Context, cs *transport.Stream, w *workerEntry) (sealed []byte, refusal string, err error) {
	o := &wire.WorkerOffer{Certificate: w.conn.PeerCertificate(),
		Worker: &wire.WorkerInfo{ImageHash: w.image, Attestation: w.attestation, WeightsDigest: w.digest, Coefficient: w.coefficient}}
	if err := cs.Send(o); err != nil {
		return nil, "", err
	}
	octx, cancel := context.WithTimeout(rctx, offerTimeout)
	defer cancel()
	stop := context.AfterFunc(octx, func() { cs.Cancel(wire.CodeTimeout) })
	defer stop()
	t, payload, err := cs.RecvFrame()
	if err != nil {
		return nil, "", fmt.Errorf("reading the answer to the worker offer: %w", err)
	}
	m, err := wire.Unmarshal(t, payload)
	if err != nil {
		return nil, "", err
	}
	switch m := m.(type) {
	case *wire.SealedBody:
		if len(m.GetSealed()) == 0 {
			return nil, "", errors.New("the client answered the worker offer with an empty sealed body")
		}
		return m.GetSealed(), "", nil
	case *wire.OfferRefused:
		return nil, cmp.Or(m.GetReason(), "no reason given"), nil
	}
	return nil, "", fmt.Errorf("the client answered the worker offer with %T; want SealedBody or OfferRefused", m)
}

// sealedShape says how req breaks the shape of its kind of request, or "": a sealed request
// carries no body in clear (its body goes sealed, presealed in sealed_body or in answer to the
// worker offer), and only a sealed request may carry a sealed body.
func sealedShape(req *wire.Request) string {
	switch {
	case req.GetSeal() && len(req.GetBody()) > 0:
		return "a sealed request carries no body in clear: presealed in sealed_body or in answer to the worker offer (SealedBody)"
	case !req.GetSeal() && len(req.GetSealedBody()) > 0:
		return "a request with sealed_body must set seal"
	}
	return ""
}

// reserve sets aside the request's maximum cost at worker w's coefficient.
func (p *Proxy) reserve(rq requester, id string, lim limits, w *workerEntry) (*hold, error) {
	pm := p.cfg.Payments
	if pm == nil {
		return nil, nil
	}
	h := &hold{lim: lim, prices: pm.Prices(), coef: w.coefficient, id: id, model: w.model, workerKey: w.conn.Peer().Claims.PublicKey}
	maxCost, cerr := settle.Cost(lim.max, h.prices, h.coef)
	earn, eerr := settle.WorkerEarning(lim.max, h.prices, h.coef)
	if err := cmp.Or(cerr, eerr); err != nil {
		return nil, fmt.Errorf("%w: its maximum cost at coefficient %d: %w; lower max_tokens or n", errUnpriceable, h.coef, err)
	}
	h.earn = earn
	r, err := pm.Ledger.Reserve(rq.account, maxCost)
	if err != nil {
		return nil, err
	}
	h.res = r
	return h, nil
}

func (p *Proxy) release(h *hold) {
	if h != nil {
		p.cfg.Payments.Ledger.Release(h.res)
	}
}

// finish charges the request (see charge), sends the client its Done (with the cost) or error,
// and hands the new totals to client and worker (signed, at most one per interval: stateSender).
func (p *Proxy) finish(rq requester, w *workerEntry, h *hold, r result, log zerolog.Logger) {
	cs := rq.stream
	defer func() { _ = cs.CloseSend() }()
	p.stats.usage(r)
	if h != nil {
		cost, earn := p.charge(h, r, log)
		if cost == 0 {
			p.release(h)
		} else if rc, serr := p.cfg.Payments.Ledger.Settle(h.res, w.owner, cost, earn); serr != nil {
			log.Error().Err(serr).Msg("ledger commit failed; refusing further requests")
			p.halted.set(serr)
		} else {
			if r.done != nil {
				r.done.TotalCost = rc.Charged
			}
			p.states.send(rq.conn, rc.ClientState)
			p.states.send(w.conn, rc.WorkerState)
			log.Debug().Uint64("cost", rc.Charged).Uint64("earned", rc.Earned).Msg("request charged")
		}
	}
	switch {
	case r.done != nil:
		_ = cs.Send(r.done)
	case r.final != nil:
		_ = cs.Send(r.final)
	}
}

// try forwards the request (its frame payload, as the client sent it) to one worker and relays
// its answer up to (not including) Done.
func (p *Proxy) try(rctx context.Context, cs *transport.Stream, reqPayload []byte, w *workerEntry, start time.Time, log zerolog.Logger) (outcome, result, error) {
	var r result
	ws, err := w.conn.OpenStream(rctx)
	if err != nil {
		return retry, r, err
	}
	stop := context.AfterFunc(rctx, func() { ws.Cancel(wire.CodeCancelled) })
	defer stop()
	// Nothing is read after the answer's last frame: without this the stream's end, which follows
	// it, would stay unread, and QUIC would keep the stream for as long as the connection lasts.
	defer ws.CloseRead()
	if err := ws.SendFrame(wire.TypeRequest, reqPayload); err != nil {
		return retry, r, err
	}
	_ = ws.CloseSend()

	t, payload, err := ws.RecvFrame()
	if err != nil {
		return retry, r, fmt.Errorf("worker stream: %w", err)
	}
	switch t {
	case wire.TypeError:
		m, err := wire.Unmarshal(t, payload)
		if err != nil {
			return retry, r, err
		}
		e := m.(*wire.Error)
		code := quic.ApplicationErrorCode(e.GetCode())
		// The engine's own refusal (a bad request) would be the same on any worker: pass it on.
		if e.GetHttpStatus() != 0 || code == wire.CodeBadRequest {
			r.final = e
			return answered, r, errors.New(e.GetMessage())
		}
		return retry, r, fmt.Errorf("worker refused (code %d): %s", code, e.GetMessage())
	case wire.TypeResponseHead:
	default:
		return retry, r, fmt.Errorf("worker sent frame type %d before the answer head", t)
	}
	m, err := wire.Unmarshal(t, payload)
	if err != nil {
		return retry, r, err
	}
	head := m.(*wire.ResponseHead)
	head.Worker = &wire.WorkerInfo{ImageHash: w.image, Attestation: w.attestation, WeightsDigest: w.digest, Coefficient: w.coefficient}
	if err := cs.Send(head); err != nil {
		return answered, r, err
	}
	p.stats.firstToken.Observe(time.Since(start))
	r.started = true
	// From here on the client has seen the answer start: no retry, and any failure ends its stream.
	for {
		t, payload, err := ws.RecvFrame()
		if err != nil {
			r.final = p.midStreamError(rctx, cs, err, log)
			return answered, r, err
		}
		switch t {
		case wire.TypeChunk, wire.TypeUsageChunk, wire.TypeSealedEnd:
			// Chunks that arrived together leave together; the last one waiting goes out at once.
			cs.QueueFrame(t, payload)
			if !ws.FrameBuffered() {
				if err := cs.Flush(); err != nil {
					ws.Cancel(wire.CodeCancelled)
					return answered, r, err
				}
			}
			if t == wire.TypeChunk {
				r.chunks++
			}
		case wire.TypeDone, wire.TypeError:
			m, err := wire.Unmarshal(t, payload)
			if err != nil {
				r.final = p.midStreamError(rctx, cs, err, log)
				return answered, r, err
			}
			if e, ok := m.(*wire.Error); ok {
				r.final = e
				return answered, r, errors.New(e.GetMessage())
			}
			r.done = m.(*wire.Done)
			return answered, r, nil
		default:
			err := fmt.Errorf("unexpected frame type %d", t)
			r.final = p.midStreamError(rctx, cs, err, log)
			return answered, r, err
		}
	}
}

// midStreamError is what the client is told when an answer it started to receive will not finish.
func (p *Proxy) midStreamError(rctx context.Context, cs *transport.Stream, err error, log zerolog.Logger) *wire.Error {
	log.Warn().Err(err).Msg("answer cut off")
	switch {
	case cs.Context().Err() != nil:
		cs.Cancel(wire.CodeCancelled)
		return nil
	case rctx.Err() != nil:
		return &wire.Error{Code: uint32(wire.CodeTimeout), Message: "request timed out mid-answer"}
	case errors.Is(err, io.EOF):
		return &wire.Error{Code: uint32(wire.CodeUpstream), Message: "worker ended the answer without completing it"}
	default:
		return &wire.Error{Code: uint32(wire.CodeUpstream), Message: "worker failed mid-answer"}
	}
}

func (p *Proxy) fail(cs *transport.Stream, code quic.ApplicationErrorCode, msg string) {
	_ = cs.Send(&wire.Error{Code: uint32(code), Message: msg})
	_ = cs.CloseSend()
}
