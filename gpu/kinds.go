package gpu

import (
	"encoding/json"
	"fmt"
)

// ReadKindFacts reads the facts of a request body for the endpoint kind, as ReadFacts does for
// chat and completions: a Responses body's max_output_tokens and input, an embeddings body's
// inputs, a transcription's multipart form (contentType names its boundary; "" reads it from the
// body's first line, as a form that [Form.Encode] wrote has no preamble).
func ReadKindFacts(kind Kind, body []byte, contentType string) (Facts, error) {
	switch kind {
	case KindResponses:
		return responsesFacts(body)
	case KindEmbeddings:
		return embeddingsFacts(body)
	case KindTranscription:
		form, err := ParseForm(body, contentType)
		if err != nil {
			return Facts{}, err
		}
		return form.Facts()
	}
	return ReadFacts(body)
}

// responsesKeys are the members responsesFacts reads, in the order of its value array.
var responsesKeys = [...]string{"model", "stream", "max_output_tokens", "input", "previous_response_id", "conversation", "prompt", "tools", "background"}

// serverTools are the Responses API's built-in tools: the engine runs them itself and feeds
// their results back into the prompt, so the prompt grows beyond the body while it runs.
var serverTools = map[string]bool{
	"web_search": true, "web_search_preview": true, "web_search_preview_2025_03_11": true, "file_search": true,
	"code_interpreter": true, "computer_use_preview": true, "mcp": true, "image_generation": true, "local_shell": true,
}

// responsesFacts reads a /v1/responses body: the completion limit is max_output_tokens; images
// are input_image parts; a prompt that lives on the engine (previous_response_id, a conversation,
// a stored prompt, an item_reference) or grows there (built-in tools) is unbounded, and so is a
// part that is neither text nor an image.
func responsesFacts(body []byte) (Facts, error) {
	var top [len(responsesKeys)][]byte
	f, err := readTop(body, responsesKeys[:], top[:])
	if err != nil {
		return f, err
	}
	l := &f.Limits
	if l.MaxOutputTokens, err = count("max_output_tokens", top[2]); err != nil {
		return f, err
	}
	l.Prompts = 1
	for i, why := range [...]string{4: "previous_response_id", 5: "a conversation", 6: "a stored prompt"} {
		if v := top[i]; why != "" && v != nil && string(v) != "null" && l.Unbounded == "" {
			l.Unbounded = why
		}
	}
	if v := top[8]; v != nil && string(v) == "true" {
		l.Unbounded = "background" // answered later, on another request: never metered here
	}
	if v := top[7]; v != nil && v[0] == '[' {
		if err := elements(v, func(tool []byte) error {
			if t := typeOf(tool); serverTools[t] && l.Unbounded == "" {
				l.Unbounded = fmt.Sprintf("the built-in tool %q", t)
			}
			return nil
		}); err != nil {
			return f, fmt.Errorf("%w: tools: %w", ErrBadRequest, err)
		}
	}
	if v := top[3]; v != nil && v[0] == '[' {
		err := elements(v, func(item []byte) error {
			if item[0] != '{' {
				return nil
			}
			var iv [3][]byte
			if _, err := pick(item, itemKeys[:], iv[:]); err != nil {
				return err
			}
			if t := typeOf(item); t == "item_reference" && l.Unbounded == "" {
				l.Unbounded = "an item_reference"
			}
			for _, parts := range [...][]byte{iv[1], iv[2]} { // a message's content, a tool call's output
				if parts == nil || parts[0] != '[' {
					continue
				}
				if err := elements(parts, func(part []byte) error {
					switch t := typeOf(part); {
					case t == "input_text" || t == "output_text" || t == "text" || t == "refusal" || t == "summary_text" || t == "reasoning_text":
					case imageParts[t]:
						l.Images++
					case l.Unbounded == "" && t == "":
						l.Unbounded = "an input content part has no type"
					case l.Unbounded == "":
						l.Unbounded = fmt.Sprintf("input content of type %q", t)
					}
					return nil
				}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return f, fmt.Errorf("%w: input: %w", ErrBadRequest, err)
		}
	}
	return f, nil
}

// itemKeys are the members of a Responses input item that responsesFacts reads.
var itemKeys = [...]string{"type", "content", "output"}

var typeKey = [...]string{"type"}

// typeOf is the "type" member of the JSON object v, "" when v is no object or has no string type.
func typeOf(v []byte) string {
	if len(v) == 0 || v[0] != '{' {
		return ""
	}
	var tv [1][]byte
	if _, err := pick(v, typeKey[:], tv[:]); err != nil || tv[0] == nil || tv[0][0] != '"' {
		return ""
	}
	var t string
	_ = json.Unmarshal(tv[0], &t)
	return t
}

// embeddingsKeys are the members embeddingsFacts reads.
var embeddingsKeys = [...]string{"model", "stream", "input", "messages"}

// embeddingsFacts reads a /v1/embeddings body: one prompt per input (a string, a list of strings,
// a list of token ids or a list of token lists, as a completion's prompt), and the images of a
// chat-style embedding's messages (vLLM). Embeddings generate nothing: no completion limit.
func embeddingsFacts(body []byte) (Facts, error) {
	var top [len(embeddingsKeys)][]byte
	f, err := readTop(body, embeddingsKeys[:], top[:])
	if err != nil {
		return f, err
	}
	if f.Limits.Prompts, err = prompts(top[2]); err != nil {
		return f, fmt.Errorf("%w: input is not a string or an array", ErrBadRequest)
	}
	if f.Limits.Images, f.Limits.Unbounded, err = media(top[3]); err != nil {
		return f, err
	}
	return f, nil
}

// Completes says whether the endpoint generates tokens, so that a completion limit applies.
func (k Kind) Completes() bool { return k != KindEmbeddings }
