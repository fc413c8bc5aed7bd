package builtin

import (
	"context"
	"encoding/json"
	"strings"
	"time"
	"unicode"
)

// CountTokens is the built-in engine's tokenizer: every maximal run of
// letters and digits is one token, and so is every other character that is
// not white space.
func CountTokens(s string) int {
	n := 0
	inWord := false
	for _, r := range s {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if !inWord {
				n++
			}
			inWord = true
		case unicode.IsSpace(r):
			inWord = false
		default:
			n++
			inWord = false
		}
	}
	return n
}

// corpus is what the built-in engine says: a few sentences about where the answer came from, so
// that a demo reads sensibly. An answer starts at a sentence picked by the prompt's hash and
// walks on, wrapping around. Every word and every punctuation mark is one token for CountTokens.
const corpus = "This answer comes from the built-in demo engine of cocoon. " +
	"Your prompt was sealed to the attested worker, so the proxy relayed ciphertext it cannot read; both run in confidential VMs, " +
	"and each proved its image with a TDX quote in the TLS handshake. " +
	"Nobody in between, not the GPU owner and not the cloud host, can read the prompt or this answer. " +
	"The tokens were counted by the attested worker and charged in TON, and the worker earns its fee. " +
	"Point a worker at vLLM, SGLang, llama.cpp or Ollama to get answers from a real model. "

// The corpus as tokens, precomputed as text and as JSON strings: the first token of each
// whitespace-separated word carries the space before it, the rest of the word (punctuation, or
// the part after a hyphen) does not. starts are the indices where sentences begin.
var (
	rawTokens    []string
	quotedTokens [][]byte
	starts       []int
)

func init() {
	sentenceStart := true
	for _, field := range strings.Fields(corpus) {
		if sentenceStart {
			starts = append(starts, len(rawTokens))
		}
		first := true
		for f := field; f != ""; {
			// A token is a run of letters and digits, or one other character (as CountTokens counts).
			n := strings.IndexFunc(f, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
			if n == 0 {
				n = 1
			} else if n < 0 {
				n = len(f)
			}
			text := f[:n]
			if first {
				text = " " + text
			}
			q, _ := json.Marshal(text)
			rawTokens = append(rawTokens, text)
			quotedTokens = append(quotedTokens, q)
			f, first = f[n:], false
		}
		sentenceStart = strings.HasSuffix(field, ".")
	}
}

// sentenceEnd is the length of an answer that starts at start and runs on to the end of the
// sentence in which it reaches at least target tokens.
func sentenceEnd(start, target int) int {
	n := max(target, 1)
	for strings.TrimSpace(rawTokens[(start+n-1)%len(rawTokens)]) != "." {
		n++
	}
	return n
}

// tokens produces the answer's tokens, as JSON strings and as text, pacing
// them by the token delay and stopping when ctx ends.
func (e *Engine) tokens(ctx context.Context, j *job, yield func(q []byte, text string) error) error {
	var timer *time.Timer
	if e.cfg.TokenDelay > 0 {
		timer = time.NewTimer(e.cfg.TokenDelay)
		defer timer.Stop()
	}
	for i := range j.length {
		if timer != nil {
			if i > 0 {
				timer.Reset(e.cfg.TokenDelay)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-timer.C:
			}
		} else if err := ctx.Err(); err != nil {
			return err
		}
		k := (j.start + i) % len(rawTokens)
		q, text := quotedTokens[k], rawTokens[k]
		if i == 0 {
			// The first token of an answer has no leading space.
			text = strings.TrimPrefix(text, " ")
			q, _ = json.Marshal(text)
		}
		j.produced++
		if err := yield(q, text); err != nil {
			return err
		}
	}
	return nil
}
