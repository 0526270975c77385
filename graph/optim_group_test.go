package graph_test

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
)

// SumSquaresGroup and AdamWGroup over parameters of awkward sizes, run by
// the GPU executor (which packs what it can) and the reference executor
// through five steps with clipping active: packed gradients (State
// tensors, one range) and unpacked ones (Inputs, one run per tensor),
// decayed parameters together or alternating. The tolerances are AdamW's
// and SumSquares' own (see optim_test.go): the group ops do the same
// arithmetic over ranges.
func TestAdamWGroupOnTheGPUMatchesTheReferencePackedOrNot(t *testing.T) {
	dev := gputest.Device(t)
	shapes := [][]int{{1}, {3}, {17, 3}, {129}, {5, 4}, {2, 3, 7}, {1031}, {64, 33}}
	for _, c := range []struct {
		name           string
		packedGrads    bool
		alternate      bool
		separate       bool
		wantDispatches int
	}{
		// Σ grad² (two dispatches), then AdamW over both decay settings in one.
		{"packed, decayed first", true, false, false, 3},
		{"packed, decayed first, a dispatch per decay setting", true, false, true, 4},
		{"packed, decay alternating", true, true, false, 2 + len(shapes)},
		{"gradients unpacked", false, false, false, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := graph.New()
			n := len(shapes)
			var ps, gs, ms, vs []*graph.Tensor
			op := graph.AdamWGroup{AdamW: graph.AdamW{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, MaxGradNorm: 0.1},
				SeparateDecayRuns: c.separate}
			for i, s := range shapes {
				ps = append(ps, g.Param(fmt.Sprintf("p%d", i), graph.F32(s...)))
				if c.packedGrads {
					gs = append(gs, g.State(fmt.Sprintf("g%d", i), graph.F32(s...)))
				} else {
					gs = append(gs, g.Input(fmt.Sprintf("g%d", i), graph.F32(s...)))
				}
				ms = append(ms, g.State(fmt.Sprintf("m%d", i), graph.F32(s...)))
				vs = append(vs, g.State(fmt.Sprintf("v%d", i), graph.F32(s...)))
				decay := i < n/2
				if c.alternate {
					decay = i%2 == 0
				}
				op.Decay = append(op.Decay, decay)
			}
			hd, hn := g.Input("hyper.decay", graph.F32(4)), g.Input("hyper.no", graph.F32(4))
			gn2 := g.Apply1(graph.SumSquaresGroup{}, gs...)
			in := append(append(append(append([]*graph.Tensor{}, ps...), gs...), ms...), vs...)
			g.Apply(op, append(in, hd, hn, gn2)...)
			require.NoError(t, g.Err())
			plan, err := g.Plan([]*graph.Tensor{gn2}, uint64(dev.Limits.MinStorageBufferOffsetAlignment))
			require.NoError(t, err)
			gpuEx, err := graph.NewGPU(dev, plan, nil)
			require.NoError(t, err)
			defer gpuEx.Close()
			if c.wantDispatches > 0 {
				require.Equal(t, c.wantDispatches, gpuEx.Dispatches())
			}
			exs := []graph.Executor{gpuEx, graph.NewReference(plan)}
			rng := rand.New(rand.NewSource(3))
			for _, p := range ps {
				v := optimRound32(optest.Random(rng, p.Spec, -1, 1).Data)
				for _, ex := range exs {
					require.NoError(t, ex.Set(p, v))
				}
			}
			for step := 1; step <= 5; step++ {
				for _, gt := range gs {
					v := optimRound32(optest.Random(rng, gt.Spec, -1, 1).Data)
					for _, ex := range exs {
						require.NoError(t, ex.Set(gt, v))
					}
				}
				for _, h := range []struct {
					t     *graph.Tensor
					decay bool
				}{{hd, true}, {hn, false}} {
					v, err := op.Hyper(1e-2, step, h.decay)
					require.NoError(t, err)
					for _, ex := range exs {
						require.NoError(t, ex.Set(h.t, optimRound32(v)))
					}
				}
				var got [2][][]float64
				for k, ex := range exs {
					require.NoError(t, ex.Run())
					got[k], err = ex.Get(append(append(append([]*graph.Tensor{gn2}, ps...), ms...), vs...)...)
					require.NoError(t, err)
				}
				optest.Close(t, fmt.Sprintf("step %d gnorm2", step), got[0][0], got[1][0], sumsqTol)
				for i := 0; i < n; i++ {
					what := fmt.Sprintf("step %d param %d %v", step, i, shapes[i])
					optest.Close(t, what+" p", got[0][1+i], got[1][1+i], adamwPTol)
					optest.Close(t, what+" m", got[0][1+n+i], got[1][1+n+i], adamwMTol)
					optest.Close(t, what+" v", got[0][1+2*n+i], got[1][1+2*n+i], adamwVTol)
				}
			}
		})
	}
}

