package attest

import (
	"crypto/sha512"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/cocoon-network/cocoon/attest/sim"
)

// Labels of the simulated boot chain; they stand for the firmware and its configuration.
const (
	simFirmware       = "cocoon simulated TDVF"
	simFirmwareConfig = "cocoon simulated TD configuration"
)

// SimulatedMeasurements derives the registers a simulated TD reports from what they stand for:
// MRTD from a fixed firmware label, RTMR0 from a fixed firmware-configuration label, RTMR1 from the
// binary's digest (the kernel and initrd of a real image), RTMR2 from the role (the command line) and
// RTMR3 from the configuration digest (the application layer). A different binary, role or
// configuration therefore yields a different image hash, as it would in a real TD.
func SimulatedMeasurements(binaryDigest []byte, role Role, configDigest [32]byte) Measurements {
	var m Measurements
	m.MRTD = sha512.Sum384([]byte(simFirmware))
	fw := sha512.Sum384([]byte(simFirmwareConfig))
	m.RTMR[0] = sim.Extend([48]byte{}, fw[:])
	m.RTMR[1] = sim.Extend([48]byte{}, binaryDigest)
	r := sha512.Sum384([]byte(role))
	m.RTMR[2] = sim.Extend([48]byte{}, r[:])
	m.RTMR[3] = sim.Extend([48]byte{}, configDigest[:])
	// XFAM of a typical TD (x87, SSE, AVX, AVX-512 state); TD attributes zero: not a debug TD.
	m.XFAM = [8]byte{0xe7, 0x02, 0x06, 0x00, 0, 0, 0, 0}
	return m
}

// NewSimulatedQuoter returns a Quoter that signs v4 quotes with the development root of trust.
func NewSimulatedQuoter(root *sim.Root, m Measurements) (Quoter, error) {
	return newSimulatedQuoter(root, m)
}

// NewSimulatedQuoterV5 returns a Quoter that signs v5 quotes with a TDX 1.5 TD report, as a
// platform with a TDX 1.5 module does, with the development root of trust.
func NewSimulatedQuoterV5(root *sim.Root, m Measurements) (Quoter, error) {
	q, err := newSimulatedQuoter(root, m)
	if err != nil {
		return nil, err
	}
	return simQuoterV5{q}, nil
}

type simQuoterV5 struct{ q *sim.Quoter }

func (s simQuoterV5) Quote(reportData [64]byte) ([]byte, error) { return s.q.QuoteV5(reportData) }

func newSimulatedQuoter(root *sim.Root, m Measurements) (*sim.Quoter, error) {
	q, err := root.NewQuoter(sim.Measurements{
		MRTD:         m.MRTD,
		RTMR:         m.RTMR,
		MRConfigID:   m.MRConfigID,
		TDAttributes: m.TDAttributes,
		XFAM:         m.XFAM,
	})
	if err != nil {
		return nil, fmt.Errorf("simulated quoter: %w", err)
	}
	return q, nil
}

var (
	selfDigestOnce sync.Once
	selfDigest     []byte
	errSelfDigest  error
)

// ExecutableDigest is SHA-384 of the running binary: what a simulated RTMR1 measures.
func ExecutableDigest() ([]byte, error) {
	selfDigestOnce.Do(func() {
		path, err := os.Executable()
		if err != nil {
			errSelfDigest = fmt.Errorf("find executable: %w", err)
			return
		}
		// Streamed: reading the whole binary at once would leave tens of megabytes of heap behind,
		// raising every role's resident memory for the life of the process.
		f, err := os.Open(path)
		if err != nil {
			errSelfDigest = fmt.Errorf("read executable: %w", err)
			return
		}
		defer f.Close()
		h := sha512.New384()
		if _, err := io.Copy(h, f); err != nil {
			errSelfDigest = fmt.Errorf("read executable: %w", err)
			return
		}
		selfDigest = h.Sum(nil)
	})
	return selfDigest, errSelfDigest
}
