package graph_test

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
)

// mlp builds loss = Σ w·rowsoftmax(rmsnorm(silu(x·W1)·W2 + x))·c: every
// differentiable op family with a residual (a tensor with two consumers).
func mlp(rows, d, h int) (*graph.Graph, *graph.Tensor) {
	g := graph.New()
	x := g.Input("x", graph.F32(rows, d))
	w1 := g.Param("w1", graph.F32(d, h))
	w2 := g.Param("w2", graph.F32(h, d))
	gain := g.Param("gain", graph.F32(d))
	c := g.Input("c", graph.F32(rows, d))
	y := g.Apply1(graph.MatMul{}, x, w1)
	y = g.Apply1(graph.SiLU{}, y)
	y = g.Apply1(graph.MatMul{}, y, w2)
	y = g.Apply1(graph.Add{}, y, x)
	y = g.Apply(graph.RMSNorm{}, y, gain)[0]
	y = g.Apply1(graph.Softmax{}, y)
	loss := g.Apply1(graph.WeightedSum{}, y, c)
	return g, loss
}

// The loss and every parameter gradient of a small graph with every
// differentiable op family: GPU against the reference, and the reference
// against finite differences (optest.CheckGraph).
func TestBackwardGradientsMatchReferenceAndFiniteDifferences(t *testing.T) {
	dev := gputest.Device(t)
	for _, size := range [][3]int{{3, 4, 5}, {17, 12, 20}, {33, 64, 128}} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			g, loss := mlp(size[0], size[1], size[2])
			require.NoError(t, g.Backward(loss))
			// f32 through ~10 ops with reductions of length ≤ 128.
			optest.CheckGraph(t, dev, optest.GraphCheck{Graph: g, Loss: loss, Scale: 1,
				Tol: optest.Tol{Atol: 1e-5, Rtol: 1e-4}, Seed: 2, FDSamples: 6})
		})
	}
}

// The backward rules of all four matmul layouts and of transpose.
func TestMatMulAndTransposeBackwardRules(t *testing.T) {
	dev := gputest.Device(t)
	for _, l := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
		op := graph.MatMul{TransA: l[0], TransB: l[1]}
		t.Run(op.Name(), func(t *testing.T) {
			M, N, K := 5, 8, 12
			g := graph.New()
			a := g.Param("a", graph.F32(shapeOf(0, M, K, l[0])...))
			b := g.Param("b", graph.F32(shapeOf(0, K, N, l[1])...))
			c := g.Input("c", graph.F32(N, M))
			y := g.Apply1(graph.Transpose{}, g.Apply1(op, a, b))
			loss := g.Apply1(graph.WeightedSum{}, y, c)
			require.NoError(t, g.Backward(loss))
			optest.CheckGraph(t, dev, optest.GraphCheck{Graph: g, Loss: loss, Scale: 1, Tol: mmTol(K), Seed: 3})
		})
	}
}

// Replaying a recorded plan gives the same result bit for bit.
func TestGPUExecutorReplaysIdentically(t *testing.T) {
	dev := gputest.Device(t)
	g, loss := mlp(17, 12, 20)
	require.NoError(t, g.Backward(loss))
	outs := []*graph.Tensor{loss}
	for _, p := range g.Params() {
		outs = append(outs, p.Grad)
	}
	plan, err := g.Plan(outs, uint64(dev.Limits.MinStorageBufferOffsetAlignment))
	require.NoError(t, err)
	require.LessOrEqual(t, plan.ArenaBytes, plan.NaiveBytes)
	ex, err := graph.NewGPU(dev, plan, nil)
	require.NoError(t, err)
	defer ex.Close()
	rng := rand.New(rand.NewSource(4))
	for _, tn := range append(g.Inputs(), g.Params()...) {
		require.NoError(t, ex.Set(tn, optest.Random(rng, tn.Spec, -1, 1).Data))
	}
	require.NoError(t, ex.Run())
	first, err := ex.Get(outs...)
	require.NoError(t, err)
	require.NoError(t, ex.Run())
	again, err := ex.Get(outs...)
	require.NoError(t, err)
	require.Equal(t, first, again)
}

