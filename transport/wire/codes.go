package wire

import "github.com/quic-go/quic-go"

// ProtocolVersion is the version of this wire protocol, sent in Hello.
const ProtocolVersion = 1

// ALPN is the TLS application protocol of cocoon connections.
const ALPN = "cocoon/1"

// Application error codes, used to reset streams and close connections and in Error messages.
// Peers branch on these numbers, never on message text.
const (
	CodeOK            quic.ApplicationErrorCode = 0x0
	CodeCancelled     quic.ApplicationErrorCode = 0x1 // the requester gave up on the stream
	CodeProtocol      quic.ApplicationErrorCode = 0x2 // a malformed or unexpected message
	CodeFrameTooLarge quic.ApplicationErrorCode = 0x3 // a frame over the maximum size
	CodeShutdown      quic.ApplicationErrorCode = 0x4 // the node is going away
	CodeInternal      quic.ApplicationErrorCode = 0x5
	CodeTimeout       quic.ApplicationErrorCode = 0x6
	CodeOverloaded    quic.ApplicationErrorCode = 0x7 // no capacity for this request now
	CodeNotFound      quic.ApplicationErrorCode = 0x8 // e.g. an unknown model
	CodeBadRequest    quic.ApplicationErrorCode = 0x9 // the request itself is invalid
	CodeUpstream      quic.ApplicationErrorCode = 0xa // the next hop failed
	CodeVersion       quic.ApplicationErrorCode = 0xb // incompatible protocol version
)

// CodePaymentRequired: the client's balance cannot cover the request's maximum cost.
const CodePaymentRequired quic.ApplicationErrorCode = 0xc

// CodePolicyRefused: the peer's attestation verified, but the attestation policy does not allow
// it (its image, model, platform or TCB status), or no longer does. A connection closed with it
// carries the reason in its reason phrase; a stream reset with it was opened on a connection that
// drains because the policy no longer allows its peer.
const CodePolicyRefused quic.ApplicationErrorCode = 0xd

// HTTPStatus is the HTTP status a client answers with for a code.
func HTTPStatus(code quic.ApplicationErrorCode) int {
	switch code {
	case CodeBadRequest, CodeFrameTooLarge:
		return 400
	case CodePaymentRequired:
		return 402
	case CodeNotFound:
		return 404
	case CodeOverloaded:
		return 503
	case CodeTimeout:
		return 504
	case CodeCancelled:
		return 499
	case CodeUpstream, CodeProtocol, CodeVersion, CodeShutdown, CodePolicyRefused:
		return 502
	}
	return 500
}
