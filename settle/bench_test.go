package settle

import (
	"crypto/ed25519"
	"testing"
)

func BenchmarkCost(b *testing.B) {
	p := Prices{PricePerToken: 20, PromptMult: 10000, CachedPromptMult: 2500, CompletionMult: 40000, ReasoningMult: 40000}
	u := Usage{PromptTokens: 1500, CachedTokens: 300, CompletionTokens: 1000, ReasoningTokens: 200}
	for b.Loop() {
		if _, err := Cost(u, p, 1250); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	k := testKey()
	for b.Loop() {
		if _, err := Sign(testState(), k); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseVerify(b *testing.B) {
	s, err := Sign(testState(), testKey())
	if err != nil {
		b.Fatal(err)
	}
	raw, err := s.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	pub := testKey().Public().(ed25519.PublicKey)
	for b.Loop() {
		got, err := ParseSignedState(raw)
		if err != nil {
			b.Fatal(err)
		}
		if err := got.Verify(pub); err != nil {
			b.Fatal(err)
		}
	}
}