func TestPlannerNeverOverlapsLiveTensors(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for trial := 0; trial < 200; trial++ {
		g := graph.New()
		n := 1 + rng.Intn(6)
		pool := []*graph.Tensor{g.Input("x", graph.F32(n, 1+rng.Intn(40)))}
		for i := 0; i < 5+rng.Intn(30); i++ {
			a := pool[rng.Intn(len(pool))]
			var out *graph.Tensor
			switch rng.Intn(4) {
			case 0:
				out = g.Apply1(graph.SiLU{}, a)
			case 1:
				b := pool[rng.Intn(len(pool))]
				if b.Shape[1] != a.Shape[1] {
					b = a
				}
				out = g.Apply1(graph.Add{}, a, b)
			case 2:
				w := g.Param(fmt.Sprintf("w%d", i), graph.F32(a.Shape[1], 1+rng.Intn(40)))
				out = g.Apply1(graph.MatMul{}, a, w)
			case 3:
				out = g.Apply1(graph.Softmax{}, a)
			}
			pool = append(pool, out)
		}
		require.NoError(t, g.Err())
		var outs []*graph.Tensor
		for _, tn := range pool[1:] {
			if rng.Intn(4) == 0 {
				outs = append(outs, tn)
			}
		}
		outs = append(outs, pool[len(pool)-1])
		p, err := g.Plan(outs, 256)
		require.NoError(t, err)
		var acts []*graph.Tensor
		for tn := range p.Offset {
			acts = append(acts, tn)
		}
		for i, a := range acts {
			la := p.Live[a]
			require.LessOrEqual(t, p.Offset[a]+p.Bytes(a), p.ArenaBytes)
			require.Zero(t, p.Offset[a]%256)
			for _, b := range acts[i+1:] {
				lb := p.Live[b]
				if la[1] < lb[0] || lb[1] < la[0] {
					continue // never alive together
				}
				oa, ob := p.Offset[a], p.Offset[b]
				overlap := oa < ob+p.Bytes(b) && ob < oa+p.Bytes(a)
				require.False(t, overlap, "trial %d: %s %v and %s %v overlap", trial, a.Name, la, b.Name, lb)
			}
		}
		require.LessOrEqual(t, p.ArenaBytes, p.NaiveBytes)
	}
}

func TestPlannerReusesMemoryOfAChain(t *testing.T) {
	g := graph.New()
	x := g.Input("x", graph.F32(64, 64))
	y := x
	for i := 0; i < 10; i++ {
		y = g.Apply1(graph.SiLU{}, y)
	}
	p, err := g.Plan([]*graph.Tensor{y}, 256)
	require.NoError(t, err)
	require.Equal(t, uint64(10*64*64*4), p.NaiveBytes)
	require.Equal(t, uint64(2*64*64*4), p.ArenaBytes, "a chain needs two buffers, ping-pong")
}

func TestBuildErrorsAreReportedOnce(t *testing.T) {
	g := graph.New()
	a := g.Input("a", graph.F32(2, 3))
	b := g.Input("b", graph.F32(4, 5))
	c := g.Apply1(graph.MatMul{}, a, b)
	g.Apply1(graph.SiLU{}, c) // keeps going on the placeholder
	require.ErrorContains(t, g.Err(), "inner dimensions differ")
	_, err := g.Plan([]*graph.Tensor{c}, 256)
	require.Error(t, err)
	g2 := graph.New()
	g2.Param("w", graph.F32(1))
	g2.Param("w", graph.F32(1))
	require.ErrorContains(t, g2.Err(), "duplicate")
}

func TestBackwardRefusesANonScalarLossOrOneWithoutParameters(t *testing.T) {
	g := graph.New()
	x := g.Input("x", graph.F32(2, 2))
	y := g.Apply1(graph.SiLU{}, x)
	require.ErrorContains(t, g.Backward(y), "scalar")
	s := g.Apply1(graph.WeightedSum{}, y, x)
	require.ErrorContains(t, g.Backward(s), "does not depend on any parameter")
}

func TestParameterGradientsLiveOutsideTheArena(t *testing.T) {
	g, loss := mlp(3, 4, 5)
	require.NoError(t, g.Backward(loss))
	var outs []*graph.Tensor
	for _, p := range g.Params() {
		require.True(t, p.Grad.Persist, p.Name)
		outs = append(outs, p.Grad)
	}
	plan, err := g.Plan(outs, 256)
	require.NoError(t, err)
	for _, gr := range outs {
		_, inArena := plan.Offset[gr]
		require.False(t, inArena, gr.Name)
		require.Equal(t, gr, plan.Own[gr])
	}
	require.Greater(t, plan.OwnBytes, uint64(0))
}

func TestInPlaceUpdatesOfActivationsAreRefused(t *testing.T) {
	g := graph.New()
	x := g.Input("x", graph.F32(4))
	y := g.Apply1(graph.SiLU{}, x)
	hyper := g.Input("hyper", graph.F32(4))
	n2 := g.Input("n2", graph.F32(1))
	g.Apply(graph.AdamW{Beta1: 0.9, Beta2: 0.99, Eps: 1e-8}, y, y, y, y, hyper, n2)
	_, err := g.Plan(nil, 256)
	require.ErrorContains(t, err, "in place")
}

