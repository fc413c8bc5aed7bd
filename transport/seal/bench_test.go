package seal

import (
	"bytes"
	"testing"
)

// BenchmarkRequest is what sealing adds before the first chunk of a session's first request: the
// client seals 4 KiB, the worker opens it (one X-Wing encapsulation and decapsulation).
func BenchmarkRequest(b *testing.B) {
	k := newKey(b)
	body := bytes.Repeat([]byte("a"), 4<<10)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		sealed, _, err := SealRequest(k.PublicKey(), testBinding(), body)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := OpenRequest(k, testBinding(), sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealRequest and BenchmarkOpenRequest split BenchmarkRequest between client and worker.
func BenchmarkSealRequest(b *testing.B) {
	k := newKey(b)
	body := bytes.Repeat([]byte("a"), 4<<10)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := SealRequest(k.PublicKey(), testBinding(), body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionRequest is BenchmarkRequest for a session's later requests: no KEM operation
// on either side.
func BenchmarkSessionRequest(b *testing.B) {
	k := newKey(b)
	s, err := NewSession(k.PublicKey())
	if err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("a"), 4<<10)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		sealed, _, err := s.SealRequest(testBinding(), body)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := OpenRequest(k, testBinding(), sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenRequest opens a session's first request: a decapsulation (its secret is dropped
// each time, as a worker that had never seen the session would).
func BenchmarkOpenRequest(b *testing.B) {
	k := newKey(b)
	sealed, _, err := SealRequest(k.PublicKey(), testBinding(), bytes.Repeat([]byte("a"), 4<<10))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		k.sessions = sessions{}
		if _, _, err := OpenRequest(k, testBinding(), sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChunk is the cost per answer chunk of 128 bytes: sealed by the worker, opened by the
// client.
func BenchmarkChunk(b *testing.B) {
	sealer, opener := exchange(b, newKey(b))
	chunk := bytes.Repeat([]byte("c"), 128)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		f, err := sealer.AppendSeal(buf[:0], chunk)
		if err != nil {
			b.Fatal(err)
		}
		buf = f
		if _, err := opener.OpenInPlace(f); err != nil {
			b.Fatal(err)
		}
	}
}
