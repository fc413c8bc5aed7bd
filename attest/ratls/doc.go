// Package ratls is cocoon's RA-TLS certificate format: a short-lived, self-signed Ed25519
// certificate carrying the node's encoded attest.Claims and, for nodes inside TDX, a quote whose
// REPORT_DATA is attest.ReportData of those claims, each in a critical X.509 extension. The claims
// name the certificate key, so the quote vouches for this key and no other.
//
// NewCertificate makes such a certificate; ParseCertificate checks the structure of one from
// untrusted bytes and returns the evidence in it, which attest.Verifier then judges (the quote, its
// binding to the claims, and the claims' binding to the key). ratls knows nothing of connections:
// transport puts these certificates into TLS handshakes, and attestcmd reads and writes them as
// files. It imports attest and never transport.
package ratls
