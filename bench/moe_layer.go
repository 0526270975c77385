package bench

import (
	"fmt"
	"math"
	"math/rand"
	"strings"
	"time"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/layers"
	"github.com/moegpu/moegpu/moe"
)

// layerCase is a whole FFN block timed as one submission: an MoE layer
// (router, dispatch, grouped expert matmuls, combine) or the dense FFN it
// is compared with, forward only or forward + backward.
type layerCase struct {
	name, shape, variant string
	tokens, d            int
	dense                int // dense FFN hidden size (0: an MoE layer)
	opt                  moe.Options
	skip                 float64 // share of tokens routed to the copy expert
	backward             bool
	flops                float64
}

// moeLayerCases lists the layer comparisons of the MoE issue: an MoE FFN
// against a dense FFN with the same active parameters (forward +
// backward), and the MoE FFN's time at skip rates 0, 25 and 50 % (the
// copy expert takes that share of the tokens, which then run no expert).
func moeLayerCases(quick bool) []layerCase {
	type design struct {
		label string
		d     int
		dense int
		opt   moe.Options
	}
	designs := []design{
		{"tiny-moe-fine", 64, 128, moe.Options{Experts: 16, TopK: 4, Shared: 1, Copies: 1, Intermediate: 24, Norm: true, Scale: 2.5}},
		{"tiny-moe-relu2", 64, 128, moe.Options{Experts: 8, TopK: 1, Shared: 1, Copies: 1, Intermediate: 92, ReLU2: true, Scale: 1}},
		{"d512 fine-grained", 512, 1024, moe.Options{Experts: 16, TopK: 4, Shared: 1, Copies: 1, Intermediate: 192, Norm: true, Scale: 2.5}},
	}
	tokens := 768
	if quick {
		designs, tokens = designs[:1], 32
	}
	var cs []layerCase
	for _, ds := range designs {
		o := ds.opt
		o.Hidden, o.Std, o.OutStd = ds.d, 0.02, 0.02
		mats := 3.0
		if o.ReLU2 {
			mats = 2
		}
		active := float64(o.TopK+o.Shared) * mats * float64(ds.d*o.Intermediate)
		router := float64((o.Experts + o.Copies) * ds.d)
		shape := fmt.Sprintf("T=%d d=%d", tokens, ds.d)
		for _, bwd := range []bool{false, true} {
			mult, what := 2.0, "forward"
			if bwd {
				mult, what = 6, "forward+backward"
			}
			cs = append(cs, layerCase{name: "dense_ffn", shape: shape, variant: fmt.Sprintf("%s, hidden %d (%s)", what, ds.dense, ds.label),
				tokens: tokens, d: ds.d, dense: ds.dense, backward: bwd, flops: mult * float64(tokens) * 3 * float64(ds.d*ds.dense)})
			for _, skip := range []float64{0, 0.25, 0.5} {
				kept := math.Round(float64(tokens) * (1 - skip))
				cs = append(cs, layerCase{name: "moe_ffn", shape: shape, variant: fmt.Sprintf("%s, skip %.0f%% (%s)", what, 100*skip, ds.label),
					tokens: tokens, d: ds.d, opt: o, skip: skip, backward: bwd,
					flops: mult * (float64(tokens)*router + kept*active)})
			}
		}
	}
	return cs
}

// buildLayer builds the case's graph and the values of its inputs and
// parameters: for an MoE layer, the router's copy-expert row reads
// dimension 0 of x, which is large and positive on exactly the tokens that
// must skip and negative elsewhere, so the skip rate is what the case says.
func (c layerCase) buildLayer(rng *rand.Rand) (*graph.Graph, []*graph.Tensor, map[*graph.Tensor][]float64, error) {
	g := graph.New()
	x := g.Param("x", graph.F32(c.tokens, c.d))
	var y *graph.Tensor
	var router *graph.Tensor
	if c.dense > 0 {
		y = layers.FFN(g, "mlp", x, c.d, c.dense, layers.SiLU, 0.02, 0.02)
	} else {
		var l *moe.Layer
		y, l = moe.Build(g, "mlp", x, c.opt)
		router = l.Router
	}
	w := g.Input("w", graph.F32(c.tokens, c.d))
	loss := g.Apply1(graph.WeightedSum{}, y, w)
	outs := []*graph.Tensor{y}
	if c.backward {
		if err := g.Backward(loss); err != nil {
			return nil, nil, nil, err
		}
		outs = []*graph.Tensor{loss}
		for _, p := range g.Params() {
			outs = append(outs, p.Grad)
		}
	}
	vals := map[*graph.Tensor][]float64{}
	for _, t := range append(g.Params(), g.Inputs()...) {
		v := make([]float64, t.Len())
		for i := range v {
			v[i] = rng.NormFloat64() * 0.02
		}
		vals[t] = v
	}
	xv := vals[x]
	skipped := int(math.Round(float64(c.tokens) * c.skip))
	for t, p := range rng.Perm(c.tokens) {
		xv[p*c.d] = -1
		if t < skipped {
			xv[p*c.d] = 1
		}
	}
	if router != nil {
		copyRow := vals[router][c.opt.Experts*c.d : (c.opt.Experts+1)*c.d]
		clear(copyRow)
		copyRow[0] = 20 // sigmoid(±20·1) decides the copy expert's rank
	}
	return g, outs, vals, g.Err()
}

