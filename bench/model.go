package bench

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/generate"
	"github.com/moegpu/moegpu/runtime/ocr"
	"github.com/moegpu/moegpu/runtime/ocrdata"
	"github.com/moegpu/moegpu/runtime/tasks"
	"github.com/moegpu/moegpu/runtime/train"
)

// Model is one config's row of a model report: a whole training step,
// prefill and decode speed, memory, and where a step's time goes.
type Model struct {
	Config string `json:"config"` // shipped config name or file path
	Task   string `json:"task"`
	// Params counts every parameter the training step holds (MTP modules
	// included); ActiveParams is config.ActiveParamCount: what one token
	// uses in the main model (Flops.MatmulParams is what the FLOP count
	// multiplies).
	Params       int64 `json:"params"`
	ActiveParams int64 `json:"active_params"`
	MoE          bool  `json:"moe,omitempty"`
	BatchSize    int   `json:"batch_size"`
	SeqLen       int   `json:"seq_len"`
	// Steps is how many training steps were timed (after one warm-up step).
	Steps int `json:"steps"`
	// StepMs is the median training step: uploading the batch, the one
	// submission (forward, backward, clipping, AdamW) and reading back the
	// loss, as train.Stats.StepMs times it; StepMsMin the fastest.
	StepMs    float64 `json:"step_ms"`
	StepMsMin float64 `json:"step_ms_min"`
	// SubmitMs is the fastest replay of the recorded step alone (submit
	// and wait, no upload or readback); DataMs the median time the task
	// took to make a batch on the host (rendering lines for OCR), which
	// is not in StepMs.
	SubmitMs float64 `json:"submit_ms"`
	DataMs   float64 `json:"data_ms"`
	// TokensPerS is batch_size·seq_len over StepMs.
	TokensPerS float64 `json:"tokens_per_s"`
	// Flops is one step's model FLOPs (see TrainFlops); GFlops is Flops
	// over StepMs and PctOfPeak that as a share of the adapter's measured
	// FMA peak.
	Flops     FlopCount `json:"flops"`
	GFlops    float64   `json:"gflops"`
	PctOfPeak float64   `json:"pct_of_peak"`
	// Dispatches is the kernel launches one training step submits.
	Dispatches int `json:"dispatches"`
	// Prefill and decode with a KV cache (runtime/generate, greedy, batch
	// 1): PrefillTokens prompt tokens fed in 16-token chunks, then
	// DecodeTokens new tokens one per submission; the best of a few runs.
	PrefillTokens     int     `json:"prefill_tokens"`
	PrefillTokensPerS float64 `json:"prefill_tokens_per_s"`
	DecodeTokens      int     `json:"decode_tokens"`
	DecodeTokensPerS  float64 `json:"decode_tokens_per_s"`
	// DecodeDispatches is the kernel launches of one decode step.
	DecodeDispatches int    `json:"decode_dispatches"`
	Memory           Memory `json:"memory"`
	// Profile is one step timed kernel by kernel, summed by family.
	Profile *Profile `json:"profile,omitempty"`
	// Loss is the training loss of the last timed step (a sanity check:
	// a benchmark of a broken step is worthless).
	Loss float64 `json:"loss"`
}

// Memory is what a training step holds on the adapter, in bytes.
type Memory struct {
	Params    uint64 `json:"params"`
	Grads     uint64 `json:"grads"`     // parameter gradients, kept outside the arena (plan OwnBytes)
	Optimizer uint64 `json:"optimizer"` // AdamW moments
	State     uint64 `json:"state"`     // other persistent state: MoE biases, controllers, inputs
	// ActivationsPlanned is the arena the planner packs every activation
	// into; ActivationsUnplanned what one buffer per activation would
	// take.
	ActivationsPlanned   uint64 `json:"activations_planned"`
	ActivationsUnplanned uint64 `json:"activations_unplanned"`
	// Scratch is what kernels allocated for themselves outside the plan
	// (transposed operands, block sums).
	Scratch uint64 `json:"scratch"`
}

// Total is everything a step holds, with activations as planned.
func (m Memory) Total() uint64 {
	return m.Params + m.Grads + m.Optimizer + m.State + m.ActivationsPlanned + m.Scratch
}

