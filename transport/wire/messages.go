package wire

import (
	"fmt"

	"google.golang.org/protobuf/proto"
)

// Type is the frame type byte: which message the payload holds.
type Type uint8

// Frame types. Numbers are never reused.
const (
	TypeHello Type = 1
	TypePing  Type = 2
	TypePong  Type = 3
	TypeError Type = 4

	TypeRequest       Type = 10
	TypeResponseHead  Type = 11
	TypeChunk         Type = 12 // raw bytes: one SSE data payload or a piece of a JSON answer
	TypeUsageChunk    Type = 13 // raw bytes: a stream's final usage SSE payload, sent by the worker only when Request.IncludeUsage is set
	TypeDone          Type = 14
	TypeModelsRequest Type = 15
	TypeModelsList    Type = 16
	TypeSealedEnd     Type = 17 // raw bytes: a sealed answer's end marker (seal.AnswerSealer.End)
	TypeWorkerOffer   Type = 18
	TypeSealedBody    Type = 19

	TypeOfferRefused Type = 40 // request streams, continued

	TypeRegister   Type = 20
	TypeRegistered Type = 21
	TypeUnregister Type = 22

	TypePaymentState Type = 30
)

// Raw reports whether frames of type t carry raw bytes instead of a protobuf message.
func (t Type) Raw() bool { return t == TypeChunk || t == TypeUsageChunk || t == TypeSealedEnd }

// TypeOf returns the frame type of a message.
func TypeOf(m proto.Message) (Type, error) {
	switch m.(type) {
	case *Hello:
		return TypeHello, nil
	case *Ping:
		return TypePing, nil
	case *Pong:
		return TypePong, nil
	case *Error:
		return TypeError, nil
	case *Request:
		return TypeRequest, nil
	case *ResponseHead:
		return TypeResponseHead, nil
	case *Done:
		return TypeDone, nil
	case *ModelsRequest:
		return TypeModelsRequest, nil
	case *ModelsList:
		return TypeModelsList, nil
	case *WorkerOffer:
		return TypeWorkerOffer, nil
	case *SealedBody:
		return TypeSealedBody, nil
	case *OfferRefused:
		return TypeOfferRefused, nil
	case *Register:
		return TypeRegister, nil
	case *Registered:
		return TypeRegistered, nil
	case *Unregister:
		return TypeUnregister, nil
	case *PaymentState:
		return TypePaymentState, nil
	}
	return 0, fmt.Errorf("wire: no frame type for %T", m)
}

// New returns an empty message of frame type t.
func New(t Type) (proto.Message, error) {
	switch t {
	case TypeHello:
		return &Hello{}, nil
	case TypePing:
		return &Ping{}, nil
	case TypePong:
		return &Pong{}, nil
	case TypeError:
		return &Error{}, nil
	case TypeRequest:
		return &Request{}, nil
	case TypeResponseHead:
		return &ResponseHead{}, nil
	case TypeDone:
		return &Done{}, nil
	case TypeModelsRequest:
		return &ModelsRequest{}, nil
	case TypeModelsList:
		return &ModelsList{}, nil
	case TypeWorkerOffer:
		return &WorkerOffer{}, nil
	case TypeSealedBody:
		return &SealedBody{}, nil
	case TypeOfferRefused:
		return &OfferRefused{}, nil
	case TypeRegister:
		return &Register{}, nil
	case TypeRegistered:
		return &Registered{}, nil
	case TypeUnregister:
		return &Unregister{}, nil
	case TypePaymentState:
		return &PaymentState{}, nil
	}
	return nil, fmt.Errorf("%w: unknown frame type %d", ErrMalformedFrame, t)
}

// Marshal appends m as a frame to dst.
func Marshal(dst []byte, m proto.Message) ([]byte, error) {
	t, err := TypeOf(m)
	if err != nil {
		return dst, err
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, byte(t))
	dst, err = proto.MarshalOptions{}.MarshalAppend(dst, m)
	if err != nil {
		return dst[:start], fmt.Errorf("marshal %T: %w", m, err)
	}
	n := len(dst) - start - 4
	dst[start], dst[start+1], dst[start+2], dst[start+3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return dst, nil
}

// Unmarshal decodes the payload of a frame of type t.
func Unmarshal(t Type, payload []byte) (proto.Message, error) {
	m, err := New(t)
	if err != nil {
		return nil, err
	}
	if err := proto.Unmarshal(payload, m); err != nil {
		return nil, fmt.Errorf("%w: type %d: %v", ErrMalformedFrame, t, err)
	}
	return m, nil
}
