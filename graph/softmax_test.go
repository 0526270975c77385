package graph_test

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
)

// softmaxTol: outputs lie in [0, 1]; f32 exp is good to a few ulp for the
// arguments seen here (|x − m| ≲ 2000, where tiny results vanish below atol)
// and the row sum of up to ~1k terms adds ≲ 1e-6 relative error (observed
// ≤ 3e-7 on lavapipe and llvmpipe GL; 1e-5 leaves room for GPUs' exp).
var softmaxTol = optest.Tol{Atol: 1e-6, Rtol: 1e-5}

// softmaxBwdTol: dx = y·(dy − s), with s a dot product of up to ~1k f32
// products of magnitude ≤ 1; cancellation in dy − s makes the error
// absolute, ≲ 1e-7 (observed ≤ 5e-8 on lavapipe and llvmpipe GL).
var softmaxBwdTol = optest.Tol{Atol: 1e-6, Rtol: 1e-5}

var rowwiseVariants = []int{graph.RowwiseSerial, graph.RowwiseWorkgroup}

// softmaxShapes cover awkward row lengths (scalar entries), multiples of 4
// (vec4 entries), more rows than one workgroup of ROW_WG, rows longer than
// RED_WG, and a batched rank-3 input.
var softmaxShapes = [][]int{{1, 1}, {3, 3}, {17, 17}, {129, 129}, {5, 4}, {67, 260}, {2, 3, 17}, {2, 65, 128}, {200, 1000}}

func TestSoftmaxMatchesReferenceOnAwkwardShapes(t *testing.T) {
	dev := gputest.Device(t)
	for _, v := range rowwiseVariants {
		for _, shape := range softmaxShapes {
			t.Run(fmt.Sprintf("variant%d/%v", v, shape), func(t *testing.T) {
				rng := rand.New(rand.NewSource(1))
				x := optest.Random(rng, graph.F32(shape...), -4, 4)
				optest.CheckOp(t, dev, graph.Softmax{Variant: v}, softmaxTol, x)
			})
		}
	}
}

// Logits of ±1e3 overflow exp without the max subtraction; rows near +1e3
// with small spreads check that the subtraction, not clamping, gives the
// answer.
func TestSoftmaxIsStableForLargeLogits(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(2))
	spread := optest.Random(rng, graph.F32(9, 36), -1000, 1000)
	high := optest.Random(rng, graph.F32(9, 37), -5, 5)
	for i := range high.Data {
		high.Data[i] = float64(float32(1000 + high.Data[i]))
		if i%3 == 0 {
			high.Data[i] = -high.Data[i]
		}
	}
	for _, v := range rowwiseVariants {
		for name, x := range map[string]*graph.Host{"spread": spread, "high": high} {
			t.Run(fmt.Sprintf("variant%d/%s", v, name), func(t *testing.T) {
				got := optest.CheckOp(t, dev, graph.Softmax{Variant: v}, softmaxTol, x)
				for i, y := range got[0].Data {
					if math.IsNaN(y) || math.IsInf(y, 0) {
						t.Fatalf("y[%d] = %g", i, y)
					}
				}
			})
		}
	}
}

func TestSoftmaxBackwardMatchesFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for _, shape := range [][]int{{1, 1}, {3, 5}, {2, 3, 4}} {
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			x := optest.Random(rng, graph.F32(shape...), -2, 2)
			w := optest.Random(rng, graph.F32(shape...), -1, 1)
			loss := func(in []*graph.Host) float64 {
				return optest.Dot(optest.MustRef(t, graph.Softmax{}, in[0])[0].Data, w.Data)
			}
			grads := func(in []*graph.Host) []*graph.Host {
				y := optest.MustRef(t, graph.Softmax{}, in[0])[0]
				return optest.MustRef(t, graph.SoftmaxBackward{}, y, w)
			}
			optest.CheckGrad(t, "softmax", []*graph.Host{x}, []int{0}, loss, grads, optest.GradTol)
		})
	}
}

func TestSoftmaxBackwardMatchesReference(t *testing.T) {
	dev := gputest.Device(t)
	for _, v := range rowwiseVariants {
		for _, shape := range softmaxShapes {
			t.Run(fmt.Sprintf("variant%d/%v", v, shape), func(t *testing.T) {
				rng := rand.New(rand.NewSource(4))
				y := optest.MustRef(t, graph.Softmax{}, optest.Random(rng, graph.F32(shape...), -4, 4))[0]
				for i := range y.Data {
					y.Data[i] = float64(float32(y.Data[i]))
				}
				dy := optest.Random(rng, graph.F32(shape...), -1, 1)
				optest.CheckOp(t, dev, graph.SoftmaxBackward{Variant: v}, softmaxBwdTol, y, dy)
			})
		}
	}
}

