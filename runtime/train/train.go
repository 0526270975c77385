// Package train runs training: it turns a model graph into one training
// step (forward, backward, global gradient-norm clipping and AdamW, all in
// one plan and so one GPU submission), feeds it batches from a task,
// follows a warmup + cosine learning-rate schedule, and saves and resumes
// checkpoints.
package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/moe"
	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/model"
	"github.com/moegpu/moegpu/runtime/tasks"
)

// Trainer holds a compiled training step and its state.
type Trainer struct {
	Config *config.ModelConfig
	Train  config.TrainingConfig
	Model  *model.Model
	Task   Source
	Exec   graph.Executor
	Plan   *graph.Plan
	// Step is the number of optimizer steps taken.
	Step int

	opt                 graph.AdamW
	hyperDecay, hyperNo *graph.Tensor
	gradNorm2           *graph.Tensor
	moments             map[*graph.Tensor][2]*graph.Tensor // param → (m, v)
	decayed             map[*graph.Tensor]bool
	totalSteps          int
}

// Stats is what one step reports.
type Stats struct {
	Step       int     `json:"step"`
	Loss       float64 `json:"loss"`
	LR         float64 `json:"lr"`
	GradNorm   float64 `json:"grad_norm"`
	TokensPerS float64 `json:"tokens_per_s"`
	StepMs     float64 `json:"step_ms"`
	// AuxLoss is the MoE layers' balance losses (Loss is the language-model loss alone).
	AuxLoss float64 `json:"aux_loss,omitempty"`
	// MoE holds each MoE layer's router statistics for this step, in layer order.
	MoE []MoEStats `json:"moe,omitempty"`
	// MTP holds each multi-token-prediction module's cross-entropy (module
	// k at index k−1, predicting the token k+1 ahead), and MTPLambda the λ
	// the loss weighed them with this step.
	MTP       []float64 `json:"mtp,omitempty"`
	MTPLambda float64   `json:"mtp_lambda,omitempty"`
}

// MoEStats is one MoE layer's router statistics for one step, computed on
// the GPU and read back with the loss (see moe.Stats).
type MoEStats struct {
	Layer    string    `json:"layer"`     // parameter prefix, e.g. model.layers.1.mlp
	MaxVio   float64   `json:"max_vio"`   // (max load − mean load) / mean load
	SkipRate float64   `json:"skip_rate"` // share of tokens that took a copy expert
	Entropy  float64   `json:"entropy"`   // mean router entropy, nats
	Dropped  float64   `json:"dropped"`   // slots dropped over capacity
	Load     []float64 `json:"load"`      // each routed expert's share of the slots
	// ActZero and ActSmall (ReLU² experts only): the share of the experts'
	// activations that are exactly zero, and of the non-zero ones below 1 %
	// of their row's largest.
	ActZero  float64 `json:"act_zero,omitempty"`
	ActSmall float64 `json:"act_small,omitempty"`
}

// Executor kinds.
const (
	GPU       = "gpu"
	Reference = "reference"
)

// New builds the training step for cfg on a task. dev may be nil for the
// reference executor. totalSteps sets the length of the cosine schedule.
func New(cfg *config.ModelConfig, task Source, executor string, dev *gpu.Device, totalSteps int) (*Trainer, error) {
	return NewWith(cfg, task, executor, dev, totalSteps, Options{})
}

