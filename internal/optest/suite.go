package optest

import (
	"errors"
	"fmt"
	"math/rand"
	"time"

	"github.com/x448/float16"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/moe"
)

// Case is one op variant at one shape, described once for the support
// table (as ggml's test-backend-ops describes its ops): the op, how to make
// valid inputs, and the tolerance its own tests state. Run checks it with
// Check, the function every op test runs.
type Case struct {
	Op      string // the op's family name, e.g. "matmul A·Bᵀ", "rmsnorm_backward"
	Variant string // the kernel variant or mode, e.g. "v3 register-blocked vec4"
	Shape   string
	Node    graph.Op
	Tol     Tol
	// In makes the inputs from a seeded generator.
	In func(rng *rand.Rand) []*graph.Host
}

// Status is a case's outcome on an adapter.
type Status string

// Statuses of a support row.
const (
	// Supported: the GPU ran the variant and matched the reference within
	// the stated tolerance.
	Supported Status = "supported"
	// Unsupported: the adapter refused it (a limit or missing feature:
	// gpu.ErrUnsupported); Detail names the limit.
	Unsupported Status = "unsupported"
	// Failing: it ran but disagreed with the reference, or failed with
	// another error; Detail says how.
	Failing Status = "failing"
)

// Result is one case's outcome on one adapter.
type Result struct {
	Op, Variant, Shape string
	Status             Status
	Detail             string // the refusal or the mismatch; empty when supported
	Seconds            float64
}

// Run checks one case on dev. A panic inside the op is reported as
// failing rather than taking the caller down.
func (c Case) Run(dev *gpu.Device) (res Result) {
	res = Result{Op: c.Op, Variant: c.Variant, Shape: c.Shape}
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			res.Status, res.Detail = Failing, fmt.Sprintf("panic: %v", p)
		}
		res.Seconds = time.Since(start).Seconds()
	}()
	_, err := Check(dev, c.Node, c.Tol, c.In(rand.New(rand.NewSource(int64(len(c.Op)*131+len(c.Variant)*17+len(c.Shape)))))...)
	switch {
	case err == nil:
		res.Status = Supported
	case errors.Is(err, gpu.ErrUnsupported):
		res.Status, res.Detail = Unsupported, err.Error()
	default:
		res.Status, res.Detail = Failing, err.Error()
	}
	return res
}

// Suite lists every op of graph and moe with each kernel variant and mode
// the op offers, at shapes not aligned to any tile, plus a few shapes that
// an adapter's limits may rule out (long reductions on llvmpipe's loop
// budget, f16 storage without shader-f16). Tolerances are the ones the
// op's own tests state (see each *_test.go). Adding an op or a variant
// means adding its line here; TestSuite runs it on the test adapter.
func Suite() []Case {
	var cs []Case
	cs = append(cs, matmulCases()...)
	cs = append(cs, elementwiseCases()...)
	cs = append(cs, rowwiseCases()...)
	cs = append(cs, attentionCases()...)
	cs = append(cs, miscCases()...)
	cs = append(cs, moeCases()...)
	return cs
}

// Tolerances of the op tests (graph/*_test.go, moe/*_test.go).
var (
	exactTol     = Tol{}
	roundingTol  = Tol{Atol: 1e-37, Rtol: 2.5e-7} // one to three f32 roundings
	expTol       = Tol{Atol: 1e-6, Rtol: 1e-5}    // WGSL exp, divisions, short sums
	looseSumTol  = Tol{Atol: 1e-5, Rtol: 1e-5}    // sums over rows or a vocabulary
	attnFwdTol   = Tol{Atol: 2e-6, Rtol: 2e-6}
	attnBwdTol   = Tol{Atol: 1e-5, Rtol: 1e-5}
	ropeTol      = Tol{Atol: 1e-5}
	rmsnormDgTol = Tol{Atol: 5e-5, Rtol: 1e-5}
	sumsqTol     = Tol{Atol: 1e-30, Rtol: 1e-5}
	adamwTol     = Tol{Atol: 1e-6, Rtol: 1e-5}
)

// mmTol is matmul's: a length-K dot product of values in [-1, 1] rounds by
// at most K·2^-22 absolute; the rtol covers the final rounding.
func mmTol(K int) Tol { return Tol{Atol: float64(max(K, 1)) * 2.4e-7, Rtol: 1e-5} }

func uni(rng *rand.Rand, shape ...int) *graph.Host { return Random(rng, graph.F32(shape...), -1, 1) }

func f16(h *graph.Host) *graph.Host {
	for i, x := range h.Data {
		h.Data[i] = float64(float16.Fromfloat32(float32(x)).Float32())
	}
	h.DType = gpu.F16
	return h
}

func u32s(vals ...float64) *graph.Host {
	h := graph.NewHost(graph.U32(len(vals)))
	copy(h.Data, vals)
	return h
}

