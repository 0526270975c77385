package moe_test

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
	"github.com/moegpu/moegpu/moe"
)

// groupedTol bounds f32 summation error of a length-n dot product of
// values in [-1, 1], as graph's matmul tests do: each of the n additions
// rounds by at most 2^-24 of a partial sum of magnitude ≤ n, so n·2^-22
// absolute is a loose running bound; the rtol covers the final rounding.
func groupedTol(n int) optest.Tol { return optest.Tol{Atol: float64(max(n, 1)) * 2.4e-7, Rtol: 1e-5} }

// segFor lays experts' row counts out as the dispatch does: each segment
// starts at the next multiple of RowAlign after the previous one; tail
// extra rows follow the last segment. It returns seg and R.
func segFor(counts []int, tail int) (*graph.Host, int) {
	seg := graph.NewHost(graph.U32(2 * len(counts)))
	start := 0
	for e, c := range counts {
		seg.Data[2*e], seg.Data[2*e+1] = float64(start), float64(c)
		start += (c + moe.RowAlign - 1) / moe.RowAlign * moe.RowAlign
	}
	return seg, start + tail
}

// inSegment marks the rows that belong to some expert.
func inSegment(seg *graph.Host, R int) []bool {
	in := make([]bool, R)
	for e := 0; e < len(seg.Data)/2; e++ {
		for r := int(seg.Data[2*e]); r < int(seg.Data[2*e]+seg.Data[2*e+1]); r++ {
			in[r] = true
		}
	}
	return in
}

// poisonPadding fills the rows of a (R, C) tensor outside every segment
// with NaN: kernels must never let them reach a result.
func poisonPadding(h *graph.Host, seg *graph.Host) {
	R, C := h.Shape[0], h.Shape[1]
	live := inSegment(seg, R)
	for r := 0; r < R; r++ {
		if !live[r] {
			for c := 0; c < C; c++ {
				h.Data[r*C+c] = math.NaN()
			}
		}
	}
}

func weightShape(trans bool, E, K, N int) []int {
	if trans {
		return []int{E, N, K}
	}
	return []int{E, K, N}
}

// routings are the expert row counts every kernel is checked on.
var routings = []struct {
	name   string
	counts []int
	tail   int
}{
	{"spread", []int{5, 17, 0, 3}, 5},
	{"empty experts", []int{0, 9, 0, 0, 1}, 0},
	{"all in one expert", []int{0, 0, 129, 0}, 3},
	{"one row", []int{0, 1, 0}, 0},
	{"one expert", []int{17}, 0},
	{"nothing routed", []int{0, 0}, 8},
	{"many rows", []int{300, 0, 270, 9}, 4},
}

func TestGroupedMatMulMatchesReferenceWithPaddingNeverLeaking(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(1))
	sizes := [][2]int{{1, 1}, {3, 17}, {17, 129}, {129, 3}, {16, 20}, {64, 32}, {40, 8}}
	for _, trans := range []bool{true, false} {
		for _, v := range []int{0, 1, 3, 7, 9, 10} {
			for _, kn := range sizes {
				for _, rt := range routings {
					K, N := kn[0], kn[1]
					E := len(rt.counts)
					op := moe.GroupedMatMul{Experts: E, TransW: trans, Variant: v}
					t.Run(fmt.Sprintf("%s/v%d/K%dN%d/%s", op.Name(), v, K, N, rt.name), func(t *testing.T) {
						seg, R := segFor(rt.counts, rt.tail)
						x := optest.Random(rng, graph.F32(R, K), -1, 1)
						poisonPadding(x, seg)
						w := optest.Random(rng, graph.F32(weightShape(trans, E, K, N)...), -1, 1)
						y := optest.CheckOp(t, dev, op, groupedTol(K), x, w, seg)[0]
						live := inSegment(seg, R)
						for r := 0; r < R; r++ {
							for n := 0; n < N && !live[r]; n++ {
								require.Equal(t, 0.0, y.Data[r*N+n], "padding row %d", r)
							}
						}
					})
				}
			}
		}
	}
}

