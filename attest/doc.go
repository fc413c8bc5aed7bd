// Package attest says what a cocoon node is and checks what another node claims to be.
//
// A node describes itself with Claims (its certificate key, role, software version, config digest and,
// for workers, the model it serves). The claims are encoded canonically and their SHA-512 becomes the
// 64 bytes of REPORT_DATA in a TDX quote, so a quote vouches for exactly one certificate key.
//
// Quotes come from a Quoter: the TDX guest device inside a confidential VM, or the simulator in
// attest/sim, whose development root of trust signs quotes in the real TDX v4 layout. Both kinds are
// checked by the same Verifier, which runs go-tdx-guest's verification against a trusted root and its
// collateral and then applies a Policy (allowed image hashes and roles, debug TDs refused, simulated
// roots refused unless allowed). Every rejection wraps one of the sentinel errors in errors.go.
//
// The image hash of a TD is SHA-256(MRTD || RTMR0 || RTMR1 || RTMR2 || RTMR3): the firmware and
// everything the boot chain measured. Simulated TDs derive those registers from what they stand for
// (see SimulatedMeasurements), so a different binary, role or configuration gives a different hash.
//
// attest never imports transport: it deals in bytes and keys, not connections.
package attest
