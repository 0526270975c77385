package bench

import (
	"fmt"
	"math/rand"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/moe"
)

// ggmlMulMatID is what llama.cpp's ggml Vulkan backend does for MUL_MAT_ID
// (the MoE expert matmul) at 16 experts, top-4, 1024×1024 f32 experts, 512
// tokens on this lavapipe adapter (DESIGN.md §8): the peer for the
// grouped-matmul rows at that shape.
var ggmlMulMatID = peer{name: "ggml Vulkan MUL_MAT_ID", gflops: 6.2}

// moeRouting sends every token to k distinct experts chosen uniformly at
// random (a fixed seed) and lays the experts' rows out as moe.Dispatch
// does: segments in expert order, each starting at a multiple of
// moe.RowAlign. It returns seg, the padded row count R and the routed rows.
func moeRouting(tokens, experts, k int) (*graph.Host, int, int) {
	rng := rand.New(rand.NewSource(42))
	counts := make([]int, experts)
	for t := 0; t < tokens; t++ {
		for _, e := range rng.Perm(experts)[:k] {
			counts[e]++
		}
	}
	seg := graph.NewHost(graph.U32(2 * experts))
	start := 0
	for e, c := range counts {
		seg.Data[2*e], seg.Data[2*e+1] = float64(start), float64(c)
		start += (c + moe.RowAlign - 1) / moe.RowAlign * moe.RowAlign
	}
	return seg, start, tokens * k
}

// moeCases times the grouped expert matmuls of a MoE layer: the forward
// (x·W_eᵀ, weights in the Hugging Face (out, in) layout), the backward with
// respect to the input (dy·W_e) and the weight gradient (dy_eᵀ·x_e), at
// ggml's MUL_MAT_ID shape, at a small training shape (hidden 64, expert
// size 32, 768 tokens) and at ocr-small's (8 experts of 128, top-2, hidden
// 128, 1184 tokens). FLOPs count the routed rows only (2·rows·N·K);
// padding rows are not work.
func moeCases(quick bool) []benchCase {
	type shape struct {
		tokens, experts, k, hidden, inner int
		peer                              peer
		slow                              bool // skip the one-element-per-invocation variant
	}
	shapes := []shape{
		{tokens: 512, experts: 16, k: 4, hidden: 1024, inner: 1024, peer: ggmlMulMatID, slow: true},
		{tokens: 768, experts: 16, k: 4, hidden: 64, inner: 32},
		{tokens: 1184, experts: 8, k: 2, hidden: 128, inner: 128}, // ocr-small's training step: 16 lines of 74 tokens
	}
	if quick {
		shapes = []shape{{tokens: 24, experts: 4, k: 2, hidden: 16, inner: 8}}
	}
	var cs []benchCase
	for _, s := range shapes {
		seg, R, routed := moeRouting(s.tokens, s.experts, s.k)
		E, K, N := s.experts, s.hidden, s.inner
		flops := 2 * float64(routed) * float64(N) * float64(K)
		label := fmt.Sprintf("E=%d top%d T=%d %dx%d", E, s.k, s.tokens, N, K)
		add := func(name, variant string, op graph.Op, best bool, in []graph.Spec, p peer) {
			c := benchCase{name: name, shape: label, variant: variant, op: op, in: in, flops: flops, reps: 1, best: best, peer: p}
			if flops < 1e8 {
				c.reps = 8
			}
			c.hosts = func(rng *rand.Rand) []*graph.Host {
				h := make([]*graph.Host, len(in))
				for i, sp := range in[:2] {
					h[i] = random(rng, sp)
				}
				h[2] = seg
				return h
			}
			cs = append(cs, c)
		}
		w := graph.F32(E, N, K)
		fwd := []graph.Spec{graph.F32(R, K), w, seg.Spec}               // x, W (E, N, K), seg
		bwd := []graph.Spec{graph.F32(R, N), w, seg.Spec}               // dy, W seen as (E, K', N') = (E, N, K), seg
		wgr := []graph.Spec{graph.F32(R, N), graph.F32(R, K), seg.Spec} // dy, x, seg
		for _, v := range []struct {
			v     int
			label string
		}{{0, "auto"}, {7, "v7 x in uniform windows"}, {3, "v3 8x8 storage"}, {9, "v9 W transposed, v3 x·W"}, {1, "v1 scalar"}} {
			if v.v == 1 && s.slow {
				continue
			}
			add("moe_grouped", v.label, moe.GroupedMatMul{Experts: E, TransW: true, Variant: v.v}, v.v == 0, fwd, s.peer)
			if v.v != 9 { // TransW only
				add("moe_grouped_dx", v.label, moe.GroupedMatMul{Experts: E, Variant: v.v}, v.v == 0, bwd, peer{})
			}
		}
		for _, v := range []struct {
			v     int
			label string
		}{{0, "auto"}, {3, "v3 8x8 storage"}, {4, "v4 16x16 unrolled"}, {1, "v1 scalar"}} {
			if v.v == 1 && s.slow {
				continue
			}
			add("moe_grouped_dw", v.label, moe.GroupedWeightGrad{Experts: E, TransW: true, Variant: v.v}, v.v == 0, wgr, peer{})
		}
	}
	return cs
}
