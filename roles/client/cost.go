package client

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"time"
)

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