func TestSoftmaxRejectsBadShapes(t *testing.T) {
	for name, in := range map[string][]graph.Spec{
		"rank 1":     {graph.F32(4)},
		"rank 4":     {graph.F32(1, 2, 3, 4)},
		"u32":        {graph.U32(2, 4)},
		"two inputs": {graph.F32(2, 4), graph.F32(2, 4)},
	} {
		if _, err := (graph.Softmax{}).Outputs(in); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := (graph.SoftmaxBackward{}).Outputs([]graph.Spec{graph.F32(2, 4), graph.F32(2, 5)}); err == nil {
		t.Error("backward with mismatched y, dy accepted")
	}
	if _, err := (graph.SoftmaxBackward{}).Outputs([]graph.Spec{graph.F32(2, 4)}); err == nil {
		t.Error("backward with one input accepted")
	}
}

// Variant 0 resolves per adapter (serial on CPU drivers); whichever it
// picks must agree with the reference, and unknown variants are errors.
func TestRowwiseOpsAutoVariantMatchesReferenceAndUnknownIsRejected(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(7))
	x := optest.Random(rng, graph.F32(5, 12), -4, 4)
	dy := optest.Random(rng, graph.F32(5, 12), -1, 1)
	g := optest.Random(rng, graph.F32(12), 0.5, 1.5)
	y := optest.CheckOp(t, dev, graph.Softmax{}, softmaxTol, x)[0]
	optest.CheckOp(t, dev, graph.SoftmaxBackward{}, softmaxBwdTol, y, dy)
	rstd := optest.CheckOp(t, dev, graph.RMSNorm{}, rmsnormTol, x, g)[1]
	got, err := graph.RunOp(dev, graph.RMSNormBackward{}, x, g, rstd, dy)
	if err != nil {
		t.Fatal(err)
	}
	want := optest.MustRef(t, graph.RMSNormBackward{}, x, g, rstd, dy)
	optest.Close(t, "dx", got[0].Data, want[0].Data, rmsnormDxTol)
	optest.Close(t, "dg", got[1].Data, want[1].Data, rmsnormDgTol)

	for _, run := range []struct {
		op graph.Op
		in []*graph.Host
	}{
		{graph.Softmax{Variant: 7}, []*graph.Host{x}},
		{graph.SoftmaxBackward{Variant: 7}, []*graph.Host{y, dy}},
		{graph.RMSNorm{Variant: 7}, []*graph.Host{x, g}},
		{graph.RMSNormBackward{Variant: 7}, []*graph.Host{x, g, rstd, dy}},
	} {
		if _, err := graph.RunOp(dev, run.op, run.in...); err == nil {
			t.Errorf("%s: variant 7 accepted", run.op.Name())
		}
	}
}

// benchRowwise times op and reports GB/s counting bytesPerElem bytes moved
// per element of the first input (forward: read x + write y = 8).
func benchRowwise(b *testing.B, op graph.Op, bytesPerElem int, in ...*graph.Host) {
	sec := optest.BenchOp(b, gputest.Device(b), op, in...)
	b.ReportMetric(float64(bytesPerElem*in[0].Len())/sec/1e9, "GB/s")
}

func BenchmarkSoftmax1024x1024(b *testing.B) {
	x := optest.Random(rand.New(rand.NewSource(5)), graph.F32(1024, 1024), -4, 4)
	for _, v := range rowwiseVariants {
		b.Run(fmt.Sprintf("variant%d", v), func(b *testing.B) { benchRowwise(b, graph.Softmax{Variant: v}, 8, x) })
	}
}

func BenchmarkSoftmaxBackward1024x1024(b *testing.B) {
	rng := rand.New(rand.NewSource(6))
	y := optest.Random(rng, graph.F32(1024, 1024), 0, 1e-3)
	dy := optest.Random(rng, graph.F32(1024, 1024), -1, 1)
	for _, v := range rowwiseVariants {
		b.Run(fmt.Sprintf("variant%d", v), func(b *testing.B) { benchRowwise(b, graph.SoftmaxBackward{Variant: v}, 12, y, dy) })
	}
}
