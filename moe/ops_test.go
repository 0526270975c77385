package moe_test

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
	"github.com/moegpu/moegpu/moe"
)

// f32Tol covers f32 rounding of short sums and of exp in the scoring
// functions (a few ulp of values of order 1).
var f32Tol = optest.Tol{Atol: 2e-6, Rtol: 2e-5}

// exact is for index tensors and copies.
var exact = optest.Tol{}

// choices draws n rows of k distinct expert ids in [0, et), as a router's
// top-k gives them.
func choices(rng *rand.Rand, n, k, et int) *graph.Host {
	h := graph.NewHost(graph.U32(n, k))
	for t := 0; t < n; t++ {
		for j, e := range rng.Perm(et)[:k] {
			h.Data[t*k+j] = float64(e)
		}
	}
	return h
}

func TestRouteMatchesReference(t *testing.T) {
	dev := gputest.Device(t)
	for _, n := range []int{1, 3, 17, 129} {
		for _, c := range []struct{ et, k int }{{4, 1}, {9, 2}, {17, 4}, {6, 6}} {
			for _, softmax := range []bool{false, true} {
				for _, norm := range []bool{false, true} {
					op := moe.Route{K: c.k, Softmax: softmax, Norm: norm, Scale: 2.5}
					t.Run(fmt.Sprintf("n%d/et%d/k%d/softmax=%v/norm=%v", n, c.et, c.k, softmax, norm), func(t *testing.T) {
						rng := rand.New(rand.NewSource(int64(n*100 + c.et)))
						logits := optest.Random(rng, graph.F32(n, c.et), -3, 3)
						bias := optest.Random(rng, graph.F32(c.et), -0.5, 0.5)
						optest.CheckOp(t, dev, op, f32Tol, logits, bias)
					})
				}
			}
		}
	}
}

func TestRouteSelectsByBiasButWeighsByScore(t *testing.T) {
	// Expert 2 has the lowest score, but a bias that lifts it to the top:
	// it is chosen, and its gate is its unbiased score.
	logits, _ := graph.HostFrom(graph.F32(1, 3), []float64{1, 0.5, -1})
	bias, _ := graph.HostFrom(graph.F32(3), []float64{0, 0, 1})
	out, err := graph.RunReference(moe.Route{K: 1, Scale: 1}, logits, bias)
	require.NoError(t, err)
	require.Equal(t, 2.0, out[2].Data[0])
	require.InDelta(t, 1/(1+math.Exp(1)), out[1].Data[0], 1e-12)
	got := optest.CheckOp(t, gputest.Device(t), moe.Route{K: 1, Scale: 1}, f32Tol, logits, bias)
	require.Equal(t, 2.0, got[2].Data[0])
}

func TestRouteTiesGoToTheLowerIndex(t *testing.T) {
	logits, _ := graph.HostFrom(graph.F32(2, 4), []float64{0, 0, 0, 0, 1, 2, 2, 1})
	bias := graph.NewHost(graph.F32(4))
	got := optest.CheckOp(t, gputest.Device(t), moe.Route{K: 2, Norm: true, Scale: 1}, f32Tol, logits, bias)
	require.Equal(t, []float64{0, 1, 1, 2}, got[2].Data)
}

