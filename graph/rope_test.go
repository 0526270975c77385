package graph_test

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
)

// ropeTol: inputs in [−1, 1]. Each output is x1·cos θ ∓ x2·sin θ, so its
// error is ≤ (|x1| + |x2|)·(δθ + ε_trig) plus a few f32 roundings (~2e-7),
// where the angle error δθ is ≤ ~2.3e-6 rad at any position below 2^24 by
// construction (exact reduction mod 2π, see shaders/rope.wgsl) and ε_trig is
// the adapter's sin/cos error on [−π, π]. 1e-5 allows ε_trig up to ~2.5e-6
// (WGSL promises only 2^−11, which desktop drivers beat by far). Observed
// max |diff| over 1024 tokens × 2 heads × 64 dims, on both lavapipe and
// llvmpipe GL, both variants: 7.5e-7 (positions < 5000), 1.0e-6 (< 1e5),
// 1.2e-6 (< 2^24). A plain f32 angle is off by 4.5e-3 rad at 1e5.
var ropeTol = optest.Tol{Atol: 1e-5, Rtol: 0}

// ropeCase is one shape: tokens, heads, head dim, rotary dim (0 = all).
type ropeCase struct{ tokens, heads, hd, rot int }

var ropeCases = []ropeCase{
	{1, 1, 2, 0}, {3, 1, 6, 0}, {17, 3, 34, 0}, {129, 2, 64, 0},
	{3, 3, 17 + 1, 10}, {17, 1, 64, 32}, {129, 3, 24, 8}, {5, 2, 12, 4},
	{1, 5, 192, 64}, {33, 4, 128, 0},
}

func ropeInputs(rng *rand.Rand, c ropeCase, maxPos int) (*graph.Host, *graph.Host) {
	x := optest.Random(rng, graph.F32(c.tokens, c.heads*c.hd), -1, 1)
	pos := optest.RandomInts(rng, graph.U32(c.tokens), maxPos)
	return x, pos
}

func ropeVariantsFor(c ropeCase) []int {
	rot := c.rot
	if rot == 0 {
		rot = c.hd
	}
	if rot%8 == 0 && c.hd%4 == 0 {
		return []int{graph.RoPEScalar, graph.RoPEVec4}
	}
	return []int{graph.RoPEScalar}
}

func TestRoPEMatchesReferenceOnAwkwardShapes(t *testing.T) {
	dev := gputest.Device(t)
	for _, c := range ropeCases {
		for _, v := range ropeVariantsFor(c) {
			for _, inv := range []bool{false, true} {
				t.Run(fmt.Sprintf("%+v/variant%d/inverse=%v", c, v, inv), func(t *testing.T) {
					rng := rand.New(rand.NewSource(1))
					x, pos := ropeInputs(rng, c, 5000)
					op := graph.RoPE{Heads: c.heads, HeadDim: c.hd, RotaryDim: c.rot, Inverse: inv, Variant: v}
					optest.CheckOp(t, dev, op, ropeTol, x, pos)
				})
			}
		}
	}
}

// Queries and keys in one dispatch: GPU against the reference on the awkward
// shapes (keys with fewer heads than queries, and with more), and the pair's
// reference is exactly two single-tensor references.
func TestRoPEQueriesAndKeysTogetherMatchReference(t *testing.T) {
	dev := gputest.Device(t)
	for _, c := range ropeCases {
		for _, kh := range []int{1, c.heads + 1} {
			for _, v := range ropeVariantsFor(c) {
				for _, inv := range []bool{false, true} {
					t.Run(fmt.Sprintf("%+v/kheads=%d/variant%d/inverse=%v", c, kh, v, inv), func(t *testing.T) {
						rng := rand.New(rand.NewSource(11))
						q, pos := ropeInputs(rng, c, 5000)
						k := optest.Random(rng, graph.F32(c.tokens, kh*c.hd), -1, 1)
						op := graph.RoPE{Heads: c.heads, KHeads: kh, HeadDim: c.hd, RotaryDim: c.rot, Inverse: inv, Variant: v}
						got := optest.CheckOp(t, dev, op, ropeTol, q, k, pos)
						require.Len(t, got, 2)
						single := op
						single.KHeads = 0
						wantQ := optest.MustRef(t, single, q, pos)[0]
						single.Heads = kh
						wantK := optest.MustRef(t, single, k, pos)[0]
						ref := optest.MustRef(t, op, q, k, pos)
						require.Equal(t, wantQ.Data, ref[0].Data)
						require.Equal(t, wantK.Data, ref[1].Data)
					})
				}
			}
		}
	}
}

