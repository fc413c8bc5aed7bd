package attest

import (
	"crypto/sha512"
	"fmt"
	"io"
	"os"
	"sync"
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
// measured configuration therefore yields a different image hash, as it would in a real TD, and
// the same ones yield the same hash on every machine and run: configDigest is the digest of the
// settings that decide behaviour (config.Digest), never of addresses, ports, paths or secrets.
func SimulatedMeasurements(binaryDigest []byte, role Role, configDigest [32]byte) Measurements {
	var m Measurements
	m.MRTD = sha512.Sum384([]byte(simFirmware))
	fw := sha512.Sum384([]byte(simFirmwareConfig))
	m.RTMR[0] = ExtendRTMR([48]byte{}, fw[:])
	m.RTMR[1] = ExtendRTMR([48]byte{}, binaryDigest)
	r := sha512.Sum384([]byte(role))
	m.RTMR[2] = ExtendRTMR([48]byte{}, r[:])
	m.RTMR[3] = ExtendRTMR([48]byte{}, configDigest[:])
	// XFAM of a typical TD (x87, SSE, AVX, AVX-512 state); TD attributes zero: not a debug TD.
	m.XFAM = [8]byte{0xe7, 0x02, 0x06, 0x00, 0, 0, 0, 0}
	return m
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
