package attest

import "errors"

// One sentinel per rejection class, so callers (and tests) branch with errors.Is and users see
// which check failed.
var (
	// ErrMalformedQuote: the quote bytes are not a well-formed TDX v4 quote.
	ErrMalformedQuote = errors.New("malformed quote")
	// ErrQuoteVersion: a well-formed quote of a version this verifier cannot check yet (v5, from
	// TDX 1.5 modules). It also matches ErrMalformedQuote.
	ErrQuoteVersion = &wrappedErr{"quote version not supported", ErrMalformedQuote}
	// ErrMalformedClaims: the claims blob is not canonically encoded.
	ErrMalformedClaims = errors.New("malformed claims")
	// ErrMissingHPKEKey: a worker's claims name no HPKE key, so no request could be sealed to it.
	// It also matches ErrMalformedClaims, as do the two below.
	ErrMissingHPKEKey = &wrappedErr{"worker claims carry no HPKE key", ErrMalformedClaims}
	// ErrMalformedHPKEKey: a worker's HPKE key is not an MLKEM768X25519 public key.
	ErrMalformedHPKEKey = &wrappedErr{"worker HPKE key is not an MLKEM768X25519 public key", ErrMalformedClaims}
	// ErrHPKEKeyNotAllowed: a proxy's or client's claims carry an HPKE key; only workers open
	// sealed requests.
	ErrHPKEKeyNotAllowed = &wrappedErr{"only worker claims may carry an HPKE key", ErrMalformedClaims}
	// ErrUntrustedRoot: the quote's PCK chain ends in a root the verifier does not trust.
	ErrUntrustedRoot = errors.New("quote signed under an untrusted root")
	// ErrSimulatedNotAllowed: the quote rests on the development root and the policy does not allow it.
	ErrSimulatedNotAllowed = errors.New("simulated TDX quote not allowed by policy")
	// ErrQuoteSignature: the PCK chain, QE report or quote signature does not verify.
	ErrQuoteSignature = errors.New("quote signature verification failed")
	// ErrCollateral: the collateral (TCB info, QE identity, CRLs) is missing, expired or does not verify.
	ErrCollateral = errors.New("quote collateral check failed")
	// ErrReportDataMismatch: REPORT_DATA is not SHA-512 of the claims.
	ErrReportDataMismatch = errors.New("quote report data does not match the claims")
	// ErrKeyMismatch: the claims name another key than the certificate's.
	ErrKeyMismatch = errors.New("claims key does not match the certificate key")
	// ErrDebugTD: the TD runs with the DEBUG attribute, so its memory is readable by the host.
	ErrDebugTD = errors.New("TD debug attribute is set")
	// ErrImageNotAllowed: the image hash is not in the policy's list for the role.
	ErrImageNotAllowed = errors.New("image hash not allowed by policy")
	// ErrMeasurementMismatch: MRTD, an RTMR, MRSEAM, XFAM, the TD attributes or the TEE TCB SVN is
	// not one the policy allows.
	ErrMeasurementMismatch = errors.New("measurement not allowed by policy")
	// ErrRoleNotAllowed: the policy does not let this role connect.
	ErrRoleNotAllowed = errors.New("role not allowed by policy")
	// ErrModelNotAllowed: the worker's model digest is not in the policy's list.
	ErrModelNotAllowed = errors.New("model digest not allowed by policy")
	// ErrQuoteRequired: the peer presented no quote and its role must have one.
	ErrQuoteRequired = errors.New("quote required for role")
	// ErrRoleMismatch: the claims name a role other than the one expected of this peer.
	ErrRoleMismatch = errors.New("peer role is not the expected one")
)

// Finer classes of collateral failure; each also matches ErrCollateral.
var (
	// ErrTCBStatus: the platform's TCB level is not one the verifier accepts (for example OutOfDate).
	ErrTCBStatus = &collateralErr{"platform TCB status not accepted"}
	// ErrRevoked: a certificate of the PCK chain or the collateral's signing chain was revoked.
	ErrRevoked = &collateralErr{"certificate revoked"}
	// ErrCollateralExpired: TCB info, QE identity or a CRL is past its next-update time, or older
	// than the policy's max_collateral_age.
	ErrCollateralExpired = &collateralErr{"collateral expired"}
	// ErrCollateralUnavailable: the collateral could not be fetched (no network, offline without a
	// cached copy, PCCS error).
	ErrCollateralUnavailable = &collateralErr{"collateral unavailable"}
	// ErrQEIdentityMismatch: the quoting enclave whose report the PCK key signed is not the one
	// Intel's QE identity describes (MISCSELECT, attributes, MRSIGNER or ISV PRODID differ).
	ErrQEIdentityMismatch = &collateralErr{"quoting enclave does not match the QE identity"}
)

type collateralErr struct{ msg string }

func (e *collateralErr) Error() string        { return e.msg }
func (e *collateralErr) Is(target error) bool { return target == ErrCollateral }

// wrappedErr is a sentinel that is also a finer case of a broader one.
type wrappedErr struct {
	msg    string
	parent error
}

func (e *wrappedErr) Error() string        { return e.msg }
func (e *wrappedErr) Is(target error) bool { return target == e.parent }