// Profile is one training step timed kernel by kernel (gpu.Recorder.Profile)
// and summed by kernel family.
type Profile struct {
	// Source is "timestamp" (GPU timestamps, each dispatch in its own
	// pass) or "wall-clock" (each dispatch submitted alone: includes the
	// submission cost, so small kernels read slower than they run in a
	// step).
	Source   string   `json:"source"`
	TotalMs  float64  `json:"total_ms"`
	Families []Family `json:"families"`
}

// Family is one kernel family's part of a profiled step.
type Family struct {
	Name     string  `json:"name"`
	Launches int     `json:"launches"`
	Ms       float64 `json:"ms"`
	Share    float64 `json:"share"` // of the profile's total, 0–1
}

// ModelOptions control the model suite.
type ModelOptions struct {
	// Steps is how many training steps to time (default 10, at least 2)
	// after one warm-up step.
	Steps int
	// Task overrides the training task (default: ocr for image configs,
	// add for configs named small*, reverse otherwise, as the README's
	// runs and BenchmarkTrainStep train them).
	Task string
	// Decode is how many new tokens to time decoding (default 32, at most
	// what the config's positions allow); Runs how often prefill and
	// decode are repeated (best kept, default 3).
	Decode, Runs int
	// NoProfile skips the per-kernel profile (which runs one more step
	// dispatch by dispatch).
	NoProfile bool
	Log       io.Writer // progress lines; nil for none
}

// DefaultTask is the task a config trains on in the model suite when none
// is given.
func DefaultTask(name string, cfg *config.ModelConfig) string {
	switch {
	case cfg.HasImage():
		return ocr.TaskName
	case strings.HasPrefix(name, "small"):
		return "add"
	}
	return "reverse"
}

// RunModel measures one config on dev (see Model); peak is the adapter's
// measured roofline, for PctOfPeak.
func RunModel(dev *gpu.Device, name string, cfg *config.ModelConfig, peak Peak, opt ModelOptions) (Model, error) {
	logf := func(format string, args ...any) {
		if opt.Log != nil {
			fmt.Fprintf(opt.Log, format, args...)
		}
	}
	if opt.Steps <= 0 {
		opt.Steps = 10
	}
	opt.Steps = max(opt.Steps, 2)
	if opt.Decode <= 0 {
		opt.Decode = 32
	}
	if opt.Runs <= 0 {
		opt.Runs = 3
	}
	if cfg.Training == nil {
		cfg.Training = &config.TrainingConfig{}
		cfg.ApplyDefaults()
	}
	taskName := opt.Task
	if taskName == "" {
		taskName = DefaultTask(name, cfg)
	}
	var task train.Source
	var err error
	if taskName == ocr.TaskName {
		task, err = ocr.NewTask(cfg, ocrdata.Train)
	} else {
		task, err = tasks.ByName(taskName)
	}
	if err != nil {
		return Model{}, err
	}
	tr, err := train.New(cfg, task, train.GPU, dev, 1000)
	if err != nil {
		return Model{}, fmt.Errorf("%s: %w", name, err)
	}
	defer tr.Close()
	if err := tr.Init(); err != nil {
		return Model{}, fmt.Errorf("%s: %w", name, err)
	}
	ex, ok := tr.Exec.(*graph.GPU)
	if !ok {
		return Model{}, fmt.Errorf("%s: the model suite needs the gpu executor", name)
	}
	tc := tr.Train
	m := Model{Config: name, Task: task.Name(), ActiveParams: cfg.ActiveParamCount(), MoE: cfg.IsMoE(),
		BatchSize: tc.BatchSize, SeqLen: tc.SeqLen, Steps: opt.Steps, Dispatches: ex.Dispatches()}
	for _, p := range tr.Model.Params() {
		m.Params += int64(p.Len())
	}
	logf("  %s on %s: %.2fM parameters (%.2fM active), batch %d × %d, %d dispatches per step\n",
		name, m.Task, float64(m.Params)/1e6, float64(m.ActiveParams)/1e6, tc.BatchSize, tc.SeqLen, m.Dispatches)

	// Training steps: one warm-up, then the timed ones.
	if _, err := tr.StepOnce(); err != nil {
		return Model{}, fmt.Errorf("%s: warm-up step: %w", name, err)
	}
	steps, data := make([]float64, 0, opt.Steps), make([]float64, 0, opt.Steps)
	for i := 0; i < opt.Steps; i++ {
		t0 := time.Now()
		st, err := tr.StepOnce()
		if err != nil {
			return Model{}, fmt.Errorf("%s: %w", name, err)
		}
		wall := float64(time.Since(t0).Microseconds()) / 1000
		steps = append(steps, st.StepMs)
		data = append(data, math.Max(0, wall-st.StepMs))
		m.Loss = st.Loss
		logf("    step %2d/%d  %8.1f ms  loss %.4f\n", i+1, opt.Steps, st.StepMs, st.Loss)
	}
	m.StepMs, m.StepMsMin, m.DataMs = median(steps), minOf(steps), median(data)
	m.Memory = memoryOf(tr, ex) // after running: kernels may allocate scratch on first use
	m.TokensPerS = float64(tc.BatchSize*tc.SeqLen) / (m.StepMs / 1e3)
	m.Flops = TrainFlops(cfg, tc.BatchSize, tc.SeqLen)
	m.GFlops = m.Flops.Total / (m.StepMs / 1e3) / 1e9
	if peak.FMAGflops > 0 {
		m.PctOfPeak = 100 * m.GFlops / peak.FMAGflops
	}
	// The recorded step alone, replayed (it applies AdamW again: harmless
	// for timing).
	m.SubmitMs = math.Inf(1)
	for i := 0; i < min(opt.Steps, 5); i++ {
		t0 := time.Now()
		if err := ex.Run(); err != nil {
			return Model{}, fmt.Errorf("%s: replay: %w", name, err)
		}
		if err := dev.Wait(); err != nil {
			return Model{}, fmt.Errorf("%s: replay: %w", name, err)
		}
		m.SubmitMs = math.Min(m.SubmitMs, float64(time.Since(t0).Microseconds())/1000)
	}
	logf("    step %.1f ms (submission alone %.1f ms, batch making %.1f ms): %.0f tokens/s, %.2f GFLOP/s model, %.1f%% of peak\n",
		m.StepMs, m.SubmitMs, m.DataMs, m.TokensPerS, m.GFlops, m.PctOfPeak)
	if !opt.NoProfile {
		logf("    profiling one step kernel by kernel …\n")
		p, err := profileStep(ex)
		if err != nil {
			return Model{}, fmt.Errorf("%s: profile: %w", name, err)
		}
		m.Profile = p
	}
	if err := decodeSpeed(dev, tr, cfg, opt, &m); err != nil {
		return Model{}, fmt.Errorf("%s: decoding: %w", name, err)
	}
	logf("    prefill %d tokens: %.0f tokens/s; decode %d tokens: %.1f tokens/s (%d dispatches per token)\n",
		m.PrefillTokens, m.PrefillTokensPerS, m.DecodeTokens, m.DecodeTokensPerS, m.DecodeDispatches)
	return m, nil
}

