package tasks

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Task is one synthetic problem family. Its examples are drawn from an RNG, so a seed fixes the
// whole stream and nothing is stored.
type Task struct {
	name     string
	min, max int // string length (copy, reverse, sort) or digits per operand (add)
	gen      func(rng *rand.Rand, t *Task) (prompt, answer string)
	maxP     func(max int) int // longest prompt for this max
	maxA     func(max int) int // longest answer for this max
}

// Example is one prompt with its known answer.
type Example struct {
	Prompt, Answer string
}

type spec struct {
	defMin, defMax int
	unit           string
	gen            func(rng *rand.Rand, t *Task) (string, string)
	maxP, maxA     func(int) int
}

func same(n int) int { return n }

var specs = map[string]spec{
	// copy: a random letter string; the answer is the same string.
	"copy": {4, 10, "characters", func(rng *rand.Rand, t *Task) (string, string) {
		s := letters(rng, t.length(rng))
		return s, s
	}, same, same},
	// reverse: a random letter string; the answer is it reversed.
	"reverse": {4, 10, "characters", func(rng *rand.Rand, t *Task) (string, string) {
		s := []byte(letters(rng, t.length(rng)))
		p := string(s)
		slices.Reverse(s)
		return p, string(s)
	}, same, same},
	// sort: random letters (repeats allowed); the answer is them in ascending order.
	"sort": {4, 10, "characters", func(rng *rand.Rand, t *Task) (string, string) {
		s := []byte(letters(rng, t.length(rng)))
		p := string(s)
		slices.Sort(s)
		return p, string(s)
	}, same, same},
	// add: "a+b" with a and b of min..max digits (no leading zeros); the answer is the decimal sum.
	"add": {1, 4, "digits", func(rng *rand.Rand, t *Task) (string, string) {
		a, b := number(rng, t.length(rng)), number(rng, t.length(rng))
		return strconv.FormatUint(a, 10) + "+" + strconv.FormatUint(b, 10), strconv.FormatUint(a+b, 10)
	}, func(n int) int { return 2*n + 1 }, func(n int) int { return n + 1 }},
}

// maxAddDigits keeps add's operands and sum inside a uint64.
const maxAddDigits = 18

// Names lists the valid task names, sorted.
func Names() []string {
	names := make([]string, 0, len(specs))
	for n := range specs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ByName returns the named task with its default length range (4–10 characters for copy,
// reverse and sort; 1–4 digits per operand for add).
func ByName(name string) (*Task, error) {
	s, ok := specs[name]
	if !ok {
		return nil, fmt.Errorf("tasks: unknown task %q; valid tasks are %s", name, strings.Join(Names(), ", "))
	}
	return New(name, s.defMin, s.defMax)
}

// New returns the named task drawing lengths uniformly from [minLen, maxLen]: characters for
// copy, reverse and sort, digits per operand for add.
func New(name string, minLen, maxLen int) (*Task, error) {
	s, ok := specs[name]
	if !ok {
		return nil, fmt.Errorf("tasks: unknown task %q; valid tasks are %s", name, strings.Join(Names(), ", "))
	}
	if minLen < 1 || maxLen < minLen {
		return nil, fmt.Errorf("tasks: %s: length range [%d, %d] %s is empty or below 1", name, minLen, maxLen, s.unit)
	}
	if name == "add" && maxLen > maxAddDigits {
		return nil, fmt.Errorf("tasks: add: %d digits is more than the supported %d", maxLen, maxAddDigits)
	}
	if maxLen > 1<<20 {
		return nil, fmt.Errorf("tasks: %s: length %d is more than the supported %d", name, maxLen, 1<<20)
	}
	return &Task{name: name, min: minLen, max: maxLen, gen: s.gen, maxP: s.maxP, maxA: s.maxA}, nil
}

// Name is the task's name as ByName accepts it.
func (t *Task) Name() string { return t.name }

// LengthRange is the inclusive range lengths are drawn from (characters, or digits for add).
func (t *Task) LengthRange() (minLen, maxLen int) { return t.min, t.max }

// MaxSeqLen is the length of the longest sequence the task can produce: BOS, the longest prompt,
// SEP, the longest answer, EOS. Batch needs seqLen ≥ this.
func (t *Task) MaxSeqLen() int { return t.maxP(t.max) + t.maxA(t.max) + 3 }

// Sample draws one example from rng.
func (t *Task) Sample(rng *rand.Rand) (prompt, answer string) { return t.gen(rng, t) }

func (t *Task) length(rng *rand.Rand) int { return t.min + rng.IntN(t.max-t.min+1) }

func letters(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + rng.IntN(26))
	}
	return string(b)
}

