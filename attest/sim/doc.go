// Package sim is the simulated TDX development root of trust: a locally generated stand-in for
// Intel's attestation infrastructure that lets cocoon run, and be tested, on machines without TDX.
//
// A Root holds its own root CA ("Intel SGX Root CA"), PCK platform CA, PCK leaf certificate and
// TCB-signing certificate, and the collateral they sign (TCB info, QE identity, PCK CRL, root CA
// CRL). A Quoter made from it produces quotes in the real TDX layouts, v4 and v5 (with a TDX 1.5 TD
// report): header and TD quote body signed by an attestation key, that key bound by a QE report signed with the PCK key, and the
// PCK certificate chain embedded. go-tdx-guest's verifier accepts these quotes through exactly the
// code path it runs for real Intel quotes, with collateral and revocation checks, provided it is
// given this root in verify.Options.TrustedRoots and Root.Collateral as its Getter. Only the trust
// anchor differs, so nothing here weakens verification of real quotes.
//
// This package is for development, demos and tests only. A simulated quote proves nothing about
// the hardware: whoever holds the development keys can sign any measurements. Verifiers must trust
// the development root only when their configuration explicitly says so, and label everything that
// rests on it as simulated. The certificates carry the CNs go-tdx-guest requires, but their
// Organization is [Organization] and the root CA CRL is served from [RootCRLURL], so they are not
// mistaken for Intel's; quotes carry the ASCII marker [UserDataMarker] in the header's user data.
//
// # State directory
//
// Open keeps the root in a directory, so that all cocoon processes on one machine share it and a
// verifier can load only the public part with OpenPublic:
//
//	lock                 lock file serialising creation and collateral refresh between processes
//	root.pem             development root CA certificate (written last: its presence means complete)
//	root.key             its private key (PKCS #8 PEM, mode 0600), signs certificates and the root CRL
//	pck-platform-ca.pem  PCK platform CA certificate ("Intel SGX PCK Platform CA")
//	pck-platform-ca.key  its private key, signs the PCK leaf and the PCK CRL
//	pck.pem              PCK leaf certificate with the SGX extension (FMSPC, PCE-ID, TCB)
//	pck.key              PCK private key, signs QE reports
//	tcb-signing.pem      TCB-signing certificate ("Intel SGX TCB Signing")
//	tcb-signing.key      its private key, signs TCB info and QE identity
//	tcbinfo.json         signed TDX TCB info v3, as the PCS API returns it
//	qeidentity.json      signed TD_QE identity v2, as the PCS API returns it
//	pckcrl.der           PCK CRL signed by the PCK platform CA
//	rootcrl.der          root CA CRL signed by the root CA
//
// Every file is written atomically (temporary file and rename). Collateral has a limited lifetime
// (30 days); Open, and the Collateral getter of a root loaded from a directory, re-sign it when it
// has less than a day left, so long-running demos keep verifying. Attestation keys are never
// stored: each Quoter generates its own, as a quoting enclave does when it starts.
package sim
