// Package textdata holds the tasks that need more than the synthetic tasks' 43 tokens: `lm`,
// character-level language modelling on real English (Debian's fortunes), and the long-context
// family `needle` (key–value retrieval with the asked pair at a controlled depth) and
// `vartrack` (multi-hop variable tracking), with contexts from 256 to 4096 tokens. Each task
// has a held-out split disjoint from its training data and one metric: bits per character
// for lm, exact match by context length and depth for the long-context tasks.
//
// The tokenizer is a superset of runtime/tasks's: ids 0–42 are the same tokens (PAD, BOS,
// EOS, SEP, digits, a–z, '+', '=', ' '), ids 43–98 the rest of printable ASCII in code order,
// and 99 the newline, so a model's vocab_size of 100 covers every task of both packages.
package textdata

import (
	"fmt"
	"strings"

	"github.com/moegpu/moegpu/runtime/tasks"
)

// Special token ids, shared with runtime/tasks.
const (
	PAD = tasks.PAD
	BOS = tasks.BOS
	EOS = tasks.EOS
	SEP = tasks.SEP
	// Newline is the id of '\n', the only non-printable character in the vocabulary.
	Newline = 99
	// VocabSize is the number of token ids: a model trained on these tasks needs vocab_size ≥ this.
	VocabSize = 100
)

// IgnoreIndex is the target at positions that carry no loss.
const IgnoreIndex = tasks.IgnoreIndex

// idOf maps every byte to its id, or -1; charOf is its inverse for the character ids.
var idOf, charOf = func() ([256]int, [VocabSize]byte) {
	var ids [256]int
	var chars [VocabSize]byte
	for i := range ids {
		ids[i] = -1
	}
	next := tasks.VocabSize
	for c := ' '; c <= '~'; c++ {
		enc, err := tasks.Encode(string(c))
		id := next
		if err == nil {
			id = enc[0] // the synthetic tasks' id, unchanged
		} else {
			next++
		}
		ids[c], chars[id] = id, byte(c)
	}
	ids['\n'], chars[Newline] = Newline, '\n'
	return ids, chars
}()

// Encode maps text to token ids, one per byte. A character outside printable ASCII and '\n'
// is an error naming it and its byte offset.
func Encode(s string) ([]int, error) {
	out := make([]int, 0, len(s))
	for i := 0; i < len(s); i++ {
		id := idOf[s[i]]
		if id < 0 {
			r := []rune(s[i:])[0]
			return nil, fmt.Errorf("textdata: encode: character %q at byte %d is not printable ASCII or a newline", r, i)
		}
		out = append(out, id)
	}
	return out, nil
}

// Decode maps ids back to text; special tokens are written <pad>, <bos>, <eos>, <sep> and ids
// outside the vocabulary <unk:N>, so decoding never fails and shows what a model produced.
func Decode(ids []int) string {
	var b strings.Builder
	for _, id := range ids {
		switch {
		case id == PAD:
			b.WriteString("<pad>")
		case id == BOS:
			b.WriteString("<bos>")
		case id == EOS:
			b.WriteString("<eos>")
		case id == SEP:
			b.WriteString("<sep>")
		case id > SEP && id < VocabSize:
			b.WriteByte(charOf[id])
		default:
			fmt.Fprintf(&b, "<unk:%d>", id)
		}
	}
	return b.String()
}

// DecodeAnswer is the answer text of a generated continuation: everything before the first
// EOS (all of it when there is none), decoded as Decode does.
func DecodeAnswer(generated []int) string {
	for i, id := range generated {
		if id == EOS {
			return Decode(generated[:i])
		}
	}
	return Decode(generated)
}

// PromptTokens is what a model reads at evaluation time: BOS, the prompt, SEP.
func PromptTokens(prompt string) ([]int, error) {
	p, err := Encode(prompt)
	if err != nil {
		return nil, err
	}
	return append(append([]int{BOS}, p...), SEP), nil
}

// Character classes of Class, the groups "which tokens skip the FFN" is reported by.
const (
	ClassLower   = "lower"   // a–z
	ClassUpper   = "upper"   // A–Z
	ClassDigit   = "digit"   // 0–9
	ClassSpace   = "space"   // ' '
	ClassNewline = "newline" // '\n'
	ClassPunct   = "punct"   // every other printable character
	ClassSpecial = "special" // PAD, BOS, EOS, SEP and ids outside the vocabulary
)

// Classes lists the character classes in report order.
func Classes() []string {
	return []string{ClassLower, ClassUpper, ClassDigit, ClassSpace, ClassNewline, ClassPunct, ClassSpecial}
}

// Class is the character class of a token id.
func Class(id int) string {
	if id <= SEP || id >= VocabSize {
		return ClassSpecial
	}
	c := charOf[id]
	switch {
	case c >= 'a' && c <= 'z':
		return ClassLower
	case c >= 'A' && c <= 'Z':
		return ClassUpper
	case c >= '0' && c <= '9':
		return ClassDigit
	case c == ' ':
		return ClassSpace
	case c == '\n':
		return ClassNewline
	}
	return ClassPunct
}
