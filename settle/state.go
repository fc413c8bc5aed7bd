package settle

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/tlb"
	"github.com/tonkeeper/tongo/ton"
)

// StateTag is the 32-bit prefix of a payment-state cell; it keeps a signature over a payment
// state from being valid for any other message the payment key might sign.
const StateTag = 0x53545431

// Kind says which cumulative total a payment state carries.
type Kind uint8

const (
	// KindClientCharged is the total the proxy has charged a client.
	KindClientCharged Kind = 1
	// KindWorkerEarned is the total a worker has earned from the proxy.
	KindWorkerEarned Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindClientCharged:
		return "client-charged"
	case KindWorkerEarned:
		return "worker-earned"
	default:
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
}

var (
	// ErrBadSignature is returned when a signature does not verify with the proxy's payment key.
	ErrBadSignature = errors.New("bad payment state signature")
	// ErrMalformedState is returned for bytes that are not a canonical signed payment state.
	ErrMalformedState = errors.New("malformed payment state")
)

// State is a proxy's statement that Party's cumulative total of Kind on the proxy contract
// Proxy is Total nanoTON as of sequence number Seqno (strictly increasing per party).
type State struct {
	Proxy ton.AccountID
	Party ton.AccountID
	Kind  Kind
	Seqno uint64
	Total uint64
}

// SignedState is a State with the proxy's Ed25519 signature over the state cell's hash.
type SignedState struct {
	State     State
	Signature [ed25519.SignatureSize]byte
}

// Cell builds the state cell exactly as the proxy contract reads it (struct PaymentState):
//
//	tag:uint32 = 0x53545431, proxy:MsgAddressInt, party:MsgAddressInt, kind:uint8, seqno:uint64, total:Coins
func (s State) Cell() (*boc.Cell, error) {
	c := boc.NewCell()
	if err := c.WriteUint(StateTag, 32); err != nil {
		return nil, fmt.Errorf("build payment state: %w", err)
	}
	if err := writeAddr(c, s.Proxy); err != nil {
		return nil, fmt.Errorf("build payment state: proxy: %w", err)
	}
	if err := writeAddr(c, s.Party); err != nil {
		return nil, fmt.Errorf("build payment state: party: %w", err)
	}
	if err := c.WriteUint(uint64(s.Kind), 8); err != nil {
		return nil, fmt.Errorf("build payment state: %w", err)
	}
	if err := c.WriteUint(s.Seqno, 64); err != nil {
		return nil, fmt.Errorf("build payment state: %w", err)
	}
	if err := tlb.Marshal(c, tlb.Grams(s.Total)); err != nil {
		return nil, fmt.Errorf("build payment state: total: %w", err)
	}
	return c, nil
}

// Hash is the cell representation hash that is signed (what TVM's HASHCU computes).
func (s State) Hash() ([32]byte, error) {
	c, err := s.Cell()
	if err != nil {
		return [32]byte{}, err
	}
	h, err := c.Hash256()
	if err != nil {
		return [32]byte{}, fmt.Errorf("hash payment state: %w", err)
	}
	return h, nil
}

// Sign signs s with the proxy's payment key.
func Sign(s State, key ed25519.PrivateKey) (SignedState, error) {
	if len(key) != ed25519.PrivateKeySize {
		return SignedState{}, fmt.Errorf("sign payment state: private key has %d bytes", len(key))
	}
	h, err := s.Hash()
	if err != nil {
		return SignedState{}, err
	}
	out := SignedState{State: s}
	// Ed25519 signatures are deterministic: voi's is crypto/ed25519's, in half the time (a proxy
	// signs a state for every paid request).
	copy(out.Signature[:], voi.Sign(voi.PrivateKey(key), h[:]))
	return out, nil
}

// Verify checks the signature against the proxy's payment key.
func (s SignedState) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("verify payment state: public key has %d bytes: %w", len(pub), ErrBadSignature)
	}
	h, err := s.State.Hash()
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, h[:], s.Signature[:]) {
		return fmt.Errorf("verify payment state seqno %d: %w", s.State.Seqno, ErrBadSignature)
	}
	return nil
}

// Cell is the transport form of a signed state: signature:bits512 and a ref to the state
// cell — the same layout as the tail of the contract's SubmitState message.
func (s SignedState) Cell() (*boc.Cell, error) {
	st, err := s.State.Cell()
	if err != nil {
		return nil, err
	}
	c := boc.NewCell()
	for _, b := range s.Signature {
		if err := c.WriteUint(uint64(b), 8); err != nil {
			return nil, fmt.Errorf("build signed state: %w", err)
		}
	}
	if err := c.AddRef(st); err != nil {
		return nil, fmt.Errorf("build signed state: %w", err)
	}
	return c, nil
}

// MarshalBinary encodes the signed state as a BOC of its Cell.
func (s SignedState) MarshalBinary() ([]byte, error) {
	c, err := s.Cell()
	if err != nil {
		return nil, err
	}
	b, err := c.ToBoc()
	if err != nil {
		return nil, fmt.Errorf("encode signed state: %w", err)
	}
	return b, nil
}

