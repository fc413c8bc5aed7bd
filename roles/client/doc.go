// Package client is the app developer's side of cocoon: it keeps attested QUIC connections to one or
// more proxies and serves, on a local address, an OpenAI-compatible HTTP API (/v1/chat/completions,
// /v1/completions, /v1/responses, /v1/embeddings, /v1/audio/transcriptions, /v1/models, streaming
// as Server-Sent Events) so that any OpenAI SDK works unchanged. It also serves /healthz, /jsonstats and /stats, and provides Ask, the `cocoon ask`
// terminal front.
//
// Every request is paid from the client's deposit, so the API refuses what a web page could make a
// browser send (guard.go): bodies that are not JSON (a transcription's multipart form aside, which
// the Origin check covers), foreign Origins and Host names that are not
// this machine's (DNS rebinding). Request bodies are bounded alone, together and by connection count
// (body.go), so many slow uploads cannot grow memory without bound.
//
// A proxy takes transport.DefaultMaxStreams requests at once per connection; while every
// connection to a proxy is full, the client opens another beside it (extra.go), up to eight in
// all, and closes each once idle, so that an app with many requests under way does not wait.
//
// The client runs outside any TEE. What it trusts is checked inside each QUIC handshake by the
// verifier of its transport.Config: a proxy whose attestation the policy does not allow is refused
// before a single request byte is sent. Request bodies are relayed untouched; prompts, completions
// and API tokens are never logged or shown in stats.
//
// Only wiring code (main, cocoon demo) imports this package; other roles never do.
package client