// Windows of x rows in uniform buffers (variant 7): several full windows,
// a tail of rows after the last one, padding inside windows.
func TestGroupedMatMulUniformWindowsCoverEveryRow(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(2))
	for _, trans := range []bool{true, false} {
		for _, kn := range [][2]int{{1024, 12}, {2048, 8}, {256, 36}, {8, 4}} {
			K, N := kn[0], kn[1]
			counts := []int{33, 0, 70, 1, 100}
			op := moe.GroupedMatMul{Experts: len(counts), TransW: trans, Variant: 7}
			t.Run(fmt.Sprintf("%s/K%dN%d", op.Name(), K, N), func(t *testing.T) {
				seg, R := segFor(counts, 11)
				x := optest.Random(rng, graph.F32(R, K), -1, 1)
				poisonPadding(x, seg)
				w := optest.Random(rng, graph.F32(weightShape(trans, len(counts), K, N)...), -1, 1)
				optest.CheckOp(t, dev, op, groupedTol(K), x, w, seg)
			})
		}
	}
}

func TestGroupedWeightGradMatchesReferenceWithPaddingNeverLeaking(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(3))
	// {16, 20}: one 16-row block, 5 vec4 columns (a partial column block);
	// {68, 76}: dW_e 68×76 or 76×68, partial row and column blocks of
	// variant 4 (and automatically variant 4 with TransW).
	sizes := [][2]int{{1, 1}, {3, 17}, {17, 129}, {129, 3}, {16, 20}, {64, 32}, {68, 76}}
	for _, trans := range []bool{true, false} {
		for _, v := range []int{0, 1, 3, 4} {
			for _, kn := range sizes {
				for _, rt := range routings {
					K, N := kn[0], kn[1]
					E := len(rt.counts)
					op := moe.GroupedWeightGrad{Experts: E, TransW: trans, Variant: v}
					t.Run(fmt.Sprintf("%s/v%d/K%dN%d/%s", op.Name(), v, K, N, rt.name), func(t *testing.T) {
						seg, R := segFor(rt.counts, rt.tail)
						dy := optest.Random(rng, graph.F32(R, N), -1, 1)
						x := optest.Random(rng, graph.F32(R, K), -1, 1)
						poisonPadding(dy, seg)
						poisonPadding(x, seg)
						maxRows := 0
						for _, c := range rt.counts {
							maxRows = max(maxRows, c)
						}
						dw := optest.CheckOp(t, dev, op, groupedTol(maxRows), dy, x, seg)[0]
						require.Equal(t, weightShape(trans, E, K, N), dw.Shape)
						per := K * N
						for e, c := range rt.counts {
							for i := 0; i < per && c == 0; i++ {
								require.Equal(t, 0.0, dw.Data[e*per+i], "empty expert %d", e)
							}
						}
					})
				}
			}
		}
	}
}

// Both backward rules against central finite differences of the reference
// forward: dx = GroupedMatMul{!TransW}(dy, w, seg), dw =
// GroupedWeightGrad{TransW}(dy, x, seg), with the loss Σ c·y.
func TestGroupedBackwardRulesMatchFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	for _, trans := range []bool{true, false} {
		for _, rt := range routings[:4] {
			t.Run(fmt.Sprintf("trans%v/%s", trans, rt.name), func(t *testing.T) {
				K, N, E := 5, 3, len(rt.counts)
				seg, R := segFor(rt.counts, rt.tail)
				x := optest.Random(rng, graph.F32(R, K), -1, 1)
				w := optest.Random(rng, graph.F32(weightShape(trans, E, K, N)...), -1, 1)
				c := optest.Random(rng, graph.F32(R, N), -1, 1)
				op := moe.GroupedMatMul{Experts: E, TransW: trans}
				loss := func(in []*graph.Host) float64 {
					return optest.Dot(optest.MustRef(t, op, in[0], in[1], seg)[0].Data, c.Data)
				}
				grads := func(in []*graph.Host) []*graph.Host {
					dx := optest.MustRef(t, moe.GroupedMatMul{Experts: E, TransW: !trans}, c, in[1], seg)[0]
					dw := optest.MustRef(t, moe.GroupedWeightGrad{Experts: E, TransW: trans}, c, in[0], seg)[0]
					return []*graph.Host{dx, dw}
				}
				optest.CheckGrad(t, op.Name(), []*graph.Host{x, w}, []int{0, 1}, loss, grads, optest.GradTol)
			})
		}
	}
}

