// Package worker is the GPU owner's node. It runs inside a TDX VM next to an inference engine,
// keeps an attested connection to each proxy in its configuration, registers its model there while
// the engine answers, and serves each request stream by forwarding it to the engine and streaming
// the answer back chunk by chunk with the metered token usage.
package worker