// number draws a uniform number with exactly n digits (0–9 when n is 1).
func number(rng *rand.Rand, n int) uint64 {
	if n == 1 {
		return rng.Uint64N(10)
	}
	lo := uint64(1)
	for i := 1; i < n; i++ {
		lo *= 10
	}
	return lo + rng.Uint64N(9*lo)
}

// Batch draws batchSize examples and lays them out for next-token training, each row
// BOS prompt SEP answer EOS padded with PAD to seqLen (row-major, batchSize×seqLen):
//   - tokens are the inputs;
//   - targets[i] is the next token where the model is scored — from the SEP position through the
//     last answer token, i.e. on every answer token and the EOS — and IgnoreIndex elsewhere;
//   - weights are 1/count at scored positions (count over the whole batch) and 0 elsewhere, so
//     the weighted sum of per-position losses is the mean loss over scored positions.
//
// seqLen shorter than MaxSeqLen is an error, so no example is ever cut.
func (t *Task) Batch(rng *rand.Rand, batchSize, seqLen int) (tokens, targets []uint32, weights []float32, err error) {
	if batchSize < 1 {
		return nil, nil, nil, fmt.Errorf("tasks: %s: batch size %d must be positive", t.name, batchSize)
	}
	if need := t.MaxSeqLen(); seqLen < need {
		return nil, nil, nil, fmt.Errorf("tasks: %s: seqLen %d is too short; the longest example (lengths up to %d) needs %d",
			t.name, seqLen, t.max, need)
	}
	n := batchSize * seqLen
	tokens = make([]uint32, n) // PAD is 0
	targets = make([]uint32, n)
	weights = make([]float32, n)
	for i := range targets {
		targets[i] = IgnoreIndex
	}
	count := 0
	for b := 0; b < batchSize; b++ {
		prompt, answer := t.Sample(rng)
		p, err := Encode(prompt)
		if err != nil {
			return nil, nil, nil, err
		}
		a, err := Encode(answer)
		if err != nil {
			return nil, nil, nil, err
		}
		row := tokens[b*seqLen : (b+1)*seqLen]
		pos := 0
		put := func(id int) { row[pos] = uint32(id); pos++ }
		put(BOS)
		for _, id := range p {
			put(id)
		}
		sep := pos
		put(SEP)
		for _, id := range a {
			put(id)
		}
		put(EOS)
		eos := pos - 1
		for i := sep; i < eos; i++ {
			targets[b*seqLen+i] = row[i+1]
			count++
		}
	}
	w := float32(1 / float64(count))
	for i, tg := range targets {
		if tg != IgnoreIndex {
			weights[i] = w
		}
	}
	return tokens, targets, weights, nil
}

// Stream ids for the PCG generators: training and evaluation draw from different streams of the
// same seed, so an evaluation set is never the training data replayed.
const (
	trainStream = 0x7472_6169_6e00_0001 // "train"
	evalStream  = 0x6576_616c_0000_0002 // "eval"
)

// TrainRNG returns the generator training batches should draw from for a seed.
func TrainRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, trainStream)) }

// EvalSet draws n held-out examples from the evaluation stream of seed, disjoint from the
// stream TrainRNG(seed) gives. Short tasks have few distinct problems (add with 1-digit operands
// has 100), so an example can still coincide with a training one by chance; the streams differ,
// the problem space may not.
func (t *Task) EvalSet(n int, seed uint64) []Example {
	rng := rand.New(rand.NewPCG(seed, evalStream))
	out := make([]Example, 0, max(n, 0))
	for i := 0; i < n; i++ {
		p, a := t.Sample(rng)
		out = append(out, Example{Prompt: p, Answer: a})
	}
	return out
}

// ExactMatch is the task score: the prediction counts only if it equals the answer exactly.
// One definition, so every report scores the same way.
func ExactMatch(pred, answer string) bool { return pred == answer }
