package client

import (
	"net/http"
	"strconv"
)

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
