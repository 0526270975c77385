package graph_test

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
)

// Tolerances, |gpu−ref| ≤ atol + rtol·|ref| against the float64 reference
// on f32-representable inputs:
var (
	// oneRounding: add, mul, scale, accumulate and relu² are one f32
	// rounding of the exact result (≤ 2⁻²⁴ ≈ 6e-8 relative); results below
	// f32's normal range (1.2e-38) may flush to zero, hence the atol.
	oneRounding = optest.Tol{Atol: 1e-37, Rtol: 1e-7}
	// fewRoundings: relu² backward is three f32 operations (the ×2 is exact),
	// so ≤ 2 roundings ≈ 1.2e-7 relative; atol as above.
	fewRoundings = optest.Tol{Atol: 1e-37, Rtol: 2.5e-7}
	// withExp: the sigmoid family adds WGSL exp (bound 3+2|x| ulp, ~11 ulp
	// on [-4,4]) and a division, then a few more roundings; cancellation in
	// 1 + x·(1−σ) near x ≈ −1.28 makes the error absolute there (~1e-7·|dy|),
	// and σ(x) for x ≪ 0 may flush to zero (|value| < 1e-30), hence atol.
	withExp = optest.Tol{Atol: 1e-6, Rtol: 1e-5}
)

// ewCase is one elementwise op, its input count and its tolerance.
type ewCase struct {
	op     func(variant int) graph.Op
	inputs int
	tol    optest.Tol
}

var ewCases = []ewCase{
	{func(v int) graph.Op { return graph.Add{Variant: v} }, 2, oneRounding},
	{func(v int) graph.Op { return graph.Mul{Variant: v} }, 2, oneRounding},
	{func(v int) graph.Op { return graph.Scale{Factor: -0.37, Variant: v} }, 1, oneRounding},
	{func(v int) graph.Op { return graph.AddInto{Variant: v} }, 2, oneRounding},
	{func(v int) graph.Op { return graph.ReLUSquared{Variant: v} }, 1, oneRounding},
	{func(v int) graph.Op { return graph.ReLUSquaredBackward{Variant: v} }, 2, fewRoundings},
	{func(v int) graph.Op { return graph.SiLU{Variant: v} }, 1, withExp},
	{func(v int) graph.Op { return graph.SiLUBackward{Variant: v} }, 2, withExp},
	{func(v int) graph.Op { return graph.SwiGLU{Variant: v} }, 2, withExp},
	{func(v int) graph.Op { return graph.SwiGLUBackward{Variant: v} }, 3, withExp},
}

var ewVariants = []int{graph.ElementwiseAuto, graph.ElementwiseScalar, graph.ElementwiseVec4}

// Shapes: the awkward sizes, lengths 4k+1..4k+3 (vec4 part plus scalar
// tail), a rank-0 scalar, an empty tensor, and a moderately large shape
// that spans several workgroups and is no multiple of WG·PER.
var ewShapes = [][]int{{1}, {3}, {17}, {129}, {2, 3}, {5, 7}, {4}, {}, {0, 3}, {3, 17, 129}, {61, 1031}}

func TestElementwiseOpsMatchReferenceOnRandomInputs(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(1))
	for _, c := range ewCases {
		for _, v := range ewVariants {
			op := c.op(v)
			for _, shape := range ewShapes {
				t.Run(fmt.Sprintf("%s/v%d/%v", op.Name(), v, shape), func(t *testing.T) {
					in := make([]*graph.Host, c.inputs)
					for i := range in {
						in[i] = optest.Random(rng, graph.F32(shape...), -4, 4)
					}
					optest.CheckOp(t, dev, op, c.tol, in...)
				})
			}
		}
	}
}

