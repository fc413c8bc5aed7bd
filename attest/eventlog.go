package attest

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
)

// A TDX guest's firmware records what it measured into the RTMRs in the CC event log (the ACPI
// CCEL table, /sys/firmware/acpi/tables/data/CCEL on Linux): a TCG crypto-agile event log whose
// "PCR index" is the TDX measurement register index (1–4 = RTMR0–3). Replaying it shows which
// events produced each RTMR of a quote.

// Event types of the TCG PC Client Platform Firmware Profile that appear in TDX logs.
const (
	evNoAction = 0x00000003
	algSHA384  = 0x000c
)

var eventTypeNames = map[uint32]string{
	0x00000001: "EV_POST_CODE", 0x00000003: "EV_NO_ACTION", 0x00000004: "EV_SEPARATOR", 0x00000005: "EV_ACTION",
	0x00000006: "EV_EVENT_TAG", 0x00000007: "EV_S_CRTM_CONTENTS", 0x00000008: "EV_S_CRTM_VERSION",
	0x00000009: "EV_CPU_MICROCODE", 0x0000000a: "EV_PLATFORM_CONFIG_FLAGS", 0x0000000b: "EV_TABLE_OF_DEVICES",
	0x0000000c: "EV_COMPACT_HASH", 0x0000000d: "EV_IPL", 0x0000000e: "EV_IPL_PARTITION_DATA",
	0x0000000f: "EV_NONHOST_CODE", 0x00000010: "EV_NONHOST_CONFIG", 0x00000011: "EV_NONHOST_INFO",
	0x00000012: "EV_OMIT_BOOT_DEVICE_EVENTS",
	0x80000001: "EV_EFI_VARIABLE_DRIVER_CONFIG", 0x80000002: "EV_EFI_VARIABLE_BOOT",
	0x80000003: "EV_EFI_BOOT_SERVICES_APPLICATION", 0x80000004: "EV_EFI_BOOT_SERVICES_DRIVER",
	0x80000005: "EV_EFI_RUNTIME_SERVICES_DRIVER", 0x80000006: "EV_EFI_GPT_EVENT", 0x80000007: "EV_EFI_ACTION",
	0x80000008: "EV_EFI_PLATFORM_FIRMWARE_BLOB", 0x80000009: "EV_EFI_HANDOFF_TABLES",
	0x8000000a: "EV_EFI_PLATFORM_FIRMWARE_BLOB2", 0x8000000b: "EV_EFI_HANDOFF_TABLES2",
	0x8000000c: "EV_EFI_VARIABLE_BOOT2", 0x80000010: "EV_EFI_HCRTM_EVENT",
	0x800000e0: "EV_EFI_VARIABLE_AUTHORITY", 0x800000e1: "EV_EFI_SPDM_FIRMWARE_BLOB",
	0x800000e2: "EV_EFI_SPDM_FIRMWARE_CONFIG",
}

// Event is one measurement of a CC event log.
type Event struct {
	// MRIndex is the TDX measurement register: 0 MRTD, 1–4 RTMR0–3.
	MRIndex uint32
	Type    uint32
	// Digest is the SHA-384 digest extended into the register.
	Digest [48]byte
	Data   []byte
}

// RTMR is the RTMR the event extended, or -1 for events that extend none (EV_NO_ACTION, MRTD).
func (e *Event) RTMR() int {
	if e.Type == evNoAction || e.MRIndex < 1 || e.MRIndex > 4 {
		return -1
	}
	return int(e.MRIndex) - 1
}

// TypeName is the event type's TCG name, or its number.
func (e *Event) TypeName() string {
	if n, ok := eventTypeNames[e.Type]; ok {
		return n
	}
	return fmt.Sprintf("0x%08x", e.Type)
}

// Limits against hostile logs; real ones hold a few hundred events of a few KiB.
const (
	maxEventLogEvents = 1 << 16
	maxDigestAlgs     = 16
)

