// Package generate runs a trained model autoregressively: the prompt is fed
// through a KV cache (a ring buffer for sliding-window layers), then one
// token per step is sampled (greedy, or temperature with top-p) and fed
// back. Each step is one GPU submission plus the readback of its logits.
package generate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/model"
	"github.com/moegpu/moegpu/runtime/weights"
)

// Sampling chooses the next token. Temperature 0 is greedy (argmax, ties
// to the lower id); otherwise logits are divided by the temperature and
// sampled from the smallest set of top tokens whose probability reaches
// TopP. The edge values:
//
//	Temperature  0: greedy; > 0 finite: sampling; negative, NaN or ±Inf: an error
//	TopP         0: greedy (the smallest set is the top token); in (0, 1): nucleus
//	             sampling; 1: the whole distribution; outside [0, 1] or NaN: an error
//
// The zero value is greedy decoding.
type Sampling struct {
	Temperature float64
	TopP        float64
}

// Validate refuses out-of-range sampling parameters, naming the parameter
// as the CLI flag spells it.
func (s Sampling) Validate() error {
	if !(s.Temperature >= 0) || math.IsInf(s.Temperature, 0) {
		return fmt.Errorf("temperature %v must be a finite number ≥ 0 (0 is greedy)", s.Temperature)
	}
	if !(s.TopP >= 0 && s.TopP <= 1) {
		return fmt.Errorf("top-p %v must be in [0, 1] (0 is greedy, 1 keeps the whole distribution)", s.TopP)
	}
	return nil
}

// Greedy reports whether s picks the most likely token every time.
func (s Sampling) Greedy() bool { return s.Temperature == 0 || s.TopP == 0 }

// PrefillChunk is how many prompt tokens one prefill submission feeds.
const PrefillChunk = 16

// PrefillChunkFor is a model's prefill chunk: PrefillChunk, or the model's attention prefix
// when that is longer (positions that attend both ways, a prefix_lm model's image tokens, must
// be written in one chunk).
func PrefillChunkFor(cfg *config.ModelConfig) int { return max(PrefillChunk, cfg.AttentionPrefix()) }

// Generator holds a compiled one-token decode step and, on the GPU, a
// prefill step that feeds PrefillChunk prompt tokens per submission. Both
// share the weights and the KV caches.
type Generator struct {
	Model   *model.Model
	Exec    graph.Executor
	MaxSeq  int
	prefill *model.Model
	preExec graph.Executor
}

// Options shape a generator.
type Options struct {
	MaxSeq int // positions the KV caches hold (≤ max_position_embeddings)
	// F16 stores the linear layers' weights in half precision.
	F16 bool
}

// New compiles the decode steps for cfg. dev may be nil for the reference
// executor (which prefills token by token).
func New(cfg *config.ModelConfig, executor string, dev *gpu.Device, opt Options) (*Generator, error) {
	maxSeq := opt.MaxSeq
	if maxSeq <= 0 || maxSeq > cfg.MaxPositionEmbeddings {
		return nil, fmt.Errorf("generate: max sequence %d must be in 1..max_position_embeddings (%d)", maxSeq, cfg.MaxPositionEmbeddings)
	}
	chunk := min(PrefillChunkFor(cfg), maxSeq)
	dopt := model.DecodeOptions{MaxSeq: maxSeq, MaxChunk: chunk, F16Weights: opt.F16}
	m, err := model.BuildDecode(cfg, 1, 1, dopt)
	if err != nil {
		return nil, err
	}
	if err := checkCaches(m, dev); err != nil {
		return nil, err
	}
	align := uint64(256)
	if dev != nil {
		align = uint64(dev.Limits.MinStorageBufferOffsetAlignment)
	}
	plan, err := m.Graph.Plan([]*graph.Tensor{m.Logits}, align)
	if err != nil {
		return nil, err
	}
	g := &Generator{Model: m, MaxSeq: maxSeq}
	switch executor {
	case "gpu", "":
		if dev == nil {
			return nil, fmt.Errorf("the gpu executor needs a device")
		}
		shared := graph.Buffers{}
		if g.Exec, err = graph.NewGPU(dev, plan, shared); err != nil {
			return nil, err
		}
		if chunk > 1 {
			if err := g.compilePrefill(cfg, dev, dopt, align, shared); err != nil {
				g.Close()
				return nil, err
			}
		}
	case "reference":
		g.Exec = graph.NewReference(plan)
	default:
		return nil, fmt.Errorf("unknown executor %q (want gpu or reference)", executor)
	}
	return g, nil
}

func (g *Generator) compilePrefill(cfg *config.ModelConfig, dev *gpu.Device, dopt model.DecodeOptions, align uint64, shared graph.Buffers) error {
	m, err := model.BuildDecode(cfg, 1, dopt.MaxChunk, dopt)
	if err != nil {
		return err
	}
	pp, err := m.Graph.Plan([]*graph.Tensor{m.Logits}, align)
	if err != nil {
		return err
	}
	ex, err := graph.NewGPU(dev, pp, shared)
	if err != nil {
		return err
	}
	g.prefill, g.preExec = m, ex
	return nil
}