// The op's Backward through a whole graph: GPU executor (x, y and the
// gradients in one arena, so the uniform-window variant steps aside)
// against the reference executor and finite differences.
func TestGroupedMatMulBackwardThroughGraph(t *testing.T) {
	dev := gputest.Device(t)
	for _, trans := range []bool{true, false} {
		t.Run(fmt.Sprintf("trans%v", trans), func(t *testing.T) {
			counts := []int{9, 0, 20, 3}
			segH, R := segFor(counts, 4)
			K, N, E := 16, 12, len(counts)
			g := graph.New()
			x := g.Param("x", graph.F32(R, K))
			w := g.Param("w", graph.F32(weightShape(trans, E, K, N)...))
			seg := g.Input("seg", graph.U32(2*E))
			c := g.Input("c", graph.F32(R, N))
			h := g.Apply1(graph.SiLU{}, x) // an activation input, in the arena
			y := g.Apply1(moe.GroupedMatMul{Experts: E, TransW: trans}, h, w, seg)
			loss := g.Apply1(graph.WeightedSum{}, y, c)
			require.NoError(t, g.Backward(loss))
			optest.CheckGraph(t, dev, optest.GraphCheck{Graph: g, Loss: loss, Scale: 1,
				Fixed: map[*graph.Tensor][]float64{seg: segH.Data}, Tol: optest.Tol{Atol: 1e-5, Rtol: 1e-4}, Seed: 5, FDSamples: 12})
		})
	}
}

// BindingLimit forces the weight stack (and dW) into 2–4 views of whole
// experts; a split whose expert boundaries are never at the storage offset
// alignment is refused as unsupported.
func TestGroupedWeightsSplitAcrossBindings(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(6))
	align := int(dev.Limits.MinStorageBufferOffsetAlignment)
	counts := []int{3, 8, 0, 17, 1, 9, 4}
	E := len(counts)
	seg, R := segFor(counts, 2)
	for _, c := range []struct {
		name       string
		K, N       int
		limitExprt int // binding limit in experts' bytes
	}{
		{"4 views", align / 4, 1, 2},       // one expert = align bytes: views (2, 2, 2, 1)
		{"3 views", align / 4, 1, 3},       // (3, 3, 1)
		{"2 views", 2 * align / 4, 2, 4},   // (4, 3)
		{"half-aligned", align / 16, 2, 3}, // expert = align/2 bytes: splits back off to even experts
		{"5 per view", align / 4, 1, 5},    // (5, 2)
		{"vec4 sizes", align / 16, 4, 2},   // K = align/16, N = 4
	} {
		for _, trans := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/trans%v", c.name, trans), func(t *testing.T) {
				K, N := c.K, c.N
				limit := uint64(c.limitExprt * K * N * 4)
				x := optest.Random(rng, graph.F32(R, K), -1, 1)
				w := optest.Random(rng, graph.F32(weightShape(trans, E, K, N)...), -1, 1)
				for _, v := range []int{0, 1, 3, 9, 10} {
					optest.CheckOp(t, dev, moe.GroupedMatMul{Experts: E, TransW: trans, BindingLimit: limit, Variant: v}, groupedTol(K), x, w, seg)
					if v >= 9 {
						continue // GroupedWeightGrad has no variants 9 and 10
					}
					dy := optest.Random(rng, graph.F32(R, N), -1, 1)
					optest.CheckOp(t, dev, moe.GroupedWeightGrad{Experts: E, TransW: trans, BindingLimit: limit, Variant: v}, groupedTol(17), dy, x, seg)
				}
			})
		}
	}
	// An expert of 3·5 floats (60 bytes) never ends at an aligned offset
	// inside a 7-expert stack: refused, not truncated.
	if align > 60 {
		x := optest.Random(rng, graph.F32(R, 3), -1, 1)
		w := optest.Random(rng, graph.F32(E, 5, 3), -1, 1)
		_, err := graph.RunOp(dev, moe.GroupedMatMul{Experts: E, TransW: true, BindingLimit: 200}, x, w, seg)
		require.ErrorIs(t, err, gpu.ErrUnsupported)
		require.Contains(t, err.Error(), "alignment")
	}
	// One expert larger than a binding is refused.
	x := optest.Random(rng, graph.F32(R, 8), -1, 1)
	w := optest.Random(rng, graph.F32(E, 8, 8), -1, 1)
	_, err := graph.RunOp(dev, moe.GroupedMatMul{Experts: E, TransW: true, BindingLimit: 128}, x, w, seg)
	require.ErrorIs(t, err, gpu.ErrUnsupported)
}

