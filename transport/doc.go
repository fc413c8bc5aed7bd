// Package transport carries cocoon traffic over QUIC connections whose TLS 1.3 handshake is attested
// in both directions (RA-TLS).
//
// Every node presents a short-lived, self-signed Ed25519 certificate with two critical extensions
// (the format is attest/ratls's): its encoded attest.Claims and, for nodes inside TDX, a quote whose
// REPORT_DATA is SHA-512 of those claims. The claims name the certificate key, so the quote vouches for this key and no other. Both
// ends verify the other's certificate inside the handshake (attest.Verifier: quote, collateral,
// policy), so a connection that completes is attested both ways and no application byte is ever
// read from an unverified peer. Freshness comes from the certificates' short validity and rotation
// (Identity), not from a per-connection nonce: a replayed certificate is useless without its private
// key, which the TLS handshake proves possession of.
//
// After the handshake the dialer opens a control stream and both sides exchange Hello; the listener
// answers only after it verified the dialer, so Dial returns only mutually verified connections.
// Each request then uses one bidirectional stream of length-prefixed protobuf frames (package wire).
// See README.md for the diagram and frame format.
package transport