func TestRouteBackwardMatchesFiniteDifferences(t *testing.T) {
	for _, softmax := range []bool{false, true} {
		for _, norm := range []bool{false, true} {
			for _, withScores := range []bool{false, true} {
				op := moe.Route{K: 3, Softmax: softmax, Norm: norm, Scale: 1.7}
				t.Run(fmt.Sprintf("softmax=%v/norm=%v/scores=%v", softmax, norm, withScores), func(t *testing.T) {
					rng := rand.New(rand.NewSource(3))
					n, et := 5, 7
					logits := optest.Random(rng, graph.F32(n, et), -2, 2)
					bias := optest.Random(rng, graph.F32(et), -0.3, 0.3)
					wg := optest.Random(rng, graph.F32(n, 3), -1, 1)
					ws := optest.Random(rng, graph.F32(n, et), -1, 1)
					loss := func(in []*graph.Host) float64 {
						out := optest.MustRef(t, op, in[0], bias)
						l := optest.Dot(out[1].Data, wg.Data)
						if withScores {
							l += optest.Dot(out[0].Data, ws.Data)
						}
						return l
					}
					grads := func(in []*graph.Host) []*graph.Host {
						out := optest.MustRef(t, op, in[0], bias)
						args := []*graph.Host{out[0], out[2], wg}
						if withScores {
							args = append(args, ws)
						}
						return optest.MustRef(t, moe.RouteBackward{Route: op}, args...)
					}
					optest.CheckGrad(t, op.Name(), []*graph.Host{logits}, []int{0}, loss, grads, optest.GradTol)
				})
			}
		}
	}
}

func TestRouteBackwardMatchesReference(t *testing.T) {
	dev := gputest.Device(t)
	for _, softmax := range []bool{false, true} {
		for _, withScores := range []bool{false, true} {
			op := moe.Route{K: 4, Softmax: softmax, Norm: true, Scale: 2.5}
			rng := rand.New(rand.NewSource(5))
			n, et := 129, 17
			out := optest.MustRef(t, op, optest.Random(rng, graph.F32(n, et), -3, 3), graph.NewHost(graph.F32(et)))
			for i := range out[0].Data {
				out[0].Data[i] = float64(float32(out[0].Data[i]))
			}
			args := []*graph.Host{out[0], out[2], optest.Random(rng, graph.F32(n, 4), -1, 1)}
			if withScores {
				args = append(args, optest.Random(rng, graph.F32(n, et), -1, 1))
			}
			optest.CheckOp(t, dev, moe.RouteBackward{Route: op}, f32Tol, args...)
		}
	}
}

// dispatchCases are routings every dispatch must handle.
func dispatchCases(rng *rand.Rand) map[string]struct {
	idx     *graph.Host
	experts int
} {
	type c = struct {
		idx     *graph.Host
		experts int
	}
	all := func(n, k int, f func(t, j int) int) *graph.Host {
		h := graph.NewHost(graph.U32(n, k))
		for t := 0; t < n; t++ {
			for j := 0; j < k; j++ {
				h.Data[t*k+j] = float64(f(t, j))
			}
		}
		return h
	}
	return map[string]c{
		"random":                {choices(rng, 129, 4, 16), 16},
		"random with copies":    {choices(rng, 300, 2, 9), 8},
		"one token":             {choices(rng, 1, 3, 5), 5},
		"all to one expert":     {all(70, 1, func(int, int) int { return 3 }), 8},
		"k = n":                 {all(33, 6, func(_, j int) int { return j }), 6},
		"empty experts":         {all(40, 2, func(t, j int) int { return 2*j + 5*(t%2) }), 12},
		"every token skipped":   {all(20, 2, func(t, j int) int { return 4 + j }), 4},
		"no token skipped":      {choices(rng, 65, 2, 4), 4},
		"long (several chunks)": {choices(rng, 1000, 2, 10), 10},
	}
}

func TestDispatchMatchesReference(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(7))
	for name, c := range dispatchCases(rng) {
		for _, shared := range []bool{false, true} {
			for _, capacity := range []int{0, 5} {
				for _, v := range []int{0, 1, 4} {
					t.Run(fmt.Sprintf("%s/shared=%v/capacity=%d/v%d", name, shared, capacity, v), func(t *testing.T) {
						op := moe.Dispatch{Experts: c.experts, Shared: shared, Capacity: capacity, Variant: v}
						out := optest.CheckOp(t, dev, op, exact, c.idx)
						checkLayout(t, op, c.idx, out)
					})
				}
			}
		}
	}
}

