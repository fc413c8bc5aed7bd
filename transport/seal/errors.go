package seal

import "errors"

// One sentinel per class of refusal; every error this package returns for untrusted input wraps
// exactly one of them, so callers branch with errors.Is. A refusal is final: an AnswerOpener that
// refused a frame refuses everything after it with the same error.
var (
	// ErrMalformed: bytes that do not parse (wrong version, length or field size, trailing bytes).
	ErrMalformed = errors.New("malformed sealed data")
	// ErrTooLarge: an input, or a value to be sealed or signed, is larger than its bound.
	ErrTooLarge = errors.New("sealed data too large")
	// ErrWrongKey: a sealed request was sealed to another public key than the one opening it.
	ErrWrongKey = errors.New("sealed to another key")
	// ErrBinding: a sealed request was sealed for another request id, model or worker quote.
	ErrBinding = errors.New("sealed for another request, model or quote")
	// ErrTampered: authentication failed, the bytes were changed (or come from another stream).
	ErrTampered = errors.New("sealed data failed authentication")
	// ErrReplayed: an authentic answer frame that was already opened arrived again.
	ErrReplayed = errors.New("answer frame replayed")
	// ErrOutOfOrder: an authentic answer frame arrived before the one due (a frame was dropped or
	// the frames were reordered).
	ErrOutOfOrder = errors.New("answer frame out of order")
	// ErrTruncated: the answer stream ended without its end marker.
	ErrTruncated = errors.New("answer truncated: no end marker")
	// ErrEnded: the answer was already ended (AnswerSealer.Seal or End after End).
	ErrEnded = errors.New("answer already ended")
	// ErrSignature: a usage record or receipt whose signature does not verify under the key given.
	ErrSignature = errors.New("bad signature")
	// ErrOtherRequest: a usage record signed for another request than the one expected.
	ErrOtherRequest = errors.New("usage record for another request")
	// ErrAnswerMismatch: a receipt whose request or answer hash is not that of the plaintext given.
	ErrAnswerMismatch = errors.New("receipt does not match the request and answer")
)
