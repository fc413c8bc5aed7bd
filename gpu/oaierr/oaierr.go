// Package oaierr builds OpenAI's error answer, {"error":{"message","type","param","code"}},
// for every part of cocoon that answers an OpenAI client: the client role's local API and the
// built-in engine. One builder keeps the bytes the same wherever an SDK may parse them.
package oaierr

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Error is one error answer in OpenAI's shape.
type Error struct {
	Status  int    // HTTP status
	Type    string // "invalid_request_error", "server_error", …
	Param   string // the offending request field; "" is sent as null
	Code    string // machine-readable code; "" is sent as null
	Message string
}

// detail is the wire form; param and code are always present, null when unset, as OpenAI sends them.
type detail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// JSON renders e as {"error":{"message","type","param","code"}}.
func (e *Error) JSON() []byte {
	d := detail{Message: e.Message, Type: e.Type}
	if e.Param != "" {
		d.Param = &e.Param
	}
	if e.Code != "" {
		d.Code = &e.Code
	}
	b, _ := json.Marshal(struct {
		Error detail `json:"error"`
	}{d}) // cannot fail: strings and pointers to strings only
	return b
}

// Write sends e as the whole HTTP answer.
func (e *Error) Write(w http.ResponseWriter) { Write(w, e.Status, e.JSON()) }

// Write sends body, an error JSON object, as the whole HTTP answer with the given status: for
// an error built here or one passed through as another party wrote it.
func Write(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