// checkLayout checks the dispatch invariants directly (not only against
// the reference): aligned ascending segments, each slot's row holding it.
func checkLayout(t *testing.T, op moe.Dispatch, idx *graph.Host, out []*graph.Host) {
	t.Helper()
	seg, raw, rowSlot, slotRow := out[0].Data, out[1].Data, out[2].Data, out[3].Data
	end := 0
	for e := 0; e < len(raw); e++ {
		start, rows := int(seg[2*e]), int(seg[2*e+1])
		require.Zero(t, start%moe.RowAlign, "segment %d start %d", e, start)
		require.GreaterOrEqual(t, start, end)
		require.LessOrEqual(t, float64(rows), raw[e])
		if op.Capacity > 0 {
			require.LessOrEqual(t, rows, op.Capacity)
		}
		end = start + rows
		for r := start; r < end; r++ {
			require.NotEqual(t, float64(0xffffffff), rowSlot[r])
			require.Equal(t, float64(r), slotRow[int(rowSlot[r])])
		}
	}
	require.LessOrEqual(t, end, len(rowSlot))
}

func TestGatherAndItsBackward(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(8))
	for _, d := range append(optest.Awkward, 64) { // 64: the vec4 kernels
		for _, shared := range []bool{false, true} {
			idx := choices(rng, 37, 3, 9)
			disp := optest.MustRef(t, moe.Dispatch{Experts: 7, Shared: shared}, idx)
			ks := 3
			if shared {
				ks = 1
			}
			x := optest.Random(rng, graph.F32(37, d), -1, 1)
			optest.CheckOp(t, dev, moe.Gather{SlotsPerToken: ks}, exact, x, disp[2])
			rows := disp[2].Shape[0]
			w := optest.Random(rng, graph.F32(rows, d), -1, 1)
			back := moe.GatherBackward{SlotsPerToken: ks, Tokens: 37}
			optest.CheckOp(t, dev, back, f32Tol, w, disp[3])
			loss := func(in []*graph.Host) float64 {
				return optest.Dot(optest.MustRef(t, moe.Gather{SlotsPerToken: ks}, in[0], disp[2])[0].Data, w.Data)
			}
			grads := func(in []*graph.Host) []*graph.Host { return optest.MustRef(t, back, w, disp[3]) }
			optest.CheckGrad(t, "gather", []*graph.Host{x}, []int{0}, loss, grads, optest.GradTol)
		}
	}
}

// combineInputs routes n tokens and builds every Combine input.
func combineInputs(t *testing.T, rng *rand.Rand, n, d, k, experts, copies int, shared bool) []*graph.Host {
	idx := choices(rng, n, k, experts+copies)
	disp := optest.MustRef(t, moe.Dispatch{Experts: experts}, idx)
	rows := disp[2].Shape[0]
	in := []*graph.Host{
		optest.Random(rng, graph.F32(rows, d), -1, 1), // yp
		optest.Random(rng, graph.F32(n, k), 0, 1),     // gates
		idx, disp[3], disp[2],
		optest.Random(rng, graph.F32(n, d), -1, 1), // x
	}
	if shared {
		sd := optest.MustRef(t, moe.Dispatch{Experts: experts, Shared: true}, idx)
		in = append(in, optest.Random(rng, graph.F32(sd[2].Shape[0], d), -1, 1), sd[3], sd[2])
	}
	return in
}