func matmulCases() []Case {
	var cs []Case
	M, N, K := 37, 68, 132
	shape := fmt.Sprintf("%d×%d×%d", M, N, K)
	layouts := []struct {
		name     string
		ta, tb   bool
		variants []int
	}{
		{"matmul A·B", false, false, []int{0, 1, 2, 3, 4, 5, 6, 7, 9}},
		{"matmul A·Bᵀ", false, true, []int{0, 1, 2, 3, 4, 8, 9}},
		{"matmul Aᵀ·B", true, false, []int{0, 1, 2, 3, 4, 9}},
	}
	names := map[int]string{0: "auto", 1: "v1 naive", 2: "v2 register-blocked", 3: "v3 register-blocked vec4", 4: "v4 shared-memory tiled",
		5: "v5 uniform-row vec4", 6: "v6 unrolled template", 7: "v7 A in uniform windows", 8: "v8 B in uniform windows", 9: "v9 operands into scratch, then v7"}
	for _, l := range layouts {
		a, b := []int{M, K}, []int{K, N}
		if l.ta {
			a = []int{K, M}
		}
		if l.tb {
			b = []int{N, K}
		}
		for _, v := range l.variants {
			cs = append(cs, Case{Op: l.name, Variant: names[v], Shape: shape, Tol: mmTol(K),
				Node: graph.MatMul{TransA: l.ta, TransB: l.tb, Variant: v},
				In:   func(rng *rand.Rand) []*graph.Host { return []*graph.Host{uni(rng, a...), uni(rng, b...)} }})
		}
		cs = append(cs, Case{Op: l.name, Variant: "auto, accumulate (C += A·B)", Shape: shape, Tol: mmTol(K + 1),
			Node: graph.MatMul{TransA: l.ta, TransB: l.tb, Accumulate: true},
			In: func(rng *rand.Rand) []*graph.Host {
				return []*graph.Host{uni(rng, a...), uni(rng, b...), uni(rng, M, N)}
			}})
		for _, v := range []struct {
			v    int
			name string
		}{{0, "auto"}, {3, "v3"}} {
			cs = append(cs, Case{Op: l.name, Variant: v.name + ", residual (C = R + A·B)", Shape: shape, Tol: mmTol(K + 1),
				Node: graph.MatMul{TransA: l.ta, TransB: l.tb, Residual: true, Variant: v.v},
				In: func(rng *rand.Rand) []*graph.Host {
					return []*graph.Host{uni(rng, a...), uni(rng, b...), uni(rng, M, N)}
				}})
		}
	}
	cs = append(cs, Case{Op: "matmul A·B", Variant: "auto, batched A, shared B", Shape: fmt.Sprintf("3×%d×%d×%d", 17, 20, 33), Tol: mmTol(33),
		Node: graph.MatMul{},
		In:   func(rng *rand.Rand) []*graph.Host { return []*graph.Host{uni(rng, 3, 17, 33), uni(rng, 33, 20)} }})
	cs = append(cs, Case{Op: "matmul A·B", Variant: "auto, K = 70000", Shape: "2×4×70000", Tol: mmTol(70000),
		Node: graph.MatMul{},
		In:   func(rng *rand.Rand) []*graph.Host { return []*graph.Host{uni(rng, 2, 70000), uni(rng, 70000, 4)} }})
	// Variant 11 needs M and N multiples of 4.
	cs = append(cs, Case{Op: "matmul Aᵀ·B", Variant: "v11 row passes", Shape: fmt.Sprintf("%d×%d×%d", 36, N, K), Tol: mmTol(K),
		Node: graph.MatMul{TransA: true, Variant: 11},
		In:   func(rng *rand.Rand) []*graph.Host { return []*graph.Host{uni(rng, K, 36), uni(rng, K, N)} }})
	// A weight gradient over 70000 tokens: each invocation of the Aᵀ·B
	// kernels loops over every token, except variant 11's, which sums them
	// in passes (the automatic choice where the sizes allow it).
	cs = append(cs, Case{Op: "matmul Aᵀ·B", Variant: "auto, K = 70000", Shape: "4×4×70000", Tol: mmTol(70000),
		Node: graph.MatMul{TransA: true},
		In:   func(rng *rand.Rand) []*graph.Host { return []*graph.Host{uni(rng, 70000, 4), uni(rng, 70000, 4)} }})
	cs = append(cs, Case{Op: "matmul Aᵀ·B", Variant: "auto, K = 70000, N = 3", Shape: "4×3×70000", Tol: mmTol(70000),
		Node: graph.MatMul{TransA: true},
		In:   func(rng *rand.Rand) []*graph.Host { return []*graph.Host{uni(rng, 70000, 4), uni(rng, 70000, 3)} }})
	for _, tb := range []bool{false, true} {
		name, b := "matmul A·B (f16 B)", []int{36, 24}
		if tb {
			name, b = "matmul A·Bᵀ (f16 B)", []int{24, 36}
		}
		cs = append(cs, Case{Op: name, Variant: "f16 storage, f32 accumulation", Shape: "17×24×36", Tol: mmTol(36),
			Node: graph.MatMulF16{TransB: tb},
			In:   func(rng *rand.Rand) []*graph.Host { return []*graph.Host{uni(rng, 17, 36), f16(uni(rng, b...))} }})
	}
	cs = append(cs, Case{Op: "transpose", Variant: "rank 2 and 3", Shape: "3×17×129", Tol: exactTol, Node: graph.Transpose{},
		In: func(rng *rand.Rand) []*graph.Host { return []*graph.Host{uni(rng, 3, 17, 129)} }})
	cs = append(cs, Case{Op: "transpose", Variant: "4×4 blocks (sizes multiples of 4)", Shape: "3×20×132", Tol: exactTol, Node: graph.Transpose{},
		In: func(rng *rand.Rand) []*graph.Host { return []*graph.Host{uni(rng, 3, 20, 132)} }})
	return cs
}