// A real stack over the adapter's 128 MiB binding limit: 33 experts of
// 1024×1024 f32 (132 MiB), a few rows routed, so the check runs fast. The
// forward reads the weights through two views; the weight gradient writes
// them through two views.
func TestGroupedStackLargerThanOneBinding(t *testing.T) {
	dev := gputest.Device(t)
	const E, D = 33, 1024
	require.Greater(t, uint64(E*D*D*4), dev.Limits.MaxStorageBufferBindingSize, "the stack must exceed one binding")
	rng := rand.New(rand.NewSource(7))
	counts := make([]int, E)
	counts[0], counts[15], counts[31], counts[32] = 3, 1, 2, 8
	seg, R := segFor(counts, 0)
	x := optest.Random(rng, graph.F32(R, D), -1, 1)
	w := graph.NewHost(graph.F32(E, D, D))
	for i := range w.Data {
		w.Data[i] = float64(float32(rng.Float64()*2 - 1))
	}
	optest.CheckOp(t, dev, moe.GroupedMatMul{Experts: E, TransW: true}, groupedTol(D), x, w, seg)
	dy := optest.Random(rng, graph.F32(R, D), -1, 1)
	optest.CheckOp(t, dev, moe.GroupedWeightGrad{Experts: E, TransW: true}, groupedTol(8), dy, x, seg)
}

// A segment longer than llvmpipe's loop budget (65535 iterations per
// invocation): the weight gradient sums it in passes; the forward grid
// covers every row.
func TestGroupedLongSegmentsAreSummedInPasses(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(8))
	for _, kn := range [][2]int{{4, 4}, {3, 5}} {
		K, N := kn[0], kn[1]
		seg, R := segFor([]int{65536 - 16, 9}, 0)
		require.Equal(t, 65536, R)
		dy := optest.Random(rng, graph.F32(R, N), -1, 1)
		x := optest.Random(rng, graph.F32(R, K), -1, 1)
		for _, trans := range []bool{true, false} {
			optest.CheckOp(t, dev, moe.GroupedWeightGrad{Experts: 2, TransW: trans}, groupedTol(R), dy, x, seg)
			if K%4 == 0 && N%4 == 0 {
				optest.CheckOp(t, dev, moe.GroupedWeightGrad{Experts: 2, TransW: trans, Variant: 4}, groupedTol(R), dy, x, seg)
			}
			w := optest.Random(rng, graph.F32(weightShape(trans, 2, K, N)...), -1, 1)
			optest.CheckOp(t, dev, moe.GroupedMatMul{Experts: 2, TransW: trans}, groupedTol(K), x, w, seg)
		}
	}
}

