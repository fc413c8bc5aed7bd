package settle

import (
	"errors"
	"math/big"
)

// MultiplierOne is the fixed-point unit of token-class multipliers: 10000 = 1.0x.
const MultiplierOne = 10000

// CoefficientOne is the fixed-point unit of a worker's price coefficient: 1000 = 1.0x.
const CoefficientOne = 1000

// ErrOverflow is returned when an amount does not fit in a uint64 of nanoTON.
var ErrOverflow = errors.New("amount overflows uint64 nanoTON")

// Prices are the registry's price parameters.
type Prices struct {
	PricePerToken     uint64 // nanoTON per adjusted token, paid by clients
	WorkerFeePerToken uint64 // nanoTON per adjusted token, earned by workers
	PromptMult        uint32 // multipliers, MultiplierOne = 1.0x
	CachedPromptMult  uint32
	CompletionMult    uint32
	ReasoningMult     uint32
}

// Usage is a request's token usage as the engine reports it, in the OpenAI usage object's terms:
// CachedTokens are a part of PromptTokens and ReasoningTokens a part of CompletionTokens. It is the
// one type that carries usage from the engine through worker and proxy to the ledger; pricing
// splits it into the disjoint classes it charges for (see [Usage.classes]).
type Usage struct {
	PromptTokens     uint64
	CachedTokens     uint64
	CompletionTokens uint64
	ReasoningTokens  uint64
}

// classes splits u into the disjoint classes that are priced: uncached prompt, cached prompt,
// completion without reasoning, reasoning. A part reported larger than its whole counts as the
// whole (the engine's details never add tokens).
func (u Usage) classes() (prompt, cached, completion, reasoning uint64) {
	cached = min(u.CachedTokens, u.PromptTokens)
	reasoning = min(u.ReasoningTokens, u.CompletionTokens)
	return u.PromptTokens - cached, cached, u.CompletionTokens - reasoning, reasoning
}

// Cost is what a client pays for usage served at a worker's coefficient (CoefficientOne = 1.0x):
//
//	floor( Σ(tokens × multiplier) × coefficient × price_per_token / (MultiplierOne × CoefficientOne) )
//
// computed exactly in big integers with one final division that rounds down, so splitting the
// classes or the multipliers never loses a fraction of a nanoTON before the end.
func Cost(u Usage, p Prices, coefficient uint32) (uint64, error) {
	return price(u, p, coefficient, p.PricePerToken)
}

// WorkerEarning is what a worker earns for the same usage: the Cost formula with
// worker_fee_per_token in place of price_per_token. The proxy keeps Cost − WorkerEarning.
func WorkerEarning(u Usage, p Prices, coefficient uint32) (uint64, error) {
	return price(u, p, coefficient, p.WorkerFeePerToken)
}

func price(u Usage, p Prices, coefficient uint32, perToken uint64) (uint64, error) {
	sum := new(big.Int)
	term := new(big.Int)
	prompt, cached, completion, reasoning := u.classes()
	for _, c := range [...]struct {
		tokens uint64
		mult   uint32
	}{
		{prompt, p.PromptMult},
		{cached, p.CachedPromptMult},
		{completion, p.CompletionMult},
		{reasoning, p.ReasoningMult},
	} {
		term.SetUint64(c.tokens)
		term.Mul(term, new(big.Int).SetUint64(uint64(c.mult)))
		sum.Add(sum, term)
	}
	sum.Mul(sum, new(big.Int).SetUint64(uint64(coefficient)))
	sum.Mul(sum, new(big.Int).SetUint64(perToken))
	sum.Quo(sum, big.NewInt(MultiplierOne*CoefficientOne))
	if !sum.IsUint64() {
		return 0, ErrOverflow
	}
	return sum.Uint64(), nil
}
