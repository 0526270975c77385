package graph_test

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
)

// rmsnormTol: y = x·rstd·g and rstd come from a sum of d ≤ ~1k positive
// f32 squares (no cancellation, relative error ≲ 1e-6) and a sqrt; y and
// rstd are O(1).
var rmsnormTol = optest.Tol{Atol: 1e-6, Rtol: 1e-5}

// rmsnormDxTol: dx subtracts x·rstd³/d·Σ g·dy·x (a d-term f32 dot product
// that can cancel) from rstd·g·dy, so its error is absolute, a few ulp of
// the O(1) terms (observed ≤ 2e-7).
var rmsnormDxTol = optest.Tol{Atol: 1e-6, Rtol: 1e-5}

// rmsnormDgTol: dg sums up to 200 rows of random-signed terms |dy·x·rstd| ≲ 2
// in f32; the sum cancels, so the error is absolute and grows with the row
// count: ~√rows·ε·Σ|term| ≈ 1e-4 at most here (observed ≤ 1.1e-5).
var rmsnormDgTol = optest.Tol{Atol: 5e-5, Rtol: 1e-5}

// rmsnormShapes cover awkward d (scalar entries), multiples of 4 (vec4
// entries), d not a multiple of the dg kernel's DG_COLS, more rows than a
// ROW_WG workgroup, d longer than RED_WG, batched rank-3 x, and no rows.
var rmsnormShapes = [][]int{{1, 1}, {3, 3}, {17, 17}, {129, 129}, {1, 4}, {67, 260}, {2, 3, 17}, {2, 65, 128}, {200, 1000}, {0, 8}, {0, 5}}

func rmsnormInputs(rng *rand.Rand, shape []int) (x, g *graph.Host) {
	x = optest.Random(rng, graph.F32(shape...), -2, 2)
	g = optest.Random(rng, graph.F32(shape[len(shape)-1]), 0.5, 1.5)
	return x, g
}

func TestRMSNormMatchesReferenceOnAwkwardShapes(t *testing.T) {
	dev := gputest.Device(t)
	for _, v := range rowwiseVariants {
		for _, shape := range rmsnormShapes {
			t.Run(fmt.Sprintf("variant%d/%v", v, shape), func(t *testing.T) {
				x, g := rmsnormInputs(rand.New(rand.NewSource(1)), shape)
				optest.CheckOp(t, dev, graph.RMSNorm{Variant: v}, rmsnormTol, x, g)
			})
		}
	}
}

// Eps matters when rows are near zero; a large custom Eps must reach the
// kernel (not the 1e-5 default).
func TestRMSNormUsesEps(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(2))
	x := optest.Random(rng, graph.F32(5, 8), -1e-3, 1e-3)
	g := optest.Random(rng, graph.F32(8), 0.5, 1.5)
	for _, v := range rowwiseVariants {
		for _, eps := range []float32{0, 0.5} {
			t.Run(fmt.Sprintf("variant%d/eps%g", v, eps), func(t *testing.T) {
				optest.CheckOp(t, dev, graph.RMSNorm{Eps: eps, Variant: v}, rmsnormTol, x, g)
			})
		}
	}
}

func TestRMSNormBackwardMatchesFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for _, shape := range [][]int{{1, 1}, {3, 5}, {2, 3, 4}} {
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			x, g := rmsnormInputs(rng, shape)
			w := optest.Random(rng, graph.F32(shape...), -1, 1)
			op := graph.RMSNorm{Eps: 0.01} // a visible eps, so its term is checked too
			loss := func(in []*graph.Host) float64 {
				return optest.Dot(optest.MustRef(t, op, in[0], in[1])[0].Data, w.Data)
			}
			grads := func(in []*graph.Host) []*graph.Host {
				rstd := optest.MustRef(t, op, in[0], in[1])[1]
				return optest.MustRef(t, graph.RMSNormBackward{}, in[0], in[1], rstd, w)
			}
			optest.CheckGrad(t, "rmsnorm", []*graph.Host{x, g}, []int{0, 1}, loss, grads, optest.GradTol)
		})
	}
}