// The pair's GPU outputs are bit-identical to two single-tensor dispatches:
// the same arithmetic per element, so a model's losses do not move.
func TestRoPEQueriesAndKeysTogetherEqualTwoDispatchesBitForBit(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(12))
	const tokens, heads, kh, hd = 129, 4, 2, 16
	q := optest.Random(rng, graph.F32(tokens, heads*hd), -3, 3)
	k := optest.Random(rng, graph.F32(tokens, kh*hd), -3, 3)
	pos := optest.RandomInts(rng, graph.U32(tokens), 100000)
	for _, v := range []int{graph.RoPEScalar, graph.RoPEVec4} {
		for _, inv := range []bool{false, true} {
			pair, err := graph.RunOp(dev, graph.RoPE{Heads: heads, KHeads: kh, HeadDim: hd, Inverse: inv, Variant: v}, q, k, pos)
			require.NoError(t, err)
			oq, err := graph.RunOp(dev, graph.RoPE{Heads: heads, HeadDim: hd, Inverse: inv, Variant: v}, q, pos)
			require.NoError(t, err)
			ok, err := graph.RunOp(dev, graph.RoPE{Heads: kh, HeadDim: hd, Inverse: inv, Variant: v}, k, pos)
			require.NoError(t, err)
			require.Equal(t, oq[0].Data, pair[0].Data, "q, variant %d, inverse %v", v, inv)
			require.Equal(t, ok[0].Data, pair[1].Data, "k, variant %d, inverse %v", v, inv)
		}
	}
}

// Bad pairs are refused naming the tensor.
func TestRoPEQueriesAndKeysTogetherRefusesBadShapes(t *testing.T) {
	op := graph.RoPE{Heads: 2, KHeads: 1, HeadDim: 8}
	_, err := op.Outputs([]graph.Spec{graph.F32(5, 16), graph.F32(5, 16), graph.U32(5)})
	require.ErrorContains(t, err, "k:")
	_, err = op.Outputs([]graph.Spec{graph.F32(5, 16), graph.F32(5, 8), graph.U32(4)})
	require.ErrorContains(t, err, "positions")
	_, err = op.Outputs([]graph.Spec{graph.F32(5, 16), graph.U32(5)})
	require.Error(t, err)
	_, err = graph.RoPE{Heads: 2, KHeads: -1, HeadDim: 8}.Outputs([]graph.Spec{graph.F32(5, 16), graph.U32(5)})
	require.ErrorContains(t, err, "key heads")
}

// The reference against the Hugging Face formula written out independently:
// emb = cat(freqs, freqs), y = x·cos(emb) + rotate_half(x)·sin(emb) with
// rotate_half(x) = cat(−x2, x1), on the rotary part of each head.
func TestRoPEReferenceFollowsTheRotateHalfConvention(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	const tokens, heads, hd, rot, base = 4, 2, 10, 6, 500.0
	x := optest.Random(rng, graph.F32(tokens, heads*hd), -1, 1)
	pos := optest.RandomInts(rng, graph.U32(tokens), 100)
	got := optest.MustRef(t, graph.RoPE{Heads: heads, HeadDim: hd, RotaryDim: rot, Base: base}, x, pos)[0]
	want := make([]float64, len(x.Data))
	copy(want, x.Data)
	for tk := 0; tk < tokens; tk++ {
		emb := make([]float64, rot)
		for i := 0; i < rot/2; i++ {
			f := pos.Data[tk] / math.Pow(base, float64(2*i)/rot)
			emb[i], emb[i+rot/2] = f, f
		}
		for h := 0; h < heads; h++ {
			q := x.Data[tk*heads*hd+h*hd : tk*heads*hd+h*hd+rot]
			rh := append(append([]float64{}, q[rot/2:]...), q[:rot/2]...)
			for i := 0; i < rot/2; i++ {
				rh[i] = -rh[i]
			}
			for i := 0; i < rot; i++ {
				want[tk*heads*hd+h*hd+i] = q[i]*math.Cos(emb[i]) + rh[i]*math.Sin(emb[i])
			}
		}
	}
	optest.Close(t, "rope reference vs rotate_half", got.Data, want, optest.Tol{Atol: 1e-12})
}

