// Package bounds reads, once, what a request body may use, for the proxy that reserves its cost
// without seeing the body, and checks a body against the bounds it was reserved for, at the
// worker that opens it. The client reads them (Of); the worker checks them (Exceeds).
package bounds

import (
	"fmt"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// Of reads the bounds of a JSON request body as the engine reads it (gpu.ReadFacts: exact keys,
// the last duplicate winning). A malformed body or limit is a gpu.ErrBadRequest.
func Of(body []byte) (*wire.Bounds, error) {
	f, err := gpu.ReadFacts(body)
	if err != nil {
		return nil, err
	}
	return FromLimits(f.Limits, len(body)), nil
}

// OfKind reads the bounds of a request body for the endpoint kind (gpu.ReadKindFacts): a
// Responses body's max_output_tokens and input parts, an embeddings body's inputs, a
// transcription's form (contentType, or "" for a form whose first line names its boundary), whose
// bound is its size alone (see the proxy's reservation).
func OfKind(kind wire.Kind, body []byte, contentType string) (*wire.Bounds, error) {
	k, ok := EngineKind(kind)
	if !ok {
		return nil, fmt.Errorf("%w: unknown request kind %v", gpu.ErrBadRequest, kind)
	}
	f, err := gpu.ReadKindFacts(k, body, contentType)
	if err != nil {
		return nil, err
	}
	return FromLimits(f.Limits, len(body)), nil
}

// EngineKind is the engine endpoint of a wire request kind; false for a kind no engine serves.
// An unspecified kind is chat, as it was before requests named their kind.
func EngineKind(k wire.Kind) (gpu.Kind, bool) {
	switch k {
	case wire.Kind_KIND_CHAT, wire.Kind_KIND_UNSPECIFIED:
		return gpu.KindChat, true
	case wire.Kind_KIND_COMPLETION:
		return gpu.KindCompletion, true
	case wire.Kind_KIND_RESPONSES:
		return gpu.KindResponses, true
	case wire.Kind_KIND_EMBEDDINGS:
		return gpu.KindEmbeddings, true
	case wire.Kind_KIND_TRANSCRIPTION:
		return gpu.KindTranscription, true
	}
	return 0, false
}

// FromLimits are the bounds of a body of size bytes whose limits are l.
func FromLimits(l gpu.Limits, size int) *wire.Bounds {
	return &wire.Bounds{
		BodyBytes: uint64(size), Prompts: max(l.Prompts, 1), Images: l.Images,
		CompletionTokens: l.Completion(), N: l.N, Sequences: l.Choices(), Unbounded: l.Unbounded,
	}
}

// Exceeds says how a body with limits l and size bytes exceeds the bounds b its cost was reserved
// for, or "" when it does not. The completion limit and n need no check: the worker makes the
// engine obey the reserved ones (gpu.WithLimits).
func Exceeds(l gpu.Limits, size int, b *wire.Bounds) string {
	switch {
	case b == nil:
		return "metered request carries no bounds"
	case uint64(size) > b.GetBodyBytes():
		return fmt.Sprintf("request body is %d bytes, but its cost was reserved for %d", size, b.GetBodyBytes())
	case max(l.Prompts, 1) > max(b.GetPrompts(), 1):
		return fmt.Sprintf("request body runs %d prompts, but its cost was reserved for %d", l.Prompts, max(b.GetPrompts(), 1))
	case l.Images > b.GetImages():
		return fmt.Sprintf("request body has %d images, but its cost was reserved for %d", l.Images, b.GetImages())
	case l.Unbounded != "" && b.GetUnbounded() == "":
		return "request body has " + l.Unbounded + ", which its bounds did not declare"
	case l.Choices() > max(b.GetSequences(), b.GetN(), 1):
		return fmt.Sprintf("request body generates %d sequences per prompt, but its cost was reserved for %d", l.Choices(), max(b.GetSequences(), b.GetN(), 1))
	}
	return ""
}
