package bench

import (
	"fmt"

	"github.com/moegpu/moegpu/graph"
)

// extraCases lists the memory-bound kernels, reported in GB/s against the
// copy peak: bytes are each input read once plus each output written once.
func extraCases(quick bool) []benchCase {
	R, C := 1024, 1024
	rows, experts, k := 4096, 64, 8
	n := 1 << 20
	if quick {
		R, C, rows, experts, k, n = 16, 64, 64, 16, 4, 4096
	}
	f := func(x int) float64 { return float64(x) }
	rc := fmt.Sprintf("%dx%d", R, C)
	var cs []benchCase
	for _, v := range []struct {
		variant int
		label   string
	}{{graph.RowwiseSerial, "v1 row/invocation"}, {graph.RowwiseWorkgroup, "v2 row/workgroup"}} {
		best := v.variant == graph.RowwiseSerial
		cs = append(cs,
			benchCase{name: "softmax", shape: rc, variant: v.label, op: graph.Softmax{Variant: v.variant},
				in: []graph.Spec{graph.F32(R, C)}, bytes: 8 * f(R*C), reps: 4, best: best},
			benchCase{name: "softmax_backward", shape: rc, variant: v.label, op: graph.SoftmaxBackward{Variant: v.variant},
				in: []graph.Spec{graph.F32(R, C), graph.F32(R, C)}, bytes: 12 * f(R*C), reps: 4, best: best},
			benchCase{name: "rmsnorm", shape: rc, variant: v.label, op: graph.RMSNorm{Variant: v.variant},
				in: []graph.Spec{graph.F32(R, C), graph.F32(C)}, bytes: 8*f(R*C) + 4*f(C+R), reps: 4, best: best},
			benchCase{name: "rmsnorm_backward", shape: rc, variant: v.label, op: graph.RMSNormBackward{Variant: v.variant},
				in: []graph.Spec{graph.F32(R, C), graph.F32(C), graph.F32(R), graph.F32(R, C)}, bytes: 12*f(R*C) + 8*f(C) + 4*f(R), reps: 4, best: best},
		)
	}
	topk := fmt.Sprintf("%dx%d k=%d", rows, experts, k)
	cs = append(cs,
		benchCase{name: "topk", shape: topk, variant: "auto", op: graph.TopK{K: k},
			in: []graph.Spec{graph.F32(rows, experts)}, bytes: 4*f(rows*experts) + 8*f(rows*k), reps: 4, best: true},
		benchCase{name: "topk", shape: topk, variant: "v2 selection passes", op: graph.TopK{K: k, Variant: 2},
			in: []graph.Spec{graph.F32(rows, experts)}, bytes: 4*f(rows*experts) + 8*f(rows*k), reps: 4},
		benchCase{name: "exclusive_scan", shape: fmt.Sprint(n), variant: "auto", op: graph.ExclusiveScan{},
			in: []graph.Spec{graph.U32(n)}, bytes: 8 * f(n), reps: 4, best: true},
		benchCase{name: "add", shape: fmt.Sprint(n), variant: "auto (vec4)", op: graph.Add{},
			in: []graph.Spec{graph.F32(n), graph.F32(n)}, bytes: 12 * f(n), reps: 4, best: true},
		benchCase{name: "swiglu", shape: fmt.Sprint(n), variant: "auto (vec4)", op: graph.SwiGLU{},
			in: []graph.Spec{graph.F32(n), graph.F32(n)}, bytes: 12 * f(n), reps: 4, best: true},
	)
	// Attention, causal: 4·dh flops per visible (query, key) pair and head
	// (q·k and p·v) forward; the backward is counted as 2.5× the forward,
	// the convention of the FlashAttention papers.
	T, H, dh := 512, 8, 64
	if quick {
		T, H, dh = 32, 2, 16
	}
	for _, w := range []int{0, 128} {
		pairs := 0
		for i := 0; i < T; i++ {
			lo := 0
			if w > 0 {
				lo = max(0, i-w+1)
			}
			pairs += i - lo + 1
		}
		flops := 4 * float64(dh) * float64(H) * float64(pairs)
		label := "global"
		if w > 0 {
			label = fmt.Sprintf("window %d", w)
		}
		shape := fmt.Sprintf("T=%d H=%d dh=%d", T, H, dh)
		a := graph.Attention{Batch: 1, Seq: T, QHeads: H, KVHeads: H, HeadDim: dh, Window: w, Sink: true}
		q := graph.F32(T, H*dh)
		cs = append(cs,
			benchCase{name: "attention", shape: shape, variant: label, op: a,
				in: []graph.Spec{q, q, q, graph.F32(H)}, flops: flops, reps: 1, best: true},
			benchCase{name: "attention_backward", shape: shape, variant: label, op: graph.AttentionBackward(a),
				in: []graph.Spec{q, q, q, graph.F32(H), q, graph.F32(1, H, T), q}, flops: 2.5 * flops, reps: 1, best: true},
		)
	}
	return cs
}