// Large-magnitude inputs: exp must not overflow into Inf/NaN anywhere, the
// sigmoid must saturate to exactly 0 or 1, and nothing must lose the sign.
func TestElementwiseOpsAreSafeAtLargeMagnitudes(t *testing.T) {
	dev := gputest.Device(t)
	xs := []float64{100, -100, 88, -88, 89, -89, 1e4, -1e4, 30, -30, 0, 1e-3, -1e-3, 1e-30, -1e-30, 17.5, -17.5}
	rng := rand.New(rand.NewSource(2))
	for _, c := range ewCases {
		for _, v := range ewVariants {
			op := c.op(v)
			t.Run(fmt.Sprintf("%s/v%d", op.Name(), v), func(t *testing.T) {
				in := make([]*graph.Host, c.inputs)
				for i := range in {
					in[i] = graph.NewHost(graph.F32(len(xs)))
					for j := range xs {
						if i == 0 {
							in[i].Data[j] = float64(float32(xs[j]))
						} else { // other operands: moderate, so products stay finite
							in[i].Data[j] = float64(float32(rng.Float64()*4 - 2))
						}
					}
				}
				got := optest.CheckOp(t, dev, op, c.tol, in...)
				for _, h := range got {
					for j, y := range h.Data {
						if math.IsNaN(y) || math.IsInf(y, 0) {
							t.Fatalf("output at x=%g is %g", xs[j], y)
						}
					}
				}
			})
		}
	}
}

// Each backward (and each kernel-free rule documented in elementwise.go)
// against finite differences of its forward: loss = Σ w·forward(in), and
// grads(in, w) gives d loss / d in[k] for every input k.
func TestElementwiseReferenceGradientsMatchFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	shape := []int{3, 17}
	ref := func(op graph.Op, in ...*graph.Host) []*graph.Host { return optest.MustRef(t, op, in...) }
	cases := []struct {
		name    string
		forward graph.Op
		inputs  int
		grads   func(in []*graph.Host, w *graph.Host) []*graph.Host
	}{
		{"relu2", graph.ReLUSquared{}, 1, func(in []*graph.Host, w *graph.Host) []*graph.Host {
			return ref(graph.ReLUSquaredBackward{}, in[0], w)
		}},
		{"silu", graph.SiLU{}, 1, func(in []*graph.Host, w *graph.Host) []*graph.Host {
			return ref(graph.SiLUBackward{}, in[0], w)
		}},
		{"swiglu", graph.SwiGLU{}, 2, func(in []*graph.Host, w *graph.Host) []*graph.Host {
			return ref(graph.SwiGLUBackward{}, in[0], in[1], w)
		}},
		// The kernel-free backwards documented in elementwise.go.
		{"add", graph.Add{}, 2, func(in []*graph.Host, w *graph.Host) []*graph.Host {
			return []*graph.Host{w, w}
		}},
		{"mul", graph.Mul{}, 2, func(in []*graph.Host, w *graph.Host) []*graph.Host {
			return []*graph.Host{ref(graph.Mul{}, w, in[1])[0], ref(graph.Mul{}, w, in[0])[0]}
		}},
		{"scale", graph.Scale{Factor: 1.7}, 1, func(in []*graph.Host, w *graph.Host) []*graph.Host {
			return ref(graph.Scale{Factor: 1.7}, w)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := make([]*graph.Host, c.inputs)
			wrt := make([]int, c.inputs)
			for i := range in {
				in[i] = optest.Random(rng, graph.F32(shape...), -4, 4)
				wrt[i] = i
			}
			w := optest.Random(rng, graph.F32(shape...), -1, 1)
			loss := func(in []*graph.Host) float64 { return optest.Dot(w.Data, ref(c.forward, in...)[0].Data) }
			optest.CheckGrad(t, c.name, in, wrt, loss, func(in []*graph.Host) []*graph.Host { return c.grads(in, w) }, optest.GradTol)
		})
	}
}