// NewWith is New with build options.
func NewWith(cfg *config.ModelConfig, task Source, executor string, dev *gpu.Device, totalSteps int, opt Options) (*Trainer, error) {
	tc := config.TrainingConfig{}
	if cfg.Training != nil {
		tc = *cfg.Training
	}
	if err := checkSource(cfg, tc, task); err != nil {
		return nil, err
	}
	build := model.BuildTrain
	if opt.UnfusedProjections {
		build = model.BuildTrainUnfused
	}
	m, err := build(cfg, tc.BatchSize, tc.SeqLen)
	if err != nil {
		return nil, err
	}
	g := m.Graph
	if err := g.Backward(m.Loss); err != nil {
		return nil, fmt.Errorf("backward: %w", err)
	}
	// The balancing controllers run after the backward pass, in the same
	// submission, from this step's router statistics.
	for _, l := range m.MoE {
		l.AppendUpdate(g)
	}
	t := &Trainer{Config: cfg, Train: tc, Model: m, Task: task, totalSteps: totalSteps,
		moments: map[*graph.Tensor][2]*graph.Tensor{}, decayed: map[*graph.Tensor]bool{}}
	t.opt = graph.AdamW{Beta1: float32(tc.AdamBeta1), Beta2: float32(tc.AdamBeta2), Eps: float32(tc.AdamEpsilon),
		WeightDecay: float32(tc.WeightDecay), MaxGradNorm: float32(tc.MaxGradNorm)}
	params := m.Params()
	for _, p := range params {
		if p.Grad == nil {
			return nil, fmt.Errorf("parameter %s gets no gradient", p.Name)
		}
	}
	t.addOptimizer(g, params, opt)
	if err := g.Err(); err != nil {
		return nil, err
	}
	align := uint64(256)
	if dev != nil {
		align = uint64(dev.Limits.MinStorageBufferOffsetAlignment)
	}
	t.Plan, err = g.Plan(append(append([]*graph.Tensor{m.Loss, t.gradNorm2, m.LMLoss}, moeStats(m)...), m.MTPLoss...), align)
	if err != nil {
		return nil, err
	}
	switch executor {
	case GPU, "":
		if dev == nil {
			return nil, fmt.Errorf("the gpu executor needs a device")
		}
		t.Exec, err = graph.NewGPU(dev, t.Plan, nil)
		if err != nil {
			return nil, err
		}
	case Reference:
		t.Exec = graph.NewReference(t.Plan)
	default:
		return nil, fmt.Errorf("unknown executor %q (want gpu or reference)", executor)
	}
	return t, nil
}

// Decayed reports whether weight decay applies to a parameter.
func (t *Trainer) Decayed(p *graph.Tensor) bool { return t.decayed[p] }

// Init draws every parameter from its Init distribution with the run's
// seed; optimizer moments start at zero.
func (t *Trainer) Init() error {
	rng := rand.New(rand.NewPCG(uint64(t.Train.Seed), 0x696e6974)) // "init"
	for _, p := range t.Model.Params() {
		v := make([]float64, p.Len())
		switch p.Init.Dist {
		case "normal":
			for i := range v {
				v[i] = float64(float32(rng.NormFloat64() * p.Init.Std))
			}
		case "ones":
			for i := range v {
				v[i] = 1
			}
		}
		if err := t.Exec.Set(p, v); err != nil {
			return err
		}
	}
	return nil
}

// LR is the learning rate of step s (1-based): linear warmup to
// learning_rate, then cosine decay to min_lr_ratio·learning_rate at the
// last step.
func (t *Trainer) LR(s int) float64 {
	lr, warm := t.Train.LearningRate, t.Train.WarmupSteps
	if warm > 0 && s <= warm {
		return lr * float64(s) / float64(warm)
	}
	total := t.totalSteps
	if total <= warm {
		return lr
	}
	progress := math.Min(1, float64(s-warm)/float64(total-warm))
	minLR := lr * t.Train.MinLRRatio
	return minLR + (lr-minLR)*0.5*(1+math.Cos(math.Pi*progress))
}

// batchRNG gives step s its own generator, so a resumed run sees exactly
// the batches the uninterrupted run would have.
func (t *Trainer) batchRNG(s int) *rand.Rand {
	return tasks.TrainRNG(uint64(t.Train.Seed)*1_000_003 + uint64(s))
}

// StepOnce runs one optimizer step on the task's batch for the next step and returns its
// statistics. The only readback is the loss and the squared gradient norm.
func (t *Trainer) StepOnce() (Stats, error) {
	s := t.Step + 1
	if img, ok := t.Task.(ImageSource); ok {
		b, err := img.ImageBatch(t.batchRNG(s), t.Train.BatchSize, t.Train.SeqLen)
		if err != nil {
			return Stats{}, err
		}
		return t.StepImages(b)
	}
	tokens, targets, weights, err := t.Task.Batch(t.batchRNG(s), t.Train.BatchSize, t.Train.SeqLen)
	if err != nil {
		return Stats{}, err
	}
	return t.StepBatch(tokens, targets, weights)
}

