package moe_test

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/moe"
)

// controlLoop routes fresh random logits every step through the router,
// the dispatch, the statistics and the bias controller, on the GPU, as a
// training step does (the controller updates the bias in place inside the
// same submission). skew is added to expert 0's logits. It returns every
// step's statistics.
func controlLoop(t *testing.T, steps, n, experts, copies, k int, skew float64, upd moe.BiasUpdate) [][]float64 {
	t.Helper()
	dev := gputest.Device(t)
	et := experts + copies
	g := graph.New()
	logits := g.Input("logits", graph.F32(n, et))
	bias := g.State("bias", graph.F32(et))
	ctrl := g.State("ctrl", graph.F32(2*et))
	r := g.Apply(moe.Route{K: k, Norm: k > 1, Scale: 1}, logits, bias)
	disp := g.Apply(moe.Dispatch{Experts: experts}, r[2])
	stats := g.Apply1(moe.Stats{Experts: experts}, r[0], r[2], disp[1], disp[0])
	g.Apply(upd, bias, ctrl, stats)
	require.NoError(t, g.Err())
	plan, err := g.Plan([]*graph.Tensor{stats}, 256)
	require.NoError(t, err)
	ex, err := graph.NewGPU(dev, plan, nil)
	require.NoError(t, err)
	defer ex.Close()
	rng := rand.New(rand.NewSource(11))
	v := make([]float64, n*et)
	var out [][]float64
	for s := 0; s < steps; s++ {
		for i := range v {
			v[i] = rng.NormFloat64()
			if i%et == 0 {
				v[i] += skew
			}
		}
		require.NoError(t, ex.Set(logits, v))
		require.NoError(t, ex.Run())
		st, err := ex.Get(stats)
		require.NoError(t, err)
		out = append(out, st[0])
	}
	return out
}

// maxVioOver is MaxVio of the load summed over steps (the global MaxVio of
// arXiv 2408.15664, measured over many batches).
func maxVioOver(stats [][]float64) float64 {
	e := len(stats[0]) - moe.StatLoad
	load := make([]float64, e)
	for _, st := range stats {
		for i := range load {
			load[i] += st[moe.StatLoad+i]
		}
	}
	mx, sum := 0.0, 0.0
	for _, l := range load {
		mx, sum = max(mx, l), sum+l
	}
	return (mx - sum/float64(e)) / (sum / float64(e))
}

// A router initialised to send most tokens to expert 0 is balanced by
// either bias controller: MaxVio over the last 50 steps falls below 0.1.
func TestBiasControllersBalanceASkewedRouter(t *testing.T) {
	for _, upd := range []moe.BiasUpdate{
		{Experts: 8, Mode: moe.CtrlSign, Gamma: 0.01, IMax: 1e4},
		{Experts: 8, Mode: moe.CtrlPID, Kp: 0.02, Ki: 0.01, IMax: 1e4},
	} {
		t.Run(fmt.Sprintf("mode%d", upd.Mode), func(t *testing.T) {
			stats := controlLoop(t, 250, 2048, 8, 0, 2, 2.5, upd)
			before := maxVioOver(stats[:1])
			after := maxVioOver(stats[200:])
			t.Logf("MaxVio: first step %.3f, last 50 steps %.3f", before, after)
			require.Greater(t, before, 2.0, "the skew must overload expert 0")
			require.Less(t, after, 0.1)
		})
	}
}

// The skip controller holds a 30 % skip-rate target within ±3 % absolute
// on every step after warm-up, with either rule.
func TestSkipControllerHoldsItsTarget(t *testing.T) {
	for _, upd := range []moe.BiasUpdate{
		{Experts: 8, SkipMode: moe.CtrlPID, SkipTarget: 0.3, SkipKp: 0.1, SkipKi: 0.02, IMax: 1e4},
		{Experts: 8, SkipMode: moe.CtrlSign, SkipTarget: 0.3, SkipGamma: 0.002, IMax: 1e4},
	} {
		for _, k := range []int{1, 4} {
			t.Run(fmt.Sprintf("mode%d/top%d", upd.SkipMode, k), func(t *testing.T) {
				stats := controlLoop(t, 250, 4096, 8, 1, k, 0, upd)
				lo, hi := 1.0, 0.0
				for _, st := range stats[150:] {
					lo, hi = min(lo, st[moe.StatSkipRate]), max(hi, st[moe.StatSkipRate])
				}
				t.Logf("skip rate: first step %.3f; after warm-up in [%.3f, %.3f]", stats[0][moe.StatSkipRate], lo, hi)
				require.GreaterOrEqual(t, lo, 0.27)
				require.LessOrEqual(t, hi, 0.33)
			})
		}
	}
}
