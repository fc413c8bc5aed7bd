// Package bench is `cocoon bench`: the cost of confidentiality, measured side by side. One load
// generator drives a vLLM look-alike engine (package scripted, served from this process) directly
// and through the whole network — client, proxy and worker as separate processes of the cocoon
// binary, on loopback, with simulated TDX — and, from this process acting as a client, through
// proxy and worker alone. Per role it reads CPU time and peak RSS from /proc. Other scenarios
// measure memory per open stream, proxy memory per worker connection and the attested handshake
// rate of one proxy.
//
// The roles run as processes, not in this one, so that their CPU and memory are their own; the
// package imports no role and no test package. Only the command in package main calls [Run].
//
// Files by concern: bench.go (options, one run), default.go, longstreams.go, manyworkers.go,
// handshakes.go and tokens.go (the scenarios), all.go (every part and the summary), load.go (load
// generation), network.go (the role processes and the bench's own attested identities),
// binary.go (the copy of the binary the roles run from), chain.go (the local chain for
// --payments), gcsignal_*.go and profile.go (what a role does for the bench: collect its garbage
// on a signal, write its profiles and trace), proc.go (/proc readings), report.go
// (what a run found, printed), repeat.go (medians of --repeat runs), compare.go (--against: two
// builds side by side).
package bench
