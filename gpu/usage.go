package gpu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

var usageKey = []byte(`"usage"`)

// usageJSON is the OpenAI usage object; the fields we do not meter are left
// out so that decoding skips them.
type usageJSON struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	PromptTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

// optUsage records whether the usage object was present and not null
// without allocating a pointer for it.
type optUsage struct {
	set bool
	u   usageJSON
}

func (o *optUsage) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if err := json.Unmarshal(b, &o.u); err != nil {
		return err
	}
	o.set = true
	return nil
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

type usageEnvelope struct {
	Choices choicesEmpty `json:"choices"`
	Usage   optUsage     `json:"usage"`
}

// UsageOf extracts the token usage from an OpenAI response body or stream
// chunk. ok is false when the object has no usage (absent or null).
// Negative counts are an error: they cannot be metered honestly.
func UsageOf(data []byte) (u Usage, ok bool, err error) {
	u, ok, _, err = parseUsage(data)
	return u, ok, err
}

// parseUsage is UsageOf that also reports whether the object has no choices,
// which marks the final usage-only chunk of a stream.
func parseUsage(data []byte) (u Usage, ok, noChoices bool, err error) {
	if !bytes.Contains(data, usageKey) {
		// Fast path for the ordinary chunks of a stream.
		return Usage{}, false, false, nil
	}
	env := usageEnvelope{Choices: true}
	if err := json.Unmarshal(data, &env); err != nil {
		return Usage{}, false, false, fmt.Errorf("parse usage: %w", err)
	}
	if !env.Usage.set {
		return Usage{}, false, bool(env.Choices), nil
	}
	j := env.Usage.u
	u = Usage{
		PromptTokens:     j.PromptTokens,
		CachedTokens:     j.PromptTokensDetails.CachedTokens,
		CompletionTokens: j.CompletionTokens,
		ReasoningTokens:  j.CompletionTokensDetails.ReasoningTokens,
	}
	if u.PromptTokens < 0 || u.CachedTokens < 0 || u.CompletionTokens < 0 || u.ReasoningTokens < 0 {
		return Usage{}, false, false, errors.New("parse usage: negative token count")
	}
	return u, true, bool(env.Choices), nil
}