func TestRMSNormBackwardMatchesReference(t *testing.T) {
	dev := gputest.Device(t)
	for _, v := range rowwiseVariants {
		for _, shape := range rmsnormShapes {
			t.Run(fmt.Sprintf("variant%d/%v", v, shape), func(t *testing.T) {
				rng := rand.New(rand.NewSource(4))
				x, g := rmsnormInputs(rng, shape)
				rstd := optest.MustRef(t, graph.RMSNorm{}, x, g)[1]
				for i := range rstd.Data {
					rstd.Data[i] = float64(float32(rstd.Data[i]))
				}
				dy := optest.Random(rng, graph.F32(shape...), -1, 1)
				op := graph.RMSNormBackward{Variant: v}
				want := optest.MustRef(t, op, x, g, rstd, dy)
				got, err := graph.RunOp(dev, op, x, g, rstd, dy)
				if err != nil {
					t.Fatal(err)
				}
				optest.Close(t, "dx", got[0].Data, want[0].Data, rmsnormDxTol)
				optest.Close(t, "dg", got[1].Data, want[1].Data, rmsnormDgTol)
			})
		}
	}
}

func TestRMSNormRejectsBadShapes(t *testing.T) {
	f := graph.F32
	for name, in := range map[string][]graph.Spec{
		"rank-1 x":     {f(8), f(8)},
		"gain too big": {f(2, 8), f(9)},
		"rank-2 gain":  {f(2, 8), f(1, 8)},
		"u32 gain":     {f(2, 8), graph.U32(8)},
		"empty axis":   {f(2, 0), f(0)},
		"one input":    {f(2, 8)},
	} {
		if _, err := (graph.RMSNorm{}).Outputs(in); err == nil {
			t.Errorf("forward %s: accepted", name)
		}
	}
	for name, in := range map[string][]graph.Spec{
		"rstd per column": {f(2, 8), f(8), f(8), f(2, 8)},
		"dy shape":        {f(2, 8), f(8), f(2), f(8, 2)},
		"gain":            {f(2, 8), f(4), f(2), f(2, 8)},
		"three inputs":    {f(2, 8), f(8), f(2)},
	} {
		if _, err := (graph.RMSNormBackward{}).Outputs(in); err == nil {
			t.Errorf("backward %s: accepted", name)
		}
	}
}

func BenchmarkRMSNorm1024x1024(b *testing.B) {
	x, g := rmsnormInputs(rand.New(rand.NewSource(5)), []int{1024, 1024})
	for _, v := range rowwiseVariants {
		b.Run(fmt.Sprintf("variant%d", v), func(b *testing.B) { benchRowwise(b, graph.RMSNorm{Variant: v}, 8, x, g) })
	}
}

// Backward bytes: read x and dy, write dx (12 per element; the dg pass
// rereads x and dy, not counted).
func BenchmarkRMSNormBackward1024x1024(b *testing.B) {
	rng := rand.New(rand.NewSource(6))
	x, g := rmsnormInputs(rng, []int{1024, 1024})
	rstd := optest.Random(rng, graph.F32(1024), 0.5, 1.5)
	dy := optest.Random(rng, graph.F32(1024, 1024), -1, 1)
	for _, v := range rowwiseVariants {
		b.Run(fmt.Sprintf("variant%d", v), func(b *testing.B) {
			benchRowwise(b, graph.RMSNormBackward{Variant: v}, 12, x, g, rstd, dy)
		})
	}
}

