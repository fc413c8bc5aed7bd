package client

import (
	"context"
	"net/http"
	"strconv"
)

// requestIDKey is the context key of the request ID withRequestID gives a request.
type requestIDKey struct{}

// withRequestID names every request the API answers, refusals and errors included: the ID is in
// X-Cocoon-Request-Id and in x-request-id, the header OpenAI's SDKs read into _request_id, and it
// names the request on the wire and in logs.
func withRequestID(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, named(w, r))
	})
}

// named gives r a new request ID, in w's headers and in the request's context (see authorized on
// why it is not inlined).
//
//go:noinline
func named(w http.ResponseWriter, r *http.Request) *http.Request {
	id := newRequestID()
	setRequestID(w, id)
	return r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
}

func setRequestID(w http.ResponseWriter, id string) {
	w.Header().Set("X-Cocoon-Request-Id", id)
	w.Header().Set("X-Request-Id", id)
}

// requestID is the ID withRequestID gave r, or a new one (set on w) for a handler served without it.
func requestID(w http.ResponseWriter, r *http.Request) string {
	if id, ok := r.Context().Value(requestIDKey{}).(string); ok {
		return id
	}
	id := newRequestID()
	setRequestID(w, id)
	return id
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
