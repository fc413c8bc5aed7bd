package gpu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// member is the byte span of one member value in a JSON object.
type member struct {
	start, end int
	found      bool
}

// scanObject checks that obj is one JSON object (and nothing else but
// whitespace), and returns the span of the value of key at its top level and
// whether the object has any members. When the key repeats, the last one
// wins, as it does for the Python JSON parsers engines use.
func scanObject(obj []byte, key string) (m member, members int, err error) {
	ok := walkObject(obj, func(k []byte, vs, ve int) {
		members++
		if string(k) == key {
			m = member{start: vs, end: ve, found: true}
		}
	})
	if ok {
		return m, members, nil
	}
	return scanObjectSlow(obj, key)
}

// scanObjectSlow is scanObject with encoding/json, for what walkObject
// cannot vouch for; it also rejects malformed JSON.
func scanObjectSlow(obj []byte, key string) (m member, members int, err error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	tok, err := dec.Token()
	if err != nil {
		return member{}, 0, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return member{}, 0, errors.New("not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return member{}, 0, err
		}
		k, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return member{}, 0, err
		}
		members++
		if k == key {
			end := int(dec.InputOffset())
			m = member{start: end - len(raw), end: end, found: true}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return member{}, 0, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return member{}, 0, errors.New("data after the JSON object")
	}
	return m, members, nil
}

// withIncludeUsage returns body with stream_options.include_usage set to
// true, so that the engine ends its stream with a usage chunk. Every other
// byte of the body is kept as the client sent it: no field is reordered,
// dropped or re-encoded. asked reports whether the client had already asked
// for usage itself (then body is returned unchanged).
func withIncludeUsage(body []byte) (out []byte, asked bool, err error) {
	// The quick scan below only looks at the top level; a body that is not valid JSON anywhere
	// must not reach the engine spliced into something else.
	if !json.Valid(body) {
		return nil, false, fmt.Errorf("%w: not valid JSON", ErrBadRequest)
	}
	so, members, err := scanObject(body, "stream_options")
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if !so.found {
		closing := bytes.LastIndexByte(body, '}')
		ins := `"stream_options":{"include_usage":true}`
		if members > 0 {
			ins = "," + ins
		}
		return splice(body, closing, closing, ins), false, nil
	}
	val := body[so.start:so.end]
	switch {
	case string(val) == "null":
		return splice(body, so.start, so.end, `{"include_usage":true}`), false, nil
	case val[0] != '{':
		return nil, false, fmt.Errorf("%w: stream_options is not an object", ErrBadRequest)
	}
	iu, n, err := scanObject(val, "include_usage")
	if err != nil {
		return nil, false, fmt.Errorf("%w: stream_options: %w", ErrBadRequest, err)
	}
	if iu.found {
		if string(val[iu.start:iu.end]) == "true" {
			return body, true, nil
		}
		return splice(body, so.start+iu.start, so.start+iu.end, "true"), false, nil
	}
	ins := `"include_usage":true`
	if n > 0 {
		ins += ","
	}
	open := so.start + bytes.IndexByte(val, '{') + 1
	return splice(body, open, open, ins), false, nil
}

// splice returns a new slice with b[i:j] replaced by s.
func splice(b []byte, i, j int, s string) []byte {
	out := make([]byte, 0, len(b)-(j-i)+len(s))
	out = append(out, b[:i]...)
	out = append(out, s...)
	return append(out, b[j:]...)
}

// Facts are the members of a request body that an engine acts on and that the network routes and
// charges by, read once as the engine reads them: exact, case-sensitive keys ("MODEL" is not
// "model"), escapes decoded, and the last of duplicate keys winning, as in the Python JSON
// parsers engines use.
type Facts struct {
	Model     string // "" when the body names none
	HasModel  bool
	Stream    bool // false when absent or null, the engines' default
	HasStream bool
}

// ReadFacts reads the model and stream members of a request body. A body that is not a JSON
// object, a model that is not a string or a stream that is not a boolean is an ErrBadRequest:
// engines coerce such values in ways a relay cannot foresee (pydantic takes "yes" as true).
func ReadFacts(body []byte) (Facts, error) {
	var f Facts
	if !json.Valid(body) {
		return f, fmt.Errorf("%w: not valid JSON", ErrBadRequest)
	}
	var model, stream member
	var raw []byte
	if walkObject(body, func(k []byte, vs, ve int) {
		switch string(k) {
		case "model":
			model = member{start: vs, end: ve, found: true}
		case "stream":
			stream = member{start: vs, end: ve, found: true}
		}
	}) {
		raw = body
	} else {
		// Escaped keys or deep nesting: decode the top level properly (the last duplicate wins).
		var top map[string]json.RawMessage
		if err := json.Unmarshal(body, &top); err != nil || top == nil {
			return f, fmt.Errorf("%w: not a JSON object", ErrBadRequest)
		}
		raw = nil
		if v, ok := top["model"]; ok {
			raw = append(raw, v...)
			model = member{start: 0, end: len(v), found: true}
		}
		if v, ok := top["stream"]; ok {
			stream = member{start: len(raw), end: len(raw) + len(v), found: true}
			raw = append(raw, v...)
		}
	}
	if model.found {
		v := raw[model.start:model.end]
		if string(v) != "null" {
			if v[0] != '"' || json.Unmarshal(v, &f.Model) != nil {
				return f, fmt.Errorf("%w: model is not a string", ErrBadRequest)
			}
			f.HasModel = true
		}
	}
	if stream.found {
		switch string(raw[stream.start:stream.end]) {
		case "true":
			f.Stream, f.HasStream = true, true
		case "false":
			f.HasStream = true
		case "null":
		default:
			return f, fmt.Errorf("%w: stream is not a boolean", ErrBadRequest)
		}
	}
	return f, nil
}
