package gpu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cocoon-network/cocoon/settle"
)

var usageKey = []byte(`"usage"`)

// usageJSON is the OpenAI usage object in each endpoint's spelling: prompt_tokens and
// completion_tokens (chat, completions, embeddings), input_tokens and output_tokens (responses,
// token-metered transcriptions). The fields we do not meter are left out so that decoding skips
// them.
type usageJSON struct {
	PromptTokens        *int64 `json:"prompt_tokens"`
	CompletionTokens    *int64 `json:"completion_tokens"`
	PromptTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
	InputTokens        *int64 `json:"input_tokens"`
	OutputTokens       *int64 `json:"output_tokens"`
	InputTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
}

// usage is j as settle.Usage; where both spellings give a count, the larger is metered (an
// engine that sends both must not be charged by the smaller). ok is false when j counts no
// token at all (a transcription's {"type":"duration","seconds":…}).
func (j *usageJSON) usage() (u settle.Usage, ok bool, err error) {
	neg := false
	val := func(p *int64) int64 {
		if p == nil {
			return 0
		}
		ok, neg = true, neg || *p < 0
		return *p
	}
	prompt, completion := max(val(j.PromptTokens), val(j.InputTokens)), max(val(j.CompletionTokens), val(j.OutputTokens))
	cached := max(j.PromptTokensDetails.CachedTokens, j.InputTokensDetails.CachedTokens)
	reasoning := max(j.CompletionTokensDetails.ReasoningTokens, j.OutputTokensDetails.ReasoningTokens)
	if neg || min(j.PromptTokensDetails.CachedTokens, j.InputTokensDetails.CachedTokens, j.CompletionTokensDetails.ReasoningTokens, j.OutputTokensDetails.ReasoningTokens) < 0 {
		return settle.Usage{}, false, errors.New("parse usage: negative token count")
	}
	if !ok {
		return settle.Usage{}, false, nil
	}
	return settle.Usage{PromptTokens: uint64(prompt), CachedTokens: uint64(cached), CompletionTokens: uint64(completion), ReasoningTokens: uint64(reasoning)}, true, nil
}

// choicesEmpty records whether "choices" is an empty array (or absent/null).
type choicesEmpty bool

func (c *choicesEmpty) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) >= 2 && b[0] == '[' {
		*c = choicesEmpty(len(bytes.TrimSpace(b[1:len(b)-1])) == 0)
	}
	return nil
}

// UsageOf extracts the token usage from an OpenAI response body or stream
// chunk. ok is false when the object has no usage (absent or null).
// Negative counts are an error: they cannot be metered honestly.
func UsageOf(data []byte) (u settle.Usage, ok bool, err error) {
	u, ok, _, err = parseUsage(data)
	return u, ok, err
}

// parseUsage is UsageOf that also reports whether the object has no choices,
// which marks the final usage-only chunk of a stream.
//
// Keys are matched exactly, as the engines' and OpenAI clients' JSON parsers
// do (encoding/json alone would also take "Usage"), and the last of duplicate
// keys wins.
func parseUsage(data []byte) (u settle.Usage, ok, noChoices bool, err error) {
	if !bytes.Contains(data, usageKey) {
		// Fast path for the ordinary chunks of a stream.
		return settle.Usage{}, false, false, nil
	}
	usage, choices, scanned := scanTop(data)
	if !scanned {
		// Escaped keys, very deep nesting or malformed JSON: decode properly.
		var top map[string]json.RawMessage
		if err := json.Unmarshal(data, &top); err != nil {
			return settle.Usage{}, false, false, fmt.Errorf("parse usage: %w", err)
		}
		usage, choices = top["usage"], top["choices"]
	}
	noChoices = isEmptyArray(choices)
	if len(usage) == 0 || string(usage) == "null" {
		// SGLang sends "usage":null in every chunk; this is its fast path.
		return settle.Usage{}, false, noChoices, nil
	}
	u, ok, err = decodeUsage(usage)
	return u, ok, noChoices, err
}

// decodeUsage reads a usage object (a JSON object).
func decodeUsage(usage []byte) (settle.Usage, bool, error) {
	var j usageJSON
	if err := json.Unmarshal(usage, &j); err != nil {
		return settle.Usage{}, false, fmt.Errorf("parse usage: %w", err)
	}
	return j.usage()
}

// isEmptyArray reports whether v (a JSON value or nil) is absent, null or [].
func isEmptyArray(v []byte) bool {
	var c choicesEmpty = true
	_ = c.UnmarshalJSON(v)
	return bool(c)
}

// scanTop finds the values of the top-level "usage" and "choices" members of
// a JSON object without decoding it (the last of duplicate keys wins, as in
// encoding/json). ok is false when the scan cannot vouch for its answer; the
// caller then decodes the object properly.
func scanTop(b []byte) (usage, choices []byte, ok bool) {
	ok = walkObject(b, func(key []byte, vs, ve int) {
		switch string(key) {
		case "usage":
			usage = b[vs:ve]
		case "choices":
			choices = b[vs:ve]
		}
	})
	if !ok {
		return nil, nil, false
	}
	return usage, choices, true
}

