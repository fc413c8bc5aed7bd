package builtin

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/gpu/oaierr"
	"github.com/cocoon-network/cocoon/settle"
)

// job is a parsed request.
type job struct {
	kind         gpu.Kind
	stream       bool
	includeUsage bool
	promptTokens int64
	seed         uint64
	start        int    // index in the corpus of the answer's first token
	length       int    // tokens to produce
	finish       string // "stop" or "length"
	produced     int    // tokens produced so far
	id           string
	created      int64
	model        []byte // JSON-quoted model name
}

func (j *job) usage() settle.Usage {
	return settle.Usage{PromptTokens: uint64(j.promptTokens), CompletionTokens: uint64(j.produced)}
}

// apiRequest is what the engine reads of a request: values as they stand in the body, each
// checked for its type.
type apiRequest struct {
	model               string
	messages            []byte // an array of objects (or nulls), or nil
	prompt              []byte // nil when missing
	maxTokens           *int64
	maxCompletionTokens *int64
	n                   *int64
	stream              bool
	includeUsage        bool
}

// decodeRequest reads the fields the engine acts on by their exact keys; any of them of the
// wrong type fails the whole request, as one typed decode would. A key that repeats keeps its
// last value, as in Python's json.
func decodeRequest(body []byte) (apiRequest, error) {
	var req apiRequest
	if !json.Valid(body) {
		return req, errors.New("not valid JSON")
	}
	body = bytes.TrimSpace(body) // keeps the walk within the value
	var model, maxTokens, maxCompletionTokens, n, stream, streamOptions []byte
	err := pick(body, field{"model", &model}, field{"messages", &req.messages}, field{"prompt", &req.prompt},
		field{"max_tokens", &maxTokens}, field{"max_completion_tokens", &maxCompletionTokens}, field{"n", &n},
		field{"stream", &stream}, field{"stream_options", &streamOptions})
	if err != nil {
		return req, err
	}
	if model != nil {
		if req.model, err = stringValue(model); err != nil {
			return req, fmt.Errorf("model: %w", err)
		}
	}
	for _, f := range []struct {
		key string
		raw []byte
		dst **int64
	}{{"max_tokens", maxTokens, &req.maxTokens}, {"max_completion_tokens", maxCompletionTokens, &req.maxCompletionTokens}, {"n", n, &req.n}} {
		if f.raw == nil {
			continue
		}
		if err := json.Unmarshal(f.raw, f.dst); err != nil {
			return req, fmt.Errorf("%s: %w", f.key, err)
		}
	}
	if stream != nil {
		if req.stream, err = boolValue(stream); err != nil {
			return req, fmt.Errorf("stream: %w", err)
		}
	}
	if streamOptions != nil {
		var iu []byte
		err := pick(streamOptions, field{"include_usage", &iu})
		if err == nil {
			req.includeUsage, err = boolValue(iu)
		}
		if err != nil {
			return req, fmt.Errorf("stream_options: %w", err)
		}
	}
	if req.messages != nil {
		if err := eachMessage(req.messages, func(role, _ []byte) error {
			if !isNull(role) && role[0] != '"' {
				return errType
			}
			return nil
		}); err != nil {
			return req, fmt.Errorf("messages: %w", err)
		}
	}
	return req, nil
}

// eachMessage calls f with the role and content (nil when missing) of each message.
func eachMessage(messages []byte, f func(role, content []byte) error) error {
	return elements(messages, func(m []byte) error {
		var role, content []byte
		if err := pick(m, field{"role", &role}, field{"content", &content}); err != nil {
			return err
		}
		return f(role, content)
	})
}