// One dispatch over both decay settings gives bit for bit what a dispatch
// per setting gives: parameters and moments after three steps.
func TestAdamWGroupInOneDispatchEqualsOnePerDecaySetting(t *testing.T) {
	dev := gputest.Device(t)
	shapes := [][]int{{3}, {17, 3}, {129}, {64, 33}, {5}, {1031}}
	var results [2][][]float64
	for k, separate := range []bool{false, true} {
		g := graph.New()
		var ps, gs, ms, vs []*graph.Tensor
		op := graph.AdamWGroup{AdamW: graph.AdamW{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, MaxGradNorm: 0.5},
			SeparateDecayRuns: separate}
		for i, s := range shapes {
			ps = append(ps, g.Param(fmt.Sprintf("p%d", i), graph.F32(s...)))
			gs = append(gs, g.State(fmt.Sprintf("g%d", i), graph.F32(s...)))
			ms = append(ms, g.State(fmt.Sprintf("m%d", i), graph.F32(s...)))
			vs = append(vs, g.State(fmt.Sprintf("v%d", i), graph.F32(s...)))
			op.Decay = append(op.Decay, i < 4)
		}
		hd, hn := g.Input("hyper.decay", graph.F32(4)), g.Input("hyper.no", graph.F32(4))
		gn2 := g.Apply1(graph.SumSquaresGroup{}, gs...)
		in := append(append(append(append([]*graph.Tensor{}, ps...), gs...), ms...), vs...)
		g.Apply(op, append(in, hd, hn, gn2)...)
		require.NoError(t, g.Err())
		plan, err := g.Plan([]*graph.Tensor{gn2}, uint64(dev.Limits.MinStorageBufferOffsetAlignment))
		require.NoError(t, err)
		ex, err := graph.NewGPU(dev, plan, nil)
		require.NoError(t, err)
		rng := rand.New(rand.NewSource(4))
		for _, p := range ps {
			require.NoError(t, ex.Set(p, optest.Random(rng, p.Spec, -1, 1).Data))
		}
		for step := 1; step <= 3; step++ {
			for _, gt := range gs {
				require.NoError(t, ex.Set(gt, optest.Random(rng, gt.Spec, -1, 1).Data))
			}
			for _, h := range []struct {
				t     *graph.Tensor
				decay bool
			}{{hd, true}, {hn, false}} {
				v, err := op.Hyper(1e-2, step, h.decay)
				require.NoError(t, err)
				require.NoError(t, ex.Set(h.t, v))
			}
			require.NoError(t, ex.Run())
		}
		results[k], err = ex.Get(append(append(append([]*graph.Tensor{}, ps...), ms...), vs...)...)
		require.NoError(t, err)
		ex.Close()
	}
	for i := range results[0] {
		optest.Close(t, fmt.Sprintf("tensor %d", i), results[0][i], results[1][i], optest.Tol{})
	}
}
