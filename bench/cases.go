package bench

import (
	"fmt"
	"math/rand"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
)

// benchCase is one op at one shape.
type benchCase struct {
	name, shape, variant string
	op                   graph.Op
	in                   []graph.Spec
	flops, bytes         float64
	reps                 int  // op copies per submission (amortises submit cost for small ops)
	best                 bool // the configuration the runtime picks by default
	// hosts, when set, makes the inputs instead of uniform random values
	// (ops whose inputs must be consistent, e.g. expert segments).
	hosts func(rng *rand.Rand) []*graph.Host
	peer  peer // another runtime's measured speed at this shape, for the report
}

// peer is another runtime's GFLOP/s at a case's shape on this adapter.
type peer struct {
	name   string
	gflops float64
}

func mm(name string, op graph.MatMul, M, N, K int, variant string, best bool) benchCase {
	a := []int{M, K}
	if op.TransA {
		a = []int{K, M}
	}
	b := []int{K, N}
	if op.TransB {
		b = []int{N, K}
	}
	reps := 1
	if M*N*K <= 1<<21 {
		reps = 8
	}
	return benchCase{name: name, shape: fmt.Sprintf("%dx%dx%d", M, N, K), variant: variant, op: op,
		in: []graph.Spec{graph.F32(a...), graph.F32(b...)}, flops: 2 * float64(M) * float64(N) * float64(K), reps: reps, best: best}
}

// cases lists the suite. Variants and tile sizes are all kept so the report
// shows what each costs on this adapter; `best` marks the default.
func cases(quick bool) []benchCase {
	var cs []benchCase
	squares := []int{256, 512, 1024}
	if quick {
		squares = []int{64}
	}
	for _, n := range squares {
		cs = append(cs, mm("matmul_nn", graph.MatMul{}, n, n, n, "auto", true))
		if n <= 512 {
			cs = append(cs, mm("matmul_nn", graph.MatMul{Variant: 1}, n, n, n, "v1 naive", false))
			cs = append(cs, mm("matmul_nn", graph.MatMul{Variant: 4}, n, n, n, "v4 tiled16", false))
		}
		cs = append(cs, mm("matmul_nn", graph.MatMul{Variant: 2}, n, n, n, "v2 rb4x4", false))
		for _, t := range []graph.MatMulTile{{TM: 4, TNV: 1}, {TM: 4, TNV: 2}, {TM: 8, TNV: 2}} {
			t.WGX, t.WGY = 8, 8
			cs = append(cs, mm("matmul_nn", graph.MatMul{Variant: 3, Tile: t}, n, n, n, fmt.Sprintf("v3 %dx%d", t.TM, 4*t.TNV), false))
		}
		for _, t := range []graph.MatMulTile{{TM: 16, TNV: 1}, {TM: 16, TNV: 2}} {
			t.WGX, t.WGY = 64, 1
			cs = append(cs, mm("matmul_nn", graph.MatMul{Variant: 5, Tile: t}, n, n, n, fmt.Sprintf("v5 %dx%d", t.TM, 4*t.TNV), false))
		}
		for _, t := range []graph.MatMulTile{{TM: 8, TNV: 2, WGX: 8, WGY: 8}, {TM: 16, TNV: 1, WGX: 64, WGY: 1, UniformA: true}} {
			cs = append(cs, mm("matmul_nn", graph.MatMul{Variant: 6, Tile: t}, n, n, n, fmt.Sprintf("v6 %dx%d u=%v", t.TM, 4*t.TNV, t.UniformA), false))
		}
		for _, t := range []graph.MatMulTile{{TM: 8, TNV: 2, Windows: 1}, {TM: 16, TNV: 2, Windows: 1}, {TM: 16, TNV: 4, Windows: 1}, {TM: 8, TNV: 2, Windows: 2}, {TM: 16, TNV: 2, Windows: 2}, {TM: 16, TNV: 4, Windows: 2}} {
			t.WGX, t.WGY = 16, 1
			cs = append(cs, mm("matmul_nn", graph.MatMul{Variant: 7, Tile: t}, n, n, n, fmt.Sprintf("v7 ubo %dx%dx%d", t.Windows, t.TM, 4*t.TNV), false))
		}
	}
	// Transformer shapes: tokens × d_model → FFN hidden and back, and the
	// backward layouts of a linear layer.
	T, D, H := 512, 512, 2048
	if quick {
		T, D, H = 32, 32, 64
	}
	cs = append(cs,
		mm("matmul_nn", graph.MatMul{}, T, H, D, "ffn up (x·W)", true),
		mm("matmul_nn", graph.MatMul{}, T, D, H, "ffn down", true),
		mm("matmul_nt", graph.MatMul{TransB: true}, T, D, H, "x·Wᵀ / dy·Wᵀ", true),
		mm("matmul_nt", graph.MatMul{TransB: true, Variant: 3}, T, D, H, "v3 (storage only)", false),
		mm("matmul_tn", graph.MatMul{TransA: true}, D, H, T, "dW = xᵀ·dy", true),
		mm("matmul_tn", graph.MatMul{TransA: true, Variant: 9}, D, H, T, "v9 transpose + v7", false),
	)
	cs = append(cs, stepShapeCases(quick)...)
	f16 := mm("matmul_nn_f16", graph.MatMul{}, T, H, D, "f16 weights", true)
	f16.op = graph.MatMulF16{}
	f16.in[1].DType = gpu.F16
	cs = append(cs, f16)
	cs = append(cs, extraCases(quick)...)
	cs = append(cs, moeCases(quick)...)
	cs = append(cs, sparseCases(quick)...)
	return cs
}