func TestCombineMatchesReferenceAndFiniteDifferences(t *testing.T) {
	dev := gputest.Device(t)
	for _, d := range append(optest.Awkward, 64) { // 64: the vec4 kernels
		for _, shared := range []bool{false, true} {
			for _, copies := range []int{0, 2} {
				t.Run(fmt.Sprintf("d%d/shared=%v/copies=%d", d, shared, copies), func(t *testing.T) {
					rng := rand.New(rand.NewSource(int64(d)))
					n, k, E := 23, 3, 6
					in := combineInputs(t, rng, n, d, k, E, copies, shared)
					op := moe.Combine{Experts: E, Shared: shared}
					optest.CheckOp(t, dev, op, f32Tol, in...)

					w := optest.Random(rng, graph.F32(n, d), -1, 1)
					wrt := []int{0, 1, 5}
					if shared {
						wrt = append(wrt, 6)
					}
					loss := func(in []*graph.Host) float64 { return optest.Dot(optest.MustRef(t, op, in...)[0].Data, w.Data) }
					grads := func(in []*graph.Host) []*graph.Host {
						dyp := optest.MustRef(t, moe.CombineGradRows{SlotsPerToken: k, Weighted: true}, w, in[1], in[4])[0]
						gg := optest.MustRef(t, moe.CombineGradGates{Experts: E}, w, in[0], in[1], in[2], in[3], in[5])
						out := []*graph.Host{dyp, gg[0], gg[1]}
						if shared {
							out = append(out, optest.MustRef(t, moe.CombineGradRows{SlotsPerToken: 1}, w, w, in[8])[0])
						}
						return out
					}
					optest.CheckGrad(t, "combine", in, wrt, loss, grads, optest.GradTol)
					optest.CheckOp(t, dev, moe.CombineGradRows{SlotsPerToken: k, Weighted: true}, f32Tol, w, in[1], in[4])
					optest.CheckOp(t, dev, moe.CombineGradGates{Experts: E}, optest.Tol{Atol: 1e-5, Rtol: 1e-5}, w, in[0], in[1], in[2], in[3], in[5])
				})
			}
		}
	}
}

func TestBalanceLossMatchesReferenceAndFiniteDifferences(t *testing.T) {
	dev := gputest.Device(t)
	for _, c := range []struct{ n, et, e, k int }{{1, 4, 4, 2}, {17, 9, 8, 2}, {129, 18, 16, 4}} {
		t.Run(fmt.Sprintf("n%d/et%d", c.n, c.et), func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(c.n)))
			scores := optest.Random(rng, graph.F32(c.n, c.et), 0.05, 1)
			idx := choices(rng, c.n, c.k, c.et)
			op := moe.BalanceLoss{Experts: c.e, Alpha: 0.01}
			optest.CheckOp(t, dev, op, f32Tol, scores, idx)
			f := optest.MustRef(t, op, scores, idx)[1]
			dl, _ := graph.HostFrom(graph.F32(1), []float64{1.5})
			back := moe.BalanceLossBackward{BalanceLoss: op}
			optest.CheckOp(t, dev, back, optest.Tol{Atol: 1e-9, Rtol: 1e-5}, scores, f, dl)
			loss := func(in []*graph.Host) float64 { return 1.5 * optest.MustRef(t, op, in[0], idx)[0].Data[0] }
			grads := func(in []*graph.Host) []*graph.Host { return optest.MustRef(t, back, in[0], f, dl) }
			optest.CheckGrad(t, "balance", []*graph.Host{scores}, []int{0}, loss, grads, optest.GradTol)
		})
	}
}

func TestBalanceLossIsAlphaUnderUniformRouting(t *testing.T) {
	// Every expert equally loaded and equally scored: L = α (Switch §2.2).
	n, E := 8, 4
	scores := graph.NewHost(graph.F32(n, E))
	for i := range scores.Data {
		scores.Data[i] = 0.5
	}
	idx := graph.NewHost(graph.U32(n, 2))
	for t := 0; t < n; t++ {
		idx.Data[2*t], idx.Data[2*t+1] = float64(t%E), float64((t+1)%E)
	}
	got := optest.CheckOp(t, gputest.Device(t), moe.BalanceLoss{Experts: E, Alpha: 0.01}, f32Tol, scores, idx)
	require.InDelta(t, 0.01, got[0].Data[0], 1e-8)
}