// What makes RoPE a relative encoding: ⟨RoPE(q, m), RoPE(k, n)⟩ depends on
// m − n only.
func TestRoPEReferenceDotProductsDependOnRelativePosition(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	op := graph.RoPE{Heads: 1, HeadDim: 16}
	q := optest.Random(rng, graph.F32(1, 16), -1, 1)
	k := optest.Random(rng, graph.F32(1, 16), -1, 1)
	at := func(x *graph.Host, p int) []float64 {
		pos := graph.NewHost(graph.U32(1))
		pos.Data[0] = float64(p)
		return optest.MustRef(t, op, x, pos)[0].Data
	}
	d1 := optest.Dot(at(q, 7), at(k, 3))
	d2 := optest.Dot(at(q, 1007), at(k, 1003))
	require.InDelta(t, d1, d2, 1e-9)
}

func TestRoPEInverseUndoesRoPEOnTheGPU(t *testing.T) {
	dev := gputest.Device(t)
	for _, c := range []ropeCase{{17, 3, 34, 0}, {129, 3, 24, 8}, {33, 4, 128, 64}} {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			rng := rand.New(rand.NewSource(4))
			x, pos := ropeInputs(rng, c, 100000)
			fwd := graph.RoPE{Heads: c.heads, HeadDim: c.hd, RotaryDim: c.rot}
			inv := fwd
			inv.Inverse = true
			y, err := graph.RunOp(dev, fwd, x, pos)
			require.NoError(t, err)
			z, err := graph.RunOp(dev, inv, y[0], pos)
			require.NoError(t, err)
			// Two rotations, each within ropeTol of exact; the inverse
			// reuses the same f32 angle, so errors largely cancel.
			optest.Close(t, "inverse(rope(x))", z[0].Data, x.Data, ropeTol)
		})
	}
}

func TestRoPEBackwardMatchesFiniteDifferences(t *testing.T) {
	for _, c := range []ropeCase{{1, 1, 2, 0}, {3, 2, 6, 0}, {2, 2, 10, 4}} {
		for _, inv := range []bool{false, true} {
			t.Run(fmt.Sprintf("%+v/inverse=%v", c, inv), func(t *testing.T) {
				rng := rand.New(rand.NewSource(5))
				x, pos := ropeInputs(rng, c, 1000)
				w := optest.Random(rng, x.Spec, -1, 1)
				op := graph.RoPE{Heads: c.heads, HeadDim: c.hd, RotaryDim: c.rot, Inverse: inv}
				loss := func(in []*graph.Host) float64 {
					return optest.Dot(optest.MustRef(t, op, in[0], in[1])[0].Data, w.Data)
				}
				grads := func(in []*graph.Host) []*graph.Host {
					back := op
					back.Inverse = !op.Inverse
					return optest.MustRef(t, back, w, in[1])
				}
				optest.CheckGrad(t, op.Name(), []*graph.Host{x, pos}, []int{0}, loss, grads, optest.GradTol)
			})
		}
	}
}

// RoPE.Backward through the graph: autodiff on the GPU executor matches the
// reference executor, and positions get no gradient.
func TestRoPEBackwardOnTheGPUMatchesTheReferenceExecutor(t *testing.T) {
	dev := gputest.Device(t)
	const tokens, heads, hd, rot = 19, 3, 24, 16
	g := graph.New()
	x := g.Param("x", graph.F32(tokens, heads*hd))
	pos := g.Input("pos", graph.U32(tokens))
	w := g.Input("w", graph.F32(tokens, heads*hd))
	y := g.Apply1(graph.RoPE{Heads: heads, HeadDim: hd, RotaryDim: rot}, x, pos)
	loss := g.Apply1(graph.WeightedSum{}, y, w)
	require.NoError(t, g.Backward(loss))
	require.NotNil(t, x.Grad)
	plan, err := g.Plan([]*graph.Tensor{loss, x.Grad}, uint64(dev.Limits.MinStorageBufferOffsetAlignment))
	require.NoError(t, err)
	ref := graph.NewReference(plan)
	ex, err := graph.NewGPU(dev, plan, nil)
	require.NoError(t, err)
	defer ex.Close()
	rng := rand.New(rand.NewSource(6))
	vals := map[*graph.Tensor]*graph.Host{
		x:   optest.Random(rng, x.Spec, -1, 1),
		pos: optest.RandomInts(rng, pos.Spec, 100000),
		w:   optest.Random(rng, w.Spec, -1, 1),
	}
	for tn, h := range vals {
		require.NoError(t, ref.Set(tn, h.Data))
		require.NoError(t, ex.Set(tn, h.Data))
	}
	require.NoError(t, ref.Run())
	require.NoError(t, ex.Run())
	want, err := ref.Get(x.Grad)
	require.NoError(t, err)
	got, err := ex.Get(x.Grad)
	require.NoError(t, err)
	optest.Close(t, "dx", got[0], want[0], ropeTol)
}

