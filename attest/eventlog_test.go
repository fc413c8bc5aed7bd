package attest_test

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
)

func logEvents() []attest.Event {
	var events []attest.Event
	for i, name := range []string{"TDVF config", "kernel", "initrd", "cmdline", "app"} {
		e := attest.Event{MRIndex: uint32(i%4 + 1), Type: 0x80000001, Data: []byte(name)}
		e.Digest = sha512.Sum384([]byte(name))
		events = append(events, e)
	}
	// EV_NO_ACTION extends nothing.
	return append(events, attest.Event{MRIndex: 2, Type: 3, Data: []byte("marker")})
}

func TestEventLogReplay(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	events := logEvents()
	parsed, err := attest.ParseEventLog(attesttest.EventLog(events))
	require.NoError(err)
	require.Len(parsed, len(events))
	assert.Equal("EV_EFI_VARIABLE_DRIVER_CONFIG", parsed[0].TypeName())
	assert.Equal(-1, parsed[5].RTMR())

	var want [4][48]byte
	for _, e := range events[:5] {
		j := int(e.MRIndex) - 1
		want[j] = attest.ExtendRTMR(want[j], e.Digest[:])
	}
	assert.Equal(want, attest.ReplayRTMRs(parsed))
}

func TestEventLogRefusals(t *testing.T) {
	good := attesttest.EventLog(logEvents())
	testCases := map[string][]byte{
		"empty":          {},
		"not agile":      append([]byte{0, 0, 0, 0, 1, 0, 0, 0}, good[8:]...),
		"truncated":      good[:len(good)-64-10],
		"huge data size": append(good[:len(good)-64-4-len("marker")], 0xff, 0xff, 0xff, 0x7f),
	}
	for name, raw := range testCases {
		t.Run(name, func(t *testing.T) {
			_, err := attest.ParseEventLog(raw)
			require.ErrorContains(t, err, "parse event log")
		})
	}
}

func FuzzParseEventLog(f *testing.F) {
	f.Add(attesttest.EventLog(logEvents()))
	f.Add(attesttest.EventLog(nil))
	f.Fuzz(func(t *testing.T, raw []byte) {
		events, err := attest.ParseEventLog(raw)
		if err != nil {
			return
		}
		_ = attest.ReplayRTMRs(events)
		for _, e := range events {
			_ = fmt.Sprint(e.TypeName(), e.RTMR())
		}
	})
}

// A real TD's event log replays to the RTMRs of its quote: every event go-tdx-guest recorded
// from a Container-Optimized OS TD, firmware to kernel command line.
func TestEventLogReplaysRecordedTD(t *testing.T) {
	rawQuote, rawLog := attesttest.RecordedTD(t)
	q, err := attest.ParseQuote(rawQuote)
	require.NoError(t, err)
	events, err := attest.ParseEventLog(rawLog)
	require.NoError(t, err)
	require.Len(t, events, 43)
	assert.Equal(t, q.Measurements.RTMR, attest.ReplayRTMRs(events))
	assert.NotEqual(t, [48]byte{}, q.Measurements.RTMR[2], "the kernel and its command line were measured")
}

func TestExtendRTMR(t *testing.T) {
	assert := assert.New(t)
	var zero [48]byte
	d := sha256.Sum256([]byte("kernel"))
	got := attest.ExtendRTMR(zero, d[:])
	assert.NotEqual(zero, got)
	assert.Equal(attest.ExtendRTMR(zero, d[:]), got, "deterministic")
	assert.NotEqual(attest.ExtendRTMR(got, d[:]), got, "extending again changes the register")
	// Order matters: extend(extend(0, a), b) != extend(extend(0, b), a).
	e := sha256.Sum256([]byte("initrd"))
	assert.NotEqual(attest.ExtendRTMR(attest.ExtendRTMR(zero, d[:]), e[:]), attest.ExtendRTMR(attest.ExtendRTMR(zero, e[:]), d[:]))
	// Known answer, from Python: hashlib.sha384(bytes(48) + b"abc").hexdigest().
	abc := attest.ExtendRTMR(zero, []byte("abc"))
	assert.Equal("b1c16eb7634112b7c9d5ebd27e62a2d4528bbfcfd68b62d3afd9ecf98e0f413a84314acce78317fb69fd895155343e09", hex.EncodeToString(abc[:]))
}
