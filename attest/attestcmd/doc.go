// Package attestcmd is the `cocoon attest` operator command (Command): make a simulated RA-TLS
// certificate, inspect a certificate or quote (replaying a CC event log against its RTMRs), verify
// one against Intel collateral and a policy (online, from a PCCS, or offline from a fetched bundle),
// and fetch that collateral. Each subcommand's work takes plain options and writers and returns
// errors; Command only maps flags onto them. It sits beside attest rather than in it because it
// reads and writes files and the command line; certificates are attest/ratls's, so it never
// imports transport.
package attestcmd