// walkObject calls f with each top-level member of the JSON object b: its
// key and the span of its value. It returns false when it cannot vouch for
// the result: b is not a well-formed object as far as a quick scan can tell
// (literals and numbers are only checked for their characters), a key is
// escaped, or values nest too deep. Callers then fall back to encoding/json.
func walkObject(b []byte, f func(key []byte, vs, ve int)) bool {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipWS(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		end := skipString(b, i)
		if end < 0 {
			return false
		}
		key := b[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			return false
		}
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		vs := skipWS(b, i+1)
		ve := skipValue(b, vs)
		if ve < 0 {
			return false
		}
		f(key, vs, ve)
		i = skipWS(b, ve)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return skipWS(b, i+1) == len(b)
		default:
			return false
		}
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] (a quote),
// or -1 if it does not end.
func skipString(b []byte, i int) int {
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return -1
		}
		j += k
		// The quote is escaped if an odd number of backslashes precede it.
		n := 0
		for p := j - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		j++
		if n%2 == 0 {
			return j
		}
	}
}

// skipValue returns the index after the value starting at b[i], or -1 when
// the value is cut short or not a value. Containers are only checked for
// balance; literals and numbers for their characters.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		var stack [64]byte // nesting deeper than this falls back to decoding
		depth := 0
		for j := i; j < len(b); j++ {
			switch c := b[j]; c {
			case '"':
				e := skipString(b, j)
				if e < 0 {
					return -1
				}
				j = e - 1
			case '{', '[':
				if depth == len(stack) {
					return -1
				}
				stack[depth] = c + 2 // '{'+2 == '}', '['+2 == ']'
				depth++
			case '}', ']':
				if depth == 0 || stack[depth-1] != c {
					return -1
				}
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default:
		j := i
		for j < len(b) && (b[j] == '-' || b[j] == '+' || b[j] == '.' || (b[j] >= '0' && b[j] <= '9') || (b[j] >= 'a' && b[j] <= 'z') || (b[j] >= 'A' && b[j] <= 'Z')) {
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
}

// responsesTerminal are the types of a Responses API stream's last event, which carries the
// whole response, its usage included.
var responsesTerminal = map[string]bool{"response.completed": true, "response.incomplete": true, "response.failed": true}

var (
	eventKeys    = [...]string{"type", "response"}
	usageKeyName = [...]string{"usage"}
)

// responsesEvent reads one event of a Responses API stream (its data): whether it is the last
// one, and that one's usage (response.usage). Keys are matched exactly, the last duplicate
// winning, as for every other answer.
func responsesEvent(data []byte) (u settle.Usage, ok, terminal bool, err error) {
	if !bytes.Contains(data, []byte(`"response.`)) || !bytes.Contains(data, usageKey) {
		return settle.Usage{}, false, false, nil // a delta: no usage, not the last event
	}
	if !json.Valid(data) {
		return settle.Usage{}, false, false, errors.New("parse responses event: not valid JSON")
	}
	var top [len(eventKeys)][]byte
	if _, err := pick(data, eventKeys[:], top[:]); err != nil {
		return settle.Usage{}, false, false, fmt.Errorf("parse responses event: %w", err)
	}
	var typ string
	if t := top[0]; t == nil || t[0] != '"' || json.Unmarshal(t, &typ) != nil || !responsesTerminal[typ] {
		return settle.Usage{}, false, false, nil
	}
	if r := top[1]; r != nil && r[0] == '{' {
		var uv [1][]byte
		if _, err := pick(r, usageKeyName[:], uv[:]); err != nil {
			return settle.Usage{}, false, true, fmt.Errorf("parse responses event: %w", err)
		}
		if v := uv[0]; v != nil && v[0] == '{' {
			u, ok, err = decodeUsage(v)
			return u, ok, true, err
		}
	}
	return settle.Usage{}, false, true, nil
}

var (
	transcriptDone = []byte(`"transcript.text.done"`)
	transcriptKeys = [...]string{"type", "choices"}
)

// transcriptionEvent reads one event of a streamed transcription, which comes in two shapes:
// vLLM's chat-like chunks, ending with a usage chunk whose choices are empty, and OpenAI's events,
// the last of which (transcript.text.done) carries the usage and the whole text. Only the former's
// usage chunk is one: the latter is the app's in any case.
func transcriptionEvent(data []byte) (u settle.Usage, ok, usageChunk, terminal bool, err error) {
	if u, ok, _, err = parseUsage(data); err != nil || !ok || !json.Valid(data) {
		return u, ok, false, false, err
	}
	var top [len(transcriptKeys)][]byte
	if _, err := pick(data, transcriptKeys[:], top[:]); err != nil {
		return u, ok, false, false, nil
	}
	if bytes.Equal(top[0], transcriptDone) {
		return u, ok, false, true, nil
	}
	return u, ok, top[1] != nil && isEmptyArray(top[1]), false, nil
}