func elementwiseCases() []Case {
	type ew struct {
		op     func(v int) graph.Op
		inputs int
		tol    Tol
	}
	ops := []ew{
		{func(v int) graph.Op { return graph.Add{Variant: v} }, 2, roundingTol},
		{func(v int) graph.Op { return graph.Mul{Variant: v} }, 2, roundingTol},
		{func(v int) graph.Op { return graph.Scale{Factor: -0.37, Variant: v} }, 1, roundingTol},
		{func(v int) graph.Op { return graph.AddInto{Variant: v} }, 2, roundingTol},
		{func(v int) graph.Op { return graph.ReLUSquared{Variant: v} }, 1, roundingTol},
		{func(v int) graph.Op { return graph.ReLUSquaredBackward{Variant: v} }, 2, roundingTol},
		{func(v int) graph.Op { return graph.SiLU{Variant: v} }, 1, expTol},
		{func(v int) graph.Op { return graph.SiLUBackward{Variant: v} }, 2, expTol},
		{func(v int) graph.Op { return graph.SwiGLU{Variant: v} }, 2, expTol},
		{func(v int) graph.Op { return graph.SwiGLUBackward{Variant: v} }, 3, expTol},
	}
	var cs []Case
	for _, o := range ops {
		for _, v := range []struct {
			v    int
			name string
		}{{graph.ElementwiseAuto, "auto"}, {graph.ElementwiseScalar, "scalar"}, {graph.ElementwiseVec4, "vec4"}} {
			op := o.op(v.v)
			n := o.inputs
			cs = append(cs, Case{Op: op.Name(), Variant: v.name, Shape: "5×1031", Tol: o.tol, Node: op,
				In: func(rng *rand.Rand) []*graph.Host {
					in := make([]*graph.Host, n)
					for i := range in {
						in[i] = Random(rng, graph.F32(5, 1031), -4, 4)
					}
					return in
				}})
		}
	}
	for _, v := range []struct {
		v    int
		name string
	}{{graph.ElementwiseAuto, "auto"}, {graph.ElementwiseScalar, "scalar"}, {graph.ElementwiseVec4, "vec4"}} {
		cs = append(cs,
			Case{Op: "silu_and_mul", Variant: v.name, Shape: "5 × (2·516)", Tol: expTol, Node: graph.SiluAndMul{Variant: v.v},
				In: func(rng *rand.Rand) []*graph.Host { return []*graph.Host{Random(rng, graph.F32(5, 1032), -4, 4)} }},
			Case{Op: "silu_and_mul_backward", Variant: v.name, Shape: "5 × (2·516)", Tol: expTol, Node: graph.SiluAndMulBackward{Variant: v.v},
				In: func(rng *rand.Rand) []*graph.Host {
					return []*graph.Host{Random(rng, graph.F32(5, 1032), -4, 4), Random(rng, graph.F32(5, 516), -4, 4)}
				}})
	}
	cs = append(cs,
		Case{Op: "weighted_sum", Variant: "auto", Shape: "1031", Tol: Tol{Atol: 1031 * 6e-8, Rtol: 1e-6}, Node: graph.WeightedSum{},
			In: func(rng *rand.Rand) []*graph.Host { return []*graph.Host{uni(rng, 1031), uni(rng, 1031)} }},
		Case{Op: "mul_scalar", Variant: "auto", Shape: "17×129", Tol: Tol{Rtol: 1.2e-7}, Node: graph.MulScalar{},
			In: func(rng *rand.Rand) []*graph.Host { return []*graph.Host{uni(rng, 17, 129), uni(rng, 1)} }},
		Case{Op: "zeros", Variant: "auto", Shape: "17×129", Tol: exactTol, Node: graph.Zeros{Spec: graph.F32(17, 129)},
			In: func(rng *rand.Rand) []*graph.Host { return nil }},
	)
	return cs
}

var rowwise = []struct {
	v    int
	name string
}{{graph.RowwiseAuto, "auto"}, {graph.RowwiseSerial, "v1 row per invocation"}, {graph.RowwiseWorkgroup, "v2 row per workgroup"}}

func rowwiseCases() []Case {
	var cs []Case
	R, C := 17, 1031
	shape := fmt.Sprintf("%d×%d", R, C)
	for _, v := range rowwise {
		cs = append(cs,
			Case{Op: "softmax", Variant: v.name, Shape: shape, Tol: expTol, Node: graph.Softmax{Variant: v.v},
				In: func(rng *rand.Rand) []*graph.Host { return []*graph.Host{Random(rng, graph.F32(R, C), -8, 8)} }},
			Case{Op: "softmax_backward", Variant: v.name, Shape: shape, Tol: expTol, Node: graph.SoftmaxBackward{Variant: v.v},
				In: func(rng *rand.Rand) []*graph.Host {
					y := refOut(graph.Softmax{}, Random(rng, graph.F32(R, C), -4, 4))[0]
					return []*graph.Host{y, uni(rng, R, C)}
				}},
			Case{Op: "rmsnorm", Variant: v.name, Shape: shape, Tol: expTol, Node: graph.RMSNorm{Variant: v.v},
				In: func(rng *rand.Rand) []*graph.Host { return []*graph.Host{uni(rng, R, C), uni(rng, C)} }},
		)
		for _, acc := range []bool{false, true} {
			variant := v.name
			if acc {
				variant += ", accumulate dx"
			}
			cs = append(cs, Case{Op: "rmsnorm_backward", Variant: variant, Shape: shape, Tol: rmsnormDgTol,
				Node: graph.RMSNormBackward{Variant: v.v, Accumulate: acc},
				In: func(rng *rand.Rand) []*graph.Host {
					x, g := uni(rng, R, C), uni(rng, C)
					rstd := refOut(graph.RMSNorm{}, x, g)[1]
					in := []*graph.Host{x, g, rstd, uni(rng, R, C)}
					if acc {
						in = append(in, uni(rng, R, C))
					}
					return in
				}})
		}
	}
	N := 33
	ceIn := func(rng *rand.Rand, v int) (*graph.Host, *graph.Host) {
		logits := Random(rng, graph.F32(N, v), -4, 4)
		t := graph.NewHost(graph.U32(N))
		for i := range t.Data {
			t.Data[i] = float64(rng.Intn(v))
			if i%7 == 3 {
				t.Data[i] = float64(graph.IgnoreTarget)
			}
		}
		return logits, t
	}
	ceNames := []string{"auto", "v1 row per invocation", "v2 row per workgroup", "v3 row per invocation, vec4"}
	ceBwdNames := []string{"auto", "v1 element per invocation", "v2 vec4 per invocation", "v3 256-column chunks"}
	for _, v := range []int{103, 104} {
		for variant := 0; variant <= 3; variant++ {
			vv := v
			shape := fmt.Sprintf("%d×%d", N, v)
			cs = append(cs,
				Case{Op: "cross_entropy", Variant: ceNames[variant], Shape: shape, Tol: looseSumTol, Node: graph.CrossEntropy{Variant: variant},
					In: func(rng *rand.Rand) []*graph.Host { l, t := ceIn(rng, vv); return []*graph.Host{l, t} }},
				Case{Op: "cross_entropy_backward", Variant: ceBwdNames[variant], Shape: shape, Tol: looseSumTol, Node: graph.CrossEntropyBackward{Variant: variant},
					In: func(rng *rand.Rand) []*graph.Host {
						l, t := ceIn(rng, vv)
						lse := refOut(graph.CrossEntropy{}, l, t)[1]
						return []*graph.Host{l, t, lse, uni(rng, N)}
					}},
			)
		}
	}
	cs = append(cs, Case{Op: "cross_entropy", Variant: "auto, V = 70000", Shape: "2×70000", Tol: looseSumTol,
		Node: graph.CrossEntropy{}, In: func(rng *rand.Rand) []*graph.Host {
			l := Random(rng, graph.F32(2, 70000), -4, 4)
			return []*graph.Host{l, u32s(5, 69999)}
		}})
	return cs
}