// Close releases the executors and the buffers they share.
func (g *Generator) Close() {
	if g.preExec != nil {
		g.preExec.Close()
	}
	g.Exec.Close()
}

// Params lists the weights the generator needs, by name.
func (g *Generator) Params() []*graph.Tensor { return g.Model.Params() }

// Step feeds the token at absolute position pos and returns the logits for
// the next position.
func (g *Generator) Step(token, pos int) ([]float64, error) {
	return g.feed(g.Model, g.Exec, []int{token}, pos, true)
}

// feed runs one decode step of m over tokens at positions pos… and, when
// read is set, returns the logits of the last token (the only readback).
func (g *Generator) feed(m *model.Model, ex graph.Executor, tokens []int, pos int, read bool) ([]float64, error) {
	return g.feedRow(m, ex, tokens, pos, read, len(tokens)-1)
}

// feedRow is feed returning the logits of token row (a chunk padded past
// the prompt's end reads the prompt's last row).
func (g *Generator) feedRow(m *model.Model, ex graph.Executor, tokens []int, pos int, read bool, row int) ([]float64, error) {
	if pos+len(tokens) > g.MaxSeq {
		return nil, fmt.Errorf("generate: position %d is past the %d positions this generator holds", pos+len(tokens)-1, g.MaxSeq)
	}
	toks := make([]float64, len(tokens))
	poss := make([]float64, len(tokens))
	for i, t := range tokens {
		if t < 0 || t >= m.Config.VocabSize {
			return nil, fmt.Errorf("generate: token %d outside the vocabulary (%d)", t, m.Config.VocabSize)
		}
		toks[i], poss[i] = float64(t), float64(pos+i)
	}
	for _, in := range []struct {
		t *graph.Tensor
		v []float64
	}{{m.Tokens, toks}, {m.Positions, poss}, {m.CachePos, []float64{float64(pos)}}, {m.PatchCols, patchCols(m, pos)}} {
		if in.t == nil {
			continue
		}
		if err := ex.Set(in.t, in.v); err != nil {
			return nil, err
		}
	}
	if err := ex.Run(); err != nil {
		return nil, err
	}
	if !read {
		return nil, nil
	}
	out, err := ex.Get(m.Logits)
	if err != nil {
		return nil, err
	}
	V := m.Config.VocabSize
	logits := out[0][row*V : (row+1)*V]
	if err := checkLogits(logits, pos+row); err != nil {
		return nil, err
	}
	return logits, nil
}

// checkLogits refuses non-finite logits (a NaN would otherwise decode as
// token 0 over and over), naming the position whose logits they are.
func checkLogits(logits []float64, pos int) error {
	for id, x := range logits {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("generate: the logits after position %d are not finite (%v for token id %d): "+
				"the forward pass overflowed or a weight is not finite", pos, x, id)
		}
	}
	return nil
}

// PositionsNeeded is the number of KV-cache positions a request uses: the
// prompt and every generated token but the last, which is never fed back.
func PositionsNeeded(promptLen, maxNew int) int { return promptLen + maxNew - 1 }

// Prefill feeds a prompt from position 0, in PrefillChunkFor-token
// submissions where the executor has a prefill step and one token at a time
// otherwise, and returns the logits after its last token. A model whose
// first positions attend both ways (prefix_lm) needs the prefill step.
func (g *Generator) Prefill(prompt []int) ([]float64, error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("generate: empty prompt")
	}
	if p := g.Model.Config.AttentionPrefix(); p > 1 && g.preExec == nil {
		return nil, fmt.Errorf("generate: the model's first %d positions attend both ways (prefix_lm), so its prompt must be fed in one chunk: use the gpu executor", p)
	}
	var logits []float64
	var err error
	pos := 0
	if g.preExec != nil {
		n := g.prefill.Seq
		for ; pos+n <= len(prompt); pos += n {
			last := pos+n == len(prompt) // read the logits of the final chunk only
			if logits, err = g.feed(g.prefill, g.preExec, prompt[pos:pos+n], pos, last); err != nil {
				return nil, err
			}
		}
	}
	// A rest of two or more tokens goes as one chunk padded past the
	// prompt's end, where the positions allow: the padding's cache entries
	// lie past the prompt and are overwritten by the tokens generated there
	// before any query attends to them (a ring holds window + chunk − 1
	// slots, so the chunk overwrites nothing a later query needs).
	if rest := len(prompt) - pos; g.preExec != nil && rest >= 2 && pos+g.prefill.Seq <= g.MaxSeq {
		chunk := make([]int, g.prefill.Seq)
		copy(chunk, prompt[pos:])
		return g.feedRow(g.prefill, g.preExec, chunk, pos, true, rest-1)
	}
	for ; pos < len(prompt); pos++ {
		last := pos == len(prompt)-1
		if logits, err = g.feed(g.Model, g.Exec, prompt[pos:pos+1], pos, last); err != nil {
			return nil, err
		}
	}
	return logits, nil
}