// StepImages is StepBatch for an image model: the batch's tokens plus its line images.
func (t *Trainer) StepImages(b ImageBatch) (Stats, error) {
	m := t.Model
	if m.PixelValues == nil {
		return Stats{}, fmt.Errorf("step %d: the model reads no images", t.Step+1)
	}
	if want := m.PixelValues.Len(); len(b.Pixels) != want {
		return Stats{}, fmt.Errorf("step %d: the batch has %d pixels, want %d (batch × image_height × max_image_width)", t.Step+1, len(b.Pixels), want)
	}
	if err := t.Exec.Set(m.PixelValues, f32s(b.Pixels)); err != nil {
		return Stats{}, err
	}
	return t.StepBatch(b.Tokens, b.Targets, b.Weights)
}

// StepBatch runs one optimizer step on a given batch (batch_size × seq_len, row-major, laid out
// as tasks.Task.Batch lays it out) and returns its statistics. A token or target id outside the
// vocabulary (targets may also be graph.IgnoreTarget), or a loss weight that is negative or not
// finite, is an error naming the step and the position, and no step is taken. A loss or gradient
// norm that is not finite is an error naming the step and which of the two it was; the step has
// then been taken (its update is in the weights), so the trainer must not be saved.
func (t *Trainer) StepBatch(tokens, targets []uint32, weights []float32) (Stats, error) {
	start := time.Now()
	s := t.Step + 1
	B, T := t.Train.BatchSize, t.Train.SeqLen
	if err := checkBatch(tokens, targets, weights, B*T, t.Config.VocabSize); err != nil {
		return Stats{}, fmt.Errorf("step %d: %w", s, err)
	}
	pos := make([]float64, B*T)
	for i := range pos {
		pos[i] = float64(i % T)
	}
	lr := t.LR(s)
	hd, err := t.opt.Hyper(lr, s, true)
	if err != nil {
		return Stats{}, err
	}
	hn, _ := t.opt.Hyper(lr, s, false)
	m := t.Model
	for _, in := range []struct {
		t *graph.Tensor
		v []float64
	}{{m.Tokens, u32s(tokens)}, {m.Targets, u32s(targets)}, {m.Weights, f32s(weights)}, {m.Positions, pos},
		{t.hyperDecay, hd}, {t.hyperNo, hn}, {m.PatchCols, patchCols(t.Config, B, T)}} {
		if in.t == nil {
			continue
		}
		if err := t.Exec.Set(in.t, in.v); err != nil {
			return Stats{}, err
		}
	}
	lambda := 0.0
	if len(m.MTP) > 0 {
		lambda = t.Config.MTPLambda(s, t.totalSteps)
		if err := t.Exec.Set(m.MTPLambda, []float64{lambda / float64(len(m.MTP))}); err != nil {
			return Stats{}, err
		}
		for k := range m.MTP {
			tok, tgt, w := model.ShiftForMTP(tokens, targets, B, T, k+1, tasks.PAD, tasks.IgnoreIndex)
			for _, in := range []struct {
				t *graph.Tensor
				v []float64
			}{{m.MTPTokens[k], u32s(tok)}, {m.MTPTargets[k], u32s(tgt)}, {m.MTPWeights[k], f32s(w)}} {
				if err := t.Exec.Set(in.t, in.v); err != nil {
					return Stats{}, err
				}
			}
		}
	}
	if err := t.Exec.Run(); err != nil {
		return Stats{}, fmt.Errorf("step %d: %w", s, err)
	}
	read := append([]*graph.Tensor{m.Loss, t.gradNorm2, m.LMLoss}, moeStats(m)...)
	read = append(read, m.MTPLoss...)
	out, err := t.Exec.Get(read...)
	if err != nil {
		return Stats{}, fmt.Errorf("step %d: %w", s, err)
	}
	t.Step = s
	el := time.Since(start)
	loss, norm := out[0][0], math.Sqrt(out[1][0])
	st := Stats{Step: s, Loss: out[2][0], LR: lr, GradNorm: norm,
		TokensPerS: float64(B*T) / el.Seconds(), StepMs: float64(el.Microseconds()) / 1000}
	for _, v := range out[len(out)-len(m.MTPLoss):] {
		st.MTP = append(st.MTP, v[0])
	}
	if len(m.MTP) > 0 {
		st.MTPLambda = lambda
	}
	for _, l := range m.MoE {
		if l.AuxLoss != nil { // the total minus the LM and MTP losses is the balance losses
			st.AuxLoss = loss - st.Loss
			for _, ce := range st.MTP {
				st.AuxLoss -= lambda / float64(len(m.MTP)) * ce
			}
			break
		}
	}
	for i, l := range m.MoE {
		v := out[3+i]
		if bad := v[moe.StatNonFinite]; bad > 0 {
			return Stats{}, fmt.Errorf("step %d: the router of %s produced %d non-finite affinities (a non-finite weight or activation reached it); the weights now hold this step's unusable update: resume from the last checkpoint", s, l.Prefix, int(bad))
		}
		ms := MoEStats{Layer: l.Prefix, MaxVio: v[moe.StatMaxVio], SkipRate: v[moe.StatSkipRate],
			Entropy: v[moe.StatEntropy], Dropped: v[moe.StatDropped], Load: v[moe.StatLoad:]}
		if l.Sparsity != nil {
			sp := out[3+len(m.MoE)+sparseIndex(m, i)]
			ms.ActZero, ms.ActSmall = sp[0], sp[1]
		}
		st.MoE = append(st.MoE, ms)
	}
	if err := checkFinite(s, loss, norm); err != nil {
		return Stats{}, err
	}
	return st, nil
}

