package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/quic-go/quic-go"

	"github.com/cocoon-network/cocoon/transport/wire"
)

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