func (e *Engine) parse(kind gpu.Kind, body []byte) (job, *oaierr.Error) {
	if kind == gpu.KindResponses {
		return e.parseResponses(body)
	}
	req, err := decodeRequest(body)
	if err != nil {
		return job{}, badRequest("request body is not valid JSON for this endpoint")
	}
	if req.model != "" && req.model != e.cfg.Model {
		return job{}, errUnknownModel(req.model)
	}
	if req.n != nil && *req.n != 1 {
		return job{}, badParam("n", "only n=1 is supported")
	}
	h := fnv.New64a()
	var frame [8]byte
	write := func(s string) {
		binary.BigEndian.PutUint64(frame[:], uint64(len(s)))
		h.Write(frame[:])
		h.Write([]byte(s))
	}
	var prompt int
	switch kind {
	case gpu.KindChat:
		count := 0
		_ = elements(req.messages, func([]byte) error { count++; return nil })
		if count == 0 {
			return job{}, badParam("messages", "messages must be a non-empty array")
		}
		errContent := errors.New("bad content")
		err := eachMessage(req.messages, func(role, content []byte) error {
			text, ok := contentText(content)
			if !ok {
				return errContent
			}
			r, _ := stringValue(role) // checked by decodeRequest
			write(r)
			write(text)
			prompt += CountTokens(text)
			return nil
		})
		if err != nil {
			return job{}, badParam("messages", "message content must be a string or an array of content parts")
		}
	case gpu.KindCompletion:
		text, ok := promptText(req.prompt)
		if !ok {
			return job{}, badParam("prompt", "prompt must be a string or an array of one string")
		}
		write(text)
		prompt = CountTokens(text)
	default:
		return job{}, badRequest("unknown endpoint")
	}
	param, maxTok := "max_tokens", req.maxTokens
	if req.maxCompletionTokens != nil {
		param, maxTok = "max_completion_tokens", req.maxCompletionTokens
	}
	return e.newJob(kind, h.Sum64(), prompt, param, maxTok, req.stream, req.includeUsage)
}

// newJob is the job of a request whose prompt hashes to seed and is prompt tokens long, limited
// by the request member param (maxTok; nil when absent).
func (e *Engine) newJob(kind gpu.Kind, seed uint64, prompt int, param string, maxTok *int64, stream, includeUsage bool) (job, *oaierr.Error) {
	limit := int64(e.cfg.MaxTokens)
	if maxTok != nil {
		if *maxTok < 1 {
			return job{}, badParam(param, param+" must be at least 1")
		}
		limit = min(limit, *maxTok)
	}
	first := starts[seed%uint64(len(starts))]
	natural := sentenceEnd(first, e.cfg.Tokens-e.cfg.Tokens/5+int(seed%uint64(2*(e.cfg.Tokens/5)+1)))
	j := job{
		start:        first,
		kind:         kind,
		stream:       stream,
		includeUsage: includeUsage,
		promptTokens: int64(prompt),
		seed:         seed,
		length:       natural,
		finish:       "stop",
		created:      e.cfg.Now().Unix(),
	}
	if int64(natural) > limit {
		j.length, j.finish = int(limit), "length"
	}
	prefix := map[gpu.Kind]string{gpu.KindChat: "chatcmpl-", gpu.KindCompletion: "cmpl-", gpu.KindResponses: "resp_", gpu.KindTranscription: "trsc_"}[kind]
	j.id = fmt.Sprintf("%s%016x%08x", prefix, seed, e.seq.Add(1))
	j.model, _ = json.Marshal(e.cfg.Model)
	return j, nil
}

// contentText returns the text of a chat message's content: a string, null
// (an assistant message with tool calls) or an array of parts, of which the
// text parts count.
func contentText(raw []byte) (string, bool) {
	if isNull(raw) {
		return "", true
	}
	if raw[0] == '"' {
		s, _ := stringValue(raw)
		return s, true
	}
	var out []byte
	err := elements(raw, func(part []byte) error {
		var typ, text []byte
		if err := pick(part, field{"type", &typ}, field{"text", &text}); err != nil {
			return err
		}
		t, err := stringValue(typ)
		if err != nil {
			return err
		}
		if _, err := stringValue(text); err != nil {
			return err
		}
		if t == "text" {
			if len(out) > 0 {
				out = append(out, '\n')
			}
			s, _ := stringValue(text)
			out = append(out, s...)
		}
		return nil
	})
	if err != nil {
		return "", false
	}
	return string(out), true
}

// promptText returns the text of a completion's prompt: a string or an array of one string.
func promptText(raw []byte) (string, bool) {
	if raw == nil {
		return "", false
	}
	if raw[0] != '[' {
		s, err := stringValue(raw)
		return s, err == nil
	}
	var s string
	n := 0
	err := elements(raw, func(v []byte) error {
		n++
		var err error
		s, err = stringValue(v)
		return err
	})
	if err != nil || n != 1 {
		return "", false
	}
	return s, true
}
