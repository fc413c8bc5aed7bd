package seal

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"hash"
	"math"
	"slices"

	"golang.org/x/crypto/chacha20poly1305"
)

const (
	// answerLabel is the HPKE exporter context of the answer secret.
	answerLabel      = "cocoon answer"
	answerSecretSize = 32
	// answerNonceSize is the worker's random answer nonce, carried by frame 0.
	answerNonceSize = 32
	tagSize         = chacha20poly1305.Overhead
	frameHeaderSize = 1 + 4 // kind, sequence number

	kindChunk = 1
	kindEnd   = 2

	// MaxChunkSize bounds one answer chunk. A plain JSON answer larger than this is sealed in
	// pieces; a sealed chunk then still fits a worker's frame (wire.DefaultMaxFrameSize, 8 MiB).
	MaxChunkSize = 4 << 20
	// MaxTrailerSize bounds what the end marker carries (a receipt, a few hundred bytes).
	MaxTrailerSize = 64 << 10
	// MaxFrameSize bounds a sealed answer frame, the first one included.
	MaxFrameSize = frameHeaderSize + answerNonceSize + MaxChunkSize + tagSize
	// maxChunks leaves the end marker a sequence number of its own.
	maxChunks = math.MaxUint32 - 1
	// endFixedSize: the answer's length in bytes, at the start of the end marker's plaintext.
	endFixedSize = 8
)

// answerKeys are the AEAD and base nonce of one answer, in both directions' copies.
type answerKeys struct {
	aead  cipher.AEAD
	base  [chacha20poly1305.NonceSize]byte
	nonce [chacha20poly1305.NonceSize]byte // scratch, so sealing allocates only its output
	hdr   [frameHeaderSize]byte            // scratch: the AAD
	sum   hash.Hash                        // SHA-256 of the answer so far
	size  uint64                           // bytes of answer so far
}

// deriveAnswerKeys is the answer key schedule (see doc.go):
//
//	prk   = HKDF-Extract(salt = enc ‖ answer_nonce, ikm = secret)
//	key   = HKDF-Expand(prk, "key", 32)
//	base  = HKDF-Expand(prk, "nonce", 12)
//
// The worker's fresh answer_nonce gives each answer its own keys even when a proxy replays a
// sealed request: without it a replayed request would have the worker seal a second, different
// answer under the same key and nonces.
func deriveAnswerKeys(secret, enc, answerNonce []byte) (*answerKeys, error) {
	salt := make([]byte, 0, len(enc)+len(answerNonce))
	salt = append(append(salt, enc...), answerNonce...)
	prk, err := hkdf.Extract(sha256.New, secret, salt)
	if err != nil {
		return nil, fmt.Errorf("derive answer keys: %w", err)
	}
	key, err := hkdf.Expand(sha256.New, prk, "key", chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("derive answer keys: %w", err)
	}
	base, err := hkdf.Expand(sha256.New, prk, "nonce", chacha20poly1305.NonceSize)
	if err != nil {
		return nil, fmt.Errorf("derive answer keys: %w", err)
	}
	a, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, fmt.Errorf("derive answer keys: %w", err)
	}
	k := &answerKeys{aead: a, sum: sha256.New()}
	copy(k.base[:], base)
	return k, nil
}

// setFrame fills the scratch AAD and nonce for frame (kind, seq): nonce = base ⊕ seq, seq
// big-endian in the last four bytes, as HPKE itself numbers its messages.
func (k *answerKeys) setFrame(kind byte, seq uint32) {
	k.hdr[0] = kind
	binary.BigEndian.PutUint32(k.hdr[1:], seq)
	k.nonce = k.base
	for i := range 4 {
		k.nonce[len(k.nonce)-4+i] ^= k.hdr[1+i]
	}
}

func (k *answerKeys) answerHash() (d Digest) {
	k.sum.Sum(d[:0])
	return d
}

// AnswerSealer seals a worker's answer to one request, chunk by chunk, for the client that sealed
// the request. It is not safe for concurrent use.
type AnswerSealer struct {
	k           *answerKeys
	answerNonce [answerNonceSize]byte
	seq         uint32
	ended       bool
}

func newAnswerSealer(secret, enc []byte) (*AnswerSealer, error) {
	s := &AnswerSealer{}
	_, _ = rand.Read(s.answerNonce[:]) // crypto/rand.Read never fails
	k, err := deriveAnswerKeys(secret, enc, s.answerNonce[:])
	if err != nil {
		return nil, err
	}
	s.k = k
	return s, nil
}