func attentionCases() []Case {
	var cs []Case
	for _, c := range []struct {
		b, t, qh, kvh, dh, w int
		sink                 bool
	}{
		{2, 17, 4, 2, 3, 0, false},
		{1, 33, 4, 2, 16, 8, true},
		{1, 9, 2, 1, 64, 0, true},
		{1, 5, 1, 1, 128, 0, false},
	} {
		a := graph.Attention{Batch: c.b, Seq: c.t, QHeads: c.qh, KVHeads: c.kvh, HeadDim: c.dh, Window: c.w, Sink: c.sink}
		variant := "global"
		if c.w > 0 {
			variant = fmt.Sprintf("window %d", c.w)
		}
		if c.sink {
			variant += ", sink"
		}
		shape := fmt.Sprintf("B%d T%d heads %d:%d dh%d", c.b, c.t, c.qh, c.kvh, c.dh)
		fwdIn := func(rng *rand.Rand) []*graph.Host {
			in := []*graph.Host{uni(rng, c.b*c.t, c.qh*c.dh), uni(rng, c.b*c.t, c.kvh*c.dh), uni(rng, c.b*c.t, c.kvh*c.dh)}
			if c.sink {
				in = append(in, uni(rng, c.qh))
			}
			return in
		}
		cs = append(cs, Case{Op: "attention", Variant: variant, Shape: shape, Tol: attnFwdTol, Node: a, In: fwdIn},
			Case{Op: "attention_backward", Variant: variant, Shape: shape, Tol: attnBwdTol, Node: graph.AttentionBackward(a),
				In: func(rng *rand.Rand) []*graph.Host {
					in := fwdIn(rng)
					out := refOut(a, in...)
					return append(in, round32(out[0]), round32(out[1]), uni(rng, c.b*c.t, c.qh*c.dh))
				}})
		// Decoding: 3 new tokens per sequence after pos cached ones.
		capacity, qlen := 24, 3
		ac := graph.AttentionCached{Batch: c.b, QLen: qlen, QHeads: c.qh, KVHeads: c.kvh, HeadDim: c.dh, Window: c.w, Sink: c.sink, Capacity: capacity}
		cs = append(cs,
			Case{Op: "attention_cached", Variant: variant, Shape: shape + fmt.Sprintf(" q%d cap%d", qlen, capacity), Tol: attnFwdTol, Node: ac,
				In: func(rng *rand.Rand) []*graph.Host {
					in := []*graph.Host{uni(rng, c.b*qlen, c.qh*c.dh), uni(rng, c.b, c.kvh, capacity, c.dh), uni(rng, c.b, c.kvh, capacity, c.dh), u32s(11)}
					if c.sink {
						in = append(in, uni(rng, c.qh))
					}
					return in
				}},
			Case{Op: "kv_cache_write", Variant: "ring buffer", Shape: shape + fmt.Sprintf(" q%d cap%d", qlen, capacity), Tol: exactTol,
				Node: graph.KVCacheWrite{Batch: c.b, QLen: qlen, KVHeads: c.kvh, HeadDim: c.dh, Capacity: capacity},
				In: func(rng *rand.Rand) []*graph.Host {
					return []*graph.Host{uni(rng, c.b*qlen, c.kvh*c.dh), u32s(22), uni(rng, c.b, c.kvh, capacity, c.dh)}
				}},
		)
	}
	for _, v := range []struct {
		v    int
		name string
	}{{graph.RoPEAuto, "auto"}, {graph.RoPEScalar, "scalar"}, {graph.RoPEVec4, "vec4"}} {
		for _, inv := range []bool{false, true} {
			for _, rot := range []int{0, 8} {
				variant := v.name
				if inv {
					variant += ", inverse (backward)"
				}
				if rot > 0 {
					variant += fmt.Sprintf(", partial (%d of 16 dims)", rot)
				}
				cs = append(cs, Case{Op: "rope", Variant: variant, Shape: "33 tokens × 3 heads × 16", Tol: ropeTol,
					Node: graph.RoPE{Heads: 3, HeadDim: 16, RotaryDim: rot, Inverse: inv, Variant: v.v},
					In: func(rng *rand.Rand) []*graph.Host {
						pos := graph.NewHost(graph.U32(33))
						for i := range pos.Data {
							pos.Data[i] = float64(rng.Intn(5000))
						}
						return []*graph.Host{uni(rng, 33, 48), pos}
					}})
				if !inv {
					cs = append(cs, Case{Op: "rope", Variant: "fused q/k/v split and rotated (rope_qkv), " + variant, Shape: "33 tokens × (3 + 2 + 2) heads × 16", Tol: ropeTol,
						Node: graph.RoPEQKV{Heads: 3, KHeads: 2, VHeads: 2, HeadDim: 16, RotaryDim: rot, Variant: v.v},
						In: func(rng *rand.Rand) []*graph.Host {
							return []*graph.Host{uni(rng, 33, 112), RandomInts(rng, graph.U32(33), 5000)}
						}})
				} else {
					cs = append(cs, Case{Op: "rope", Variant: "fused q/k/v backward (rope_qkv_backward), " + variant, Shape: "33 tokens × (3 + 2 + 2) heads × 16", Tol: ropeTol,
						Node: graph.RoPEQKVBackward{Heads: 3, KHeads: 2, VHeads: 2, HeadDim: 16, RotaryDim: rot, Variant: v.v},
						In: func(rng *rand.Rand) []*graph.Host {
							return []*graph.Host{uni(rng, 33, 48), uni(rng, 33, 32), uni(rng, 33, 32), RandomInts(rng, graph.U32(33), 5000)}
						}})
				}
				cs = append(cs, Case{Op: "rope", Variant: "queries and keys in one dispatch, " + variant, Shape: "33 tokens × (3 + 2) heads × 16", Tol: ropeTol,
					Node: graph.RoPE{Heads: 3, KHeads: 2, HeadDim: 16, RotaryDim: rot, Inverse: inv, Variant: v.v},
					In: func(rng *rand.Rand) []*graph.Host {
						pos := graph.NewHost(graph.U32(33))
						for i := range pos.Data {
							pos.Data[i] = float64(rng.Intn(5000))
						}
						return []*graph.Host{uni(rng, 33, 48), uni(rng, 33, 32), pos}
					}})
			}
		}
	}
	return cs
}