func TestAnAccumulatorMayNotOverwriteARequestedOutput(t *testing.T) {
	g := graph.New()
	x := g.Input("x", graph.F32(4))
	a := g.Apply1(graph.SiLU{}, x)
	b := g.Apply1(graph.AddInto{}, x, a) // b = a + x, in a's memory
	_, err := g.Plan([]*graph.Tensor{a, b}, 256)
	require.ErrorContains(t, err, "also a requested output")
	_, err = g.Plan([]*graph.Tensor{b}, 256)
	require.NoError(t, err)
}

func TestAClosedExecutorRefusesWork(t *testing.T) {
	dev := gputest.Device(t)
	g := graph.New()
	x := g.Input("x", graph.F32(4))
	y := g.Apply1(graph.SiLU{}, x)
	p, err := g.Plan([]*graph.Tensor{y}, 256)
	require.NoError(t, err)
	ex, err := graph.NewGPU(dev, p, nil)
	require.NoError(t, err)
	ex.Close()
	require.Error(t, ex.Run())
	require.Error(t, ex.Set(x, make([]float64, 4)))
	_, err = ex.Get(y)
	require.Error(t, err)
}

// Executors in one Workspace share its arena (a plan that needs more gets a larger one, which
// later executors share) and compute, run in any order, what each computes alone: a run's
// outputs are read before another executor runs, and nothing in an arena outlives its run.
func TestExecutorsInOneWorkspaceShareTheArenaAndComputeAlike(t *testing.T) {
	dev := gputest.Device(t)
	type exe struct {
		plan  *graph.Plan
		outs  []*graph.Tensor
		vals  map[*graph.Tensor][]float64
		alone *graph.GPU
		want  [][]float64
	}
	build := func(rows, d, h int, seed int64) *exe {
		g, loss := mlp(rows, d, h)
		require.NoError(t, g.Backward(loss))
		// The gain's gradient is left out: its last bits can differ between runs of one
		// executor when other executors ran in between, with or without a workspace.
		outs := []*graph.Tensor{loss}
		for _, p := range g.Params() {
			if p.Name != "gain" {
				outs = append(outs, p.Grad)
			}
		}
		plan, err := g.Plan(outs, uint64(dev.Limits.MinStorageBufferOffsetAlignment))
		require.NoError(t, err)
		rng := rand.New(rand.NewSource(seed))
		e := &exe{plan: plan, outs: outs, vals: map[*graph.Tensor][]float64{}}
		for _, tn := range append(g.Inputs(), g.Params()...) {
			e.vals[tn] = optest.Random(rng, tn.Spec, -1, 1).Data
		}
		e.alone, err = graph.NewGPU(dev, plan, nil)
		require.NoError(t, err)
		t.Cleanup(e.alone.Close)
		return e
	}
	mid, small, big := build(40, 12, 20, 5), build(9, 12, 20, 6), build(96, 12, 20, 7)
	require.Less(t, small.plan.ArenaBytes, mid.plan.ArenaBytes)
	require.Less(t, mid.plan.ArenaBytes, big.plan.ArenaBytes)
	for _, e := range []*exe{mid, small, big} {
		e.want = runOnce(t, e.alone, e.vals, e.outs)
	}

	ws := &graph.Workspace{}
	defer ws.Close()
	open := func(e *exe) *graph.GPU {
		ex, err := graph.NewGPUIn(dev, e.plan, nil, ws)
		require.NoError(t, err)
		t.Cleanup(ex.Close)
		return ex
	}
	exMid, exSmall, exBig := open(mid), open(small), open(big)
	arena := func(ex *graph.GPU, e *exe) *gpu.Buffer { return ex.Buffer(e.outs[0]) } // the loss lives in the arena
	require.True(t, arena(exSmall, small).SameMemory(arena(exMid, mid)), "a smaller plan takes the arena there is")
	require.False(t, arena(exBig, big).SameMemory(arena(exMid, mid)), "a larger plan gets a new arena")
	exLate := open(small)
	require.True(t, arena(exLate, small).SameMemory(arena(exBig, big)), "later executors share the newest arena")
	for i, step := range []struct {
		ex *graph.GPU
		e  *exe
	}{{exMid, mid}, {exSmall, small}, {exMid, mid}, {exBig, big}, {exLate, small}, {exMid, mid}, {exBig, big}} {
		require.Equal(t, step.e.want, runOnce(t, step.ex, step.e.vals, step.e.outs), "run %d", i)
	}
}

// runOnce sets vals, runs ex once and returns outs.
func runOnce(t *testing.T, ex *graph.GPU, vals map[*graph.Tensor][]float64, outs []*graph.Tensor) [][]float64 {
	t.Helper()
	for tn, v := range vals {
		require.NoError(t, ex.Set(tn, v))
	}
	require.NoError(t, ex.Run())
	got, err := ex.Get(outs...)
	require.NoError(t, err)
	return got
}
