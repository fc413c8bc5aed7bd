// Package attest says what a cocoon node is and checks what another node claims to be.
//
// A node describes itself with Claims (its certificate key, role, software version, config digest and,
// for workers, the model it serves). The claims are encoded canonically and their SHA-512 becomes the
// 64 bytes of REPORT_DATA in a TDX quote, so a quote vouches for exactly one certificate key.
//
// Quotes come from a Quoter: TDXQuoter inside a confidential VM (configfs-tsm, else /dev/tdx_guest),
// or the simulator in attest/sim, whose development root of trust signs quotes in the real TDX
// layouts (v4, and v5 with a TDX 1.5 TD report) and serves its own collateral. Both kinds are
// checked by the same Verifier:
//
//  1. go-tdx-guest verifies the PCK chain up to the trusted root (the Intel SGX Root CA, pinned by
//     key in this package), the QE report signature, the attestation key's binding and the quote
//     signature; then the collateral (TCB info, QE identity, PCK CRL, root CA CRL: signatures,
//     expiry) and revocation of every certificate involved.
//  2. The TCB levels of the platform, the TDX module and the quoting enclave are evaluated here,
//     from the collateral go-tdx-guest verified and with its matching rules, because go-tdx-guest
//     accepts UpToDate only while a policy may also list SWHardeningNeeded or ConfigurationNeeded,
//     and because for TDX modules of major version 1 and later it rates the module alone, while
//     the platform's own level (CPU microcode, SGX and TDX components) counts too.
//  3. The Policy decides: debug TDs refused, TD attributes, XFAM, MRSEAM, minimum TEE TCB SVN;
//     per role the image hash, MRTD and RTMR sets (and model digests for workers); collateral age;
//     TCB status; simulated roots refused unless allowed.
//
// Every rejection wraps one of the sentinel errors in errors.go. Collateral comes through a
// CollateralGetter: Intel PCS or a PCCS, cached on disk until each document's own next-update
// time, usable offline from that cache or a bundle file. Quotes v4 and v5 are verified alike; any
// other version is refused with ErrQuoteVersion.
//
// A platform's collateral is verified in full once; later quotes from the same PCK chain and TCB
// (TDX module and QE SVNs) skip the collateral's own signatures, issuer chains and CRLs, and the
// chain's own signatures, while exactly the same documents are served and none has expired, and
// get every check that depends on the quote (platforms.go, signatures.go): the chain's validity
// now, the QE report and quote signatures, as go-tdx-guest checks them. A verified peer is cached for at most CacheTTL, and never past the
// first expiry among the certificates and collateral documents its verification relied on.
//
// The image hash of a TD is SHA-256(MRTD || RTMR0 || RTMR1 || RTMR2 || RTMR3): the firmware and
// everything the boot chain measured. Simulated TDs derive those registers from what they stand for
// (see SimulatedMeasurements), so a different binary, role or configuration gives a different hash.
// ParseEventLog and ReplayRTMRs show which CC event log entries produced each RTMR.
//
// attest never imports transport: it deals in bytes and keys, not connections. Nor does it import
// attest/sim: the simulator builds on attest (sim.Root.Quoter, sim.Root.TrustedRoot), as
// go-tdx-guest's testing package builds on its verify package.
package attest