func miscCases() []Case {
	var cs []Case
	for _, v := range []struct {
		v    int
		name string
	}{{0, "auto"}, {1, "v1 element per invocation"}, {2, "v2 vec4 per invocation"}} {
		cs = append(cs, Case{Op: "embedding", Variant: v.name, Shape: "43×20 table, 129 ids", Tol: exactTol, Node: graph.Embedding{Variant: v.v},
			In: func(rng *rand.Rand) []*graph.Host {
				return []*graph.Host{uni(rng, 43, 20), RandomInts(rng, graph.U32(129), 45)}
			}})
	}
	for _, v := range []struct {
		v    int
		name string
	}{{0, "auto"}, {1, "v1 deterministic chains"}, {2, "v2 atomic"}} {
		cs = append(cs, Case{Op: "embedding_backward", Variant: v.name, Shape: "129 rows × 20 into 43", Tol: looseSumTol, Node: graph.EmbeddingBackward{Variant: v.v},
			In: func(rng *rand.Rand) []*graph.Host {
				return []*graph.Host{uni(rng, 129, 20), RandomInts(rng, graph.U32(129), 45), uni(rng, 43, 20)}
			}})
	}
	topkNames := []string{"auto", "v1 insertion", "v2 selection passes", "v3 workgroup per row", "v4 selection passes, vec4", "v5 register bubble"}
	for v := 0; v <= 5; v++ {
		cs = append(cs, Case{Op: "topk", Variant: topkNames[v], Shape: "129×68 k=4", Tol: exactTol, Node: graph.TopK{K: 4, Variant: v},
			In: func(rng *rand.Rand) []*graph.Host { return []*graph.Host{Random(rng, graph.F32(129, 68), -2, 2)} }})
	}
	cs = append(cs, Case{Op: "topk", Variant: "v2 selection passes, k=32 of 4096", Shape: "3×4096 k=32", Tol: exactTol,
		Node: graph.TopK{K: 32, Variant: 2},
		In:   func(rng *rand.Rand) []*graph.Host { return []*graph.Host{Random(rng, graph.F32(3, 4096), -2, 2)} }})
	for v, name := range []string{"auto", "v1 serial chunks", "v2 workgroup blocks", "v3 serial, vec4"} {
		cs = append(cs, Case{Op: "exclusive_scan", Variant: name, Shape: "70001", Tol: exactTol, Node: graph.ExclusiveScan{Variant: v},
			In: func(rng *rand.Rand) []*graph.Host { return []*graph.Host{RandomInts(rng, graph.U32(70001), 100)} }})
	}
	for v, name := range []string{"auto", "v1 chunks", "v2 strided", "v3 workgroup"} {
		cs = append(cs, Case{Op: "sum_squares", Variant: name, Shape: "17×1031", Tol: sumsqTol, Node: graph.SumSquares{Variant: v},
			In: func(rng *rand.Rand) []*graph.Host { return []*graph.Host{uni(rng, 17, 1031)} }})
	}
	groupShapes := [][]int{{1}, {17, 3}, {129}, {64, 33}}
	for v, name := range []string{"auto", "v1 chunks", "v2 strided", "v3 workgroup"} {
		cs = append(cs, Case{Op: "sum_squares_group", Variant: name, Shape: "4 tensors, 2311 values", Tol: sumsqTol, Node: graph.SumSquaresGroup{Variant: v},
			In: func(rng *rand.Rand) []*graph.Host {
				var in []*graph.Host
				for _, s := range groupShapes {
					in = append(in, uni(rng, s...))
				}
				return in
			}})
	}
	opt := graph.AdamW{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, MaxGradNorm: 0.5}
	hyper := func(decay bool) *graph.Host {
		v, _ := opt.Hyper(1e-2, 3, decay)
		h := graph.NewHost(graph.F32(4))
		for i, x := range v {
			h.Data[i] = float64(float32(x))
		}
		return h
	}
	cs = append(cs, Case{Op: "adamw", Variant: "per parameter, clipped", Shape: "17×129", Tol: adamwTol, Node: opt,
		In: func(rng *rand.Rand) []*graph.Host {
			v := Random(rng, graph.F32(17, 129), 0, 0.01)
			return []*graph.Host{uni(rng, 17, 129), uni(rng, 17, 129), Random(rng, graph.F32(17, 129), -0.1, 0.1), v, hyper(true), u32f(4)}
		}})
	group := graph.AdamWGroup{AdamW: opt, Decay: []bool{true, true, false, false}}
	cs = append(cs, Case{Op: "adamw_group", Variant: "flat buffers, two decay runs", Shape: "4 tensors, 2311 values", Tol: adamwTol, Node: group,
		In: func(rng *rand.Rand) []*graph.Host {
			var ps, gs, ms, vs []*graph.Host
			for _, s := range groupShapes {
				ps, gs = append(ps, uni(rng, s...)), append(gs, uni(rng, s...))
				ms, vs = append(ms, Random(rng, graph.F32(s...), -0.1, 0.1)), append(vs, Random(rng, graph.F32(s...), 0, 0.01))
			}
			in := append(append(append(ps, gs...), ms...), vs...)
			return append(in, hyper(true), hyper(false), u32f(9))
		}})
	cs = append(cs,
		Case{Op: "concat_cols", Variant: "auto", Shape: "17×(5+129)", Tol: exactTol, Node: graph.ConcatCols{},
			In: func(rng *rand.Rand) []*graph.Host { return []*graph.Host{uni(rng, 17, 5), uni(rng, 17, 129)} }},
		Case{Op: "split_cols", Variant: "auto", Shape: "17×134 at 5", Tol: exactTol, Node: graph.SplitCols{A: 5},
			In: func(rng *rand.Rand) []*graph.Host { return []*graph.Host{uni(rng, 17, 134)} }},
		Case{Op: "rows_read", Variant: "auto", Shape: "4 of 33×17", Tol: exactTol, Node: graph.RowsRead{Q: 4},
			In: func(rng *rand.Rand) []*graph.Host { return []*graph.Host{uni(rng, 33, 17), u32s(31)} }},
		Case{Op: "strided_rows", Variant: "auto", Shape: "row 40 of every 41 of 205×33", Tol: exactTol, Node: graph.StridedRows{Stride: 41, Offset: 40},
			In: func(rng *rand.Rand) []*graph.Host { return []*graph.Host{uni(rng, 205, 33)} }},
		Case{Op: "rows_write", Variant: "in place", Shape: "4 into 33×17", Tol: exactTol, Node: graph.RowsWrite{},
			In: func(rng *rand.Rand) []*graph.Host { return []*graph.Host{uni(rng, 33, 17), uni(rng, 4, 17), u32s(30)} }},
		Case{Op: "draft_pick", Variant: "auto", Shape: "5×43", Tol: exactTol, Node: graph.DraftPick{},
			In: func(rng *rand.Rand) []*graph.Host {
				return []*graph.Host{RandomInts(rng, graph.U32(5), 43), uni(rng, 5, 43), u32s(2)}
			}},
		Case{Op: "spec_sample", Variant: "temperature 0.8, top-p 0.9", Shape: "3 drafts, V=43, 4 trials", Tol: exactTol,
			Node: graph.SpecSample{Temperature: 0.8, TopP: 0.9},
			In: func(rng *rand.Rand) []*graph.Host {
				return []*graph.Host{Random(rng, graph.F32(4, 43), -3, 3), RandomInts(rng, graph.U32(3), 43), Random(rng, graph.F32(4, 8), 0, 1)}
			}},
		Case{Op: "spec_sample", Variant: "temperature 1, top-p 1, V = 512", Shape: "3 drafts, V=512, 2 trials", Tol: exactTol,
			Node: graph.SpecSample{Temperature: 1, TopP: 1},
			In: func(rng *rand.Rand) []*graph.Host {
				return []*graph.Host{Random(rng, graph.F32(4, 512), -3, 3), RandomInts(rng, graph.U32(3), 512), Random(rng, graph.F32(2, 8), 0, 1)}
			}},
		Case{Op: "column_patches", Variant: "patch width 8", Shape: "2 images 32×77, 24 rows", Tol: exactTol, Node: graph.ColumnPatches{Patch: 8},
			In: func(rng *rand.Rand) []*graph.Host {
				return []*graph.Host{Random(rng, graph.F32(2, 32, 77), 0, 1), patchCols(rng, 24, 10)}
			}},
		Case{Op: "column_patches_backward", Variant: "patch width 8", Shape: "2 images 32×77, 24 rows", Tol: Tol{Atol: 1e-5},
			Node: graph.ColumnPatchesBackward{Patch: 8, Images: 2, Height: 32, Width: 77},
			In:   func(rng *rand.Rand) []*graph.Host { return []*graph.Host{uni(rng, 24, 256), patchCols(rng, 24, 10)} }},
	)
	return cs
}

