package builtin

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/cocoon-network/cocoon/gpu"
)

// appendHead appends the fields every response object starts with.
func appendHead(b []byte, j *job, object string) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, j.id...)
	b = append(b, `","object":"`...)
	b = append(b, object...)
	b = append(b, `","created":`...)
	b = strconv.AppendInt(b, j.created, 10)
	b = append(b, `,"model":`...)
	b = append(b, j.model...)
	return append(b, `,"system_fingerprint":"fp_cocoon"`...)
}

func appendUsage(b []byte, j *job) []byte {
	b = append(b, `"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, j.promptTokens, 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, int64(j.produced), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, j.promptTokens+int64(j.produced), 10)
	return append(b, `,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}`...)
}

// stream produces the data payloads of a streamed answer; usageChunk marks
// the final usage chunk. The [DONE] marker is the caller's.
func (e *Engine) stream(ctx context.Context, j *job, emit func(data []byte, usageChunk bool) error) error {
	object, openChoice := "chat.completion.chunk", `,"choices":[{"index":0,"delta":`
	if j.kind == gpu.KindCompletion {
		object, openChoice = "text_completion", `,"choices":[{"index":0,"text":`
	}
	tail := func(b []byte, finish string) []byte {
		if j.kind == gpu.KindChat {
			b = append(b, '}')
		}
		b = append(b, `,"logprobs":null,"finish_reason":`...)
		b = append(b, finish...)
		b = append(b, "}]"...)
		if j.includeUsage {
			b = append(b, `,"usage":null`...)
		}
		return append(b, '}')
	}
	buf := make([]byte, 0, 512)
	if j.kind == gpu.KindChat {
		buf = appendHead(buf[:0], j, object)
		buf = append(buf, openChoice...)
		buf = append(buf, `{"role":"assistant","content":""`...)
		if err := emit(tail(buf, "null"), false); err != nil {
			return err
		}
	}
	err := e.tokens(ctx, j, func(q []byte, _ string) error {
		buf = appendHead(buf[:0], j, object)
		buf = append(buf, openChoice...)
		if j.kind == gpu.KindChat {
			buf = append(buf, `{"content":`...)
		}
		buf = append(buf, q...)
		return emit(tail(buf, "null"), false)
	})
	if err != nil {
		return err
	}
	buf = appendHead(buf[:0], j, object)
	buf = append(buf, openChoice...)
	if j.kind == gpu.KindChat {
		buf = append(buf, '{')
	} else {
		buf = append(buf, `""`...)
	}
	if err := emit(tail(buf, `"`+j.finish+`"`), false); err != nil {
		return err
	}
	if !j.includeUsage {
		return nil
	}
	buf = appendHead(buf[:0], j, object)
	buf = append(buf, `,"choices":[],`...)
	buf = appendUsage(buf, j)
	return emit(append(buf, '}'), true)
}

// whole produces a non-streamed answer.
func (e *Engine) whole(ctx context.Context, j *job) ([]byte, error) {
	var text []byte
	err := e.tokens(ctx, j, func(_ []byte, s string) error {
		text = append(text, s...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	qtext, _ := json.Marshal(string(text))
	var b []byte
	if j.kind == gpu.KindChat {
		b = appendHead(b, j, "chat.completion")
		b = append(b, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
		b = append(b, qtext...)
		b = append(b, `,"refusal":null},"logprobs":null,"finish_reason":"`...)
	} else {
		b = appendHead(b, j, "text_completion")
		b = append(b, `,"choices":[{"index":0,"text":`...)
		b = append(b, qtext...)
		b = append(b, `,"logprobs":null,"finish_reason":"`...)
	}
	b = append(b, j.finish...)
	b = append(b, `"}],`...)
	b = appendUsage(b, j)
	return append(b, '}'), nil
}
