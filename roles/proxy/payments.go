package proxy

import (
	"cmp"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync/atomic"

	"github.com/rs/zerolog"
	"github.com/tonkeeper/tongo/ton"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/ledger"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/seal"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// Payments is what a metering proxy needs: the ledger, the current prices and how to find a
// client's paying account from the key it authenticates with.
type Payments struct {
	Ledger *ledger.Ledger
	Prices func() settle.Prices
	// Account maps a client's key (its certificate key, which is its wallet key) to the wallet
	// address whose deposits pay for its requests.
	Account func(pub ed25519.PublicKey) (ton.AccountID, error)
	// PaymentKey verifies states that clients and workers hand back (rollback detection).
	PaymentKey ed25519.PublicKey
	// MaxCompletionTokens is reserved for a request that names no max_tokens; zero: 4096. The
	// worker sets the request's limit to it, so the engine stops there.
	MaxCompletionTokens uint64
	// CoefficientCap is the registry's cap on a worker's price coefficient
	// (contracts.RegistryParams.CoefficientCap); a worker above it is refused at registration and
	// never chosen. Nil: no cap.
	CoefficientCap func() uint32
}

// Bounds on what a prompt can cost beyond its bytes.
const (
	// promptMargin covers, per prompt, the chat template's tokens on top of the body's bytes.
	promptMargin = 64
	// imageTokens bounds one image's prompt tokens. Vision models turn pixels into tokens, not
	// bytes: Qwen2-VL's default of at most 12,845,056 pixels in 28×28 patches is 16,384 tokens,
	// the most of the common OpenAI-compatible vision models (LLaVA uses 576 to 2,880).
	imageTokens = 16384
	// defaultCompletion is reserved for a request that sets no completion limit.
	defaultCompletion = 4096
)

// errUnpriceable: the request's cost cannot be bounded before it runs, so it is refused.
var errUnpriceable = errors.New("request cannot be priced before it runs")

// limits are what a request may use, from the bounds the client read from its body (the proxy
// never reads a body): the reservation covers max, and the worker makes the engine obey
// completion and choices, which travel to it in the request frame, and refuses a body that
// exceeds the bounds.
type limits struct {
	completion uint64 // completion tokens per choice
	choices    uint64 // n: choices per prompt
	max        settle.Usage
}

// limits bounds what a request can use, to reserve its cost before it runs: the prompt is at most
// one token per byte of the body, plus a template margin per prompt and a bound per image; the
// completion at most prompts × max(n, best_of) × the completion limit (max_tokens,
// max_completion_tokens or max_output_tokens, the largest; or the default). Embeddings complete
// nothing; a transcription is bounded by its audio (transcriptionLimits). What cannot be bounded
// (audio or files in a prompt, a prompt stored on the engine) is an errUnpriceable; a request
// without bounds is a bad request.
func (pm *Payments) limits(kind wire.Kind, b *wire.Bounds) (limits, error) {
	if b == nil {
		return limits{}, errNoBounds
	}
	if kind == wire.Kind_KIND_TRANSCRIPTION {
		return transcriptionLimits(b.GetBodyBytes()), nil
	}
	lim := limits{completion: b.GetCompletionTokens(), choices: max(b.GetN(), 1)}
	if lim.completion == 0 {
		lim.completion = cmp.Or(pm.MaxCompletionTokens, defaultCompletion)
	}
	prompts, media := uint64(1), uint64(0)
	if kind == wire.Kind_KIND_COMPLETION || kind == wire.Kind_KIND_EMBEDDINGS {
		prompts = max(b.GetPrompts(), 1)
	}
	if kind != wire.Kind_KIND_COMPLETION {
		if b.GetUnbounded() != "" {
			return limits{}, fmt.Errorf("%w: %s has no token bound known before it runs; send text and images only", errUnpriceable, b.GetUnbounded())
		}
		media = b.GetImages()
	}
	var over bool
	mul := func(a, b uint64) uint64 {
		hi, lo := bits.Mul64(a, b)
		over = over || hi != 0
		return lo
	}
	add := func(a, b uint64) uint64 {
		s, carry := bits.Add64(a, b, 0)
		over = over || carry != 0
		return s
	}
	lim.max.PromptTokens = add(add(b.GetBodyBytes(), mul(prompts, promptMargin)), mul(media, imageTokens))
	if kind != wire.Kind_KIND_EMBEDDINGS { // an embedding generates no token
		lim.max.CompletionTokens = mul(prompts, mul(max(b.GetSequences(), lim.choices), lim.completion))
	}
	if over {
		return limits{}, fmt.Errorf("%w: its token bound overflows; lower max_tokens or n", errUnpriceable)
	}
	return lim, nil
}

// Bounds on what a transcription's audio can cost. Its tokens follow the audio's duration, not
// its bytes, so the duration is bounded from below by the bytes: no codec the engines decode
// (ffmpeg, libsndfile) keeps speech below Opus's lowest rate of 6 kbit/s, 750 bytes a second (MP3
// goes no lower than 8 kbit/s). An encoder model takes at most 50 tokens a second (Whisper: 1,500
// positions per 30 s window; Qwen2-Audio 25, Voxtral 12.5), and a decoder writes at most 448
// tokens per 30 s window (Whisper's limit, some 15 tokens a second against the 3 of fast speech).
// The bound is capped at an hour of audio, so that one request cannot lock a deposit: longer audio
// (or a codec below that rate) is charged at most the reservation, as any usage beyond it is.
const (
	audioBytesPerSecond = 750
	audioTokensPerSec   = 50
	transcriptWindowSec = 30
	transcriptPerWindow = 448
	maxAudioSeconds     = 3600
)

// transcriptionLimits bounds a transcription whose form is size bytes (the audio and a few fields).
func transcriptionLimits(size uint64) limits {
	secs := min(size/audioBytesPerSecond+1, maxAudioSeconds)
	windows := (secs + transcriptWindowSec - 1) / transcriptWindowSec
	completion := windows * transcriptPerWindow
	return limits{completion: completion, choices: 1,
		max: settle.Usage{PromptTokens: secs*audioTokensPerSec + promptMargin, CompletionTokens: completion}}
}

// errNoBounds: a metering proxy reserves by the bounds a client sends (wire.Bounds).
var errNoBounds = errors.New("request carries no bounds (what its body may use) to reserve its cost by; update the client")

// Request fields the proxy appends to the frame it forwards (wire.proto).
var (
	fieldReservedCompletion = fieldNumber("reserved_completion_tokens")
	fieldReservedChoices    = fieldNumber("reserved_choices")
)

func fieldNumber(name protoreflect.Name) protowire.Number {
	return (&wire.Request{}).ProtoReflect().Descriptor().Fields().ByName(name).Number()
}

// withReserved returns the client's request frame with the limits it was reserved for appended.
// Protobuf keeps the last value of a scalar field, so these win over any the client sent, and the
// rest of the frame goes on as it arrived.
func withReserved(payload []byte, lim limits) []byte {
	out := slices.Clip(payload) // appending copies: payload is kept for other attempts
	out = protowire.AppendTag(out, fieldReservedCompletion, protowire.VarintType)
	out = protowire.AppendVarint(out, lim.completion)
	out = protowire.AppendTag(out, fieldReservedChoices, protowire.VarintType)
	return protowire.AppendVarint(out, lim.choices)
}

var fieldSealedBody = fieldNumber("sealed_body")

// withoutSealedBody returns the client's request frame without the body it presealed, for a
// worker it was not sealed to (which gets the body sealed in answer to its offer instead). A frame
// that does not parse is returned as it is: the worker refuses it.
func withoutSealedBody(payload []byte) []byte {
	out := make([]byte, 0, len(payload))
	for b := payload; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return payload
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return payload
		}
		if num != fieldSealedBody {
			out = append(out, b[:n+m]...)
		}
		b = b[n+m:]
	}
	return out
}