func TestGroupedOpsRejectBadInputs(t *testing.T) {
	cases := []struct {
		name string
		op   graph.Op
		in   []graph.Spec
	}{
		{"no experts", moe.GroupedMatMul{}, []graph.Spec{graph.F32(8, 4), graph.F32(0, 4, 4), graph.U32(0)}},
		{"seg length", moe.GroupedMatMul{Experts: 2}, []graph.Spec{graph.F32(8, 4), graph.F32(2, 4, 4), graph.U32(3)}},
		{"seg dtype", moe.GroupedMatMul{Experts: 2}, []graph.Spec{graph.F32(8, 4), graph.F32(2, 4, 4), graph.F32(4)}},
		{"K mismatch", moe.GroupedMatMul{Experts: 2, TransW: true}, []graph.Spec{graph.F32(8, 4), graph.F32(2, 6, 5), graph.U32(4)}},
		{"expert count", moe.GroupedMatMul{Experts: 3}, []graph.Spec{graph.F32(8, 4), graph.F32(2, 4, 4), graph.U32(6)}},
		{"rows differ", moe.GroupedWeightGrad{Experts: 2}, []graph.Spec{graph.F32(8, 4), graph.F32(9, 4), graph.U32(4)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.op.Outputs(c.in)
			require.Error(t, err)
		})
	}
	// Malformed segments are reference errors.
	x := graph.NewHost(graph.F32(16, 2))
	w := graph.NewHost(graph.F32(2, 2, 2))
	for name, s := range map[string][]float64{
		"unaligned start": {0, 3, 5, 2},
		"past the rows":   {0, 3, 8, 9},
		"overlap":         {0, 9, 8, 2},
	} {
		seg, err := graph.HostFrom(graph.U32(4), s)
		require.NoError(t, err)
		_, err = graph.RunReference(moe.GroupedMatMul{Experts: 2}, x, w, seg)
		require.Error(t, err, name)
	}
}

// benchRouting is ggml's MUL_MAT_ID shape: 512 tokens, top-4 of 16
// experts (about 128 rows each), laid out as the dispatch does.
func benchRouting(tokens, experts, k int) (*graph.Host, int) {
	rng := rand.New(rand.NewSource(42))
	counts := make([]int, experts)
	for t := 0; t < tokens; t++ {
		for _, e := range rng.Perm(experts)[:k] {
			counts[e]++
		}
	}
	return segFor(counts, 0)
}

// Grouped matmuls at ggml's MUL_MAT_ID shape next to the dense matmul of
// the same size (2048×1024×1024), in one process so the ratios hold on a
// shared machine: go test ./moe/ -run '^$' -bench Grouped -benchtime 3x.
func BenchmarkGroupedAtGGMLShape(b *testing.B) {
	dev := gputest.Device(b)
	rng := rand.New(rand.NewSource(1))
	const T, E, k, D = 512, 16, 4, 1024
	seg, R := benchRouting(T, E, k)
	x := optest.Random(rng, graph.F32(R, D), -1, 1)
	w := optest.Random(rng, graph.F32(E, D, D), -1, 1)
	flops := 2.0 * T * k * D * D
	gf := func(b *testing.B, sec float64) { b.ReportMetric(flops/sec/1e9, "GFLOP/s") }
	for _, v := range []int{3, 7, 9} {
		b.Run(fmt.Sprintf("forward_nt/v%d", v), func(b *testing.B) {
			gf(b, optest.BenchOp(b, dev, moe.GroupedMatMul{Experts: E, TransW: true, Variant: v}, x, w, seg))
		})
		if v == 9 {
			continue // TransW only
		}
		b.Run(fmt.Sprintf("dx_nn/v%d", v), func(b *testing.B) {
			gf(b, optest.BenchOp(b, dev, moe.GroupedMatMul{Experts: E, Variant: v}, x, w, seg))
		})
	}
	b.Run("dw/v3", func(b *testing.B) {
		gf(b, optest.BenchOp(b, dev, moe.GroupedWeightGrad{Experts: E, TransW: true, Variant: 3}, x, x, seg))
	})
	a := optest.Random(rng, graph.F32(T*k, D), -1, 1)
	wd := optest.Random(rng, graph.F32(D, D), -1, 1)
	for _, v := range []int{3, 8} {
		b.Run(fmt.Sprintf("dense_matmul_nt/v%d", v), func(b *testing.B) {
			gf(b, optest.BenchOp(b, dev, graph.MatMul{TransB: true, Variant: v}, a, wd))
		})
	}
	b.Run("dense_matmul_nn/v7", func(b *testing.B) {
		gf(b, optest.BenchOp(b, dev, graph.MatMul{Variant: 7}, a, wd))
	})
}

