package wire

import "github.com/cocoon-network/cocoon/settle"

// EncodeUsage is the protobuf encoding of u, for Done. With DecodeUsage it is the one conversion
// between the usage type the system carries (settle.Usage) and the wire.
func EncodeUsage(u settle.Usage) *Usage {
	return &Usage{PromptTokens: u.PromptTokens, CachedTokens: u.CachedTokens,
		CompletionTokens: u.CompletionTokens, ReasoningTokens: u.ReasoningTokens}
}

// DecodeUsage is the usage u encodes; a nil u is no usage.
func DecodeUsage(u *Usage) settle.Usage {
	return settle.Usage{PromptTokens: u.GetPromptTokens(), CachedTokens: u.GetCachedTokens(),
		CompletionTokens: u.GetCompletionTokens(), ReasoningTokens: u.GetReasoningTokens()}
}