func TestStatsMatchReference(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(9))
	for name, c := range dispatchCases(rng) {
		t.Run(name, func(t *testing.T) {
			n, k := c.idx.Shape[0], c.idx.Shape[1]
			et := c.experts + 2
			scores := optest.Random(rng, graph.F32(n, et), 0, 1)
			if name == "random" {
				scores.Data[5] = math.NaN()
				scores.Data[9] = math.Inf(1)
			}
			for _, capacity := range []int{0, 3} {
				disp := optest.MustRef(t, moe.Dispatch{Experts: c.experts, Capacity: capacity}, c.idx)
				got := optest.CheckOp(t, dev, moe.Stats{Experts: c.experts}, optest.Tol{Atol: 1e-5, Rtol: 1e-5}, scores, c.idx, disp[1], disp[0])
				if name == "random" {
					require.Equal(t, 2.0, got[0].Data[moe.StatNonFinite])
				}
				_ = k
			}
		})
	}
}

func TestBiasUpdateMatchesReferenceOverSteps(t *testing.T) {
	dev := gputest.Device(t)
	for _, mode := range []int{moe.CtrlSign, moe.CtrlPID} {
		op := moe.BiasUpdate{Experts: 6, Mode: mode, Gamma: 0.01, Kp: 0.05, Ki: 0.01, Kd: 0.02,
			SkipMode: mode, SkipTarget: 0.3, SkipGamma: 0.02, SkipKp: 0.3, SkipKi: 0.05, SkipKd: 0.01, IMax: 5}
		rng := rand.New(rand.NewSource(int64(mode)))
		bias := optest.Random(rng, graph.F32(8), -0.1, 0.1)
		ctrl := graph.NewHost(graph.F32(16))
		for step := 0; step < 4; step++ {
			st := optest.Random(rng, graph.F32(moe.StatLoad+6), 0, 0.3)
			st.Data[moe.StatNonFinite] = 0
			want := []*graph.Host{{Spec: bias.Spec, Data: append([]float64(nil), bias.Data...)}, {Spec: ctrl.Spec, Data: append([]float64(nil), ctrl.Data...)}}
			_, err := graph.RunReference(op, want[0], want[1], st)
			require.NoError(t, err)
			// The GPU op has no outputs: run it in a one-node graph and read the state back.
			g := graph.New()
			b, c, s := g.State("bias", bias.Spec), g.State("ctrl", ctrl.Spec), g.State("stats", st.Spec)
			g.Apply(op, b, c, s)
			plan, err := g.Plan(nil, 256)
			require.NoError(t, err)
			ex, err := graph.NewGPU(dev, plan, nil)
			require.NoError(t, err)
			require.NoError(t, ex.Set(b, bias.Data))
			require.NoError(t, ex.Set(c, ctrl.Data))
			require.NoError(t, ex.Set(s, st.Data))
			require.NoError(t, ex.Run())
			got, err := ex.Get(b, c)
			require.NoError(t, err)
			ex.Close()
			optest.Close(t, "bias", got[0], want[0].Data, f32Tol)
			optest.Close(t, "ctrl", got[1], want[1].Data, f32Tol)
			bias.Data, ctrl.Data = want[0].Data, want[1].Data
			for i := range bias.Data {
				bias.Data[i] = float64(float32(bias.Data[i]))
				ctrl.Data[i] = float64(float32(ctrl.Data[i]))
			}
			for i := range ctrl.Data {
				ctrl.Data[i] = float64(float32(ctrl.Data[i]))
			}
		}
	}
}

func TestReshapeCopiesAndItsGradientReshapesBack(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	x := optest.Random(rng, graph.F32(6, 5), -1, 1)
	got := optest.CheckOp(t, gputest.Device(t), moe.Reshape{Shape: []int{1, 6, 5}}, exact, x)
	require.Equal(t, []int{1, 6, 5}, got[0].Shape)
	_, err := graph.RunReference(moe.Reshape{Shape: []int{7}}, x)
	require.ErrorContains(t, err, "element count")
}
