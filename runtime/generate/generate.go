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
// TopP (1 = all).
type Sampling struct {
	Temperature float64
	TopP        float64
}

// Generator holds a compiled decode step.
type Generator struct {
	Model  *model.Model
	Exec   graph.Executor
	MaxSeq int
}

// New compiles a one-token decode step for cfg with room for maxSeq
// positions. dev may be nil for the reference executor.
func New(cfg *config.ModelConfig, executor string, dev *gpu.Device, maxSeq int) (*Generator, error) {
	if maxSeq <= 0 || maxSeq > cfg.MaxPositionEmbeddings {
		return nil, fmt.Errorf("generate: max sequence %d must be in 1..max_position_embeddings (%d)", maxSeq, cfg.MaxPositionEmbeddings)
	}
	m, err := model.BuildDecode(cfg, 1, 1, maxSeq)
	if err != nil {
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
	var ex graph.Executor
	switch executor {
	case "gpu", "":
		if dev == nil {
			return nil, fmt.Errorf("the gpu executor needs a device")
		}
		ex, err = graph.NewGPU(dev, plan, nil)
		if err != nil {
			return nil, err
		}
	case "reference":
		ex = graph.NewReference(plan)
	default:
		return nil, fmt.Errorf("unknown executor %q (want gpu or reference)", executor)
	}
	return &Generator{Model: m, Exec: ex, MaxSeq: maxSeq}, nil
}

// Close releases the executor.
func (g *Generator) Close() { g.Exec.Close() }

// Params lists the weights the generator needs, by name.
func (g *Generator) Params() []*graph.Tensor { return g.Model.Params() }

// Step feeds the token at absolute position pos and returns the logits for
// the next position.
func (g *Generator) Step(token, pos int) ([]float64, error) {
	if pos >= g.MaxSeq {
		return nil, fmt.Errorf("generate: position %d is past the %d positions this generator holds", pos, g.MaxSeq)
	}
	m := g.Model
	if token < 0 || token >= m.Config.VocabSize {
		return nil, fmt.Errorf("generate: token %d outside the vocabulary (%d)", token, m.Config.VocabSize)
	}
	for _, in := range []struct {
		t *graph.Tensor
		v float64
	}{{m.Tokens, float64(token)}, {m.Positions, float64(pos)}, {m.CachePos, float64(pos)}} {
		if err := g.Exec.Set(in.t, []float64{in.v}); err != nil {
			return nil, err
		}
	}
	if err := g.Exec.Run(); err != nil {
		return nil, err
	}
	out, err := g.Exec.Get(m.Logits)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// Stats reports a generation's speed.
type Stats struct {
	PromptTokens, NewTokens int
	Elapsed                 time.Duration
}

// TokensPerSecond counts every token the model processed.
func (s Stats) TokensPerSecond() float64 {
	return float64(s.PromptTokens+s.NewTokens) / s.Elapsed.Seconds()
}

// Generate continues prompt by up to maxNew tokens, stopping after a stop
// token. It returns the new tokens.
func (g *Generator) Generate(prompt []int, maxNew int, stop int, s Sampling, rng *rand.Rand) ([]int, Stats, error) {
	start := time.Now()
	if len(prompt) == 0 {
		return nil, Stats{}, fmt.Errorf("generate: empty prompt")
	}
	if len(prompt)+maxNew > g.MaxSeq {
		maxNew = g.MaxSeq - len(prompt)
		if maxNew < 0 {
			return nil, Stats{}, fmt.Errorf("generate: prompt of %d tokens does not fit %d positions", len(prompt), g.MaxSeq)
		}
	}
	var logits []float64
	var err error
	for i, tok := range prompt {
		if logits, err = g.Step(tok, i); err != nil {
			return nil, Stats{}, err
		}
	}
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
	return out, Stats{PromptTokens: len(prompt), NewTokens: len(out), Elapsed: time.Since(start)}, nil
}

// Pick chooses a token from logits.
func Pick(logits []float64, s Sampling, rng *rand.Rand) int {
	if s.Temperature <= 0 || rng == nil {
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
	topP := s.TopP
	if topP <= 0 || topP > 1 {
		topP = 1
	}
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
	return weights.Load(g.Exec, path, g.Params())
}
