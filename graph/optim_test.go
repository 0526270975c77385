package graph_test

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
)

// AdamW tolerances, for GPU (f32 state) against the reference (float64
// state) after up to 5 steps from the same f32 start, |p|, |g| ≤ 1 (before
// clipping), lr = 1e-2:
//   - m and v are short f32 recurrences: a few ulp relative each step, plus
//     an absolute ulp(|g|) from cancellation in m when g changes sign.
//   - p moves by lr·(m̂/(√v̂+ε)) with |m̂/√v̂| ≲ 1 known to ~1e-6 relative;
//     the f32 rounding of p itself (≤ 6e-8 per step for |p| ≤ 1) dominates:
//     5 steps ≲ 3e-7 absolute.
//
// Observed maxima over TestAdamWOnTheGPUMatchesTheReferenceOverSeveralSteps
// (lavapipe and llvmpipe GL alike): p 2.1e-7 absolute, m 3.6e-8 absolute,
// v 3.7e-7 relative.
var (
	adamwPTol = optest.Tol{Atol: 1e-6, Rtol: 1e-6}
	adamwMTol = optest.Tol{Atol: 1e-7, Rtol: 1e-5}
	adamwVTol = optest.Tol{Atol: 1e-9, Rtol: 1e-5}
)

// sumsqTol: Σ of positive terms, so the error is relative. The longest f32
// rounding chain for n ≤ 2^22 is ≲ 256 (per-lane vec4 sums) + 2 (hsum) +
// 16 (partials per final lane) + 8 (tree) additions for SumSquaresChunks
// and SumSquaresStrided, and 1024 + 10 for SumSquaresWorkgroup at 2^20:
// worst-case bounds of 1.7e-5 and 6e-5 relative. Roundings of random sign
// add like a random walk, so the expected error is ~√L·2^−24 ≲ 2e-6.
// Observed over TestSumSquaresMatchesReferenceOnAwkwardAndLargeSizes:
// ≤ 1.7e-7 relative (every variant, lavapipe and llvmpipe GL).
var sumsqTol = optest.Tol{Atol: 1e-30, Rtol: 1e-5}

// optimRound32 rounds host values the way the GPU will store them.
func optimRound32(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(float32(x))
	}
	return out
}

// optimAdamWBufs holds one parameter's buffers on the device.
type optimAdamWBufs struct{ p, g, m, v, hyper *gpu.Buffer }

