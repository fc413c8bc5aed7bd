package builtin

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"strconv"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/gpu/oaierr"
)

// parseResponses reads a /v1/responses body: instructions and input (a string, or items whose
// content is a string or parts with text) make the prompt; max_output_tokens limits the answer.
func (e *Engine) parseResponses(body []byte) (job, *oaierr.Error) {
	if !json.Valid(body) {
		return job{}, badRequest("request body is not valid JSON for this endpoint")
	}
	body = bytes.TrimSpace(body)
	var model, input, instructions, maxOut, stream []byte
	if err := pick(body, field{"model", &model}, field{"input", &input}, field{"instructions", &instructions},
		field{"max_output_tokens", &maxOut}, field{"stream", &stream}); err != nil {
		return job{}, badRequest("request body must be a JSON object")
	}
	if m, err := stringValue(model); err != nil || (m != "" && m != e.cfg.Model) {
		return job{}, errUnknownModel(m)
	}
	st, err := boolValue(stream)
	if err != nil {
		return job{}, badParam("stream", "stream must be a boolean")
	}
	var limit *int64
	if !isNull(maxOut) {
		limit = new(int64)
		if json.Unmarshal(maxOut, limit) != nil {
			return job{}, badParam("max_output_tokens", "max_output_tokens must be an integer")
		}
	}
	h := fnv.New64a()
	var frame [8]byte
	prompt := 0
	write := func(s string) {
		binary.BigEndian.PutUint64(frame[:], uint64(len(s)))
		h.Write(frame[:])
		h.Write([]byte(s))
		prompt += CountTokens(s)
	}
	ins, err := stringValue(instructions)
	if err != nil {
		return job{}, badParam("instructions", "instructions must be a string")
	}
	write(ins)
	switch {
	case isNull(input):
		return job{}, badParam("input", "input is required")
	case input[0] == '"':
		s, _ := stringValue(input)
		write(s)
	default:
		err := elements(input, func(item []byte) error {
			var content []byte
			if err := pick(item, field{"content", &content}); err != nil {
				return err
			}
			text, ok := responsesText(content)
			if !ok {
				return errType
			}
			write(text)
			return nil
		})
		if err != nil {
			return job{}, badParam("input", "input must be a string or an array of items whose content is a string or an array of parts")
		}
	}
	return e.newJob(gpu.KindResponses, h.Sum64(), prompt, "max_output_tokens", limit, st, false)
}

// responsesText is the text of a Responses item's content: a string, or the text of its parts
// (input_text, output_text); other parts (images, files) add nothing.
func responsesText(raw []byte) (string, bool) {
	if isNull(raw) {
		return "", true
	}
	if raw[0] == '"' {
		s, err := stringValue(raw)
		return s, err == nil
	}
	var out []byte
	err := elements(raw, func(part []byte) error {
		var text []byte
		if err := pick(part, field{"text", &text}); err != nil {
			return err
		}
		s, err := stringValue(text)
		if err != nil {
			return err
		}
		if s != "" && len(out) > 0 {
			out = append(out, '\n')
		}
		out = append(out, s...)
		return nil
	})
	return string(out), err == nil
}