// The pair through autodiff: finite differences of a loss on both outputs,
// and the GPU executor's gradients (one inverse dispatch for dq and dk, or
// a single-tensor inverse where only one output is used) against the
// reference executor.
func TestRoPEQueriesAndKeysTogetherBackward(t *testing.T) {
	rng := rand.New(rand.NewSource(13))
	const tokens, heads, kh, hd, rot = 3, 2, 1, 10, 4
	op := graph.RoPE{Heads: heads, KHeads: kh, HeadDim: hd, RotaryDim: rot}
	q := optest.Random(rng, graph.F32(tokens, heads*hd), -1, 1)
	k := optest.Random(rng, graph.F32(tokens, kh*hd), -1, 1)
	pos := optest.RandomInts(rng, graph.U32(tokens), 1000)
	wq := optest.Random(rng, q.Spec, -1, 1)
	wk := optest.Random(rng, k.Spec, -1, 1)
	loss := func(in []*graph.Host) float64 {
		out := optest.MustRef(t, op, in[0], in[1], in[2])
		return optest.Dot(out[0].Data, wq.Data) + optest.Dot(out[1].Data, wk.Data)
	}
	grads := func(in []*graph.Host) []*graph.Host {
		back := op
		back.Inverse = true
		return optest.MustRef(t, back, wq, wk, in[2])
	}
	optest.CheckGrad(t, op.Name(), []*graph.Host{q, k, pos}, []int{0, 1}, loss, grads, optest.GradTol)

	dev := gputest.Device(t)
	for _, use := range []string{"both", "q", "k"} {
		t.Run(use, func(t *testing.T) {
			const tokens, heads, kh, hd = 19, 3, 2, 24
			g := graph.New()
			x := g.Param("q", graph.F32(tokens, heads*hd))
			y := g.Param("k", graph.F32(tokens, kh*hd))
			p := g.Input("pos", graph.U32(tokens))
			w1 := g.Input("w1", graph.F32(tokens, heads*hd))
			w2 := g.Input("w2", graph.F32(tokens, kh*hd))
			out := g.Apply(graph.RoPE{Heads: heads, KHeads: kh, HeadDim: hd}, x, y, p)
			var loss *graph.Tensor
			switch use {
			case "both":
				loss = g.Apply1(graph.Add{}, g.Apply1(graph.WeightedSum{}, out[0], w1), g.Apply1(graph.WeightedSum{}, out[1], w2))
			case "q":
				loss = g.Apply1(graph.WeightedSum{}, out[0], w1)
			default:
				loss = g.Apply1(graph.WeightedSum{}, out[1], w2)
			}
			require.NoError(t, g.Backward(loss))
			var want []*graph.Tensor
			for _, pt := range []*graph.Tensor{x, y} {
				if pt.Grad != nil {
					want = append(want, pt.Grad)
				}
			}
			require.Len(t, want, map[string]int{"both": 2, "q": 1, "k": 1}[use])
			plan, err := g.Plan(append([]*graph.Tensor{loss}, want...), uint64(dev.Limits.MinStorageBufferOffsetAlignment))
			require.NoError(t, err)
			ref := graph.NewReference(plan)
			ex, err := graph.NewGPU(dev, plan, nil)
			require.NoError(t, err)
			defer ex.Close()
			rng := rand.New(rand.NewSource(14))
			vals := map[*graph.Tensor]*graph.Host{
				x: optest.Random(rng, x.Spec, -1, 1), y: optest.Random(rng, y.Spec, -1, 1),
				p: optest.RandomInts(rng, p.Spec, 100000), w1: optest.Random(rng, w1.Spec, -1, 1), w2: optest.Random(rng, w2.Spec, -1, 1),
			}
			for tn, h := range vals {
				require.NoError(t, ref.Set(tn, h.Data))
				require.NoError(t, ex.Set(tn, h.Data))
			}
			require.NoError(t, ref.Run())
			require.NoError(t, ex.Run())
			for _, gt := range want {
				w, err := ref.Get(gt)
				require.NoError(t, err)
				gg, err := ex.Get(gt)
				require.NoError(t, err)
				optest.Close(t, gt.Name, gg[0], w[0], ropeTol)
			}
		})
	}
}