// Stats reports a generation's speed.
type Stats struct {
	PromptTokens, NewTokens int
	Elapsed                 time.Duration
	// Prefill is the part of Elapsed spent feeding the prompt (and picking
	// the first new token); the rest is decoding.
	Prefill time.Duration
}

// DecodeTokensPerSecond counts the new tokens after the first over the
// decoding time after the prefill: the speed of the decode loop alone.
func (s Stats) DecodeTokensPerSecond() float64 {
	d := (s.Elapsed - s.Prefill).Seconds()
	if d <= 0 || s.NewTokens < 2 {
		return 0
	}
	return float64(s.NewTokens-1) / d
}

// TokensPerSecond counts every token the model processed.
func (s Stats) TokensPerSecond() float64 {
	return float64(s.PromptTokens+s.NewTokens) / s.Elapsed.Seconds()
}

// Generate continues prompt by up to maxNew (≥ 1) tokens, stopping after a
// stop token. It returns the new tokens. A request that does not fit the
// generator's positions (PositionsNeeded > MaxSeq) is an error, not a
// shorter answer; so are invalid sampling parameters and non-finite logits
// (naming the position).
func (g *Generator) Generate(prompt []int, maxNew int, stop int, s Sampling, rng *rand.Rand) ([]int, Stats, error) {
	start := time.Now()
	if len(prompt) == 0 {
		return nil, Stats{}, fmt.Errorf("generate: empty prompt")
	}
	if maxNew < 1 {
		return nil, Stats{}, fmt.Errorf("generate: at least one new token must be asked for, got %d", maxNew)
	}
	if err := s.Validate(); err != nil {
		return nil, Stats{}, fmt.Errorf("generate: %w", err)
	}
	if need := PositionsNeeded(len(prompt), maxNew); need > g.MaxSeq {
		return nil, Stats{}, fmt.Errorf("generate: a prompt of %d tokens and up to %d new tokens need %d positions; this generator holds %d",
			len(prompt), maxNew, need, g.MaxSeq)
	}
	logits, err := g.Prefill(prompt)
	if err != nil {
		return nil, Stats{}, err
	}
	prefill := time.Since(start)
	var out []int
	for len(out) < maxNew {
		next := Pick(logits, s, rng)
		out = append(out, next)
		if next == stop {
			break
		}
		if len(out) == maxNew {
			break
		}
		if logits, err = g.Step(next, len(prompt)+len(out)-1); err != nil {
			return nil, Stats{}, err
		}
	}
	return out, Stats{PromptTokens: len(prompt), NewTokens: len(out), Elapsed: time.Since(start), Prefill: prefill}, nil
}

// Pick chooses a token from finite logits (see Sampling for the edge
// values; out-of-range ones, which Validate refuses, pick greedily too).
func Pick(logits []float64, s Sampling, rng *rand.Rand) int {
	if !(s.Temperature > 0) || !(s.TopP > 0) || rng == nil {
		best := 0
		for i, x := range logits {
			if x > logits[best] {
				best = i
			}
		}
		return best
	}
	type cand struct {
		id int
		p  float64
	}
	maxL := math.Inf(-1)
	for _, x := range logits {
		maxL = math.Max(maxL, x)
	}
	cs := make([]cand, len(logits))
	sum := 0.0
	for i, x := range logits {
		p := math.Exp((x - maxL) / s.Temperature)
		cs[i] = cand{i, p}
		sum += p
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].p > cs[j].p })
	topP := min(s.TopP, 1)
	keep, mass := 0, 0.0
	for keep < len(cs) {
		mass += cs[keep].p / sum
		keep++
		if mass >= topP {
			break
		}
	}
	r := rng.Float64() * mass
	for _, c := range cs[:keep] {
		r -= c.p / sum
		if r <= 0 {
			return c.id
		}
	}
	return cs[keep-1].id
}

// LoadWeights reads the generator's parameters from a safetensors file
// (a checkpoint's model.safetensors).
func (g *Generator) LoadWeights(path string) error {
	c := g.Model.Config
	mtp := func(name string) bool { // the MTP modules' layers, which plain decoding does not use
		for k := 0; k < c.NumNextNPredictLayers; k++ {
			if strings.HasPrefix(name, fmt.Sprintf("model.layers.%d.", c.NumHiddenLayers+k)) {
				return true
			}
		}
		return false
	}
	return weights.LoadIgnoring(g.Exec, path, append(g.Params(), g.Model.State()...), mtp)
}

// checkCaches refuses, before anything is allocated, KV caches larger than
// one storage binding of dev: allocating them first and failing at the
// first dispatch that binds them costs memory for nothing (hundreds of MiB
// for a long max_position_embeddings).
func checkCaches(m *model.Model, dev *gpu.Device) error {
	if dev == nil {
		return nil
	}
	limit := dev.Limits.MaxStorageBufferBindingSize
	for _, c := range m.Caches {
		if bytes := uint64(c.Len() * c.DType.Size()); bytes > limit {
			return fmt.Errorf("KV cache %s %v needs %d bytes, over the adapter's %d-byte storage binding limit: %w",
				c.Name, c.Shape, bytes, limit, gpu.ErrUnsupported)
		}
	}
	return nil
}
