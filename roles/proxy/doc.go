// Package proxy is the network's router. It runs inside a TDX VM, accepts attested connections
// from workers and clients on one QUIC port, keeps the registered workers by model with their load,
// chooses a worker for each request, and relays the request and the streamed answer without
// buffering it. A worker that fails before the first byte of its answer is replaced by another;
// one that fails after it ends the client's stream at once with an error.
package proxy
