// Package builtin is cocoon's built-in inference engine: a small
// deterministic stand-in for a real model, for demos, tests and benchmarks.
//
// It speaks the OpenAI API exactly as an engine does (chat.completion,
// chat.completion.chunk and text_completion shapes, streaming with
// stream_options.include_usage, finish_reason "stop" or "length") and counts
// tokens for real with a simple documented tokenizer ([CountTokens]), so
// metering and payments can be exercised end to end without a GPU.
//
// The answer is derived from the prompt alone: the same messages (or prompt)
// always give the same text, a few sentences about how the answer was made
// (see corpus). It starts at a sentence chosen by the prompt's hash and runs
// to the end of the sentence in which it reaches Config.Tokens tokens (±20%,
// also chosen by the hash); max_tokens or max_completion_tokens cut it short
// with finish_reason "length".
//
// It answers the Responses API too (a response object, or its events streamed
// as OpenAI names them, max_output_tokens making it "incomplete"), embeddings
// (unit vectors from the input's hash, as floats or base64) and transcriptions
// (a multipart form in; its usage counts the audio as one input token per
// 1,000 bytes), so the demo shows every endpoint the network serves.
//
// An [Engine] is both a [gpu.Engine] (in process) and an [http.Handler]
// serving /v1/chat/completions, /v1/completions, /v1/responses,
// /v1/embeddings, /v1/audio/transcriptions, /v1/models and /health, so it can
// also run as a real HTTP engine.
package builtin
