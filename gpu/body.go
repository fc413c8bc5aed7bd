package gpu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
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
	Limits    Limits
}

// Limits are the members of a request body that bound what it can cost: how many tokens each
// choice may generate, how many choices each prompt gets, how many prompts run, and what in the
// prompt is not text. A proxy reserves for them; a worker makes the engine obey them (WithLimits).
type Limits struct {
	MaxTokens           uint64 // max_tokens; 0 when absent or null
	MaxCompletionTokens uint64 // max_completion_tokens; 0 when absent or null
	MaxOutputTokens     uint64 // max_output_tokens (Responses API); 0 when absent or null
	N                   uint64 // n, choices per prompt; 0 when absent or null (engines: 1)
	BestOf              uint64 // best_of, sequences generated per prompt; 0 when absent or null
	// Prompts is how many prompts a /v1/completions body runs: 1 for a string or one token list,
	// the list's length for a list of strings or of token lists; 0 when there is no prompt.
	Prompts uint64
	// Images counts the image parts of chat messages: their tokens depend on pixels, not bytes.
	Images uint64
	// Unbounded says why the chat prompt's tokens cannot be bounded before it runs (an audio,
	// video or file part, or a part of unknown type); "" when they can.
	Unbounded string
}

// Completion is the per-choice completion limit the body sets: the largest of max_tokens,
// max_completion_tokens (engines read one or the other) and the Responses API's
// max_output_tokens, 0 when it sets none.
func (l Limits) Completion() uint64 {
	return max(l.MaxTokens, l.MaxCompletionTokens, l.MaxOutputTokens)
}

// Choices is how many sequences each prompt may generate: n or best_of, whichever is larger, at
// least 1.
func (l Limits) Choices() uint64 { return max(l.N, l.BestOf, 1) }

// imageParts are the chat content part types that carry an image. Every other type but text
// makes the prompt unbounded.
var imageParts = map[string]bool{"image_url": true, "input_image": true, "image": true, "image_pil": true, "image_embeds": true}

// factKeys are the members ReadFacts reads, in the order of its value array.
var factKeys = [...]string{"model", "stream", "max_tokens", "max_completion_tokens", "n", "best_of", "prompt", "messages"}

// ReadFacts reads the model, stream and limit members of a request body. A body that is not a
// JSON object, a model that is not a string, a stream that is not a boolean or a limit that is not
// a non-negative integer is an ErrBadRequest: engines coerce such values in ways a relay cannot
// foresee (pydantic takes "yes" as true and "2000" as 2000).
func ReadFacts(body []byte) (Facts, error) {
	var top [len(factKeys)][]byte
	f, err := readTop(body, factKeys[:], top[:])
	if err != nil {
		return f, err
	}
	l := &f.Limits
	for i, dst := range [...]*uint64{&l.MaxTokens, &l.MaxCompletionTokens, &l.N, &l.BestOf} {
		if *dst, err = count(factKeys[2+i], top[2+i]); err != nil {
			return f, err
		}
	}
	if l.Prompts, err = prompts(top[6]); err != nil {
		return f, err
	}
	if l.Images, l.Unbounded, err = media(top[7]); err != nil {
		return f, err
	}
	return f, nil
}

// readTop picks the members keys of body, a JSON object whose first two keys are model and
// stream, into vals, and reads the model and stream facts.
func readTop(body []byte, keys []string, vals [][]byte) (Facts, error) {
	var f Facts
	if !json.Valid(body) {
		return f, fmt.Errorf("%w: not valid JSON", ErrBadRequest)
	}
	if _, err := pick(body, keys, vals); err != nil {
		return f, err
	}
	return f, f.read(vals[0], vals[1])
}

