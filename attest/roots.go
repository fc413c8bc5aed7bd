package attest

import (
	"crypto/x509"
	_ "embed"
	"encoding/pem"
	"fmt"

	"github.com/google/go-tdx-guest/verify/trust"
)

// intelRootPEM is Intel's SGX Root CA, the anchor of every genuine TDX quote. It is pinned here
// rather than fetched, so no network answer can replace it.
//
//go:embed intel_sgx_root_ca.pem
var intelRootPEM []byte

// A TrustedRoot is a root of trust for quotes and where to get the collateral it signs.
type TrustedRoot struct {
	Cert *x509.Certificate
	// Collateral serves TCB info, QE identity and CRLs at the Intel PCS URLs. Nil means Intel PCS over HTTPS.
	Collateral trust.HTTPSGetter
	// Simulated marks the development root: a quote resting on it proves nothing about hardware.
	// attest/sim makes such roots (sim.Root.TrustedRoot); attest only refuses them unless allowed.
	Simulated bool
}

// IntelRoot is the Intel SGX Root CA with collateral from getter (nil: Intel PCS over HTTPS).
func IntelRoot(getter trust.HTTPSGetter) TrustedRoot {
	b, _ := pem.Decode(intelRootPEM)
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		panic(fmt.Sprintf("embedded Intel root CA: %v", err)) // a build defect, not a runtime condition
	}
	return TrustedRoot{Cert: cert, Collateral: getter}
}