// TestAdamWOnTheGPUMatchesTheReferenceOverSeveralSteps runs two parameters
// (one with decay, one without) through 5 steps with clipping active,
// inactive or disabled, replaying one recording with fresh grad, hyper and
// gnorm2 written before each step, and compares param, m and v after every
// step.
func TestAdamWOnTheGPUMatchesTheReferenceOverSeveralSteps(t *testing.T) {
	dev := gputest.Device(t)
	shapes := [][][]int{{{1}, {3}}, {{17, 3}, {129}}, {{5, 4}, {2, 3, 7}}, {{1031}, {64, 33}}}
	for _, clip := range []struct {
		name     string
		maxNorm  float32
		gradSize float64
	}{{"none", 0, 1}, {"inactive", 1e6, 1}, {"active", 0.1, 1}} {
		for _, sh := range shapes {
			t.Run(fmt.Sprintf("clip=%s/%v", clip.name, sh), func(t *testing.T) {
				op := graph.AdamW{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, MaxGradNorm: clip.maxNorm}
				rng := rand.New(rand.NewSource(1))
				var ref [][4]*graph.Host // p, m, v, hyper per parameter
				var bufs []optimAdamWBufs
				gn2B, err := dev.NewBuffer("gnorm2", gpu.F32, 1)
				require.NoError(t, err)
				defer gn2B.Release()
				rec := dev.NewRecorder()
				defer rec.Release()
				for _, s := range sh {
					p := optest.Random(rng, graph.F32(s...), -1, 1)
					m, v, hy := graph.NewHost(p.Spec), graph.NewHost(p.Spec), graph.NewHost(graph.F32(4))
					ref = append(ref, [4]*graph.Host{p, m, v, hy})
					var b optimAdamWBufs
					for _, x := range []struct {
						dst **gpu.Buffer
						h   *graph.Host
					}{{&b.p, p}, {&b.g, p}, {&b.m, m}, {&b.v, v}, {&b.hyper, hy}} {
						*x.dst, err = graph.Upload(dev, "adamw", x.h)
						require.NoError(t, err)
						defer (*x.dst).Release()
					}
					bufs = append(bufs, b)
					require.NoError(t, op.Encode(dev, rec, []*gpu.Buffer{b.p, b.g, b.m, b.v, b.hyper, gn2B}, nil))
				}
				for step := 1; step <= 5; step++ {
					grads := make([]*graph.Host, len(sh))
					gn2 := 0.0
					for k, r := range ref {
						grads[k] = optest.Random(rng, r[0].Spec, -clip.gradSize, clip.gradSize)
						gn2 += optest.Dot(grads[k].Data, grads[k].Data)
						hy, err := op.Hyper(1e-2, step, k == 0)
						require.NoError(t, err)
						copy(r[3].Data, optimRound32(hy))
						require.NoError(t, bufs[k].hyper.Write(optimToF32(r[3].Data)))
						require.NoError(t, bufs[k].g.Write(optimToF32(grads[k].Data)))
					}
					gn2h := &graph.Host{Spec: graph.F32(1), Data: optimRound32([]float64{gn2})}
					require.NoError(t, gn2B.Write(optimToF32(gn2h.Data)))
					if clip.name == "active" {
						require.Greater(t, math.Sqrt(gn2), 2*float64(clip.maxNorm), "clipping should act")
					}
					require.NoError(t, rec.Submit())
					for k, r := range ref {
						out, err := graph.RunReference(op, r[0], grads[k], r[1], r[2], r[3], gn2h)
						require.NoError(t, err)
						require.Empty(t, out)
						got, err := graph.Download(dev, bufs[k].p, bufs[k].m, bufs[k].v)
						require.NoError(t, err)
						what := fmt.Sprintf("step %d param %d", step, k)
						optest.Close(t, what+" p", got[0].Data, r[0].Data, adamwPTol)
						optest.Close(t, what+" m", got[1].Data, r[1].Data, adamwMTol)
						optest.Close(t, what+" v", got[2].Data, r[2].Data, adamwVTol)
					}
				}
			})
		}
	}
}

func optimToF32(xs []float64) []float32 {
	out := make([]float32, len(xs))
	for i, x := range xs {
		out[i] = float32(x)
	}
	return out
}