// Seal returns the sealed frame of the next answer chunk (at most MaxChunkSize bytes). An empty
// chunk is allowed.
func (s *AnswerSealer) Seal(chunk []byte) ([]byte, error) { return s.AppendSeal(nil, chunk) }

// AppendSeal is Seal appending the frame to dst, so that a caller reusing a buffer seals a
// chunk without allocating.
func (s *AnswerSealer) AppendSeal(dst, chunk []byte) ([]byte, error) {
	switch {
	case s.ended:
		return nil, fmt.Errorf("seal answer chunk: %w", ErrEnded)
	case len(chunk) > MaxChunkSize:
		return nil, fmt.Errorf("seal answer chunk: %d bytes, at most %d: %w", len(chunk), MaxChunkSize, ErrTooLarge)
	case s.seq >= maxChunks:
		return nil, fmt.Errorf("seal answer chunk: more than %d chunks: %w", maxChunks, ErrTooLarge)
	}
	s.k.sum.Write(chunk)
	s.k.size += uint64(len(chunk))
	return s.seal(dst, kindChunk, chunk, nil), nil
}

// AnswerHash is SHA-256 of the answer sealed so far, all chunks in order: what a receipt names.
func (s *AnswerSealer) AnswerHash() Digest { return s.k.answerHash() }

// End returns the end marker, the answer's last frame: it says how many chunks and bytes the
// answer had, and carries trailer (at most MaxTrailerSize bytes; for instance the encoded
// receipt, which the client then reads with AnswerOpener.Trailer), sealed like the chunks.
func (s *AnswerSealer) End(trailer []byte) ([]byte, error) {
	switch {
	case s.ended:
		return nil, fmt.Errorf("seal answer end: %w", ErrEnded)
	case len(trailer) > MaxTrailerSize:
		return nil, fmt.Errorf("seal answer end: trailer of %d bytes, at most %d: %w", len(trailer), MaxTrailerSize, ErrTooLarge)
	}
	s.ended = true
	var size [endFixedSize]byte
	binary.BigEndian.PutUint64(size[:], s.k.size)
	return s.seal(nil, kindEnd, size[:], trailer), nil
}

// seal appends one frame to dst: kind ‖ seq ‖ [answer nonce, frame 0 only] ‖ AEAD(p1 ‖ p2).
func (s *AnswerSealer) seal(dst []byte, kind byte, p1, p2 []byte) []byte {
	seq := s.seq
	s.seq++
	s.k.setFrame(kind, seq)
	n := frameHeaderSize + len(p1) + len(p2) + tagSize
	if seq == 0 {
		n += answerNonceSize
	}
	start := len(dst)
	out := slices.Grow(dst, n)
	out = append(out, s.k.hdr[:]...)
	if seq == 0 {
		out = append(out, s.answerNonce[:]...)
	}
	if len(p2) == 0 {
		return s.k.aead.Seal(out, s.k.nonce[:], p1, s.k.hdr[:])
	}
	// Seal in place: plaintext written where its ciphertext goes.
	pt := append(append(out[len(out):], p1...), p2...)
	s.k.aead.Seal(pt[:0], s.k.nonce[:], pt, s.k.hdr[:])
	return out[:start+n]
}

// AnswerOpener opens the answer to one sealed request, frame by frame, in the order the worker
// sealed them. The first refusal is final: every later Open, and Done, return it. It is not safe
// for concurrent use.
type AnswerOpener struct {
	secret, enc []byte
	k           *answerKeys // nil until frame 0
	answerNonce [answerNonceSize]byte
	next        uint64 // sequence number due
	ended       bool
	answerSum   Digest
	trailer     []byte
	err         error
}

// Open authenticates and decrypts one frame. It returns the chunk's plaintext, or, for the end
// marker, nil (Ended then reports true, and Trailer returns what it carried).
//
// Refusals: ErrTooLarge, ErrMalformed, ErrTampered (a changed byte, or a frame of another
// answer), ErrReplayed (a frame opened before, the end marker included), ErrOutOfOrder (a frame
// ahead of the one due: one was dropped, or they were reordered).
func (o *AnswerOpener) Open(frame []byte) ([]byte, error) { return o.OpenInPlace(bytes.Clone(frame)) }