// AddInto must add to what the output buffer already holds, not overwrite it.
func TestAddIntoAccumulatesOntoThePreviousValue(t *testing.T) {
	dev := gputest.Device(t)
	a, _ := graph.HostFrom(graph.F32(5), []float64{1, 2, 3, 4, 5})
	prev, _ := graph.HostFrom(graph.F32(5), []float64{10, 20, 30, 40, 50})
	for _, v := range ewVariants {
		got, err := graph.RunOp(dev, graph.AddInto{Variant: v}, a, prev)
		if err != nil {
			t.Fatal(err)
		}
		optest.Close(t, fmt.Sprintf("add_into v%d", v), got[0].Data, []float64{11, 22, 33, 44, 55}, optest.Tol{})
	}
}

func TestElementwiseRejectsMismatchedShapesAndTypes(t *testing.T) {
	bad := []struct {
		op graph.Op
		in []graph.Spec
	}{
		{graph.Add{}, []graph.Spec{graph.F32(3, 4), graph.F32(4, 3)}},
		{graph.Mul{}, []graph.Spec{graph.F32(12), graph.F32(3, 4)}},
		{graph.Add{}, []graph.Spec{graph.F32(3)}},
		{graph.SwiGLUBackward{}, []graph.Spec{graph.F32(3), graph.F32(3), graph.F32(4)}},
		{graph.SiLU{}, []graph.Spec{graph.U32(3)}},
		{graph.AddInto{}, []graph.Spec{graph.F32(3), graph.F32(2)}},
	}
	for _, b := range bad {
		if _, err := b.op.Outputs(b.in); err == nil {
			t.Errorf("%s accepted %v", b.op.Name(), b.in)
		} else {
			t.Logf("%s %v: %v", b.op.Name(), b.in, err)
		}
	}
}

func TestElementwiseRejectsUnknownVariant(t *testing.T) {
	dev := gputest.Device(t)
	x := graph.NewHost(graph.F32(8))
	if _, err := graph.RunOp(dev, graph.SiLU{Variant: 9}, x); err == nil {
		t.Fatal("variant 9 accepted")
	}
}

