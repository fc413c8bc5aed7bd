package sim

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"time"

	"github.com/google/go-tdx-guest/pcs"
)

// Organization is the Organization of every certificate of a development root of trust. It is a
// label for people reading certificates; trust comes only from the configured root certificate.
const Organization = "cocoon development root of trust (SIMULATED)"

// RootCRLURL is where a development root CA says its CRL lives; Root.Collateral serves it. The
// .invalid domain never resolves, so a verifier with the default network getter cannot fetch it.
const RootCRLURL = "https://sim.cocoon.invalid/development-root-ca.crl"

// UserDataMarker starts the 20-byte user data of every simulated quote header (covered by the
// quote signature). Real quoting enclaves put a platform identifier there.
const UserDataMarker = "COCOON-SIMULATED-TDX"

// The simulated platform: a Sapphire-Rapids-like TDX host whose TCB matches the newest level of
// the TCB info this package signs. The Intel-defined constants (QE vendor ID, QE MRSIGNER and
// product ID, zero MRSIGNERSEAM) take their real values, so policies written for real quotes
// apply unchanged; the measured components (MRSEAM, QE MRENCLAVE) are derived from labels.
var (
	platformFMSPC = [6]byte{0x00, 0x80, 0x6f, 0x05, 0x00, 0x00}
	platformPCEID = [2]byte{0x00, 0x00}
	platformPPID  = [16]byte{'c', 'o', 'c', 'o', 'o', 'n', '-', 's', 'i', 'm', '-', 'p', 'p', 'i', 'd', 0}

	// SGX TCB components of the PCK certificate; they are also the CPUSVN.
	platformSGXComponents = [16]byte{5, 5, 2, 2, 3, 1, 0, 3}
	platformPCESVN        = uint16(13)

	// TEE_TCB_SVN: TDX module minor SVN 5, major version 1 (module identity "TDX_01"), late
	// microcode SVN 2.
	platformTEETCBSVN = [16]byte{5, 1, 2}

	platformMRSEAM         = sha512.Sum384([]byte("cocoon simulated TDX module"))
	platformMRSIGNERSEAM   = [48]byte{} // Intel-signed TDX modules report zero
	platformSEAMAttributes = [8]byte{}

	qeVendorID   = [16]byte{0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07}
	qeMRSIGNER   = mustHex32("dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5")
	qeMRENCLAVE  = sha256.Sum256([]byte("cocoon simulated TD quoting enclave"))
	qeAttributes = [16]byte{0x11}
	qeMiscSelect = uint32(0)
	qeProdID     = uint16(2)
	qeISVSVN     = uint16(4)
	// QE authentication data as Intel's quoting enclave fills it: bytes 0..31.
	qeAuthData = func() []byte {
		b := make([]byte, 32)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}()

	tcbEvaluationDataNumber = 17
	tcbDate                 = time.Date(2025, 2, 12, 0, 0, 0, 0, time.UTC)
	oldTCBDate              = time.Date(2023, 2, 15, 0, 0, 0, 0, time.UTC)
)

const (
	platformCAID = "platform" // the PCK CA kind go-tdx-guest derives from the PCK issuer CN

	cnRoot       = "Intel SGX Root CA"
	cnPlatformCA = "Intel SGX PCK Platform CA"
	cnPCK        = "Intel SGX PCK Certificate"
	cnTCBSigning = "Intel SGX TCB Signing"

	defaultCollateralValidity = 30 * 24 * time.Hour
	certValidity              = 10 * 365 * 24 * time.Hour
	// Certificates start before their creation so that clocks a little behind still accept them.
	clockSkew = time.Hour
	// Collateral with less than this left is re-signed.
	refreshMargin = 24 * time.Hour
)

func mustHex32(s string) [32]byte {
	var out [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(out) {
		panic("sim: bad constant " + s)
	}
	copy(out[:], b)
	return out
}

func fmspcHex() string { return hex.EncodeToString(platformFMSPC[:]) }

func validStatus(s pcs.TcbComponentStatus) bool {
	switch s {
	case pcs.TcbComponentStatusUpToDate, pcs.TcbComponentStatusSwHardeningNeeded,
		pcs.TcbComponentStatusConfigurationNeeded, pcs.TcbComponentStatusConfigurationAndSWHardeningNeeded,
		pcs.TcbComponentStatusOutOfDate, pcs.TcbComponentStatusOutOfDateConfigurationNeeded,
		pcs.TcbComponentStatusRevoked:
		return true
	}
	return false
}