// Positions up to 1e5 (long-context decoding) and up to just below 2^24:
// the error bound does not grow with the position. A plain f32 angle would
// be off by ~6e-3 rad at 1e5 and fail ropeTol by 300×.
func TestRoPEStaysAccurateAtLargePositions(t *testing.T) {
	dev := gputest.Device(t)
	for _, maxPos := range []int{100000, 1 << 24} {
		for _, base := range []float32{10000, 640000} {
			t.Run(fmt.Sprintf("maxPos=%d/base=%g", maxPos, base), func(t *testing.T) {
				rng := rand.New(rand.NewSource(7))
				c := ropeCase{257, 2, 64, 0}
				x, pos := ropeInputs(rng, c, maxPos)
				pos.Data[0] = float64(maxPos - 1)
				for _, v := range ropeVariantsFor(c) {
					op := graph.RoPE{Heads: c.heads, HeadDim: c.hd, Base: base, Variant: v}
					optest.CheckOp(t, dev, op, ropeTol, x, pos)
				}
			})
		}
	}
}

func TestRoPERejectsBadShapesAndPositions(t *testing.T) {
	ok := graph.RoPE{Heads: 2, HeadDim: 8}
	x, pos := graph.F32(3, 16), graph.U32(3)
	_, err := ok.Outputs([]graph.Spec{x, pos})
	require.NoError(t, err)
	for name, c := range map[string]struct {
		op graph.RoPE
		in []graph.Spec
	}{
		"zero heads":        {graph.RoPE{HeadDim: 8}, []graph.Spec{x, pos}},
		"odd rotary dim":    {graph.RoPE{Heads: 2, HeadDim: 8, RotaryDim: 3}, []graph.Spec{x, pos}},
		"rotary > head dim": {graph.RoPE{Heads: 2, HeadDim: 8, RotaryDim: 10}, []graph.Spec{x, pos}},
		"negative base":     {graph.RoPE{Heads: 2, HeadDim: 8, Base: -1}, []graph.Spec{x, pos}},
		"wrong columns":     {ok, []graph.Spec{graph.F32(3, 15), pos}},
		"rank 3 x":          {ok, []graph.Spec{graph.F32(1, 3, 16), pos}},
		"u32 x":             {ok, []graph.Spec{graph.U32(3, 16), pos}},
		"f32 positions":     {ok, []graph.Spec{x, graph.F32(3)}},
		"too few positions": {ok, []graph.Spec{x, graph.U32(2)}},
		"missing positions": {ok, []graph.Spec{x}},
		"positions (3, 1)":  {ok, []graph.Spec{x, graph.U32(3, 1)}},
		"three inputs":      {ok, []graph.Spec{x, pos, pos}},
	} {
		if _, err := c.op.Outputs(c.in); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	big := graph.NewHost(pos)
	big.Data[1] = 1 << 24
	_, err = graph.RunReference(ok, graph.NewHost(x), big)
	require.Error(t, err, "reference accepted position 2^24")

	dev := gputest.Device(t)
	xh, ph := graph.NewHost(graph.F32(3, 12)), graph.NewHost(pos)
	_, err = graph.RunOp(dev, graph.RoPE{Heads: 2, HeadDim: 6, Variant: graph.RoPEVec4}, xh, ph)
	require.Error(t, err, "vec4 variant accepted head dim 6")
	_, err = graph.RunOp(dev, graph.RoPE{Heads: 2, HeadDim: 6, Variant: 9}, xh, ph)
	require.Error(t, err, "variant 9 accepted")
}

// BenchmarkRoPE4096x512 times 4096 tokens × 8 heads × 64 dims, counting
// 8 bytes per element (read x, write y).
func BenchmarkRoPE4096x512(b *testing.B) {
	rng := rand.New(rand.NewSource(8))
	x, pos := ropeInputs(rng, ropeCase{4096, 8, 64, 0}, 100000)
	for _, v := range []int{graph.RoPEScalar, graph.RoPEVec4} {
		b.Run(fmt.Sprintf("variant%d", v), func(b *testing.B) {
			op := graph.RoPE{Heads: 8, HeadDim: 64, Variant: v}
			benchRowwise(b, op, 8, x, pos)
		})
	}
}

// RoPEQKV on awkward shapes: GPU against the reference (which splits the
// columns and applies RoPE's reference), forward and backward ops, both
// variants, partial rotary dims; and the reference equals the separate
// rotations exactly.
func TestRoPEQKVMatchesReference(t *testing.T) {
	dev := gputest.Device(t)
	for _, c := range ropeCases {
		for _, kv := range [][2]int{{1, 1}, {c.heads + 1, 2}} {
			for _, v := range ropeVariantsFor(c) {
				t.Run(fmt.Sprintf("%+v/kv=%v/variant%d", c, kv, v), func(t *testing.T) {
					rng := rand.New(rand.NewSource(21))
					op := graph.RoPEQKV{Heads: c.heads, KHeads: kv[0], VHeads: kv[1], HeadDim: c.hd, RotaryDim: c.rot, Variant: v}
					w := (c.heads + kv[0] + kv[1]) * c.hd
					x := optest.Random(rng, graph.F32(c.tokens, w), -1, 1)
					pos := optest.RandomInts(rng, graph.U32(c.tokens), 5000)
					got := optest.CheckOp(t, dev, op, ropeTol, x, pos)
					require.Len(t, got, 3)
					dq := optest.Random(rng, graph.F32(c.tokens, c.heads*c.hd), -1, 1)
					dk := optest.Random(rng, graph.F32(c.tokens, kv[0]*c.hd), -1, 1)
					dv := optest.Random(rng, graph.F32(c.tokens, kv[1]*c.hd), -1, 1)
					optest.CheckOp(t, dev, graph.RoPEQKVBackward(op), ropeTol, dq, dk, dv, pos)
					// The reference is the column split plus RoPE on q and k.
					ref := optest.MustRef(t, op, x, pos)
					for r := 0; r < c.tokens; r++ {
						row := x.Data[r*w : (r+1)*w]
						vcols := kv[1] * c.hd
						require.Equal(t, row[w-vcols:], ref[2].Data[r*vcols:(r+1)*vcols])
					}
				})
			}
		}
	}
}

// The fused split-and-rotate gives bit for bit what the unfused path gives:
// RoPE on separate q and k tensors (and v untouched), forward and backward.
func TestRoPEQKVEqualsSeparateRoPEBitForBit(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(22))
	const tokens, h, kh, hd = 97, 4, 2, 16
	w := (h + 2*kh) * hd
	x := optest.Random(rng, graph.F32(tokens, w), -3, 3)
	pos := optest.RandomInts(rng, graph.U32(tokens), 100000)
	cols := func(lo, hi int) *graph.Host {
		out := graph.NewHost(graph.F32(tokens, hi-lo))
		for r := 0; r < tokens; r++ {
			copy(out.Data[r*(hi-lo):(r+1)*(hi-lo)], x.Data[r*w+lo:r*w+hi])
		}
		return out
	}
	q, k, v := cols(0, h*hd), cols(h*hd, (h+kh)*hd), cols((h+kh)*hd, w)
	for _, variant := range []int{graph.RoPEScalar, graph.RoPEVec4} {
		fused, err := graph.RunOp(dev, graph.RoPEQKV{Heads: h, KHeads: kh, VHeads: kh, HeadDim: hd, Variant: variant}, x, pos)
		require.NoError(t, err)
		sep, err := graph.RunOp(dev, graph.RoPE{Heads: h, KHeads: kh, HeadDim: hd, Variant: variant}, q, k, pos)
		require.NoError(t, err)
		require.Equal(t, sep[0].Data, fused[0].Data, "q, variant %d", variant)
		require.Equal(t, sep[1].Data, fused[1].Data, "k, variant %d", variant)
		require.Equal(t, v.Data, fused[2].Data, "v, variant %d", variant)
		back, err := graph.RunOp(dev, graph.RoPEQKVBackward{Heads: h, KHeads: kh, VHeads: kh, HeadDim: hd, Variant: variant}, q, k, v, pos)
		require.NoError(t, err)
		inv, err := graph.RunOp(dev, graph.RoPE{Heads: h, KHeads: kh, HeadDim: hd, Variant: variant, Inverse: true}, q, k, pos)
		require.NoError(t, err)
		for r := 0; r < tokens; r++ {
			row := back[0].Data[r*w : (r+1)*w]
			require.Equal(t, inv[0].Data[r*h*hd:(r+1)*h*hd], row[:h*hd])
			require.Equal(t, inv[1].Data[r*kh*hd:(r+1)*kh*hd], row[h*hd:(h+kh)*hd])
			require.Equal(t, v.Data[r*kh*hd:(r+1)*kh*hd], row[(h+kh)*hd:])
		}
	}
}