// Bandwidth on n = 1<<20 elements per variant. Bytes counted are the
// tensors read and written once (AddInto reads and writes y).
func BenchmarkElementwise(b *testing.B) {
	dev := gputest.Device(b)
	const n = 1 << 20
	ops := []struct {
		op      func(v int) graph.Op
		in, out int
	}{
		{func(v int) graph.Op { return graph.Add{Variant: v} }, 2, 1},
		{func(v int) graph.Op { return graph.Scale{Factor: 2, Variant: v} }, 1, 1},
		{func(v int) graph.Op { return graph.SiLU{Variant: v} }, 1, 1},
		{func(v int) graph.Op { return graph.SwiGLU{Variant: v} }, 2, 1},
		{func(v int) graph.Op { return graph.SwiGLUBackward{Variant: v} }, 3, 2},
	}
	for _, o := range ops {
		for _, v := range []int{graph.ElementwiseScalar, graph.ElementwiseVec4} {
			op := o.op(v)
			b.Run(fmt.Sprintf("%s/v%d", op.Name(), v), func(b *testing.B) {
				var bufs []*gpu.Buffer
				mk := func(k int) []*gpu.Buffer {
					var r []*gpu.Buffer
					for i := 0; i < k; i++ {
						buf, err := dev.NewBuffer("bench", gpu.F32, n)
						if err != nil {
							b.Fatal(err)
						}
						r = append(r, buf)
						bufs = append(bufs, buf)
					}
					return r
				}
				defer func() {
					for _, x := range bufs {
						x.Release()
					}
				}()
				in, out := mk(o.in), mk(o.out)
				rec := dev.NewRecorder()
				defer rec.Release()
				if err := op.Encode(dev, rec, in, out); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(4 * n * (o.in + o.out)))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := rec.Submit(); err != nil {
						b.Fatal(err)
					}
					if err := dev.Wait(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// SiluAndMul on a fused [gate | up] input: GPU against the reference for
// every variant on awkward widths (I % 4 ≠ 0 takes the scalar kernel under
// Auto), bit-identical to SwiGLU (and its backward) on the two halves, and
// the backward rule against finite differences.
func TestSiluAndMulMatchesReferenceAndSwiGLU(t *testing.T) {
	dev := gputest.Device(t)
	for _, sh := range [][2]int{{1, 1}, {3, 5}, {17, 4}, {33, 129}, {61, 256}} {
		rows, n := sh[0], sh[1]
		for _, v := range ewVariants {
			if v == graph.ElementwiseVec4 && n%4 != 0 {
				continue
			}
			t.Run(fmt.Sprintf("%dx%d/variant%d", rows, n, v), func(t *testing.T) {
				rng := rand.New(rand.NewSource(31))
				x := optest.Random(rng, graph.F32(rows, 2*n), -4, 4)
				dy := optest.Random(rng, graph.F32(rows, n), -4, 4)
				y := optest.CheckOp(t, dev, graph.SiluAndMul{Variant: v}, withExp, x)
				dx := optest.CheckOp(t, dev, graph.SiluAndMulBackward{Variant: v}, withExp, x, dy)
				gate, up := graph.NewHost(graph.F32(rows, n)), graph.NewHost(graph.F32(rows, n))
				for r := 0; r < rows; r++ {
					copy(gate.Data[r*n:(r+1)*n], x.Data[r*2*n:r*2*n+n])
					copy(up.Data[r*n:(r+1)*n], x.Data[r*2*n+n:(r+1)*2*n])
				}
				sw, err := graph.RunOp(dev, graph.SwiGLU{Variant: v}, gate, up)
				if err != nil {
					t.Fatal(err)
				}
				swb, err := graph.RunOp(dev, graph.SwiGLUBackward{Variant: v}, gate, up, dy)
				if err != nil {
					t.Fatal(err)
				}
				if v == graph.ElementwiseScalar || n%4 == 0 { // same kernel arithmetic as the unfused one
					optest.Close(t, "y vs swiglu", y[0].Data, sw[0].Data, optest.Tol{})
					for r := 0; r < rows; r++ {
						optest.Close(t, "dgate vs swiglu_bwd", dx[0].Data[r*2*n:r*2*n+n], swb[0].Data[r*n:(r+1)*n], optest.Tol{})
						optest.Close(t, "dup vs swiglu_bwd", dx[0].Data[r*2*n+n:(r+1)*2*n], swb[1].Data[r*n:(r+1)*n], optest.Tol{})
					}
				}
			})
		}
	}
	rng := rand.New(rand.NewSource(32))
	x := optest.Random(rng, graph.F32(3, 10), -2, 2)
	w := optest.Random(rng, graph.F32(3, 5), -1, 1)
	loss := func(in []*graph.Host) float64 {
		return optest.Dot(optest.MustRef(t, graph.SiluAndMul{}, in[0])[0].Data, w.Data)
	}
	grads := func(in []*graph.Host) []*graph.Host {
		return optest.MustRef(t, graph.SiluAndMulBackward{}, in[0], w)
	}
	optest.CheckGrad(t, "silu_and_mul", []*graph.Host{x}, []int{0}, loss, grads, optest.GradTol)
	_, err := graph.SiluAndMul{}.Outputs([]graph.Spec{graph.F32(3, 7)})
	if err == nil {
		t.Fatal("an odd column count was accepted")
	}
	_, err = graph.SiluAndMulBackward{}.Outputs([]graph.Spec{graph.F32(3, 8), graph.F32(3, 5)})
	if err == nil {
		t.Fatal("a dy of the wrong width was accepted")
	}
	_, err = graph.SiluAndMul{Variant: graph.ElementwiseVec4}.Outputs([]graph.Spec{graph.F32(3, 6)})
	if err != nil {
		t.Fatal(err)
	}
}