// With Accumulate, dx is added into the previous value (every variant, odd
// widths and the vec4 path), dg is unchanged, and the reference adds the
// previous value exactly.
func TestRMSNormBackwardAccumulatesDxIntoThePreviousValue(t *testing.T) {
	dev := gputest.Device(t)
	for _, v := range rowwiseVariants {
		for _, shape := range rmsnormShapes {
			t.Run(fmt.Sprintf("variant%d/%v", v, shape), func(t *testing.T) {
				rng := rand.New(rand.NewSource(5))
				x, g := rmsnormInputs(rng, shape)
				rstd := optest.MustRef(t, graph.RMSNorm{}, x, g)[1]
				for i := range rstd.Data {
					rstd.Data[i] = float64(float32(rstd.Data[i]))
				}
				dy := optest.Random(rng, graph.F32(shape...), -1, 1)
				prev := optest.Random(rng, graph.F32(shape...), -1, 1)
				plain := optest.MustRef(t, graph.RMSNormBackward{Variant: v}, x, g, rstd, dy)
				op := graph.RMSNormBackward{Variant: v, Accumulate: true}
				want := optest.MustRef(t, op, x, g, rstd, dy, prev)
				sum := make([]float64, len(prev.Data))
				for i := range sum {
					sum[i] = plain[0].Data[i] + prev.Data[i]
				}
				optest.Close(t, "reference dx", want[0].Data, sum, optest.Tol{Atol: 1e-12})
				got, err := graph.RunOp(dev, op, x, g, rstd, dy, prev)
				if err != nil {
					t.Fatal(err)
				}
				optest.Close(t, "dx", got[0].Data, want[0].Data, rmsnormDxTol)
				optest.Close(t, "dg", got[1].Data, want[1].Data, rmsnormDgTol)
			})
		}
	}
}

// dg computed by extra invocations of dx's dispatch (the default) is bit
// for bit the separate dg dispatch's, and dx is unchanged, for both
// variants, written and accumulated, on every test shape (empty ones too).
func TestRMSNormBackwardInOneDispatchEqualsTwo(t *testing.T) {
	dev := gputest.Device(t)
	for _, v := range rowwiseVariants {
		for _, shape := range rmsnormShapes {
			for _, acc := range []bool{false, true} {
				t.Run(fmt.Sprintf("variant%d/%v/acc=%v", v, shape, acc), func(t *testing.T) {
					rng := rand.New(rand.NewSource(6))
					x, g := rmsnormInputs(rng, shape)
					rstd := optest.MustRef(t, graph.RMSNorm{}, x, g)[1]
					dy := optest.Random(rng, graph.F32(shape...), -1, 1)
					in := []*graph.Host{x, g, rstd, dy}
					if acc {
						in = append(in, optest.Random(rng, graph.F32(shape...), -1, 1))
					}
					one, err := graph.RunOp(dev, graph.RMSNormBackward{Variant: v, Accumulate: acc}, in...)
					if err != nil {
						t.Fatal(err)
					}
					two, err := graph.RunOp(dev, graph.RMSNormBackward{Variant: v, Accumulate: acc, SeparateDG: true}, in...)
					if err != nil {
						t.Fatal(err)
					}
					for i := range one {
						optest.Close(t, fmt.Sprintf("output %d", i), one[i].Data, two[i].Data, optest.Tol{})
					}
				})
			}
		}
	}
}

// Repeating the one-dispatch RMSNorm backward keeps the process's memory flat, for the
// vec4 kernel (d a multiple of 4) and the scalar one. Its dg columns once ran on
// invocations past the rows, and lavapipe then kept ~0.2 MB per dispatch (a training
// process grew by gigabytes over an OCR run); 200 runs of a leaking kernel grow by ~35 MB.
func TestRMSNormBackwardDoesNotLeakMemoryPerDispatch(t *testing.T) {
	dev := gputest.Device(t)
	for _, shape := range [][]int{{1184, 128}, {1184, 130}} { // ocr-small's rows
		rng := rand.New(rand.NewSource(6))
		x, g := rmsnormInputs(rng, shape)
		rstd := optest.MustRef(t, graph.RMSNorm{}, x, g)[1]
		dy := optest.Random(rng, graph.F32(shape...), -1, 1)
		p, err := graph.Prepare(dev, graph.RMSNormBackward{}, 1, x, g, rstd, dy)
		if err != nil {
			t.Fatal(err)
		}
		grew := gputest.MemoryGrowth(t, 10, 200, func() { submitAndWait(t, dev, p) })
		p.Release()
		if grew > 8 {
			t.Fatalf("%v: resident memory grew %.1f MB over 200 RMSNorm backward runs (%.2f MB a run): a kernel leaks per dispatch", shape, grew, grew/200)
		}
		t.Logf("%v: resident memory grew %.2f MB over 200 runs", shape, grew)
	}
}