// stepShapeCases are the matmuls of a small-dense training step (1024
// tokens, hidden 256; fused q/k/v 512 wide, o 256, fused gate/up 1536, down
// from 768), in each layout as a step runs it, beside A·B at the same size
// with the default. In a step the forward x·Wᵀ and the input gradient dy·W
// read an activation (x, dy) that shares the arena with their output, which
// rules out reading it through uniform windows as it is; on a CPU adapter
// the step copies it into scratch first (variant 9), so those rows ask for
// variant 9 by name, which copies A here too. The weight gradient dyᵀ·x
// runs the default (on a CPU adapter also variant 9: dy transposed into
// scratch). The rows answer "does every layout run as fast as A·B at the
// shapes that matter" for that config.
func stepShapeCases(quick bool) []benchCase {
	T := 1024
	projs := []struct {
		name string
		n, k int
	}{{"qkv", 512, 256}, {"o", 256, 256}, {"gate_up", 1536, 256}, {"down", 256, 768}}
	if quick {
		T = 32
		projs = projs[:1]
		projs[0].n, projs[0].k = 32, 16
	}
	var cs []benchCase
	for _, p := range projs {
		cs = append(cs,
			mm("matmul_nn", graph.MatMul{}, T, p.n, p.k, "small-dense "+p.name+": A·B at the forward's size", false),
			mm("matmul_nt", graph.MatMul{TransB: true, Variant: 9}, T, p.n, p.k, "small-dense "+p.name+" forward x·Wᵀ (v9, as in a step)", false),
			mm("matmul_nn", graph.MatMul{Variant: 9}, T, p.k, p.n, "small-dense "+p.name+" input gradient dy·W (v9, as in a step)", false),
			mm("matmul_nn", graph.MatMul{}, T, p.k, p.n, "small-dense "+p.name+": A·B at the input gradient's size", false),
			mm("matmul_tn", graph.MatMul{TransA: true}, p.n, p.k, T, "small-dense "+p.name+" weight gradient dyᵀ·x", false),
			mm("matmul_nn", graph.MatMul{}, p.n, p.k, T, "small-dense "+p.name+": A·B at the weight gradient's size", false),
		)
	}
	return cs
}