// ParseSignedState decodes untrusted bytes produced by MarshalBinary. It accepts only the
// canonical encoding, so that equal states always have equal bytes; it does not verify the
// signature (call Verify with the proxy's key).
func ParseSignedState(b []byte) (SignedState, error) {
	var out SignedState
	if len(b) > maxSignedStateBytes {
		return out, fmt.Errorf("parse signed state: %w: %d bytes", ErrMalformedState, len(b))
	}
	cells, err := deserializeBoc(b)
	if err != nil {
		return out, fmt.Errorf("parse signed state: %w: %v", ErrMalformedState, err)
	}
	if len(cells) != 1 {
		return out, fmt.Errorf("parse signed state: %w: %d roots", ErrMalformedState, len(cells))
	}
	root := cells[0]
	if root.IsExotic() || root.BitSize() != 8*ed25519.SignatureSize || root.RefsSize() != 1 {
		return out, fmt.Errorf("parse signed state: %w: root layout", ErrMalformedState)
	}
	sig, err := root.ReadBytes(ed25519.SignatureSize)
	if err != nil {
		return out, fmt.Errorf("parse signed state: %w: %v", ErrMalformedState, err)
	}
	copy(out.Signature[:], sig)
	sc, err := root.NextRef()
	if err != nil {
		return out, fmt.Errorf("parse signed state: %w: %v", ErrMalformedState, err)
	}
	out.State, err = parseState(sc)
	if err != nil {
		return out, err
	}
	// Canonical: re-encoding must give the same cell (rules out non-minimal coins and similar).
	want, err := sc.Hash256()
	if err != nil {
		return out, fmt.Errorf("parse signed state: %w: %v", ErrMalformedState, err)
	}
	got, err := out.State.Hash()
	if err != nil || got != want {
		return out, fmt.Errorf("parse signed state: %w: not canonical", ErrMalformedState)
	}
	return out, nil
}

// maxSignedStateBytes bounds untrusted input; a canonical signed state is about 200 bytes.
const maxSignedStateBytes = 1024

// deserializeBoc shields callers from tongo's BOC parser, which panics on some truncated
// headers (found by FuzzParseSignedState; the input is kept in testdata/fuzz).
func deserializeBoc(b []byte) (cells []*boc.Cell, err error) {
	defer func() {
		if r := recover(); r != nil {
			cells, err = nil, fmt.Errorf("boc parser panic: %v", r)
		}
	}()
	return boc.DeserializeBoc(b)
}

func parseState(c *boc.Cell) (State, error) {
	var s State
	if c.IsExotic() || c.RefsSize() != 0 {
		return s, fmt.Errorf("parse payment state: %w: layout", ErrMalformedState)
	}
	if err := c.ReadPrefix(32, StateTag); err != nil {
		return s, fmt.Errorf("parse payment state: %w: tag", ErrMalformedState)
	}
	var err error
	if s.Proxy, err = readAddr(c); err != nil {
		return s, fmt.Errorf("parse payment state: proxy: %w", err)
	}
	if s.Party, err = readAddr(c); err != nil {
		return s, fmt.Errorf("parse payment state: party: %w", err)
	}
	k, err := c.ReadUint(8)
	if err != nil {
		return s, fmt.Errorf("parse payment state: %w: kind", ErrMalformedState)
	}
	s.Kind = Kind(k)
	if s.Kind != KindClientCharged && s.Kind != KindWorkerEarned {
		return s, fmt.Errorf("parse payment state: %w: unknown kind %d", ErrMalformedState, k)
	}
	if s.Seqno, err = c.ReadUint(64); err != nil {
		return s, fmt.Errorf("parse payment state: %w: seqno", ErrMalformedState)
	}
	var total tlb.Grams
	if err := tlb.Unmarshal(c, &total); err != nil {
		return s, fmt.Errorf("parse payment state: %w: total: %v", ErrMalformedState, err)
	}
	s.Total = uint64(total)
	if c.BitsAvailableForRead() != 0 {
		return s, fmt.Errorf("parse payment state: %w: trailing bits", ErrMalformedState)
	}
	return s, nil
}

func writeAddr(c *boc.Cell, a ton.AccountID) error {
	return tlb.Marshal(c, a.ToMsgAddress())
}

func readAddr(c *boc.Cell) (ton.AccountID, error) {
	var m tlb.MsgAddress
	if err := tlb.Unmarshal(c, &m); err != nil {
		return ton.AccountID{}, fmt.Errorf("%w: %v", ErrMalformedState, err)
	}
	if m.SumType != "AddrStd" || m.AddrStd.Anycast.Exists {
		return ton.AccountID{}, fmt.Errorf("%w: not a standard address", ErrMalformedState)
	}
	return ton.AccountID{Workchain: int32(m.AddrStd.WorkchainId), Address: m.AddrStd.Address}, nil
}

// ErrStateRefused is returned when a signed state is stale or the contract refused it.
var ErrStateRefused = errors.New("signed state refused")