// read sets the model and stream facts from their members' values (nil: absent).
func (f *Facts) read(model, stream []byte) error {
	if v := model; v != nil && string(v) != "null" {
		if v[0] != '"' || json.Unmarshal(v, &f.Model) != nil {
			return fmt.Errorf("%w: model is not a string", ErrBadRequest)
		}
		f.HasModel = true
	}
	if v := stream; v != nil {
		switch string(v) {
		case "true":
			f.Stream, f.HasStream = true, true
		case "false":
			f.HasStream = true
		case "null":
		default:
			return fmt.Errorf("%w: stream is not a boolean", ErrBadRequest)
		}
	}
	return nil
}

// pick sets vals[i] to the value of the top-level member keys[i] of the JSON object b (valid
// JSON) by exact key, the last duplicate winning, nil when absent; it returns how many members b
// has. It allocates nothing unless the quick scan cannot vouch for b.
func pick(b []byte, keys []string, vals [][]byte) (members int, err error) {
	clear(vals)
	if walkObject(b, func(k []byte, vs, ve int) {
		members++
		for i, key := range keys {
			if string(k) == key {
				vals[i] = b[vs:ve]
			}
		}
	}) {
		return members, nil
	}
	// Escaped keys or deep nesting: decode the top level properly (the last duplicate wins).
	clear(vals)
	var slow map[string]json.RawMessage
	if err := json.Unmarshal(b, &slow); err != nil || slow == nil {
		return 0, fmt.Errorf("%w: not a JSON object", ErrBadRequest)
	}
	for i, key := range keys {
		vals[i] = slow[key]
	}
	return len(slow), nil
}

// elements calls f with each element of the JSON array b (valid JSON), and stops at f's first
// error. It fails when b is not an array.
func elements(b []byte, f func(v []byte) error) error {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '[' {
		return errNotArray
	}
	fast := func() bool {
		j := skipWS(b, i+1)
		if j < len(b) && b[j] == ']' {
			return true
		}
		for j < len(b) {
			ve := skipValue(b, j)
			if ve < 0 {
				return false
			}
			j = skipWS(b, ve)
			if j >= len(b) || (b[j] != ',' && b[j] != ']') {
				return false
			}
			last := b[j] == ']'
			j = skipWS(b, j+1)
			if last {
				return true
			}
		}
		return false
	}
	// A quick pass for structure first, so that f sees no element of an array the quick scan
	// cannot vouch for (deep nesting): then encoding/json splits it.
	if !fast() {
		var list []json.RawMessage
		if err := json.Unmarshal(b, &list); err != nil {
			return errNotArray
		}
		for _, v := range list {
			if err := f(v); err != nil {
				return err
			}
		}
		return nil
	}
	j := skipWS(b, i+1)
	for j < len(b) && b[j] != ']' {
		ve := skipValue(b, j)
		if err := f(b[j:ve]); err != nil {
			return err
		}
		j = skipWS(b, ve)
		if b[j] == ',' {
			j = skipWS(b, j+1)
		}
	}
	return nil
}

var errNotArray = errors.New("not a JSON array")

// count reads the value v of member key as a non-negative integer; 0 when absent or null.
func count(key string, v []byte) (uint64, error) {
	if v == nil || string(v) == "null" {
		return 0, nil
	}
	// Digits only: no sign, fraction or exponent, which engines would round or refuse.
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %s is not a non-negative integer", ErrBadRequest, key)
		}
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s is out of range", ErrBadRequest, key)
	}
	return n, nil
}