// timeLayer runs a layer case's plan repeatedly and returns the fastest
// submission in seconds (wall time) and in this process's CPU time: on a
// CPU driver the kernels run on the process's own threads, so CPU time
// counts the work done and is far less disturbed by other load on the
// machine than wall time.
func timeLayer(dev *gpu.Device, c layerCase, minTime time.Duration) (float64, float64, error) {
	g, outs, vals, err := c.buildLayer(rand.New(rand.NewSource(5)))
	if err != nil {
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

// runLayers times every layer case and returns their rows; ratios against
// the case's baseline (the dense FFN, or the MoE layer at skip 0) go in the
// note.
func runLayers(dev *gpu.Device, opt Options, peak Peak, logf func(string, ...any)) ([]Kernel, error) {
	var rows []Kernel
	base := map[string]float64{}
	for _, c := range moeLayerCases(opt.Quick) {
		if opt.Filter != "" && !strings.Contains(c.name, opt.Filter) {
			continue
		}
		logf("  %-28s %-22s %-40s", c.name, c.shape, c.variant)
		sec, cpu, err := timeLayer(dev, c, opt.MinTime)
		if err != nil {
			logf(" failed: %v\n", err)
			return nil, fmt.Errorf("%s %s %s: %w", c.name, c.shape, c.variant, err)
		}
		k := Kernel{Name: c.name, Shape: c.shape, Variant: c.variant, Ms: sec * 1e3, GFlops: c.flops / sec / 1e9}
		k.PctOfPeak = 100 * k.GFlops / peak.FMAGflops
		key := fmt.Sprintf("%s|%v|%v", c.shape, c.backward, c.opt.ReLU2)
		k.Note = fmt.Sprintf("cpu %.1f ms", cpu*1e3)
		switch {
		case c.dense > 0:
			base["dense|"+key], base["dense-cpu|"+key] = sec, cpu
		case c.skip == 0:
			base["skip0|"+key], base["skip0-cpu|"+key] = sec, cpu
			if d, ok := base["dense|"+key]; ok {
				k.Note += fmt.Sprintf("; %.2f× the dense FFN's time (cpu %.2f×)", sec/d, cpu/base["dense-cpu|"+key])
			}
		default:
			if s0, ok := base["skip0|"+key]; ok {
				k.Note += fmt.Sprintf("; time %+.0f%% against skip 0 (cpu %+.0f%%)", 100*(sec/s0-1), 100*(cpu/base["skip0-cpu|"+key]-1))
			}
		}
		logf(" %8.3f ms %8.2f GFLOP/s %5.1f%% %s\n", k.Ms, k.GFlops, k.PctOfPeak, k.Note)
		rows = append(rows, k)
	}
	return rows, nil
}

// sparseCases times the ReLU² experts' down projection: the dense grouped
// matmul against moe.SparseDown at activation sparsities 0, 60, 75 and
// 90 % (exact zeros, as ReLU² gives; 60–75 % is what the shipped ReLU²
// config's layers reach). GFLOP/s count the dense product's
// FLOPs, so the two read as effective speeds.
func sparseCases(quick bool) []benchCase {
	type shape struct{ tokens, experts, hidden, inner int }
	shapes := []shape{{768, 8, 64, 92}, {512, 8, 512, 512}}
	if quick {
		shapes = []shape{{24, 4, 16, 8}}
	}
	var cs []benchCase
	for _, s := range shapes {
		seg, R, routed := moeRouting(s.tokens, s.experts, 1)
		label := fmt.Sprintf("E=%d top1 T=%d %dx%d", s.experts, s.tokens, s.hidden, s.inner)
		flops := 2 * float64(routed) * float64(s.hidden) * float64(s.inner)
		in := []graph.Spec{graph.F32(R, s.inner), graph.F32(s.experts, s.hidden, s.inner), seg.Spec}
		// 0.6 and 0.75: the exact-zero shares of tiny-moe-relu2's two
		// layers after 2000 steps on sort (metrics.jsonl act_zero).
		for _, sp := range []float64{-1, 0, 0.6, 0.75, 0.9} {
			var op graph.Op = moe.SparseDown{Experts: s.experts}
			variant := fmt.Sprintf("sparse, %.0f%% zeros", 100*sp)
			if sp < 0 {
				op, variant, sp = moe.GroupedMatMul{Experts: s.experts, TransW: true}, "dense grouped matmul, 75% zeros", 0.75
			}
			sparsity := sp
			c := benchCase{name: "moe_relu2_down", shape: label, variant: variant, op: op, in: in, flops: flops, reps: 1}
			if flops < 1e8 {
				c.reps = 8
			}
			c.hosts = func(rng *rand.Rand) []*graph.Host {
				h := graph.NewHost(in[0])
				for i := range h.Data {
					if rng.Float64() >= sparsity {
						h.Data[i] = float64(float32(rng.Float64()))
					}
				}
				return []*graph.Host{h, random(rng, in[1]), seg}
			}
			cs = append(cs, c)
		}
	}
	return cs
}