// memoryOf sorts what the plan keeps on the adapter into parameters,
// optimizer moments (state named opt.*), other state and activations.
func memoryOf(tr *train.Trainer, ex *graph.GPU) Memory {
	p := tr.Plan
	mem := Memory{Grads: p.OwnBytes, ActivationsPlanned: p.ArenaBytes, ActivationsUnplanned: p.NaiveBytes, Scratch: ex.ScratchBytes()}
	for _, t := range p.Graph.Tensors {
		b := uint64(t.Len() * t.DType.Size())
		switch {
		case t.Kind == graph.Param:
			mem.Params += b
		case t.Kind == graph.State && strings.HasPrefix(t.Name, "opt."):
			mem.Optimizer += b
		case t.Kind == graph.State || t.Kind == graph.Input || t.Kind == graph.Const:
			mem.State += b
		}
	}
	return mem
}

// profileStep times one step dispatch by dispatch and sums the times by
// kernel family, largest first.
func profileStep(ex *graph.GPU) (*Profile, error) {
	times, source, err := ex.Profile()
	if err != nil {
		return nil, err
	}
	p := &Profile{Source: source}
	by := map[string]*Family{}
	total := 0.0
	for _, k := range times {
		name := KernelFamily(k.Name)
		f := by[name]
		if f == nil {
			f = &Family{Name: name}
			by[name] = f
		}
		f.Launches++
		f.Ms += k.Seconds * 1e3
		total += k.Seconds * 1e3
	}
	for _, f := range by {
		if total > 0 {
			f.Share = f.Ms / total
		}
		p.Families = append(p.Families, *f)
	}
	sort.Slice(p.Families, func(i, j int) bool { return p.Families[i].Ms > p.Families[j].Ms })
	p.TotalMs = total
	return p, nil
}

