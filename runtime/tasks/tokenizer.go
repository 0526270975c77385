// Package tasks generates synthetic sequence tasks with known answers (copy, reverse, sort,
// add) on the fly from a seed, with a tiny fixed character tokenizer. They exist so a small model
// can be trained and checked end to end in seconds, with an exact-match score that means
// something, without any data set on disk.
package tasks

import (
	"fmt"
	"strings"
)

// Token ids of the tokenizer. The vocabulary is fixed, so a model trained on one version of
// this package reads the same ids in every other:
//
//	0 PAD   1 BOS   2 EOS   3 SEP
//	4..13   '0'..'9'
//	14..39  'a'..'z'
//	40 '+'  41 '='  42 ' '
const (
	PAD = 0 // padding after EOS; never a target
	BOS = 1 // starts every sequence
	EOS = 2 // ends every answer; the model must learn to emit it
	SEP = 3 // separates the prompt from the answer

	digit0  = 4
	letterA = 14
	plusID  = 40
	equalID = 41
	spaceID = 42

	// VocabSize is the number of token ids.
	VocabSize = 43
)

// IgnoreIndex is the target value at positions that carry no loss (prompt and padding).
const IgnoreIndex = 0xFFFFFFFF

// Vocab returns the text of every token id, index = id; special tokens are spelled <pad>,
// <bos>, <eos>, <sep>. A fresh slice each call, so callers may modify it.
func Vocab() []string {
	v := make([]string, VocabSize)
	v[PAD], v[BOS], v[EOS], v[SEP] = "<pad>", "<bos>", "<eos>", "<sep>"
	for i := 0; i < 10; i++ {
		v[digit0+i] = string(rune('0' + i))
	}
	for i := 0; i < 26; i++ {
		v[letterA+i] = string(rune('a' + i))
	}
	v[plusID], v[equalID], v[spaceID] = "+", "=", " "
	return v
}

// tokenOf maps a character to its id, or -1.
func tokenOf(r rune) int {
	switch {
	case r >= '0' && r <= '9':
		return digit0 + int(r-'0')
	case r >= 'a' && r <= 'z':
		return letterA + int(r-'a')
	case r == '+':
		return plusID
	case r == '=':
		return equalID
	case r == ' ':
		return spaceID
	}
	return -1
}

// Encode maps text to token ids, one per character; special tokens are never produced. A
// character outside the vocabulary is an error naming it and its position.
func Encode(s string) ([]int, error) {
	out := make([]int, 0, len(s))
	for i, r := range s {
		id := tokenOf(r)
		if id < 0 {
			return nil, fmt.Errorf("tasks: encode: character %q at byte %d is not in the vocabulary (digits, a-z, '+', '=', ' ')", r, i)
		}
		out = append(out, id)
	}
	return out, nil
}

// Decode maps token ids back to text. Special tokens are written as <pad>, <bos>, <eos>, <sep>
// and ids outside the vocabulary as <unk:N>, so decoding never fails and shows what a model
// actually produced.
func Decode(ids []int) string {
	vocab := Vocab()
	var b strings.Builder
	for _, id := range ids {
		if id >= 0 && id < VocabSize {
			b.WriteString(vocab[id])
		} else {
			fmt.Fprintf(&b, "<unk:%d>", id)
		}
	}
	return b.String()
}

// DecodeAnswer turns a model's generated continuation (the tokens after SEP) into the answer
// text to score: everything before the first EOS (or all of it if there is none), decoded as
// Decode does.
func DecodeAnswer(generated []int) string {
	for i, id := range generated {
		if id == EOS {
			return Decode(generated[:i])
		}
	}
	return Decode(generated)
}

// PromptTokens is the input a model gets at evaluation time: BOS, the prompt, SEP. The model
// then generates the answer and EOS.
func PromptTokens(prompt string) ([]int, error) {
	p, err := Encode(prompt)
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, len(p)+2)
	out = append(out, BOS)
	out = append(out, p...)
	return append(out, SEP), nil
}

// CheckVocabSize compares a model's vocab_size with this tokenizer's VocabSize. Smaller is an
// error (the tasks' ids would fall outside the embedding and the LM head). Larger is allowed, as
// Hugging Face configs often round vocab_size up (to a multiple of 4 here, the LM head can be
// stored in f16), but the extra ids are never trained on: the returned note says so, for the
// caller to show; it is empty when the sizes are equal.
func CheckVocabSize(vocabSize int) (note string, err error) {
	switch {
	case vocabSize < VocabSize:
		return "", fmt.Errorf("vocab_size %d is smaller than the task tokenizer's %d tokens", vocabSize, VocabSize)
	case vocabSize == VocabSize+1:
		return fmt.Sprintf("vocab_size %d is larger than the task tokenizer's %d tokens: id %d is padding, never trained on", vocabSize, VocabSize, VocabSize), nil
	case vocabSize > VocabSize:
		return fmt.Sprintf("vocab_size %d is larger than the task tokenizer's %d tokens: ids %d–%d are padding, never trained on", vocabSize, VocabSize, VocabSize, vocabSize-1), nil
	}
	return "", nil
}
