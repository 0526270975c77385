// Package score measures a checkpoint on held-out data with one forward pass of its training
// graph over whole sequences (no KV cache, no sampling): bits per character on the lm task,
// and exact match of the long-context tasks by teacher forcing, which is greedy decoding's
// exact match (an answer is decoded right exactly when every answer token, EOS included, is
// the argmax after the right prefix; ties go to the lower id as generate.Pick breaks them).
// One batched pass scores many sequences, which matters at 4096 tokens, where decoding token
// by token through the KV cache would take hundreds of submissions per example. It also
// counts, per MoE layer, which input tokens took a copy expert (skipped the FFN), by
// character class.
package score

import (
	"fmt"
	"math"
	"path/filepath"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/model"
	"github.com/moegpu/moegpu/runtime/textdata"
	"github.com/moegpu/moegpu/runtime/train"
	"github.com/moegpu/moegpu/runtime/weights"
)

// Forward is a checkpoint's training-graph forward pass compiled for batch rows of seq tokens.
type Forward struct {
	Config     *config.ModelConfig
	Batch, Seq int
	m          *model.Model
	ex         graph.Executor
	outs       []*graph.Tensor
}

// Open loads the checkpoint in dir (moegpu train's output) and compiles its forward pass for
// batch × seq tokens on the executor ("gpu" with dev, or "reference" with dev nil). Image
// models are refused (they are scored by runtime/ocr), and so is seq beyond the model's
// max_position_embeddings.
func Open(dir, executor string, dev *gpu.Device, batch, seq int) (*Forward, error) {
	_, cfg, err := train.LoadState(dir)
	if err != nil {
		return nil, err
	}
	if cfg.HasImage() {
		return nil, fmt.Errorf("score: %s is an image model; score it with the OCR evaluation", dir)
	}
	if batch < 1 || seq < 2 {
		return nil, fmt.Errorf("score: batch %d × seq %d: want batch ≥ 1 and seq ≥ 2", batch, seq)
	}
	if seq > cfg.MaxPositionEmbeddings {
		return nil, fmt.Errorf("score: %d tokens per sequence is more than %s's max_position_embeddings (%d)", seq, dir, cfg.MaxPositionEmbeddings)
	}
	m, err := model.BuildTrain(cfg, batch, seq)
	if err != nil {
		return nil, err
	}
	f := &Forward{Config: cfg, Batch: batch, Seq: seq, m: m}
	// The loss and the MTP modules stay in the plan so every parameter of the checkpoint has
	// a buffer to load into.
	f.outs = []*graph.Tensor{m.Logits, m.LMLoss}
	for _, mod := range m.MTP {
		f.outs = append(f.outs, mod.Logits)
	}
	for _, l := range m.MoE {
		f.outs = append(f.outs, l.Idx)
	}
	if err := m.Graph.Err(); err != nil {
		return nil, err
	}
	align := uint64(256)
	if dev != nil {
		align = uint64(dev.Limits.MinStorageBufferOffsetAlignment)
	}
	plan, err := m.Graph.Plan(f.outs, align)
	if err != nil {
		return nil, err
	}
	switch executor {
	case train.GPU, "":
		if dev == nil {
			return nil, fmt.Errorf("score: the gpu executor needs a device")
		}
		if f.ex, err = graph.NewGPU(dev, plan, nil); err != nil {
			return nil, err
		}
	case train.Reference:
		f.ex = graph.NewReference(plan)
	default:
		return nil, fmt.Errorf("score: unknown executor %q (want gpu or reference)", executor)
	}
	if err := weights.Load(f.ex, filepath.Join(dir, train.WeightsFile), append(m.Params(), m.State()...)); err != nil {
		f.ex.Close()
		return nil, err
	}
	return f, nil
}

// Close releases the executor.
func (f *Forward) Close() { f.ex.Close() }

// Output is one forward pass: Logits (Batch·Seq, vocab) row-major, and per MoE layer (in
// layer order) the experts each token chose, (Batch·Seq, num_experts_per_tok).
type Output struct {
	Logits []float32
	Idx    [][]float64
	Vocab  int
}

// At is the logits of row b, position i.
func (o *Output) At(b, i, seq int) []float32 {
	at := (b*seq + i) * o.Vocab
	return o.Logits[at : at+o.Vocab]
}

// Run feeds up to Batch rows of up to Seq token ids each (shorter rows and missing rows are
// padded with PAD) and returns the logits and routing.
func (f *Forward) Run(rows [][]int) (*Output, error) {
	B, T, V := f.Batch, f.Seq, f.Config.VocabSize
	if len(rows) == 0 || len(rows) > B {
		return nil, fmt.Errorf("score: %d rows for a pass of %d", len(rows), B)
	}
	n := B * T
	tokens, targets := make([]uint32, n), make([]uint32, n)
	for i := range targets {
		targets[i] = graph.IgnoreTarget
	}
	for b, r := range rows {
		if len(r) > T {
			return nil, fmt.Errorf("score: row %d has %d tokens, more than %d", b, len(r), T)
		}
		for i, id := range r {
			if id < 0 || id >= V {
				return nil, fmt.Errorf("score: token %d of row %d is %d, outside the vocabulary (vocab_size %d)", i, b, id, V)
			}
			tokens[b*T+i] = uint32(id)
			if i+1 < len(r) {
				targets[b*T+i] = uint32(r[i+1])
			}
		}
	}
	count := 0
	for _, t := range targets {
		if t != graph.IgnoreTarget {
			count++
		}
	}
	pos, tok, tgt, w := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range pos {
		pos[i], tok[i], tgt[i] = float64(i%T), float64(tokens[i]), float64(targets[i])
		if targets[i] != graph.IgnoreTarget {
			w[i] = 1 / float64(max(count, 1))
		}
	}
	m := f.m
	var err error
	set := func(t *graph.Tensor, v []float64) {
		if err == nil && t != nil {
			err = f.ex.Set(t, v)
		}
	}
	set(m.Tokens, tok)
	set(m.Positions, pos)
	set(m.Targets, tgt)
	set(m.Weights, w)
	if len(m.MTP) > 0 {
		set(m.MTPLambda, []float64{0})
		for k := range m.MTP {
			mt, mg, mw := model.ShiftForMTP(tokens, targets, B, T, k+1, textdata.PAD, graph.IgnoreTarget)
			set(m.MTPTokens[k], u32f(mt))
			set(m.MTPTargets[k], u32f(mg))
			set(m.MTPWeights[k], f32f(mw))
		}
	}
	if err != nil {
		return nil, err
	}
	if err := f.ex.Run(); err != nil {
		return nil, err
	}
	read := []*graph.Tensor{m.Logits}
	for _, l := range m.MoE {
		read = append(read, l.Idx)
	}
	vals, err := f.ex.Get(read...)
	if err != nil {
		return nil, err
	}
	out := &Output{Logits: make([]float32, len(vals[0])), Vocab: V, Idx: vals[1:]}
	for i, x := range vals[0] {
		out.Logits[i] = float32(x)
	}
	return out, nil
}

func u32f(v []uint32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func f32f(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// Argmax is the index of the largest logit, the lowest on ties (generate.Pick's greedy rule).
func Argmax(logits []float32) int {
	best := 0
	for i, x := range logits {
		if x > logits[best] {
			best = i
		}
	}
	return best
}

// finite reports whether every logit is a finite number.
func finite(logits []float32) bool {
	for _, x := range logits {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
	}
	return true
}