// OpenInPlace is Open decrypting in place, without allocating: it overwrites frame, and the
// chunk it returns shares frame's memory. (The end marker's trailer is a copy.)
func (o *AnswerOpener) OpenInPlace(frame []byte) ([]byte, error) {
	if o.err != nil {
		return nil, o.err
	}
	p, err := o.open(frame)
	if err != nil {
		o.err = fmt.Errorf("open answer frame %d: %w", o.next, err)
		return nil, o.err
	}
	return p, nil
}

func (o *AnswerOpener) open(frame []byte) ([]byte, error) {
	if len(frame) > MaxFrameSize {
		return nil, fmt.Errorf("%d bytes, at most %d: %w", len(frame), MaxFrameSize, ErrTooLarge)
	}
	if len(frame) < frameHeaderSize+tagSize {
		return nil, fmt.Errorf("%d bytes, at least %d: %w", len(frame), frameHeaderSize+tagSize, ErrMalformed)
	}
	kind, seq, ct := frame[0], binary.BigEndian.Uint32(frame[1:frameHeaderSize]), frame[frameHeaderSize:]
	limit := MaxChunkSize
	switch kind {
	case kindChunk:
	case kindEnd:
		limit = endFixedSize + MaxTrailerSize
	default:
		return nil, fmt.Errorf("frame kind %d: %w", kind, ErrMalformed)
	}
	if seq == 0 {
		if len(ct) < answerNonceSize+tagSize {
			return nil, fmt.Errorf("first frame of %d bytes: %w", len(frame), ErrMalformed)
		}
		nonce := ct[:answerNonceSize]
		ct = ct[answerNonceSize:]
		if o.k == nil {
			k, err := deriveAnswerKeys(o.secret, o.enc, nonce)
			if err != nil {
				return nil, err
			}
			o.k = k
			copy(o.answerNonce[:], nonce)
		} else if subtle.ConstantTimeCompare(nonce, o.answerNonce[:]) != 1 {
			return nil, fmt.Errorf("frame 0 again, with another answer nonce: %w", ErrTampered)
		}
	} else if o.k == nil {
		return nil, fmt.Errorf("frame %d before frame 0: %w", seq, ErrOutOfOrder)
	}
	if len(ct)-tagSize > limit {
		return nil, fmt.Errorf("frame of %d bytes: %w", len(frame), ErrTooLarge)
	}
	o.k.setFrame(kind, seq)
	p, err := o.k.aead.Open(ct[:0], o.k.nonce[:], ct, o.k.hdr[:])
	if err != nil {
		return nil, fmt.Errorf("frame %d: %w", seq, ErrTampered)
	}
	switch {
	case uint64(seq) < o.next:
		return nil, fmt.Errorf("frame %d again: %w", seq, ErrReplayed)
	case uint64(seq) > o.next:
		return nil, fmt.Errorf("frame %d: %w", seq, ErrOutOfOrder)
	}
	o.next++
	if kind == kindChunk {
		o.k.sum.Write(p)
		o.k.size += uint64(len(p))
		return p, nil
	}
	if len(p) < endFixedSize {
		return nil, fmt.Errorf("end marker of %d bytes: %w", len(p), ErrMalformed)
	}
	if size := binary.BigEndian.Uint64(p); size != o.k.size {
		return nil, fmt.Errorf("end marker says %d bytes, %d arrived: %w", size, o.k.size, ErrTampered)
	}
	o.ended = true
	o.answerSum = o.k.answerHash()
	o.trailer = bytes.Clone(p[endFixedSize:]) // outlives the frame's buffer
	return nil, nil
}

// Ended reports whether the end marker was opened.
func (o *AnswerOpener) Ended() bool { return o.ended && o.err == nil }

// Done is called when the answer's stream has ended; it says whether the answer arrived whole: nil
// once the end marker was opened and nothing was refused; ErrTruncated if the end marker never
// came (which is final too: Open refuses every frame after it); else the first refusal.
func (o *AnswerOpener) Done() error {
	if o.err == nil && !o.ended {
		o.err = fmt.Errorf("answer ended after %d frames: %w", o.next, ErrTruncated)
	}
	return o.err
}

// Trailer returns what the end marker carried (nil before it).
func (o *AnswerOpener) Trailer() []byte { return o.trailer }

// AnswerHash is SHA-256 of the whole answer, all chunks in order, once the end marker was opened
// (the zero Digest before): what a receipt must name.
func (o *AnswerOpener) AnswerHash() Digest { return o.answerSum }