// withSealedBody returns the client's request frame with the body it sealed to the chosen worker
// appended, as the worker receives it; the frame is kept as it arrived for other attempts.
func withSealedBody(payload, sealed []byte) []byte {
	out := slices.Clip(payload)
	out = protowire.AppendTag(out, fieldSealedBody, protowire.BytesType)
	return protowire.AppendBytes(out, sealed)
}

// hold is a request's reservation with what it was priced at, so that the charge uses the same
// prices and bound whatever changes while the request runs.
type hold struct {
	res    ledger.Reservation
	lim    limits
	prices settle.Prices
	coef   uint32
	earn   uint64 // what the worker earns for lim.max

	id, model string            // the request's, which the worker's usage record must name
	workerKey ed25519.PublicKey // the worker's attested certificate key, which signs the record
}

// errRecordModel: a usage record signed for another model than the one the request was routed to.
var errRecordModel = errors.New("usage record for another model")

// signedUsage is the usage of the worker's record rec, once it is checked to be signed by the
// worker's attested key for request id and model.
func signedUsage(rec []byte, key ed25519.PublicKey, id, model string) (settle.Usage, error) {
	r, err := seal.ParseUsageRecord(rec)
	if err != nil {
		return settle.Usage{}, err
	}
	if err := r.Verify(key, id); err != nil {
		return settle.Usage{}, err
	}
	if r.Model != model {
		return settle.Usage{}, fmt.Errorf("usage record of request %q names model %q, routed to %q: %w", id, r.Model, model, errRecordModel)
	}
	return r.Usage, nil
}

