package seal

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Digest is a SHA-256 hash. It is written as lowercase hex in JSON, so it can be compared with
// the output of sha256sum.
type Digest [32]byte

// MarshalText writes d as 64 lowercase hex digits.
func (d Digest) MarshalText() ([]byte, error) { return hex.AppendEncode(nil, d[:]), nil }

// UnmarshalText reads 64 hex digits.
func (d *Digest) UnmarshalText(b []byte) error {
	if len(b) != hex.EncodedLen(len(d)) {
		return fmt.Errorf("digest: %d hex digits, want 64: %w", len(b), ErrMalformed)
	}
	if _, err := hex.Decode(d[:], b); err != nil {
		return fmt.Errorf("digest: %v: %w", err, ErrMalformed)
	}
	return nil
}

// String returns d in hex.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// MaxFieldSize bounds each string field this package encodes (request id, model name, weights
// digest): far above any real value, far below what would cost memory.
const MaxFieldSize = 1024

// encoder appends the canonical encoding of fields: integers big-endian at fixed width, strings
// with a 2-byte length, digests as their 32 bytes. Fields have a fixed order and no tags, so one
// value has one encoding.
type encoder struct{ b []byte }

func (e *encoder) u8(v uint8)      { e.b = append(e.b, v) }
func (e *encoder) u64(v uint64)    { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *encoder) raw(v []byte)    { e.b = append(e.b, v...) }
func (e *encoder) digest(d Digest) { e.b = append(e.b, d[:]...) }
func (e *encoder) str(s string) {
	e.b = append(binary.BigEndian.AppendUint16(e.b, uint16(len(s))), s...)
}

func checkField(name, v string) error {
	if len(v) > MaxFieldSize {
		return fmt.Errorf("%s: %d bytes, at most %d: %w", name, len(v), MaxFieldSize, ErrTooLarge)
	}
	return nil
}

// decoder reads what encoder wrote. The first failure sticks; every read after it returns zero
// values, and err says what failed. It never allocates more than the input holds.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.err = fmt.Errorf("%s: needs %d bytes, %d left: %w", what, n, len(d.b), ErrMalformed)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8(what string) uint8 {
	if v := d.take(1, what); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u64(what string) uint64 {
	if v := d.take(8, what); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (d *decoder) digest(what string) (out Digest) {
	copy(out[:], d.take(len(out), what))
	return out
}

func (d *decoder) raw(n int, what string) []byte {
	return append([]byte(nil), d.take(n, what)...)
}

func (d *decoder) str(what string) string {
	l := d.take(2, what)
	if l == nil {
		return ""
	}
	n := int(binary.BigEndian.Uint16(l))
	if n > MaxFieldSize {
		d.err = fmt.Errorf("%s: %d bytes, at most %d: %w", what, n, MaxFieldSize, ErrMalformed)
		return ""
	}
	return string(d.take(n, what))
}

// end fails if bytes are left over: a canonical encoding has none.
func (d *decoder) end(what string) error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%s: %d trailing bytes: %w", what, len(d.b), ErrMalformed)
	}
	return d.err
}
