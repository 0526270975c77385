package bench

import (
	"fmt"
	"math"
	"math/rand"
	"time"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/layers"
	"github.com/moegpu/moegpu/moe"
	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/model"
)

// FFNTiming is what one training step of a model spends in its FFN blocks, each timed alone
// (forward and backward over the step's tokens, as the MoE layer cases time them).
type FFNTiming struct {
	// Ms is the sum over the model's layers, in milliseconds: MoE layers at MoEMs each,
	// dense layers at DenseMs each.
	Ms                   float64
	MoEMs, DenseMs       float64
	MoELayers            int
	DenseLayers          int
	Skip                 float64 // the share of tokens the copy expert took in the MoE timing
	Tokens               int
	CPUMs                float64 // Ms counted in this process's CPU time (see timeLayer)
	MoECPUMs, DenseCPUMs float64 // MoEMs and DenseMs in CPU time
}

// FFNTime times the FFN blocks of a training step of cfg over tokens rows: one MoE layer (its
// router, dispatch, experts, shared experts and combine) with the share skip of the tokens
// routed to a copy expert (forced as the MoE layer cases force it; 0 without copy experts),
// and one dense FFN of the config's activation, each forward and backward, the fastest of
// repeated runs lasting at least minTime, multiplied by the number of layers of each kind.
// It answers "what does this config's FFN cost at the skip rate it reached", apart from
// attention and the rest of the step.
func FFNTime(dev *gpu.Device, cfg *config.ModelConfig, tokens int, skip float64, minTime time.Duration) (FFNTiming, error) {
	if tokens < 1 {
		return FFNTiming{}, fmt.Errorf("ffn time: %d tokens", tokens)
	}
	if !(skip >= 0 && skip <= 1) {
		return FFNTiming{}, fmt.Errorf("ffn time: skip share %v must be in [0, 1]", skip)
	}
	r := FFNTiming{Tokens: tokens}
	for i := 0; i < cfg.NumHiddenLayers; i++ {
		if cfg.IsMoELayer(i) {
			r.MoELayers++
		} else {
			r.DenseLayers++
		}
	}
	if cfg.ZeroExpertNum > 0 {
		r.Skip = skip
	}
	if r.MoELayers > 0 {
		o := model.MoEOptions(cfg, 0.02, 0.02)
		sec, cpu, err := timeFFN(dev, tokens, cfg.HiddenSize, 0, "", &o, r.Skip, minTime)
		if err != nil {
			return r, fmt.Errorf("ffn time: MoE layer: %w", err)
		}
		r.MoEMs, r.MoECPUMs = sec*1e3, cpu*1e3
	}
	if r.DenseLayers > 0 {
		sec, cpu, err := timeFFN(dev, tokens, cfg.HiddenSize, cfg.IntermediateSize, layers.Activation(cfg.HiddenAct), nil, 0, minTime)
		if err != nil {
			return r, fmt.Errorf("ffn time: dense layer: %w", err)
		}
		r.DenseMs, r.DenseCPUMs = sec*1e3, cpu*1e3
	}
	r.Ms = float64(r.MoELayers)*r.MoEMs + float64(r.DenseLayers)*r.DenseMs
	r.CPUMs = float64(r.MoELayers)*r.MoECPUMs + float64(r.DenseLayers)*r.DenseCPUMs
	return r, nil
}

// timeFFN builds one FFN block (dense of hidden h and activation act, or the MoE layer o)
// over tokens × d, with its backward, and times it as timeLayer does.
func timeFFN(dev *gpu.Device, tokens, d, h int, act layers.Activation, o *moe.Options, skip float64, minTime time.Duration) (float64, float64, error) {
	rng := rand.New(rand.NewSource(5))
	g := graph.New()
	x := g.Param("x", graph.F32(tokens, d))
	var y, router *graph.Tensor
	if o == nil {
		y = layers.FFN(g, "mlp", x, d, h, act, 0.02, 0.02)
	} else {
		var l *moe.Layer
		y, l = moe.Build(g, "mlp", x, *o)
		router = l.Router
	}
	w := g.Input("w", graph.F32(tokens, d))
	loss := g.Apply1(graph.WeightedSum{}, y, w)
	if err := g.Backward(loss); err != nil {
		return 0, 0, err
	}
	outs := []*graph.Tensor{loss}
	for _, p := range g.Params() {
		outs = append(outs, p.Grad)
	}
	vals := map[*graph.Tensor][]float64{}
	for _, t := range append(g.Params(), g.Inputs()...) {
		v := make([]float64, t.Len())
		for i := range v {
			v[i] = rng.NormFloat64() * 0.02
		}
		vals[t] = v
	}
	if router != nil && o.Copies > 0 {
		// Dimension 0 of x is large and positive on exactly the tokens that must skip; the
		// copy expert's router row reads only it (see buildLayer).
		xv := vals[x]
		skipped := int(math.Round(float64(tokens) * skip))
		for t, p := range rng.Perm(tokens) {
			xv[p*d] = -1
			if t < skipped {
				xv[p*d] = 1
			}
		}
		copyRow := vals[router][o.Experts*d : (o.Experts+1)*d]
		clear(copyRow)
		copyRow[0] = 20
	}
	if err := g.Err(); err != nil {
		return 0, 0, err
	}
	plan, err := g.Plan(outs, uint64(dev.Limits.MinStorageBufferOffsetAlignment))
	if err != nil {
		return 0, 0, err
	}
	ex, err := graph.NewGPU(dev, plan, nil)
	if err != nil {
		return 0, 0, err
	}
	defer ex.Close()
	for t, v := range vals {
		if err := ex.Set(t, v); err != nil {
			return 0, 0, err
		}
	}
	best, bestCPU := math.Inf(1), math.Inf(1)
	start := time.Now()
	for n := 0; ; n++ {
		t0, c0 := time.Now(), cpuSeconds()
		if err := ex.Run(); err != nil {
			return 0, 0, err
		}
		if err := dev.Wait(); err != nil {
			return 0, 0, err
		}
		if n > 0 { // the first run compiles and warms up
			best = math.Min(best, time.Since(t0).Seconds())
			bestCPU = math.Min(bestCPU, cpuSeconds()-c0)
		}
		if n >= 3 && time.Since(start) >= minTime {
			return best, bestCPU, nil
		}
	}
}