// appendResponse appends the Responses API's response object: the message with text (JSON
// quoted; nil while in progress) and, once complete, the usage.
func appendResponse(b []byte, j *job, status string, text []byte) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, j.id...)
	b = append(b, `","object":"response","created_at":`...)
	b = strconv.AppendInt(b, j.created, 10)
	b = append(b, `,"status":"`...)
	b = append(b, status...)
	b = append(b, `","model":`...)
	b = append(b, j.model...)
	b = append(b, `,"output":[`...)
	if text != nil {
		b = appendMessage(b, j, "completed", text)
	}
	b = append(b, `],"incomplete_details":`...)
	if status == "incomplete" {
		b = append(b, `{"reason":"max_output_tokens"}`...)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"error":null,"instructions":null,"metadata":{},"parallel_tool_calls":true,"temperature":1.0,"top_p":1.0,"tool_choice":"auto","tools":[],"text":{"format":{"type":"text"}},"truncation":"disabled","service_tier":"default","store":false,"usage":`...)
	if text == nil {
		return append(b, "null}"...)
	}
	b = append(b, `{"input_tokens":`...)
	b = strconv.AppendInt(b, j.promptTokens, 10)
	b = append(b, `,"input_tokens_details":{"cached_tokens":0},"output_tokens":`...)
	b = strconv.AppendInt(b, int64(j.produced), 10)
	b = append(b, `,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":`...)
	b = strconv.AppendInt(b, j.promptTokens+int64(j.produced), 10)
	return append(b, "}}"...)
}

// appendMessage appends the answer's output message item.
func appendMessage(b []byte, j *job, status string, text []byte) []byte {
	b = append(b, `{"id":"`...)
	b = appendMessageID(b, j)
	b = append(b, `","type":"message","status":"`...)
	b = append(b, status...)
	b = append(b, `","role":"assistant","content":[`...)
	if text != nil {
		b = appendTextPart(b, text)
	}
	return append(b, "]}"...)
}

func appendMessageID(b []byte, j *job) []byte {
	return append(append(b, "msg_"...), j.id[len("resp_"):]...)
}

func appendTextPart(b, text []byte) []byte {
	b = append(b, `{"type":"output_text","text":`...)
	b = append(b, text...)
	return append(b, `,"annotations":[],"logprobs":[]}`...)
}

// status is the response's final status: "incomplete" when max_output_tokens cut it short.
func (j *job) status() string {
	if j.finish == "length" {
		return "incomplete"
	}
	return "completed"
}

// wholeResponse is a non-streamed Responses answer.
func (e *Engine) wholeResponse(ctx context.Context, j *job) ([]byte, error) {
	q, err := e.quotedText(ctx, j)
	if err != nil {
		return nil, err
	}
	return appendResponse(nil, j, j.status(), q), nil
}

// quotedText produces the whole answer of j as one JSON string.
func (e *Engine) quotedText(ctx context.Context, j *job) ([]byte, error) {
	var text []byte
	if err := e.tokens(ctx, j, func(_ []byte, s string) error {
		text = append(text, s...)
		return nil
	}); err != nil {
		return nil, err
	}
	q, _ := json.Marshal(string(text))
	return q, nil
}

// streamResponse produces the events of a streamed Responses answer, as OpenAI sends them: the
// response created, the message and its text part added, the text deltas, everything done, and
// the response completed (or incomplete) with its usage. emit gets each event's type and data.
func (e *Engine) streamResponse(ctx context.Context, j *job, emit func(typ string, data []byte) error) error {
	seq := 0
	buf := make([]byte, 0, 512)
	event := func(typ string, body func(b []byte) []byte) error {
		buf = append(buf[:0], `{"type":"`...)
		buf = append(buf, typ...)
		buf = append(buf, `","sequence_number":`...)
		buf = strconv.AppendInt(buf, int64(seq), 10)
		seq++
		buf = body(buf)
		return emit(typ, append(buf, '}'))
	}
	item := func(b []byte) []byte {
		b = append(b, `,"item_id":"`...)
		b = appendMessageID(b, j)
		return append(b, `","output_index":0,"content_index":0`...)
	}
	if err := event("response.created", func(b []byte) []byte {
		return appendResponse(append(b, `,"response":`...), j, "in_progress", nil)
	}); err != nil {
		return err
	}
	if err := event("response.output_item.added", func(b []byte) []byte {
		return appendMessage(append(b, `,"output_index":0,"item":`...), j, "in_progress", nil)
	}); err != nil {
		return err
	}
	if err := event("response.content_part.added", func(b []byte) []byte {
		return append(item(b), `,"part":{"type":"output_text","text":"","annotations":[],"logprobs":[]}`...)
	}); err != nil {
		return err
	}
	var text []byte
	if err := e.tokens(ctx, j, func(q []byte, s string) error {
		text = append(text, s...)
		return event("response.output_text.delta", func(b []byte) []byte {
			return append(append(append(item(b), `,"delta":`...), q...), `,"logprobs":[]`...)
		})
	}); err != nil {
		return err
	}
	q, _ := json.Marshal(string(text))
	if err := event("response.output_text.done", func(b []byte) []byte {
		return append(append(append(item(b), `,"text":`...), q...), `,"logprobs":[]`...)
	}); err != nil {
		return err
	}
	if err := event("response.content_part.done", func(b []byte) []byte {
		return appendTextPart(append(item(b), `,"part":`...), q)
	}); err != nil {
		return err
	}
	if err := event("response.output_item.done", func(b []byte) []byte {
		return appendMessage(append(b, `,"output_index":0,"item":`...), j, "completed", q)
	}); err != nil {
		return err
	}
	status := j.status()
	return event("response."+status, func(b []byte) []byte {
		return appendResponse(append(b, `,"response":`...), j, status, q)
	})
}