// prompts counts the prompts of a /v1/completions prompt member (nil: absent).
func prompts(v []byte) (uint64, error) {
	if v == nil || string(v) == "null" {
		return 0, nil
	}
	if v[0] != '[' {
		return 1, nil // a string, or something the engine refuses
	}
	var n uint64
	tokens := false
	err := elements(v, func(e []byte) error {
		if n == 0 && e[0] != '"' && e[0] != '[' {
			tokens = true // a list of token ids is one prompt
		}
		n++
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("%w: prompt: %w", ErrBadRequest, err)
	}
	if tokens || n == 0 {
		return 1, nil
	}
	return n, nil
}

// media counts the image parts of chat messages (nil: absent) and says why the prompt cannot be
// bounded, if it cannot.
func media(v []byte) (images uint64, unbounded string, err error) {
	if v == nil || v[0] != '[' {
		return 0, "", nil // absent, null, or refused by the engine
	}
	err = elements(v, func(msg []byte) error {
		if msg[0] != '{' {
			return nil
		}
		var mv [1][]byte
		if _, err := pick(msg, contentKey[:], mv[:]); err != nil {
			return err
		}
		content := mv[0]
		if content == nil || content[0] != '[' {
			return nil
		}
		return elements(content, func(part []byte) error {
			if part[0] != '{' {
				return nil
			}
			var pv [2][]byte
			n, err := pick(part, partKeys[:], pv[:])
			if err != nil {
				return err
			}
			var typ string
			if t := pv[0]; t != nil && t[0] == '"' {
				_ = json.Unmarshal(t, &typ)
			} else if pv[1] != nil && n == 1 {
				typ = "text"
			}
			switch {
			case typ == "text" || typ == "refusal":
			case imageParts[typ]:
				images++
			case unbounded == "" && typ == "":
				unbounded = "a message content part has no type"
			case unbounded == "":
				unbounded = fmt.Sprintf("message content of type %q", typ)
			}
			return nil
		})
	})
	if err != nil {
		return 0, "", fmt.Errorf("%w: messages: %w", ErrBadRequest, err)
	}
	return images, unbounded, nil
}

var (
	contentKey = [...]string{"content"}
	partKeys   = [...]string{"type", "text"}
)

// limitKeys are the top-level members engines read as a request's token and choice limits; the
// engine-specific n_predict (llama.cpp) wins over max_tokens where it is read, so it goes too.
var limitKeys = map[string]bool{"max_tokens": true, "max_completion_tokens": true, "max_output_tokens": true, "n_predict": true, "n": true}

// WithLimits returns body with its limits replaced by the ones a request was reserved for: every
// top-level max_tokens, max_completion_tokens (chat), n_predict and n, duplicates and escaped
// spellings included, is dropped, and max_tokens (and for chat max_completion_tokens) set to
// completion and n to choices. Every other member keeps its bytes and order. A Responses body gets
// max_output_tokens alone (it has no n); an embeddings or transcription body, which generates no
// choices the body could multiply, is returned as it is.
func WithLimits(body []byte, kind Kind, completion, choices uint64) ([]byte, error) {
	if kind == KindEmbeddings || kind == KindTranscription {
		return body, nil
	}
	if !json.Valid(body) {
		return nil, fmt.Errorf("%w: not valid JSON", ErrBadRequest)
	}
	var set string
	switch kind {
	case KindResponses:
		set = fmt.Sprintf(`"max_output_tokens":%d`, completion)
	case KindChat:
		set = fmt.Sprintf(`"max_tokens":%d,"max_completion_tokens":%d,"n":%d`, completion, completion, choices)
	default:
		set = fmt.Sprintf(`"max_tokens":%d,"n":%d`, completion, choices)
	}
	out := make([]byte, 0, len(body)+len(set)+2)
	out = append(out, '{')
	kept := func(member []byte) {
		out = append(out, member...)
		out = append(out, ',')
	}
	if !walkObject(body, func(k []byte, _, ve int) {
		if !limitKeys[string(k)] {
			// k is body[ks+1 : ke-1]: the member starts at its key's opening quote.
			kept(body[cap(body)-cap(k)-1 : ve])
		}
	}) {
		out = out[:1]
		if err := eachMember(body, func(k string, v json.RawMessage) {
			if !limitKeys[k] {
				key, _ := json.Marshal(k)
				kept(append(append(key, ':'), v...))
			}
		}); err != nil {
			return nil, err
		}
	}
	out = append(out, set...)
	return append(out, '}'), nil
}

// eachMember calls f with each top-level member of the JSON object b, keys decoded, in order.
func eachMember(b []byte, f func(k string, v json.RawMessage)) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("%w: not a JSON object", ErrBadRequest)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
		f(tok.(string), v)
	}
	return nil
}