// ParseEventLog parses a crypto-agile CC event log. Padding (0xFF or 0x00 bytes: the CCEL area is
// larger than its log) ends it.
func ParseEventLog(raw []byte) ([]Event, error) {
	r := &logReader{b: raw}
	// The first event is in the legacy SHA-1 format and carries the Spec ID event that lists the
	// digest sizes of every later event.
	r.u32()
	typ := r.u32()
	r.skip(20)
	spec := r.bytes(int(r.u32()))
	if r.err != nil || typ != evNoAction || !bytes.HasPrefix(spec, []byte("Spec ID Event03\x00")) {
		return nil, fmt.Errorf("parse event log: not a crypto-agile TCG event log")
	}
	sizes, err := digestSizes(spec)
	if err != nil {
		return nil, fmt.Errorf("parse event log: %w", err)
	}
	if _, ok := sizes[algSHA384]; !ok {
		return nil, fmt.Errorf("parse event log: no SHA-384 digests")
	}
	var events []Event
	for len(r.b)-r.off >= 8 {
		if len(events) == maxEventLogEvents {
			return nil, fmt.Errorf("parse event log: more than %d events", maxEventLogEvents)
		}
		e := Event{MRIndex: r.u32(), Type: r.u32()}
		if e.MRIndex == 0xffffffff || (e.MRIndex == 0 && e.Type == 0) {
			break // padding after the last event
		}
		n := r.u32()
		if n > maxDigestAlgs {
			return nil, fmt.Errorf("parse event log: event %d has %d digests", len(events), n)
		}
		found := false
		for range n {
			alg := r.u16()
			size, ok := sizes[alg]
			if !ok {
				return nil, fmt.Errorf("parse event log: event %d: digest algorithm 0x%04x not in the Spec ID event", len(events), alg)
			}
			d := r.bytes(int(size))
			if alg == algSHA384 && len(d) == 48 {
				copy(e.Digest[:], d)
				found = true
			}
		}
		e.Data = r.bytes(int(r.u32()))
		if r.err != nil {
			return nil, fmt.Errorf("parse event log: event %d: %w", len(events), r.err)
		}
		if !found {
			return nil, fmt.Errorf("parse event log: event %d has no SHA-384 digest", len(events))
		}
		events = append(events, e)
	}
	return events, nil
}

// digestSizes reads the algorithm list of a Spec ID event.
func digestSizes(spec []byte) (map[uint16]uint16, error) {
	r := &logReader{b: spec}
	r.skip(16 + 4 + 4) // signature, platform class, version minor/major, errata, uintn size
	n := r.u32()
	if n == 0 || n > maxDigestAlgs {
		return nil, fmt.Errorf("spec ID event lists %d algorithms", n)
	}
	sizes := map[uint16]uint16{}
	for range n {
		alg, size := r.u16(), r.u16()
		sizes[alg] = size
	}
	if r.err != nil {
		return nil, fmt.Errorf("spec ID event: %w", r.err)
	}
	return sizes, nil
}

// ReplayRTMRs extends every event into its RTMR, from zero, as the TDX module does.
func ReplayRTMRs(events []Event) [4][48]byte {
	var rtmr [4][48]byte
	for i := range events {
		if j := events[i].RTMR(); j >= 0 {
			rtmr[j] = ExtendRTMR(rtmr[j], events[i].Digest[:])
		}
	}
	return rtmr
}

// ExtendRTMR returns SHA-384(rtmr || digest): the TDX RTMR extend operation. TDX extends by a
// 48-byte (SHA-384) digest; pass one to mirror it exactly.
func ExtendRTMR(rtmr [48]byte, digest []byte) [48]byte {
	return sha512.Sum384(append(rtmr[:], digest...))
}

type logReader struct {
	b   []byte
	off int
	err error
}

func (r *logReader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.err = fmt.Errorf("truncated at offset %d (want %d bytes)", r.off, n)
		return nil
	}
	out := r.b[r.off : r.off+n]
	r.off += n
	return out
}

func (r *logReader) skip(n int) { r.bytes(n) }

func (r *logReader) u32() uint32 {
	if b := r.bytes(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *logReader) u16() uint16 {
	if b := r.bytes(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}