// The reference against AdamW as a textbook (and torch.optim.AdamW with
// torch.nn.utils.clip_grad_norm_) writes it, over several parameters and
// steps: clip all gradients by the global norm; decay p by lr·λ·p (only
// where decay applies); update the moments; step by lr·m̂/(√v̂ + ε).
func TestAdamWReferenceMatchesTextbookAdamW(t *testing.T) {
	for _, maxNorm := range []float32{0, 0.3, 100} {
		t.Run(fmt.Sprint("maxNorm=", maxNorm), func(t *testing.T) {
			const (
				lr, b1, b2, eps, wd = 3e-3, 0.9, 0.999, 1e-8, 0.05
				steps               = 6
			)
			op := graph.AdamW{Beta1: b1, Beta2: b2, Eps: eps, WeightDecay: wd, MaxGradNorm: maxNorm}
			beta1, beta2 := float64(float32(b1)), float64(float32(b2))
			rng := rand.New(rand.NewSource(2))
			sizes := []int{7, 1, 12}
			decays := []bool{true, false, true}
			// The op's state.
			var p, m, v []*graph.Host
			// The textbook's state.
			var tp, tm, tv [][]float64
			for _, n := range sizes {
				x := optest.Random(rng, graph.F32(n), -1, 1)
				p = append(p, x)
				m = append(m, graph.NewHost(x.Spec))
				v = append(v, graph.NewHost(x.Spec))
				tp = append(tp, append([]float64(nil), x.Data...))
				tm = append(tm, make([]float64, n))
				tv = append(tv, make([]float64, n))
			}
			for step := 1; step <= steps; step++ {
				var grads [][]float64
				total := 0.0
				for _, n := range sizes {
					g := optest.Random(rng, graph.F32(n), -2, 2).Data
					grads = append(grads, g)
					for _, x := range g {
						total += x * x
					}
				}
				// Textbook.
				norm := math.Sqrt(total)
				coef := 1.0
				if maxNorm > 0 && float64(maxNorm)/(norm+1e-6) < 1 {
					coef = float64(maxNorm) / (norm + 1e-6)
				}
				for k := range sizes {
					for i := range tp[k] {
						g := grads[k][i] * coef
						if decays[k] {
							tp[k][i] *= 1 - lr*float64(float32(wd))
						}
						tm[k][i] = beta1*tm[k][i] + (1-beta1)*g
						tv[k][i] = beta2*tv[k][i] + (1-beta2)*g*g
						mhat := tm[k][i] / (1 - math.Pow(beta1, float64(step)))
						vhat := tv[k][i] / (1 - math.Pow(beta2, float64(step)))
						tp[k][i] -= lr * mhat / (math.Sqrt(vhat) + float64(float32(eps)))
					}
				}
				// The op.
				gn2 := &graph.Host{Spec: graph.F32(1), Data: []float64{total}}
				for k, n := range sizes {
					hy, err := op.Hyper(lr, step, decays[k])
					require.NoError(t, err)
					h := &graph.Host{Spec: graph.F32(4), Data: hy}
					g := &graph.Host{Spec: graph.F32(n), Data: grads[k]}
					_, err = graph.RunReference(op, p[k], g, m[k], v[k], h, gn2)
					require.NoError(t, err)
				}
				for k := range sizes {
					what := fmt.Sprintf("step %d param %d", step, k)
					tol := optest.Tol{Atol: 1e-12, Rtol: 1e-12}
					optest.Close(t, what+" p", p[k].Data, tp[k], tol)
					optest.Close(t, what+" m", m[k].Data, tm[k], tol)
					optest.Close(t, what+" v", v[k].Data, tv[k], tol)
				}
			}
		})
	}
}

// The optimizer inside a graph: gnorm2 = SumSquares(g1) + SumSquares(g2)
// feeds two AdamW nodes that have no outputs; a plan with no requested
// outputs keeps them, and the GPU executor matches the reference executor
// step after step.
func TestAdamWInAGraphUpdatesParametersOnBothExecutors(t *testing.T) {
	dev := gputest.Device(t)
	op := graph.AdamW{Beta1: 0.9, Beta2: 0.99, Eps: 1e-8, WeightDecay: 0.1, MaxGradNorm: 1}
	g := graph.New()
	w1, w2 := g.Param("w1", graph.F32(17, 3)), g.Param("w2", graph.F32(129))
	w2.NoDecay = true
	g1, g2 := g.Input("g1", w1.Spec), g.Input("g2", w2.Spec)
	m1, v1 := g.State("m1", w1.Spec), g.State("v1", w1.Spec)
	m2, v2 := g.State("m2", w2.Spec), g.State("v2", w2.Spec)
	hy1, hy2 := g.Input("hyper.decay", graph.F32(4)), g.Input("hyper.nodecay", graph.F32(4))
	n2 := g.Apply1(graph.Add{}, g.Apply1(graph.SumSquares{}, g1), g.Apply1(graph.SumSquares{}, g2))
	require.Empty(t, g.Apply(op, w1, g1, m1, v1, hy1, n2))
	require.Empty(t, g.Apply(op, w2, g2, m2, v2, hy2, n2))
	require.NoError(t, g.Err())
	plan, err := g.Plan(nil, uint64(dev.Limits.MinStorageBufferOffsetAlignment))
	require.NoError(t, err)
	require.Len(t, plan.Nodes, 5)
	ref := graph.NewReference(plan)
	ex, err := graph.NewGPU(dev, plan, nil)
	require.NoError(t, err)
	defer ex.Close()
	rng := rand.New(rand.NewSource(3))
	for _, w := range []*graph.Tensor{w1, w2} {
		h := optest.Random(rng, w.Spec, -1, 1)
		require.NoError(t, ref.Set(w, h.Data))
		require.NoError(t, ex.Set(w, h.Data))
	}
	state := []*graph.Tensor{w1, m1, v1, w2, m2, v2}
	tols := []optest.Tol{adamwPTol, adamwMTol, adamwVTol, adamwPTol, adamwMTol, adamwVTol}
	for step := 1; step <= 4; step++ {
		set := map[*graph.Tensor][]float64{
			g1: optest.Random(rng, g1.Spec, -1, 1).Data,
			g2: optest.Random(rng, g2.Spec, -1, 1).Data,
		}
		for hy, decay := range map[*graph.Tensor]bool{hy1: !w1.NoDecay, hy2: !w2.NoDecay} {
			h, err := op.Hyper(1e-2, step, decay)
			require.NoError(t, err)
			set[hy] = optimRound32(h)
		}
		for tn, d := range set {
			require.NoError(t, ref.Set(tn, d))
			require.NoError(t, ex.Set(tn, d))
		}
		require.NoError(t, ref.Run())
		require.NoError(t, ex.Run())
		want, err := ref.Get(state...)
		require.NoError(t, err)
		got, err := ex.Get(state...)
		require.NoError(t, err)
		for i, tn := range state {
			optest.Close(t, fmt.Sprintf("step %d %s", step, tn.Name), got[i], want[i], tols[i])
		}
	}
}