// charge is what a request that ended with r costs the client and earns the worker. Money fails
// closed: usage that cannot be priced, an answer with content that reports none, or a Done whose
// usage the worker did not sign (or whose signature does not verify) charges the reservation; usage
// beyond the reservation is charged as the reservation and counted. A worker is never credited for
// more than its signed record prices to: for what it did not sign, it earns nothing.
func (p *Proxy) charge(h *hold, r result, log zerolog.Logger) (charge, earn uint64) {
	var usage settle.Usage
	switch {
	case r.done != nil:
		rec := r.done.GetUsageRecord()
		if len(rec) == 0 {
			if r.chunks == 0 && wire.DecodeUsage(r.done.GetUsage()) == (settle.Usage{}) {
				return 0, 0 // nothing delivered, nothing used
			}
			p.stats.zeroUsage.Add(1)
			log.Error().Msg("worker ended the answer without a signed usage record; charging the reservation, crediting nothing")
			return h.res.Amount, 0
		}
		// The worker's signed record is what the request is charged and credited by.
		u, err := signedUsage(rec, h.workerKey, h.id, h.model)
		if err != nil {
			log.Error().Err(err).Msg("worker usage record refused; charging the reservation, crediting nothing")
			return h.res.Amount, 0
		}
		usage = u
		if usage == (settle.Usage{}) {
			if r.chunks == 0 {
				return 0, 0 // nothing delivered, nothing used
			}
			p.stats.zeroUsage.Add(1)
			log.Warn().Int("chunks", r.chunks).Msg("answer with content reported no usage; charging the reservation, crediting nothing")
			return h.res.Amount, 0
		}
	case r.started && r.chunks == 0:
		return 0, 0 // cut off between the head and the first chunk: nothing delivered
	case r.started:
		// Cut off after the answer began: the engine read the whole prompt, whose size only the
		// worker learns at the end, so its bound is charged, with the completion chunks relayed.
		usage = settle.Usage{PromptTokens: h.lim.max.PromptTokens, CompletionTokens: uint64(r.chunks)}
	default:
		return 0, 0
	}
	cost, cerr := settle.Cost(usage, h.prices, h.coef)
	earned, eerr := settle.WorkerEarning(usage, h.prices, h.coef)
	if err := cmp.Or(cerr, eerr); err != nil {
		p.stats.pricingErrors.Add(1)
		log.Error().Err(err).Uint64("prompt_tokens", usage.PromptTokens).Uint64("completion_tokens", usage.CompletionTokens).
			Msg("usage could not be priced; charging the reservation, crediting nothing")
		return h.res.Amount, 0
	}
	if cost > h.res.Amount || usage.PromptTokens > h.lim.max.PromptTokens || usage.CompletionTokens > h.lim.max.CompletionTokens {
		p.stats.beyond.Add(1)
		log.Warn().Uint64("prompt_tokens", usage.PromptTokens).Uint64("completion_tokens", usage.CompletionTokens).
			Uint64("max_prompt_tokens", h.lim.max.PromptTokens).Uint64("max_completion_tokens", h.lim.max.CompletionTokens).
			Uint64("cost", cost).Uint64("reserved", h.res.Amount).Msg("usage beyond the reservation; charging at most the reservation")
		if cost > h.res.Amount {
			return h.res.Amount, min(h.earn, earned)
		}
	}
	return cost, earned
}

// halt records that the ledger is behind a state it signed. From then on the proxy serves no
// request: signing again could sign a lower total under a reused sequence number.
type halt struct {
	err atomic.Pointer[error]
}

func (h *halt) set(err error) bool { return h.err.CompareAndSwap(nil, &err) }

func (h *halt) get() error {
	if e := h.err.Load(); e != nil {
		return *e
	}
	return nil
}

// checkState verifies a state a client or worker holds and compares it with the ledger.
func (p *Proxy) checkState(m *wire.PaymentState) error {
	pm := p.cfg.Payments
	if pm == nil {
		return nil
	}
	st, err := settle.ParseSignedState(m.GetSigned())
	if err != nil {
		return err
	}
	if err := st.Verify(pm.PaymentKey); err != nil {
		return err
	}
	if err := pm.Ledger.Check(st.State); err != nil {
		if errors.Is(err, ledger.ErrRollback) && p.halted.set(err) {
			p.log.Error().Err(err).Msg("LEDGER ROLLBACK: a peer holds a state this ledger never reached; refusing all requests until the ledger is restored")
		}
		return err
	}
	return nil
}

// sendState hands a signed state to a peer on its control stream.
func sendState(c *transport.Conn, st settle.SignedState) error {
	b, err := st.MarshalBinary()
	if err != nil {
		return fmt.Errorf("encode payment state: %w", err)
	}
	return c.SendControl(&wire.PaymentState{Signed: b})
}

// sendCurrent answers a peer that asked for its latest signed total.
func (p *Proxy) sendCurrent(c *transport.Conn, party ton.AccountID, kind settle.Kind, log zerolog.Logger) {
	pm := p.cfg.Payments
	if pm == nil {
		return
	}
	st, err := pm.Ledger.Current(party, kind)
	if err == nil {
		err = sendState(c, st)
	}
	if err != nil {
		log.Debug().Err(err).Msg("latest payment state not sent")
	}
}