// u32f is a one-element f32 tensor holding x (a squared gradient norm).
func u32f(x float64) *graph.Host {
	h := graph.NewHost(graph.F32(1))
	h.Data[0] = x
	return h
}

// patchCols gives n rows their strip indices: mostly valid strips below
// strips, some NoPatch (text positions).
func patchCols(rng *rand.Rand, n, strips int) *graph.Host {
	h := graph.NewHost(graph.U32(n))
	for i := range h.Data {
		h.Data[i] = float64(rng.Intn(strips))
		if i%5 == 4 {
			h.Data[i] = graph.NoPatch
		}
	}
	return h
}

// refOut runs an op's reference on inputs the suite built itself (they
// are valid by construction; a failure here is a bug in the suite, and
// gives empty outputs so the check fails visibly).
func refOut(op graph.Op, in ...*graph.Host) []*graph.Host {
	out, err := graph.RunReference(op, in...)
	if err != nil {
		return []*graph.Host{graph.NewHost(graph.F32(0)), graph.NewHost(graph.F32(0))}
	}
	return out
}

// round32 rounds a reference output to f32, as the GPU would hold it.
func round32(h *graph.Host) *graph.Host {
	for i, x := range h.Data {
		h.Data[i] = float64(float32(x))
	}
	return h
}

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