func TestAdamWRejectsBadInputs(t *testing.T) {
	ok := graph.AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
	p, h, n := graph.F32(3, 5), graph.F32(4), graph.F32(1)
	good := []graph.Spec{p, p, p, p, h, n}
	out, err := ok.Outputs(good)
	require.NoError(t, err)
	require.Empty(t, out)
	require.Equal(t, []int{0, 2, 3}, ok.Updates())
	with := func(i int, s graph.Spec) []graph.Spec {
		in := append([]graph.Spec(nil), good...)
		in[i] = s
		return in
	}
	for name, c := range map[string]struct {
		op graph.AdamW
		in []graph.Spec
	}{
		"five inputs":       {ok, good[:5]},
		"grad shape":        {ok, with(1, graph.F32(5, 3))},
		"m shape":           {ok, with(2, graph.F32(15))},
		"u32 v":             {ok, with(3, graph.U32(3, 5))},
		"hyper of 3":        {ok, with(4, graph.F32(3))},
		"hyper (2, 2)":      {ok, with(4, graph.F32(2, 2))},
		"gnorm2 of 2":       {ok, with(5, graph.F32(2))},
		"beta1 = 1":         {graph.AdamW{Beta1: 1, Beta2: 0.9}, good},
		"negative beta2":    {graph.AdamW{Beta1: 0.9, Beta2: -0.1}, good},
		"negative eps":      {graph.AdamW{Beta1: 0.9, Beta2: 0.9, Eps: -1}, good},
		"NaN weight decay":  {graph.AdamW{Beta1: 0.9, Beta2: 0.9, WeightDecay: float32(math.NaN())}, good},
		"negative max norm": {graph.AdamW{Beta1: 0.9, Beta2: 0.9, MaxGradNorm: -1}, good},
	} {
		if _, err := c.op.Outputs(c.in); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	_, err = ok.Hyper(1e-3, 0, true)
	require.Error(t, err, "step 0 accepted")
	if _, err := (graph.SumSquares{}).Outputs([]graph.Spec{graph.U32(4)}); err == nil {
		t.Error("sum_squares accepted u32")
	}
	if _, err := (graph.SumSquares{}).Outputs([]graph.Spec{p, p}); err == nil {
		t.Error("sum_squares accepted two inputs")
	}
	dev := gputest.Device(t)
	_, err = graph.RunOp(dev, graph.SumSquares{Variant: 9}, graph.NewHost(p))
	require.Error(t, err, "sum_squares variant 9 accepted")
}

var sumsqVariants = []int{graph.SumSquaresChunks, graph.SumSquaresStrided, graph.SumSquaresWorkgroup}

func TestSumSquaresMatchesReferenceOnAwkwardAndLargeSizes(t *testing.T) {
	dev := gputest.Device(t)
	shapes := [][]int{{0}, {1}, {3}, {4}, {5}, {17}, {129}, {3, 17, 5}, {1000}, {4097}, {65539},
		{64*4096*4 + 1}, {1<<20 + 3}}
	for _, v := range sumsqVariants {
		for _, s := range shapes {
			t.Run(fmt.Sprintf("variant%d/%v", v, s), func(t *testing.T) {
				rng := rand.New(rand.NewSource(4))
				x := optest.Random(rng, graph.F32(s...), -1, 1)
				got := optest.CheckOp(t, dev, graph.SumSquares{Variant: v}, sumsqTol, x)
				// Deterministic: the same input gives the same bits.
				again, err := graph.RunOp(dev, graph.SumSquares{Variant: v}, x)
				require.NoError(t, err)
				require.Equal(t, got[0].Data, again[0].Data)
			})
		}
	}
}

// The backward (MulScalar then Scale) through the graph: reference
// gradients against finite differences, GPU against reference.
func TestSumSquaresBackwardMatchesFiniteDifferencesAndTheGPU(t *testing.T) {
	dev := gputest.Device(t)
	g := graph.New()
	x := g.Param("x", graph.F32(17, 3))
	loss := g.Apply1(graph.SumSquares{}, x)
	require.NoError(t, g.Backward(loss))
	plan, err := g.Plan([]*graph.Tensor{loss, x.Grad}, uint64(dev.Limits.MinStorageBufferOffsetAlignment))
	require.NoError(t, err)
	rng := rand.New(rand.NewSource(5))
	xh := optest.Random(rng, x.Spec, -1, 1)
	run := func(ex graph.Executor) [][]float64 {
		require.NoError(t, ex.Set(x, xh.Data))
		require.NoError(t, ex.Run())
		out, err := ex.Get(loss, x.Grad)
		require.NoError(t, err)
		return out
	}
	want := run(graph.NewReference(plan))
	ex, err := graph.NewGPU(dev, plan, nil)
	require.NoError(t, err)
	defer ex.Close()
	got := run(ex)
	optest.Close(t, "loss", got[0], want[0], sumsqTol)
	optest.Close(t, "dx", got[1], want[1], optest.Tol{Atol: 1e-7, Rtol: 1e-6}) // 2·x·1: one rounding
	optest.CheckGrad(t, "sum_squares", []*graph.Host{xh}, []int{0},
		func(in []*graph.Host) float64 { return optest.MustRef(t, graph.SumSquares{}, in[0])[0].Data[0] },
		func(in []*graph.Host) []*graph.Host {
			return []*graph.Host{{Spec: xh.Spec, Data: want[1]}}
		}, optest.GradTol)
}

// BenchmarkAdamW4M times one step over 1<<22 parameters, counting 28 bytes
// per parameter (read p, g, m, v; write p, m, v).
func BenchmarkAdamW4M(b *testing.B) {
	rng := rand.New(rand.NewSource(6))
	const n = 1 << 22
	p := optest.Random(rng, graph.F32(n), -1, 1)
	gr := optest.Random(rng, graph.F32(n), -1, 1)
	m, v := graph.NewHost(p.Spec), graph.NewHost(p.Spec)
	hy := &graph.Host{Spec: graph.F32(4), Data: []float64{1e-3, 0.1, 0.001, 1}}
	gn := &graph.Host{Spec: graph.F32(1), Data: []float64{1e4}}
	op := graph.AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1, MaxGradNorm: 1}
	benchRowwise(b, op, 28, p, gr, m, v, hy, gn)
}

// BenchmarkSumSquares4M times Σx² over 1<<22 elements, counting 4 bytes per
// element.
func BenchmarkSumSquares4M(b *testing.B) {
	x := optest.Random(rand.New(rand.NewSource(7)), graph.F32(1<<22), -1, 1)
	for _, v := range sumsqVariants {
		b.Run(fmt.Sprintf("variant%d", v), func(b *testing.B) { benchRowwise(b, graph.SumSquares{Variant: v}, 4, x) })
	}
}