// The grouped matmuls of a small training shape (16 experts, top-4, hidden
// 64, expert size 32, 768 tokens): the up projection forward, its dx and
// its dW. go test ./moe/ -run '^$' -bench GroupedAtTraining.
func BenchmarkGroupedAtTrainingShape(b *testing.B) {
	dev := gputest.Device(b)
	rng := rand.New(rand.NewSource(1))
	const T, E, k, H, I = 768, 16, 4, 64, 32
	seg, R := benchRouting(T, E, k)
	x := optest.Random(rng, graph.F32(R, H), -1, 1)
	dy := optest.Random(rng, graph.F32(R, I), -1, 1)
	w := optest.Random(rng, graph.F32(E, I, H), -1, 1)
	flops := 2.0 * T * k * H * I
	gf := func(b *testing.B, sec float64) { b.ReportMetric(flops/sec/1e9, "GFLOP/s") }
	b.Run("forward_nt", func(b *testing.B) {
		gf(b, optest.BenchOp(b, dev, moe.GroupedMatMul{Experts: E, TransW: true}, x, w, seg))
	})
	b.Run("dx_nn", func(b *testing.B) {
		gf(b, optest.BenchOp(b, dev, moe.GroupedMatMul{Experts: E}, dy, w, seg))
	})
	b.Run("dw", func(b *testing.B) {
		gf(b, optest.BenchOp(b, dev, moe.GroupedWeightGrad{Experts: E, TransW: true}, dy, x, seg))
	})
}

// A shared expert's dense (out, in) weight is read as a stack of one: the
// rank-2 forms give bit for bit the rank-3 (1, out, in) results (forward,
// input gradient, and the rank-2 weight gradient GroupedWeightGrad.Single),
// so the model needs no reshape dispatches; and the rank-2 form is refused
// with more than one expert.
func TestGroupedOpsReadADenseWeightAsAStackOfOne(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(21))
	for _, trans := range []bool{true, false} {
		for _, kn := range [][2]int{{3, 17}, {64, 32}} {
			K, N := kn[0], kn[1]
			seg, R := segFor([]int{19}, 5)
			x := optest.Random(rng, graph.F32(R, K), -1, 1)
			dy := optest.Random(rng, graph.F32(R, N), -1, 1)
			poisonPadding(x, seg)
			poisonPadding(dy, seg)
			w3 := optest.Random(rng, graph.F32(weightShape(trans, 1, K, N)...), -1, 1)
			w2 := &graph.Host{Spec: graph.F32(w3.Shape[1:]...), Data: w3.Data}
			fwd := moe.GroupedMatMul{Experts: 1, TransW: trans}
			a := optest.CheckOp(t, dev, fwd, groupedTol(K), x, w2, seg)
			b, err := graph.RunOp(dev, fwd, x, w3, seg)
			require.NoError(t, err)
			require.Equal(t, b[0].Data, a[0].Data, "forward, trans %v", trans)
			back := moe.GroupedMatMul{Experts: 1, TransW: !trans}
			a, err = graph.RunOp(dev, back, dy, w2, seg)
			require.NoError(t, err)
			b, err = graph.RunOp(dev, back, dy, w3, seg)
			require.NoError(t, err)
			require.Equal(t, b[0].Data, a[0].Data, "input gradient, trans %v", trans)
			wg := moe.GroupedWeightGrad{Experts: 1, TransW: trans}
			single := wg
			single.Single = true
			a = optest.CheckOp(t, dev, single, groupedTol(19), dy, x, seg)
			require.Equal(t, w2.Shape, a[0].Shape)
			b, err = graph.RunOp(dev, wg, dy, x, seg)
			require.NoError(t, err)
			require.Equal(t, b[0].Data, a[0].Data, "weight gradient, trans %v", trans)
		}
	}
	seg, R := segFor([]int{3, 4}, 0)
	_, err := moe.GroupedMatMul{Experts: 2, TransW: true}.Outputs([]graph.Spec{graph.F32(R, 8), graph.F32(4, 8), seg.Spec})
	require.Error(t, err)
	_, err = moe.GroupedWeightGrad{Experts: 2, TransW: true, Single: true}.Outputs([]graph.Spec{graph.F32(R, 4), graph.F32(R, 8), seg.Spec})
	require.ErrorContains(t, err, "one expert")
}

