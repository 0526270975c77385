package textdata

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// LMName is the lm task's name.
const LMName = "lm"

// LM is character-level language modelling on a Corpus: a training batch is batch windows of
// seq_len characters drawn uniformly from the training stream, scored on every position
// (the next character); the held-out split is scored in bits per character (BitsPerChar).
type LM struct {
	Corpus *Corpus
}

// NewLM is the lm task on a loaded corpus.
func NewLM(c *Corpus) *LM { return &LM{Corpus: c} }

// Name is "lm".
func (t *LM) Name() string { return LMName }

// MaxSeqLen is 2: any window of two or more characters is a training sequence.
func (t *LM) MaxSeqLen() int { return 2 }

// VocabSize is the tokenizer's size; a model's vocab_size must reach it.
func (t *LM) VocabSize() int { return VocabSize }

// Batch draws batchSize windows of seqLen characters from the training stream: tokens are
// the window, targets the character after each, weights 1/(batchSize·seqLen) everywhere.
func (t *LM) Batch(rng *rand.Rand, batchSize, seqLen int) (tokens, targets []uint32, weights []float32, err error) {
	if batchSize < 1 || seqLen < 2 {
		return nil, nil, nil, fmt.Errorf("textdata: lm: batch %d × %d characters: both must be positive (seq_len ≥ 2)", batchSize, seqLen)
	}
	s := t.Corpus.Train
	if len(s) < seqLen+1 {
		return nil, nil, nil, fmt.Errorf("textdata: lm: the training stream (%d characters) is shorter than one window of %d", len(s), seqLen+1)
	}
	n := batchSize * seqLen
	tokens, targets, weights = make([]uint32, n), make([]uint32, n), make([]float32, n)
	w := float32(1 / float64(n))
	for b := 0; b < batchSize; b++ {
		o := rng.IntN(len(s) - seqLen)
		for i := 0; i < seqLen; i++ {
			tokens[b*seqLen+i] = uint32(s[o+i])
			targets[b*seqLen+i] = uint32(s[o+i+1])
			weights[b*seqLen+i] = w
		}
	}
	return tokens, targets, weights, nil
}

// HeldOutWindows cuts n windows of seqLen+1 characters from the held-out stream, spread
// evenly over it (so every file's fortunes are in), without overlap: the model reads the
// first seqLen characters of each and is scored on the last seqLen. Asking for more windows
// than the stream holds is an error saying how many fit.
func (t *LM) HeldOutWindows(n, seqLen int) ([][]int, error) {
	s := t.Corpus.HeldOut
	fit := len(s) / (seqLen + 1)
	if n < 1 || seqLen < 1 || n > fit {
		return nil, fmt.Errorf("textdata: lm: %d held-out windows of %d characters: want 1 to %d (the held-out stream has %d characters)", n, seqLen+1, fit, len(s))
	}
	stride := len(s) / n
	out := make([][]int, n)
	for i := range out {
		w := make([]int, seqLen+1)
		for j := range w {
			w[j] = int(s[i*stride+j])
		}
		out[i] = w
	}
	return out, nil
}

// TokenNats is the cross-entropy of target under logits, in nats: log Σ exp(logits) −
// logits[target], in float64 with the maximum subtracted.
func TokenNats(logits []float32, target int) float64 {
	m := math.Inf(-1)
	for _, x := range logits {
		m = math.Max(m, float64(x))
	}
	sum := 0.0
	for _, x := range logits {
		sum += math.Exp(float64(x) - m)
	}
	return m + math.Log(sum) - float64(logits[target])
}

// BitsPerChar turns a total cross-entropy in nats over chars characters into bits per
// character (nats / chars / ln 2), the lm task's metric.
func BitsPerChar(nats float64, chars int) float64 {
	if chars <= 0 {
		return math.NaN()
	}
	return nats / float64(chars) / math.Ln2
}
