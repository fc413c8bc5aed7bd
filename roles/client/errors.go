package client

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/quic-go/quic-go"

	"github.com/cocoon-network/cocoon/gpu/oaierr"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// apiError is an answer in OpenAI's error shape, or an engine's own error answer passed through.
type apiError struct {
	status int
	typ    string
	code   string // machine-readable code, "" for null
	param  string // the offending request field, "" for null
	msg    string
	body   []byte // the engine's own error JSON, sent as is instead of the fields above
}

func (e *apiError) Error() string { return strconv.Itoa(e.status) + " " + e.msg }

// outcome names the error class for stats and logs.
// An engine's own refusal of the request (a 4xx) is the app's mistake, counted as ours would be;
// only its 5xx answers are engine errors.
func (e *apiError) outcome() string {
	if e.body != nil && (e.status < 400 || e.status > 499) {
		return "engine_error"
	}
	switch e.status {
	case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
		return "bad_request"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusRequestTimeout:
		return "timeout"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusPaymentRequired:
		return "payment_required"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case statusClientClosed:
		return "cancelled"
	case http.StatusBadGateway:
		return "upstream_error"
	case http.StatusServiceUnavailable:
		return "unavailable"
	case http.StatusGatewayTimeout:
		return "timeout"
	}
	return "error"
}

// statusClientClosed is nginx's 499: the app went away before the answer was complete.
const statusClientClosed = 499

// JSON renders the OpenAI error object: {"error":{"message","type","param","code"}}.
func (e *apiError) JSON() []byte {
	if e.body != nil {
		return e.body
	}
	return (&oaierr.Error{Status: e.status, Type: e.typ, Param: e.param, Code: e.code, Message: e.msg}).JSON()
}

func writeError(w http.ResponseWriter, e *apiError) { oaierr.Write(w, e.status, e.JSON()) }

func newError(status int, typ, code, msg string) *apiError {
	return &apiError{status: status, typ: typ, code: code, msg: msg}
}

func errBadRequest(msg string) *apiError {
	return newError(http.StatusBadRequest, "invalid_request_error", "", msg)
}

func errNotFoundPath(path string) *apiError {
	return newError(http.StatusNotFound, "invalid_request_error", "unknown_url", "unknown endpoint "+path)
}

func errNoProxy() *apiError {
	return newError(http.StatusServiceUnavailable, "server_error", "no_proxy", "no proxy is connected")
}

// codeKinds is the OpenAI type and code of the app's answer for each status a wire code maps to;
// any other status is an internal_error.
var codeKinds = map[int]struct{ typ, code string }{
	http.StatusBadRequest:         {"invalid_request_error", ""},
	http.StatusPaymentRequired:    {"insufficient_quota", "payment_required"},
	http.StatusNotFound:           {"invalid_request_error", "model_not_found"},
	http.StatusServiceUnavailable: {"server_error", "overloaded"},
	http.StatusGatewayTimeout:     {"server_error", "timeout"},
	http.StatusBadGateway:         {"server_error", "upstream_error"},
}

// errFromCode maps a wire code (from an Error message or a stream reset) to the app's answer.
func errFromCode(code quic.ApplicationErrorCode, msg string) *apiError {
	status := wire.HTTPStatus(code)
	if code == wire.CodeCancelled {
		// The proxy gave up on the stream, not the app: to the app that is an upstream failure.
		status = http.StatusBadGateway
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	if k, ok := codeKinds[status]; ok {
		return newError(status, k.typ, k.code, msg)
	}
	return newError(status, "server_error", "internal_error", msg)
}

// errFromWire maps a proxy's Error message. An engine's own refusal (status and body set) goes to
// the app exactly as the engine wrote it.
func errFromWire(e *wire.Error) *apiError {
	st := int(e.GetHttpStatus())
	if st < 400 || st > 599 {
		return errFromCode(quic.ApplicationErrorCode(e.GetCode()), e.GetMessage())
	}
	if body := e.GetBody(); json.Valid(body) && bytes.HasPrefix(bytes.TrimSpace(body), []byte{'{'}) {
		return &apiError{status: st, typ: "engine_error", msg: e.GetMessage(), body: append([]byte(nil), body...)}
	}
	// An engine answer that is not JSON would break the app's SDK: keep the status, use our shape.
	out := errFromCode(quic.ApplicationErrorCode(e.GetCode()), e.GetMessage())
	out.status = st
	return out
}

// errTimeout is the answer when the whole-request timeout expires.
func errTimeout() *apiError {
	return newError(http.StatusGatewayTimeout, "server_error", "timeout", "request timed out")
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
