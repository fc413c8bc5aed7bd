package attest

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-tdx-guest/verify"
)

// classify maps go-tdx-guest's errors onto our rejection classes.
func classify(err error) error {
	expired := []error{verify.ErrTcbInfoExpired, verify.ErrQeIdentityExpired, verify.ErrRootCaCrlExpired,
		verify.ErrPCKCrlExpired, verify.ErrTcbInfoSigningCertExpired, verify.ErrTcbInfoRootCertExpired,
		verify.ErrQeIdentitySigningCertExpired, verify.ErrQeIdentityRootCertExpired,
		verify.ErrPCKCrlSigningCertExpired, verify.ErrPCKCrlRootCertExpired}
	for _, e := range expired {
		if errors.Is(err, e) {
			return fmt.Errorf("%w: %v", ErrCollateralExpired, err)
		}
	}
	msg := err.Error()
	// go-tdx-guest wraps its sentinels with %v, so past the top level they survive only as text.
	switch {
	case strings.Contains(msg, ErrCollateralUnavailable.Error()) || strings.HasPrefix(msg, "unable to receive"):
		return fmt.Errorf("%w: %v", ErrCollateralUnavailable, err)
	case strings.Contains(msg, "was revoked"):
		return fmt.Errorf("%w: %v", ErrRevoked, err)
	case strings.HasPrefix(msg, "error verifying PCK Certificate") || strings.Contains(msg, "in PCK certificate chain has expired"):
		// The quote's own certificates, not collateral: the signature chain does not hold at this time.
		return fmt.Errorf("%w: %v", ErrQuoteSignature, err)
	case strings.Contains(msg, "has expired"):
		return fmt.Errorf("%w: %v", ErrCollateralExpired, err)
	case strings.Contains(msg, "Intel PCS's reported QE Identity"):
		// go-tdx-guest's verifyQeReport, before the QE's TCB status: the same mismatch that
		// checkQEIdentity reports when go-tdx-guest stopped earlier or was not asked.
		return fmt.Errorf("%w: %v", ErrQEIdentityMismatch, err)
	case strings.Contains(msg, "Intel PCS's reported TDX TCB info"):
		// go-tdx-guest's verifyTdQuoteBody, before the TD's TCB status: as checkTDModule reports it.
		return fmt.Errorf("%w: %v", ErrCollateral, err)
	case strings.Contains(msg, "TCB Status is not") || strings.Contains(msg, "no matching TCB level") ||
		errors.Is(err, verify.ErrTdxTcbStatus) || errors.Is(err, verify.ErrEnclaveTcbStatus):
		return fmt.Errorf("%w: %v", ErrTCBStatus, err)
	case strings.Contains(msg, "collateral") || strings.Contains(msg, "tcbInfo") || strings.Contains(msg, "QeIdentity") ||
		strings.Contains(msg, "CRL"):
		return fmt.Errorf("%w: %v", ErrCollateral, err)
	}
	return fmt.Errorf("%w: %v", ErrQuoteSignature, err)
}
