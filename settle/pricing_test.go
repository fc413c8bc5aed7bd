package settle

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCost(t *testing.T) {
	unit := Prices{
		PricePerToken: 100, WorkerFeePerToken: 80,
		PromptMult: MultiplierOne, CachedPromptMult: MultiplierOne, CompletionMult: MultiplierOne, ReasoningMult: MultiplierOne,
	}
	typical := Prices{
		PricePerToken: 20, WorkerFeePerToken: 15,
		PromptMult: 10000, CachedPromptMult: 2500, CompletionMult: 40000, ReasoningMult: 40000,
	}
	testCases := map[string]struct {
		usage    Usage
		prices   Prices
		coef     uint32
		wantCost uint64
		wantEarn uint64
		wantErr  error
	}{
		"zero usage": {prices: typical, coef: 1000},
		"unit prices, one token each": {
			usage: Usage{PromptTokens: 2, CachedTokens: 1, CompletionTokens: 2, ReasoningTokens: 1}, prices: unit, coef: 1000, wantCost: 400, wantEarn: 320,
		},
		"typical request": {
			// (1000×1 + 400×0.25 + 200×4 + 50×4) = 2100 adjusted tokens.
			usage:  Usage{PromptTokens: 1400, CachedTokens: 400, CompletionTokens: 250, ReasoningTokens: 50},
			prices: typical, coef: 1000, wantCost: 42000, wantEarn: 31500,
		},
		"coefficient 1.5x": {
			usage: Usage{PromptTokens: 1000}, prices: typical, coef: 1500, wantCost: 30000, wantEarn: 22500,
		},
		"fractions add up before rounding": {
			// Each cached token is worth 0.25×20×0.999 = 4.995 nanoTON: 3 of them 14.985 → 14, not 3×4 = 12.
			usage: Usage{PromptTokens: 3, CachedTokens: 3}, prices: typical, coef: 999, wantCost: 14, wantEarn: 11,
		},
		"rounds down below one nanoTON": {
			usage: Usage{PromptTokens: 1, CachedTokens: 1}, prices: Prices{PricePerToken: 1, WorkerFeePerToken: 1, CachedPromptMult: 1}, coef: 1000,
		},
		"max uint64 tokens, zero multiplier": {
			usage: Usage{PromptTokens: math.MaxUint64}, prices: Prices{PricePerToken: math.MaxUint64, WorkerFeePerToken: 1}, coef: 1000,
		},
		"intermediate product above 2^128 still exact": {
			// 2^64-1 tokens × 10000 × 1000 × price 1 / 10^7 = 2^64-1: the 128-bit-plus product must not wrap.
			usage: Usage{PromptTokens: math.MaxUint64}, prices: Prices{PricePerToken: 1, WorkerFeePerToken: 0, PromptMult: MultiplierOne},
			coef: 1000, wantCost: math.MaxUint64,
		},
		"parts larger than their wholes count as the wholes": {
			// 10 prompt tokens all cached (not 12), 5 completion tokens all reasoning (not 9).
			usage: Usage{PromptTokens: 10, CachedTokens: 12, CompletionTokens: 5, ReasoningTokens: 9}, prices: typical, coef: 1000,
			wantCost: (10*2500 + 5*40000) * 20 / MultiplierOne, wantEarn: (10*2500 + 5*40000) * 15 / MultiplierOne,
		},
		"overflow": {
			usage: Usage{PromptTokens: math.MaxUint64, CompletionTokens: 1}, prices: Prices{PricePerToken: 1, PromptMult: MultiplierOne, CompletionMult: MultiplierOne},
			coef: 1000, wantErr: ErrOverflow,
		},
		"overflow from price": {
			usage: Usage{CompletionTokens: 1 << 40}, prices: Prices{PricePerToken: 1 << 40, WorkerFeePerToken: 1, CompletionMult: math.MaxUint32},
			coef: math.MaxUint32, wantErr: ErrOverflow,
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			cost, err := Cost(tc.usage, tc.prices, tc.coef)
			if tc.wantErr != nil {
				require.ErrorIs(err, tc.wantErr)
				return
			}
			require.NoError(err)
			assert.Equal(tc.wantCost, cost)
			earn, err := WorkerEarning(tc.usage, tc.prices, tc.coef)
			require.NoError(err)
			assert.Equal(tc.wantEarn, earn)
		})
	}
}