// RoPEQKV's backward rule against finite differences of the reference, and
// through autodiff on the GPU against the reference executor, including a
// graph that uses only q and v (k's gradient is then zeros).
func TestRoPEQKVBackward(t *testing.T) {
	rng := rand.New(rand.NewSource(23))
	const tokens, h, kh, vh, hd, rot = 3, 2, 1, 1, 10, 4
	op := graph.RoPEQKV{Heads: h, KHeads: kh, VHeads: vh, HeadDim: hd, RotaryDim: rot}
	w := (h + kh + vh) * hd
	x := optest.Random(rng, graph.F32(tokens, w), -1, 1)
	pos := optest.RandomInts(rng, graph.U32(tokens), 1000)
	ws := []*graph.Host{optest.Random(rng, graph.F32(tokens, h*hd), -1, 1), optest.Random(rng, graph.F32(tokens, kh*hd), -1, 1),
		optest.Random(rng, graph.F32(tokens, vh*hd), -1, 1)}
	loss := func(in []*graph.Host) float64 {
		out := optest.MustRef(t, op, in[0], in[1])
		s := 0.0
		for i := range out {
			s += optest.Dot(out[i].Data, ws[i].Data)
		}
		return s
	}
	grads := func(in []*graph.Host) []*graph.Host {
		return optest.MustRef(t, graph.RoPEQKVBackward(op), ws[0], ws[1], ws[2], in[1])
	}
	optest.CheckGrad(t, op.Name(), []*graph.Host{x, pos}, []int{0}, loss, grads, optest.GradTol)

	dev := gputest.Device(t)
	for _, use := range [][]int{{0, 1, 2}, {0, 2}} {
		t.Run(fmt.Sprint(use), func(t *testing.T) {
			const tokens, h, kh, vh, hd = 19, 3, 1, 1, 24
			g := graph.New()
			xp := g.Param("qkv", graph.F32(tokens, (h+kh+vh)*hd))
			p := g.Input("pos", graph.U32(tokens))
			out := g.Apply(graph.RoPEQKV{Heads: h, KHeads: kh, VHeads: vh, HeadDim: hd}, xp, p)
			var loss *graph.Tensor
			for _, i := range use {
				wi := g.Input(fmt.Sprintf("w%d", i), out[i].Spec)
				l := g.Apply1(graph.WeightedSum{}, out[i], wi)
				if loss == nil {
					loss = l
				} else {
					loss = g.Apply1(graph.Add{}, loss, l)
				}
			}
			require.NoError(t, g.Backward(loss))
			optest.CheckGraph(t, dev, optest.GraphCheck{Graph: g, Loss: loss, Scale: 1, Tol: ropeTol, Seed: 24,
				Fixed: map[*graph.Tensor][]float64{p: optest.RandomInts(rand.New(rand.NewSource(25)), p.Spec, 100000).Data}})
		})
	}
}

// Bad fused inputs are refused naming the problem.
func TestRoPEQKVRefusesBadShapes(t *testing.T) {
	op := graph.RoPEQKV{Heads: 2, KHeads: 1, VHeads: 1, HeadDim: 8}
	_, err := op.Outputs([]graph.Spec{graph.F32(5, 24), graph.U32(5)})
	require.ErrorContains(t, err, "want 32 columns")
	_, err = op.Outputs([]graph.Spec{graph.F32(5, 32), graph.U32(4)})
	require.ErrorContains(t, err, "positions")
	_, err = graph.RoPEQKV{Heads: 2, KHeads: 0, VHeads: 1, HeadDim: 8}.Outputs([]graph.Spec{graph.F32(5, 24), graph.U32(5)})
	require.ErrorContains(t, err, "key heads 0")
	_, err = graph.RoPEQKVBackward(op).Outputs([]graph.Spec{graph.F32(5, 16), graph.F32(5, 8), graph.F32(5, 9), graph.U32(5)})
	require.ErrorContains(t, err, "dv")
}