// decodeSpeed times prefill and decoding with the trained weights: a
// prompt of half the config's positions (for an image model: its image
// tokens and BOS, the image blank but for a few ink columns), then up to
// opt.Decode new tokens greedily, no stop token.
func decodeSpeed(dev *gpu.Device, tr *train.Trainer, cfg *config.ModelConfig, opt ModelOptions, m *Model) error {
	maxPos := cfg.MaxPositionEmbeddings
	prompt := max(1, min(maxPos/2, 128))
	if cfg.HasImage() {
		prompt = cfg.ImageTokens() + 1
	}
	newTok := max(1, min(opt.Decode, maxPos-prompt+1))
	g, err := generate.New(cfg, train.GPU, dev, generate.Options{MaxSeq: generate.PositionsNeeded(prompt, newTok)})
	if err != nil {
		return err
	}
	defer g.Close()
	want := append(g.Params(), g.Model.State()...)
	have := map[string]*graph.Tensor{}
	for _, t := range tr.Plan.Graph.Tensors {
		if t.Kind == graph.Param || t.Kind == graph.State {
			have[t.Name] = t
		}
	}
	for _, t := range want {
		src, ok := have[t.Name]
		if !ok {
			return fmt.Errorf("the training step has no tensor %s", t.Name)
		}
		v, err := tr.Exec.Get(src)
		if err != nil {
			return err
		}
		if err := g.Exec.Set(t, v[0]); err != nil {
			return err
		}
	}
	if cfg.HasImage() {
		pix := make([]float32, cfg.ImageHeight*cfg.MaxImageWidth)
		for x := 0; x < cfg.MaxImageWidth/2; x += 3 { // a few strokes, so the image tokens are not all alike
			for y := cfg.ImageHeight / 4; y < 3*cfg.ImageHeight/4; y++ {
				pix[y*cfg.MaxImageWidth+x] = 1
			}
		}
		if err := g.SetImage(pix); err != nil {
			return err
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	toks := make([]int, prompt)
	for i := range toks {
		toks[i] = 4 + rng.IntN(max(1, min(cfg.VocabSize, 43)-4)) // characters, past PAD/BOS/EOS/SEP
	}
	if cfg.HasImage() {
		for i := range toks {
			toks[i] = ocr.IMG
		}
		toks[prompt-1] = ocr.BOS
	}
	m.PrefillTokens, m.DecodeTokens = prompt, newTok
	if gx, ok := g.Exec.(*graph.GPU); ok {
		m.DecodeDispatches = gx.Dispatches()
	}
	for r := 0; r < opt.Runs+1; r++ { // the first run compiles and warms up
		_, st, err := g.Generate(toks, newTok, -1, generate.Sampling{}, nil)
		if err != nil {
			return err
		}
		if r == 0 {
			continue
		}
		if s := st.Prefill.Seconds(); s > 0 {
			m.PrefillTokensPerS = math.Max(m.PrefillTokensPerS, float64(prompt)/s)
		}
		m.DecodeTokensPerS = math.Max(m.DecodeTokensPerS, st.DecodeTokensPerSecond())
	}
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minOf(v []float64) float64 {
	m := math.Inf(1)
	for _, x := range v {
		m = math.Min(m, x)
	}
	return m
}

// NamedConfig is a config and the name a report gives it.
type NamedConfig struct {
	Name   string
	Config *config.ModelConfig
}

// RunModels measures the adapter's peak (minTime per measurement), then
// every config in turn (see RunModel), and returns the model report.
func RunModels(dev *gpu.Device, cfgs []NamedConfig, minTime time.Duration, opt ModelOptions) (*Report, error) {
	r := NewReport(dev, SuiteModel)
	if opt.Log != nil {
		fmt.Fprintf(opt.Log, "measuring peak on %s …\n", dev.Info.Label())
	}
	p, err := MeasurePeak(dev, minTime)
	if err != nil {
		return nil, fmt.Errorf("peak: %w", err)
	}
	r.Peak = p
	if opt.Log != nil {
		fmt.Fprintf(opt.Log, "peak: %.1f GFLOP/s FMA, %.2f GB/s copy\n", p.FMAGflops, p.CopyGBps)
	}
	for i, c := range cfgs {
		if opt.Log != nil {
			fmt.Fprintf(opt.Log, "[%d/%d] %s\n", i+1, len(cfgs), c.Name)
		}
		m, err := RunModel(dev, c.Name, c.Config, p, opt)
		if err != nil {
			return nil, err
		}
		r.Models = append(r.Models, m)
	}
	return r, nil
}