// moeStats lists each MoE layer's statistics tensor, then the sparsity
// tensors of the layers that have one.
func moeStats(m *model.Model) []*graph.Tensor {
	var out []*graph.Tensor
	for _, l := range m.MoE {
		out = append(out, l.Stats)
	}
	for _, l := range m.MoE {
		if l.Sparsity != nil {
			out = append(out, l.Sparsity)
		}
	}
	return out
}

// sparseIndex is layer i's position among the layers with a sparsity tensor.
func sparseIndex(m *model.Model, i int) int {
	n := 0
	for _, l := range m.MoE[:i] {
		if l.Sparsity != nil {
			n++
		}
	}
	return n
}

// patchCols is the strip each position of a training batch reads: position p < image tokens
// of each sequence reads strip p, text positions none. nil for a text-only model.
func patchCols(c *config.ModelConfig, batch, seq int) []float64 {
	if !c.HasImage() {
		return nil
	}
	img := c.ImageTokens()
	cols := make([]float64, batch*seq)
	for i := range cols {
		cols[i] = graph.NoPatch
		if p := i % seq; p < img {
			cols[i] = float64(p)
		}
	}
	return cols
}

// checkBatch refuses a batch of the wrong size, ids outside the vocabulary and loss weights that
// are negative or not finite, naming the first bad position.
func checkBatch(tokens, targets []uint32, weights []float32, n, vocab int) error {
	if len(tokens) != n || len(targets) != n || len(weights) != n {
		return fmt.Errorf("batch has %d tokens, %d targets and %d weights, want %d of each (batch_size × seq_len)",
			len(tokens), len(targets), len(weights), n)
	}
	for i, id := range tokens {
		if int64(id) >= int64(vocab) {
			return fmt.Errorf("token id %d at position %d is outside the vocabulary (vocab_size %d)", id, i, vocab)
		}
	}
	if err := graph.CheckTargets(targets, vocab); err != nil {
		return err
	}
	for i, w := range weights {
		if !(w >= 0) || math.IsInf(float64(w), 0) {
			return fmt.Errorf("loss weight %v at position %d must be a finite number ≥ 0", w, i)
		}
	}
	return nil
}

// checkFinite reports a non-finite loss or gradient norm, saying which and at what step.
func checkFinite(step int, loss, gradNorm float64) error {
	bad := func(x float64) bool { return math.IsNaN(x) || math.IsInf(x, 0) }
	switch {
	case bad(loss):
		return fmt.Errorf("step %d: the loss is %v (a non-finite weight or activation in the forward pass, "+
			"or a diverged run: lower training.learning_rate or set training.max_grad_norm); the weights now hold this step's unusable update: resume from the last checkpoint", step, loss)
	case bad(gradNorm):
		return fmt.Errorf("step %d: the gradient norm is %v while the loss is %g (a gradient overflowed in the backward pass; "+
			"lower training.learning_rate or set training.max_grad_norm); the weights now hold this step's unusable update: resume from the last checkpoint", step, gradNorm, loss)
	}
	return nil
}

// Close releases the executor.
func (t *Trainer) Close() { t.Exec.Close() }

func u32s(v []uint32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func f32s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}