// Variant 10 (uniform windows of x, workgroups of two 8-row blocks in each of two windows):
// an odd number of full windows, a tail of rows after the last one (variant 3), workgroups
// whose blocks belong to different experts, segments ending inside a block, empty experts,
// and several weight views.
func TestGroupedMatMulWindowTilesCoverEveryRow(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(3))
	counts := []int{300, 0, 9, 270, 1, 0, 40}
	for _, trans := range []bool{true, false} {
		for _, kn := range [][2]int{{256, 12}, {512, 64}, {128, 128}, {16, 4}} {
			K, N := kn[0], kn[1]
			for _, limit := range []uint64{0, uint64(3 * K * N * 4)} {
				op := moe.GroupedMatMul{Experts: len(counts), TransW: trans, Variant: 10, BindingLimit: limit}
				t.Run(fmt.Sprintf("%s/K%dN%d/limit%d", op.Name(), K, N, limit), func(t *testing.T) {
					seg, R := segFor(counts, 13)
					x := optest.Random(rng, graph.F32(R, K), -1, 1)
					poisonPadding(x, seg)
					w := optest.Random(rng, graph.F32(weightShape(trans, len(counts), K, N)...), -1, 1)
					y := optest.CheckOp(t, dev, op, groupedTol(K), x, w, seg)[0]
					live := inSegment(seg, R)
					for r := 0; r < R; r++ {
						for n := 0; n < N && !live[r]; n++ {
							require.Equal(t, 0.0, y.Data[r*N+n], "padding row %d", r)
						}
					}
				})
			}
		}
	}
}

// The grouped matmuls of ocr-small's batched prefill (256 line pieces of 41 tokens, top-2 of
// 8 experts of 128, hidden 128), variant by variant, next to the dense matmul of the same
// rows: go test ./moe/ -run '^$' -bench GroupedAtOCRPrefill -benchtime 5x.
func BenchmarkGroupedAtOCRPrefill(b *testing.B) { benchGroupedOCR(b, 256*41) }

// The same at an ocr-small training step's shape (16 lines of 74 tokens) and between it and
// the prefill's, where the automatic choice moves from variant 3 to 10 (grpWindowMinRows):
// go test ./moe/ -run '^$' -bench GroupedAtOCRTokens -benchtime 10x.
func BenchmarkGroupedAtOCRTokens(b *testing.B) {
	for _, T := range []int{16 * 74, 2 * 16 * 74, 4 * 16 * 74} {
		b.Run(fmt.Sprintf("tokens%d", T), func(b *testing.B) { benchGroupedOCR(b, T) })
	}
}

// The same at a decoding step's shape (one token for each of 256, 64 or 16 line pieces):
// go test ./moe/ -run '^$' -bench GroupedAtOCRDecode -benchtime 20x.
func BenchmarkGroupedAtOCRDecode(b *testing.B) {
	for _, rows := range []int{256, 64, 16} {
		b.Run(fmt.Sprintf("rows%d", rows), func(b *testing.B) { benchGroupedOCR(b, rows) })
	}
}

func benchGroupedOCR(b *testing.B, T int) {
	dev := gputest.Device(b)
	rng := rand.New(rand.NewSource(1))
	const E, k, D, I = 8, 2, 128, 128
	seg, R := benchRouting(T, E, k)
	x := optest.Random(rng, graph.F32(R, D), -1, 1)
	w := optest.Random(rng, graph.F32(E, I, D), -1, 1)
	flops := 2.0 * float64(T*k*D*I)
	gf := func(b *testing.B, sec float64) { b.ReportMetric(flops/sec/1e9, "GFLOP/s") }
	for _, v := range []int{3, 9, 10} {
		b.Run(fmt.Sprintf("forward_nt/v%d", v), func(b *testing.B) {
			gf(b, optest.BenchOp(b, dev, moe.GroupedMatMul{Experts: E, TransW: true, Variant: v}, x, w, seg))
		})
	}
	a := optest.Random(rng, graph.F32(T*k, D), -1, 1)
	wd := optest.Random(rng, graph.F32(I, D), -1, 1)
	b.Run("dense_matmul_nt/auto", func(b *testing.B) {
		gf(b, optest.BenchOp(b, dev, graph.MatMul{TransB: true}, a, wd))
	})
}