func moeCases() []Case {
	var cs []Case
	n, k, E, copies := 37, 3, 6, 1
	et := E + copies
	for _, softmax := range []bool{false, true} {
		for _, norm := range []bool{false, true} {
			op := moe.Route{K: k, Softmax: softmax, Norm: norm, Scale: 2.5}
			variant := map[bool]string{false: "sigmoid", true: "softmax"}[softmax] + map[bool]string{false: "", true: ", normalised"}[norm]
			cs = append(cs, Case{Op: "moe_route", Variant: variant, Shape: fmt.Sprintf("%d tokens, %d experts, top-%d", n, et, k), Tol: Tol{Atol: 2e-6, Rtol: 2e-5}, Node: op,
				In: func(rng *rand.Rand) []*graph.Host {
					return []*graph.Host{Random(rng, graph.F32(n, et), -3, 3), Random(rng, graph.F32(et), -0.5, 0.5)}
				}},
				Case{Op: "moe_route_backward", Variant: variant, Shape: fmt.Sprintf("%d tokens, %d experts, top-%d", n, et, k), Tol: Tol{Atol: 2e-6, Rtol: 2e-5},
					Node: moe.RouteBackward{Route: op},
					In: func(rng *rand.Rand) []*graph.Host {
						out := refOut(op, Random(rng, graph.F32(n, et), -3, 3), graph.NewHost(graph.F32(et)))
						return []*graph.Host{round32(out[0]), out[2], uni(rng, n, k), uni(rng, n, et)}
					}})
		}
	}
	for _, shared := range []bool{false, true} {
		for _, capacity := range []int{0, 5} {
			variant := fmt.Sprintf("shared=%v, capacity %d", shared, capacity)
			cs = append(cs, Case{Op: "moe_dispatch", Variant: variant, Shape: fmt.Sprintf("%d tokens, %d+%d experts, top-%d", n, E, copies, k), Tol: exactTol,
				Node: moe.Dispatch{Experts: E, Shared: shared, Capacity: capacity},
				In:   func(rng *rand.Rand) []*graph.Host { return []*graph.Host{choices(rng, n, k, et)} }})
		}
	}
	d := 20
	routed := func(rng *rand.Rand, shared bool) (*graph.Host, []*graph.Host) {
		idx := choices(rng, n, k, et)
		return idx, refOut(moe.Dispatch{Experts: E, Shared: shared}, idx)
	}
	for _, shared := range []bool{false, true} {
		ks := k
		if shared {
			ks = 1
		}
		sh := shared
		cs = append(cs,
			Case{Op: "moe_gather", Variant: fmt.Sprintf("%d slots per token", ks), Shape: fmt.Sprintf("%d tokens × %d", n, d), Tol: exactTol,
				Node: moe.Gather{SlotsPerToken: ks},
				In: func(rng *rand.Rand) []*graph.Host {
					_, disp := routed(rng, sh)
					return []*graph.Host{uni(rng, n, d), disp[2]}
				}},
			Case{Op: "moe_gather_backward", Variant: fmt.Sprintf("%d slots per token", ks), Shape: fmt.Sprintf("%d tokens × %d", n, d), Tol: Tol{Atol: 2e-6, Rtol: 2e-5},
				Node: moe.GatherBackward{SlotsPerToken: ks, Tokens: n},
				In: func(rng *rand.Rand) []*graph.Host {
					_, disp := routed(rng, sh)
					return []*graph.Host{uni(rng, disp[2].Shape[0], d), disp[3]}
				}},
		)
	}
	combineIn := func(rng *rand.Rand, shared bool) []*graph.Host {
		idx, disp := routed(rng, false)
		rows := disp[2].Shape[0]
		in := []*graph.Host{uni(rng, rows, d), Random(rng, graph.F32(n, k), 0, 1), idx, disp[3], disp[2], uni(rng, n, d)}
		if shared {
			sd := refOut(moe.Dispatch{Experts: E, Shared: true}, idx)
			in = append(in, uni(rng, sd[2].Shape[0], d), sd[3], sd[2])
		}
		return in
	}
	for _, shared := range []bool{false, true} {
		sh := shared
		cs = append(cs, Case{Op: "moe_combine", Variant: fmt.Sprintf("shared=%v, copy expert", shared), Shape: fmt.Sprintf("%d tokens × %d, top-%d", n, d, k),
			Tol: Tol{Atol: 2e-6, Rtol: 2e-5}, Node: moe.Combine{Experts: E, Shared: shared},
			In: func(rng *rand.Rand) []*graph.Host { return combineIn(rng, sh) }})
	}
	cs = append(cs,
		Case{Op: "moe_combine_grad_rows", Variant: "weighted", Shape: fmt.Sprintf("%d tokens × %d, top-%d", n, d, k), Tol: Tol{Atol: 2e-6, Rtol: 2e-5},
			Node: moe.CombineGradRows{SlotsPerToken: k, Weighted: true},
			In: func(rng *rand.Rand) []*graph.Host {
				in := combineIn(rng, false)
				return []*graph.Host{uni(rng, n, d), in[1], in[4]}
			}},
		Case{Op: "moe_combine_grad_gates", Variant: "auto", Shape: fmt.Sprintf("%d tokens × %d, top-%d", n, d, k), Tol: looseSumTol,
			Node: moe.CombineGradGates{Experts: E},
			In: func(rng *rand.Rand) []*graph.Host {
				in := combineIn(rng, false)
				return []*graph.Host{uni(rng, n, d), in[0], in[1], in[2], in[3], in[5]}
			}},
	)
	// Grouped expert matmuls: 6 experts' segments laid out as Dispatch lays them.
	seg := func(rng *rand.Rand, tokens, experts, topk int) (*graph.Host, int) {
		counts := make([]int, experts)
		for t := 0; t < tokens; t++ {
			for _, e := range rng.Perm(experts)[:topk] {
				counts[e]++
			}
		}
		counts[experts-1] = 0 // an empty expert
		s := graph.NewHost(graph.U32(2 * experts))
		start := 0
		for e, c := range counts {
			s.Data[2*e], s.Data[2*e+1] = float64(start), float64(c)
			start += (c + moe.RowAlign - 1) / moe.RowAlign * moe.RowAlign
		}
		return s, start
	}
	Kd, Nd := 36, 20
	for _, v := range []struct {
		v    int
		name string
	}{{0, "auto"}, {1, "v1 element per invocation"}, {3, "v3 register-blocked vec4"}, {7, "v7 x in uniform windows"},
		{10, "v10 x in uniform windows, 16-row tiles"}} {
		for _, transW := range []bool{true, false} {
			what := map[bool]string{true: "x·W_eᵀ (forward)", false: "dy·W_e (input gradient)"}[transW]
			tw := transW
			cs = append(cs, Case{Op: "moe_grouped_matmul", Variant: v.name + ", " + what, Shape: fmt.Sprintf("E=%d top-2, 40 tokens, %d→%d", E, Kd, Nd), Tol: mmTol(Kd),
				Node: moe.GroupedMatMul{Experts: E, TransW: transW, Variant: v.v},
				In: func(rng *rand.Rand) []*graph.Host {
					s, R := seg(rng, 40, E, 2)
					w := uni(rng, E, Nd, Kd)
					if !tw {
						w = uni(rng, E, Kd, Nd)
					}
					return []*graph.Host{uni(rng, R, Kd), w, s}
				}})
		}
	}
	for _, v := range []struct {
		v    int
		name string
	}{{0, "auto"}, {1, "v1 element per invocation"}, {3, "v3 register-blocked vec4"}, {4, "v4 16×16 block, unrolled"}} {
		for _, transW := range []bool{true, false} {
			what := map[bool]string{true: "dW (E, N, K)", false: "dW (E, K, N)"}[transW]
			cs = append(cs, Case{Op: "moe_grouped_weight_grad", Variant: v.name + ", " + what, Shape: fmt.Sprintf("E=%d top-2, 40 tokens, %d→%d", E, Kd, Nd), Tol: mmTol(40),
				Node: moe.GroupedWeightGrad{Experts: E, TransW: transW, Variant: v.v},
				In: func(rng *rand.Rand) []*graph.Host {
					s, R := seg(rng, 40, E, 2)
					return []*graph.Host{uni(rng, R, Nd), uni(rng, R, Kd), s}
				}})
		}
	}
	sparseIn := func(rng *rand.Rand) (*graph.Host, *graph.Host) {
		s, R := seg(rng, 40, E, 2)
		h := graph.NewHost(graph.F32(R, 33))
		for i := range h.Data {
			if rng.Float64() > 0.7 {
				h.Data[i] = float64(float32(rng.Float64() * rng.Float64()))
			}
		}
		return h, s
	}
	cs = append(cs,
		Case{Op: "moe_sparse_down", Variant: "ReLU², 70% zeros", Shape: fmt.Sprintf("E=%d top-2, 40 tokens, 33→%d", E, Nd), Tol: looseSumTol,
			Node: moe.SparseDown{Experts: E},
			In: func(rng *rand.Rand) []*graph.Host {
				h, s := sparseIn(rng)
				return []*graph.Host{h, uni(rng, E, Nd, 33), s}
			}},
		Case{Op: "moe_activation_sparsity", Variant: "auto", Shape: fmt.Sprintf("E=%d top-2, 40 tokens × 33", E), Tol: Tol{Atol: 1e-6, Rtol: 1e-5},
			Node: moe.ActivationSparsity{Experts: E},
			In: func(rng *rand.Rand) []*graph.Host {
				h, s := sparseIn(rng)
				return []*graph.Host{h, s}
			}},
	)
	bl := moe.BalanceLoss{Experts: E, Alpha: 0.01}
	cs = append(cs,
		Case{Op: "moe_balance_loss", Variant: "auto", Shape: fmt.Sprintf("%d tokens, %d experts", n, et), Tol: Tol{Atol: 2e-6, Rtol: 2e-5}, Node: bl,
			In: func(rng *rand.Rand) []*graph.Host {
				return []*graph.Host{Random(rng, graph.F32(n, et), 0.05, 1), choices(rng, n, k, et)}
			}},
		Case{Op: "moe_balance_loss_backward", Variant: "auto", Shape: fmt.Sprintf("%d tokens, %d experts", n, et), Tol: Tol{Atol: 1e-9, Rtol: 1e-5},
			Node: moe.BalanceLossBackward{BalanceLoss: bl},
			In: func(rng *rand.Rand) []*graph.Host {
				scores := Random(rng, graph.F32(n, et), 0.05, 1)
				f := round32(refOut(bl, scores, choices(rng, n, k, et))[1])
				return []*graph.Host{scores, f, u32f(1.5)}
			}},
		Case{Op: "moe_stats", Variant: "auto", Shape: fmt.Sprintf("%d tokens, %d experts", n, et), Tol: looseSumTol, Node: moe.Stats{Experts: E},
			In: func(rng *rand.Rand) []*graph.Host {
				idx, disp := routed(rng, false)
				return []*graph.Host{Random(rng, graph.F32(n, et), 0, 1), idx, disp[1], disp[0]}
			}},
	)
	for _, mode := range []struct {
		m    int
		name string
	}{{moe.CtrlSign, "sign"}, {moe.CtrlPID, "PID"}} {
		op := moe.BiasUpdate{Experts: E, Mode: mode.m, Gamma: 0.01, Kp: 0.05, Ki: 0.01, Kd: 0.02,
			SkipMode: mode.m, SkipTarget: 0.3, SkipGamma: 0.02, SkipKp: 0.3, SkipKi: 0.05, SkipKd: 0.01, IMax: 5}
		cs = append(cs, Case{Op: "moe_bias_update", Variant: mode.name + " controller", Shape: fmt.Sprintf("%d experts", E), Tol: Tol{Atol: 2e-6, Rtol: 2e-5}, Node: op,
			In: func(rng *rand.Rand) []*graph.Host {
				st := Random(rng, graph.F32(moe.StatLoad+E), 0, 0.3)
				st.Data[moe.StatNonFinite] = 0
				return []*graph.Host{Random(rng, graph.F32(E+2), -0.1, 0.1), graph.NewHost(graph.F32(16)), st}
			}})
	}
	cs = append(cs, Case{Op: "moe_reshape", Variant: "copy", Shape: "6×5 → 1×6×5", Tol: exactTol, Node: moe.Reshape{Shape: []int{1, 6, 5}},
		In: func(rng *rand.Rand) []*graph.Host { return []*graph.Host{uni(rng, 6, 5)} }})
	return cs
}
