package graph_test

import (
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/x448/float16"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
)

// mmTol bounds f32 summation error for a length-K dot product of values in
// [-1, 1]: each of the K additions rounds by at most 2^-24 of a partial sum
// whose magnitude is at most K, so a loose running bound is K·2^-22 absolute.
func mmTol(K int) optest.Tol { return optest.Tol{Atol: float64(K) * 2.4e-7, Rtol: 1e-5} }

// shapeOf returns the stored shape of an operand given its logical rows and
// columns in op(X) and whether it is transposed.
func shapeOf(batch, rows, cols int, trans bool) []int {
	if trans {
		rows, cols = cols, rows
	}
	if batch > 0 {
		return []int{batch, rows, cols}
	}
	return []int{rows, cols}
}

func TestMatMulMatchesReferenceInEveryLayoutVariantAndAwkwardShape(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(2))
	sizes := [][3]int{{1, 1, 1}, {3, 17, 129}, {129, 3, 17}, {17, 129, 3}, {16, 20, 12}, {33, 64, 36}, {64, 8, 128}}
	layouts := [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}}
	for _, v := range []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 12} {
		for _, l := range layouts {
			for _, s := range sizes {
				M, N, K := s[0], s[1], s[2]
				op := graph.MatMul{TransA: l[0], TransB: l[1], Variant: v}
				t.Run(fmt.Sprintf("v%d/%s/M%dN%dK%d", v, op.Name(), M, N, K), func(t *testing.T) {
					a := optest.Random(rng, graph.F32(shapeOf(0, M, K, l[0])...), -1, 1)
					b := optest.Random(rng, graph.F32(shapeOf(0, K, N, l[1])...), -1, 1)
					optest.CheckOp(t, dev, op, mmTol(K), a, b)
				})
			}
		}
	}
}

func TestMatMulTileSweepIsCorrect(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(3))
	for _, tile := range []graph.MatMulTile{{TM: 4, TNV: 1}, {TM: 8, TNV: 2}, {TM: 4, TNV: 4, WGX: 4, WGY: 16}, {TM: 2, TNV: 1}} {
		for _, l := range [][2]bool{{false, false}, {true, false}, {false, true}} {
			op := graph.MatMul{TransA: l[0], TransB: l[1], Variant: 3, Tile: tile}
			t.Run(fmt.Sprintf("%s/%+v", op.Name(), tile), func(t *testing.T) {
				M, N, K := 37, 68, 44
				a := optest.Random(rng, graph.F32(shapeOf(0, M, K, l[0])...), -1, 1)
				b := optest.Random(rng, graph.F32(shapeOf(0, K, N, l[1])...), -1, 1)
				if l[0] { // tn4 needs M%4 = 0
					a = optest.Random(rng, graph.F32(shapeOf(0, 36, K, true)...), -1, 1)
				}
				optest.CheckOp(t, dev, op, mmTol(K), a, b)
			})
		}
	}
}

// Variant 7 dispatches once per 64 KiB window of A rows; these shapes need
// several windows, a shifted last window, and K large enough that a window
// holds only a few row blocks.
func TestMatMulUniformWindowsCoverEveryRow(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(10))
	for _, s := range [][3]int{{100, 12, 1024}, {37, 20, 2048}, {16, 8, 4096}, {129, 36, 256}, {7, 8, 512}, {200, 8, 1024}} {
		for _, tile := range []graph.MatMulTile{{TM: 8, TNV: 1, WGX: 16, WGY: 1}, {TM: 16, TNV: 2, WGX: 16, WGY: 1}, {TM: 8, TNV: 1, WGX: 16, WGY: 1, Windows: 2}} {
			for _, accum := range []bool{false, true} {
				M, N, K := s[0], s[1], s[2]
				op := graph.MatMul{Variant: 7, Tile: tile, Accumulate: accum}
				t.Run(fmt.Sprintf("M%dN%dK%d/%dx%dx%d/acc%v", M, N, K, tile.Windows, tile.TM, tile.TNV*4, accum), func(t *testing.T) {
					a := optest.Random(rng, graph.F32(M, K), -1, 1)
					b := optest.Random(rng, graph.F32(K, N), -1, 1)
					in := []*graph.Host{a, b}
					if accum {
						in = append(in, optest.Random(rng, graph.F32(M, N), -1, 1))
					}
					optest.CheckOp(t, dev, op, mmTol(K), in...)
				})
			}
		}
	}
}

// Variant 8 (A·Bᵀ) dispatches once per window of B rows, i.e. columns of C.
func TestMatMulNTUniformWindowsCoverEveryColumn(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(12))
	for _, s := range [][3]int{{12, 100, 1024}, {20, 37, 2048}, {3, 8, 4096}, {129, 36, 256}, {5, 13, 512}, {1, 200, 1024}} {
		for _, tile := range []graph.MatMulTile{{}, {TM: 8, TNV: 2, WGX: 8, WGY: 1}, {TM: 4, TNV: 1, WGX: 16, WGY: 1, Windows: 2}} {
			for _, accum := range []bool{false, true} {
				M, N, K := s[0], s[1], s[2]
				op := graph.MatMul{TransB: true, Variant: 8, Tile: tile, Accumulate: accum}
				t.Run(fmt.Sprintf("M%dN%dK%d/%+v/acc%v", M, N, K, tile, accum), func(t *testing.T) {
					a := optest.Random(rng, graph.F32(M, K), -1, 1)
					b := optest.Random(rng, graph.F32(N, K), -1, 1)
					in := []*graph.Host{a, b}
					if accum {
						in = append(in, optest.Random(rng, graph.F32(M, N), -1, 1))
					}
					optest.CheckOp(t, dev, op, mmTol(K), in...)
				})
			}
		}
	}
}

// Variant 12 (one row of C per invocation, for a narrow C such as a router's logits) against the
// reference at awkward shapes: a single row, rows either side of a 64-row workgroup, every N up
// to 16 that matters (1, 3, 9 experts, 16), K of one vec4 and an odd count of them; plain,
// accumulating and with a residual. The automatic choice on a CPU adapter takes it for the
// router's shape, and falls back where it cannot run (K not a multiple of 4, N over 16).
func TestMatMulNarrowMatchesReference(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(13))
	for _, M := range []int{1, 63, 65, 300} {
		for _, N := range []int{1, 3, 9, 16} {
			for _, K := range []int{4, 132} {
				a := optest.Random(rng, graph.F32(M, K), -1, 1)
				b := optest.Random(rng, graph.F32(N, K), -1, 1)
				c0 := optest.Random(rng, graph.F32(M, N), -3, 3)
				t.Run(fmt.Sprintf("M%dN%dK%d", M, N, K), func(t *testing.T) {
					optest.CheckOp(t, dev, graph.MatMul{TransB: true, Variant: 12}, mmTol(K), a, b)
					optest.CheckOp(t, dev, graph.MatMul{TransB: true, Variant: 12, Accumulate: true}, mmTol(K), a, b, c0)
					optest.CheckOp(t, dev, graph.MatMul{TransB: true, Variant: 12, Residual: true}, mmTol(K), a, b, c0)
				})
			}
		}
	}
	for _, s := range [][3]int{{10496, 9, 128}, {40, 9, 126}, {40, 17, 128}} {
		M, N, K := s[0], s[1], s[2]
		t.Run(fmt.Sprintf("auto/M%dN%dK%d", M, N, K), func(t *testing.T) {
			a := optest.Random(rng, graph.F32(M, K), -1, 1)
			b := optest.Random(rng, graph.F32(N, K), -1, 1)
			optest.CheckOp(t, dev, graph.MatMul{TransB: true}, mmTol(K), a, b)
		})
	}
}

func TestMatMulBatchedAndBroadcastWeights(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(4))
	for _, v := range []int{0, 2} {
		for _, l := range [][2]bool{{false, false}, {true, false}, {false, true}} {
			op := graph.MatMul{TransA: l[0], TransB: l[1], Variant: v}
			for _, ba := range [][2]int{{3, 3}, {3, 0}, {0, 3}} {
				t.Run(fmt.Sprintf("v%d/%s/batchA%d/batchB%d", v, op.Name(), ba[0], ba[1]), func(t *testing.T) {
					M, N, K := 12, 20, 8
					a := optest.Random(rng, graph.F32(shapeOf(ba[0], M, K, l[0])...), -1, 1)
					b := optest.Random(rng, graph.F32(shapeOf(ba[1], K, N, l[1])...), -1, 1)
					out := optest.CheckOp(t, dev, op, mmTol(K), a, b)
					require.Equal(t, []int{3, M, N}, out[0].Shape)
				})
			}
		}
	}
}

func TestMatMulAccumulatesIntoOutput(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(5))
	for _, v := range []int{1, 2, 3, 4} {
		for _, l := range [][2]bool{{false, false}, {true, false}, {false, true}} {
			op := graph.MatMul{TransA: l[0], TransB: l[1], Variant: v, Accumulate: true}
			t.Run(fmt.Sprintf("v%d/%s", v, op.Name()), func(t *testing.T) {
				M, N, K := 8, 12, 16
				a := optest.Random(rng, graph.F32(shapeOf(0, M, K, l[0])...), -1, 1)
				b := optest.Random(rng, graph.F32(shapeOf(0, K, N, l[1])...), -1, 1)
				c0 := optest.Random(rng, graph.F32(M, N), -5, 5)
				out := optest.CheckOp(t, dev, op, mmTol(K), a, b, c0)
				plain := optest.MustRef(t, graph.MatMul{TransA: l[0], TransB: l[1]}, a, b)
				for i := range out[0].Data { // the accumulator really was added
					require.InDelta(t, plain[0].Data[i]+c0.Data[i], out[0].Data[i], 1e-4)
				}
			})
		}
	}
}

// The backward of C = A·B is dA = dC·Bᵀ and dB = Aᵀ·dC: the layouts this op
// provides. Check those compositions against finite differences.
func TestMatMulGradientLayoutsMatchFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	a := optest.Random(rng, graph.F32(3, 5), -1, 1)
	b := optest.Random(rng, graph.F32(5, 4), -1, 1)
	w := optest.Random(rng, graph.F32(3, 4), -1, 1)
	loss := func(in []*graph.Host) float64 {
		return optest.Dot(optest.MustRef(t, graph.MatMul{}, in[0], in[1])[0].Data, w.Data)
	}
	grads := func(in []*graph.Host) []*graph.Host {
		da := optest.MustRef(t, graph.MatMul{TransB: true}, w, in[1])[0]
		db := optest.MustRef(t, graph.MatMul{TransA: true}, in[0], w)[0]
		return []*graph.Host{da, db}
	}
	optest.CheckGrad(t, "matmul", []*graph.Host{a, b}, []int{0, 1}, loss, grads, optest.GradTol)
}

func TestMatMulRejectsBadShapes(t *testing.T) {
	cases := []struct {
		name string
		op   graph.MatMul
		a, b graph.Spec
	}{
		{"inner mismatch", graph.MatMul{}, graph.F32(3, 4), graph.F32(5, 6)},
		{"rank 1", graph.MatMul{}, graph.F32(3), graph.F32(3, 2)},
		{"batch mismatch", graph.MatMul{}, graph.F32(2, 3, 4), graph.F32(3, 4, 5)},
		{"integer operand", graph.MatMul{}, graph.U32(3, 4), graph.F32(4, 5)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.op.Outputs([]graph.Spec{c.a, c.b})
			require.Error(t, err)
		})
	}
}

func TestMatMulF16WeightsMatchReference(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(7))
	M, N, K := 17, 24, 36
	a := optest.Random(rng, graph.F32(M, K), -1, 1)
	b := optest.Random(rng, graph.F32(K, N), -1, 1)
	for i, x := range b.Data { // values representable in f16, so the reference sees what the GPU sees
		b.Data[i] = float64(float16.Fromfloat32(float32(x)).Float32())
	}
	b.DType = gpu.F16
	// f16 storage, f32 accumulation: same bound as f32.
	optest.CheckOp(t, dev, graph.MatMulF16{}, mmTol(K), a, b)
	// batched activations against shared weights
	a3 := optest.Random(rng, graph.F32(2, M, K), -1, 1)
	optest.CheckOp(t, dev, graph.MatMulF16{}, mmTol(K), a3, b)
	// the (N, K) weight layout of a linear layer: A·Bᵀ
	bt := optest.Random(rng, graph.F32(N, K), -1, 1)
	for i, x := range bt.Data {
		bt.Data[i] = float64(float16.Fromfloat32(float32(x)).Float32())
	}
	bt.DType = gpu.F16
	for _, M := range []int{1, 3, 17} {
		optest.CheckOp(t, dev, graph.MatMulF16{TransB: true}, mmTol(K), optest.Random(rng, graph.F32(M, K), -1, 1), bt)
	}
	// sizes the packed kernel cannot take are refused as unsupported
	odd := optest.Random(rng, graph.F32(K, 5), -1, 1)
	odd.DType = gpu.F16
	_, err := graph.RunOp(dev, graph.MatMulF16{}, a, odd)
	require.True(t, errors.Is(err, gpu.ErrUnsupported), "want ErrUnsupported, got %v", err)
}

// llvmpipe ends loops after 65535 iterations per invocation; a reduction
// longer than that must still be right (vec4 variants loop K/4 times) or
// be refused, never silently truncated.
func TestMatMulLongReductionsAreRightOrRefused(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(11))
	K := 70000
	a := optest.Random(rng, graph.F32(2, K), -1, 1)
	b := optest.Random(rng, graph.F32(K, 4), -1, 1)
	for _, v := range []int{0, 1, 2, 3} {
		op := graph.MatMul{Variant: v}
		want := optest.MustRef(t, op, a, b)
		got, err := graph.RunOp(dev, op, a, b)
		if err != nil {
			require.ErrorIs(t, err, gpu.ErrUnsupported)
			continue
		}
		optest.Close(t, fmt.Sprintf("v%d K=%d", v, K), got[0].Data, want[0].Data, mmTol(K))
	}
	odd := optest.Random(rng, graph.F32(K, 3), -1, 1) // N%4 ≠ 0: no vec4 variant
	_, err := graph.RunOp(dev, graph.MatMul{}, a, odd)
	if loopBudgetApplies(dev) {
		require.ErrorIs(t, err, gpu.ErrUnsupported)
	}
}

func loopBudgetApplies(dev *gpu.Device) bool { return dev.Info.DeviceType == "cpu" }

// On CPU drivers a training step's large matmuls copy or transpose their
// operands into scratch and run the uniform-window kernel (variant 9); this
// covers Aᵀ·B and A·Bᵀ directly (plain and accumulating), and, in a
// planned graph where A and C share the activation arena as in a training
// step, A·B (dx = dy·W) and A·Bᵀ with a residual (y = r + x·Wᵀ), both as
// variant 9 by name and as the automatic choice. K = 300 rows are not
// uniform-aligned, so that shape checks the fallback; the others run
// variant 9 (TestMatMulAutomaticChoiceRecordsTheStepPath checks the
// dispatches themselves), with 4×4-block transposes where both sizes are
// multiples of 4 and the scalar one for 257 rows.
func TestMatMulTransposedPathsMatchReference(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(13))
	for _, s := range [][3]int{{256, 256, 300}, {300, 260, 512}, {257, 256, 1024}, {1024, 256, 1536}} {
		M, N, K := s[0], s[1], s[2]
		for _, op := range []graph.MatMul{{TransA: true, Variant: 9}, {TransB: true, Variant: 9}} {
			t.Run(fmt.Sprintf("%s/M%dN%dK%d", op.Name(), M, N, K), func(t *testing.T) {
				a := optest.Random(rng, graph.F32(shapeOf(0, M, K, op.TransA)...), -1, 1)
				b := optest.Random(rng, graph.F32(shapeOf(0, K, N, op.TransB)...), -1, 1)
				optest.CheckOp(t, dev, op, mmTol(K), a, b)
				op.Accumulate = true
				c0 := optest.Random(rng, graph.F32(M, N), -1, 1)
				optest.CheckOp(t, dev, op, mmTol(K+1), a, b, c0)
			})
		}
		for _, op := range []graph.MatMul{{Variant: 9}, {}, {TransB: true, Residual: true, Variant: 9}, {TransB: true, Residual: true}} {
			t.Run(fmt.Sprintf("%s-in-arena/v%d/M%dN%dK%d", op.Name(), op.Variant, M, N, K), func(t *testing.T) {
				g := graph.New()
				x := g.Input("x", graph.F32(M, K))
				ws := graph.F32(K, N)
				if op.TransB {
					ws = graph.F32(N, K)
				}
				w := g.Param("w", ws)
				a := g.Apply1(graph.Scale{Factor: 1}, x) // an arena activation
				r := g.Input("r", graph.F32(M, N))
				in := []*graph.Tensor{a, w}
				if op.Residual {
					in = append(in, g.Apply1(graph.Scale{Factor: 2}, r)) // a residual in the arena
				}
				c := g.Apply1(op, in...) // A and C in the arena
				inputs := map[*graph.Tensor][]float64{x: optest.Random(rng, x.Spec, -1, 1).Data, w: optest.Random(rng, w.Spec, -1, 1).Data}
				if op.Residual {
					inputs[r] = optest.Random(rng, r.Spec, -1, 1).Data
				}
				got, want := plannedOnGPUAndReference(t, dev, g, c, inputs)
				optest.Close(t, "c", got, want, mmTol(K+1))
			})
		}
	}
}

// Variant 11 (Aᵀ·B as a sum over rows in passes of 256): partial row and
// column blocks (M, N not multiples of 16), one row, reductions
// that end inside a pass and span several, plain, accumulating and with a
// residual; the automatic choice at ocr-small's weight-gradient shape
// (N = 128) takes it; sizes it cannot run are an error, not a wrong result.
func TestMatMulRowPassesMatchReference(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(21))
	for _, s := range [][3]int{{4, 4, 1}, {20, 36, 7}, {68, 12, 256}, {36, 132, 257}, {128, 20, 600}, {384, 128, 1184}, {16, 16, 255}} {
		M, N, K := s[0], s[1], s[2]
		for _, op := range []graph.MatMul{{TransA: true, Variant: 11}, {TransA: true, Variant: 11, Accumulate: true}, {TransA: true, Variant: 11, Residual: true}} {
			t.Run(fmt.Sprintf("acc%v/res%v/M%dN%dK%d", op.Accumulate, op.Residual, M, N, K), func(t *testing.T) {
				in := []*graph.Host{optest.Random(rng, graph.F32(K, M), -1, 1), optest.Random(rng, graph.F32(K, N), -1, 1)}
				if op.Accumulate || op.Residual {
					in = append(in, optest.Random(rng, graph.F32(M, N), -1, 1))
				}
				optest.CheckOp(t, dev, op, mmTol(K+1), in...)
			})
		}
	}
	t.Run("automatic at ocr-small's shape", func(t *testing.T) {
		a, _ := dev.NewBuffer("a", gpu.F32, 1184, 384)
		b, _ := dev.NewBuffer("b", gpu.F32, 1184, 128)
		c, _ := dev.NewBuffer("c", gpu.F32, 384, 128)
		defer a.Release()
		defer b.Release()
		defer c.Release()
		rec := dev.NewRecorder()
		defer rec.Release()
		require.NoError(t, graph.MatMul{TransA: true}.Encode(dev, rec, []*gpu.Buffer{a, b}, []*gpu.Buffer{c}))
		if !loopBudgetApplies(dev) { // not a CPU adapter: the register-blocked kernels
			for _, st := range rec.Steps() {
				require.NotContains(t, st.Name(), "matmul_tn_v11_")
			}
			return
		}
		require.Equal(t, 5, rec.Len(), "1184 rows in passes of 256")
		for _, st := range rec.Steps() {
			require.Contains(t, st.Name(), "matmul_tn_v11_")
		}
	})
	_, err := optest.Check(dev, graph.MatMul{TransA: true, Variant: 11}, mmTol(8), graph.NewHost(graph.F32(8, 6)), graph.NewHost(graph.F32(8, 4)))
	require.ErrorContains(t, err, "multiples of 4")
}

// An operand that shares a GPU buffer with the other operand or the output
// cannot be bound as uniform; the uniform-window variants must step aside.
func TestMatMulWithSharedOperandBuffersStillRuns(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(14))
	for _, c := range []struct {
		op   graph.MatMul
		K, M int
	}{{graph.MatMul{TransB: true}, 256, 64}, {graph.MatMul{}, 64, 64}, {graph.MatMul{TransB: true, Variant: 8}, 256, 32}, {graph.MatMul{Variant: 7}, 64, 64}} {
		t.Run(fmt.Sprintf("%s/v%d", c.op.Name(), c.op.Variant), func(t *testing.T) {
			g := graph.New()
			x := g.Input("x", graph.F32(c.M, c.K))
			y := g.Apply1(c.op, x, x) // x·xᵀ or x·x: one buffer for both operands
			got, want := plannedOnGPUAndReference(t, dev, g, y, map[*graph.Tensor][]float64{x: optest.Random(rng, x.Spec, -1, 1).Data})
			optest.Close(t, "y", got, want, mmTol(c.K))
		})
	}
}

// plannedOnGPUAndReference plans g for out (activations in one arena, as
// in training), runs it once on dev and once on the reference executor
// with the given persistent tensors set, and returns out from each.
func plannedOnGPUAndReference(t *testing.T, dev *gpu.Device, g *graph.Graph, out *graph.Tensor, inputs map[*graph.Tensor][]float64) (got, want []float64) {
	t.Helper()
	plan, err := g.Plan([]*graph.Tensor{out}, uint64(dev.Limits.MinStorageBufferOffsetAlignment))
	require.NoError(t, err)
	ex, err := graph.NewGPU(dev, plan, nil)
	require.NoError(t, err)
	defer ex.Close()
	var res [2][]float64
	for i, e := range []graph.Executor{ex, graph.NewReference(plan)} {
		for tensor, v := range inputs {
			require.NoError(t, e.Set(tensor, v))
		}
		require.NoError(t, e.Run())
		v, err := e.Get(out)
		require.NoError(t, err)
		res[i] = v[0]
	}
	return res[0], res[1]
}

// C = R + op(A)·op(B) (MatMul.Residual): every layout and variant against
// the reference on awkward shapes, through the register-blocked kernels'
// store where they run and the copy-then-accumulate path elsewhere; and bit
// for bit what the product followed by an Add gives, where the product is
// the register-blocked kernel (the shipped models' case).
func TestMatMulResidualMatchesReferenceAndProductPlusAdd(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(12))
	sizes := [][3]int{{1, 1, 1}, {3, 17, 129}, {129, 3, 17}, {33, 64, 36}, {64, 8, 128}}
	for _, v := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 12} {
		for _, l := range [][2]bool{{false, false}, {true, false}, {false, true}} {
			for _, s := range sizes {
				M, N, K := s[0], s[1], s[2]
				op := graph.MatMul{TransA: l[0], TransB: l[1], Variant: v, Residual: true}
				t.Run(fmt.Sprintf("v%d/%s/M%dN%dK%d", v, op.Name(), M, N, K), func(t *testing.T) {
					a := optest.Random(rng, graph.F32(shapeOf(0, M, K, l[0])...), -1, 1)
					b := optest.Random(rng, graph.F32(shapeOf(0, K, N, l[1])...), -1, 1)
					r := optest.Random(rng, graph.F32(M, N), -3, 3)
					got := optest.CheckOp(t, dev, op, mmTol(K), a, b, r)
					if v != 0 && v != 3 {
						return
					}
					plain := op
					plain.Residual = false
					prod, err := graph.RunOp(dev, plain, a, b)
					require.NoError(t, err)
					sum, err := graph.RunOp(dev, graph.Add{}, r, prod[0])
					require.NoError(t, err)
					optest.Close(t, "R + A·B against A·B then add", got[0].Data, sum[0].Data, optest.Tol{})
				})
			}
		}
	}
	_, err := graph.MatMul{Residual: true}.Outputs([]graph.Spec{graph.F32(2, 3), graph.F32(3, 4), graph.F32(4, 2)})
	require.ErrorContains(t, err, "residual")
	_, err = graph.MatMul{Residual: true, Accumulate: true}.Outputs([]graph.Spec{graph.F32(2, 3), graph.F32(3, 4), graph.F32(2, 4)})
	require.ErrorContains(t, err, "cannot both")
}

// The automatic choice on a CPU adapter records what a training step needs:
// for large products every layout but Aᵀ·Bᵀ ends in variant 7, after a 4×4
// transpose of the operand used transposed or a copy of an A that shares
// its buffer with C; small products (decoding, tiny models) record one
// matmul dispatch and nothing else. On other adapters no transposes or
// copies are added.
func TestMatMulAutomaticChoiceRecordsTheStepPath(t *testing.T) {
	dev := gputest.Device(t)
	cpu := loopBudgetApplies(dev)
	newBuf := func(name string, shape ...int) *gpu.Buffer {
		b, err := dev.NewBuffer(name, gpu.F32, shape...)
		require.NoError(t, err)
		t.Cleanup(b.Release)
		return b
	}
	// One buffer holding A (1024×256) and then C (1024×512), as an arena
	// does; offsets are multiples of 256 bytes.
	arena := newBuf("arena", 1024*256+1024*512)
	aInArena, err := arena.View("a", gpu.F32, 0, 1024, 256)
	require.NoError(t, err)
	cInArena, err := arena.View("c", gpu.F32, 1024*256*4, 1024, 512)
	require.NoError(t, err)
	for _, c := range []struct {
		name string
		op   graph.MatMul
		in   []*gpu.Buffer
		out  *gpu.Buffer
		want []string // kernel name prefixes, in order, on a CPU adapter
	}{
		{"forward x·Wᵀ", graph.MatMul{TransB: true}, []*gpu.Buffer{newBuf("x", 1024, 256), newBuf("w", 512, 256)}, newBuf("y", 1024, 512),
			[]string{"transpose4", "matmul_nn_v7_"}},
		{"weight gradient dyᵀ·x", graph.MatMul{TransA: true}, []*gpu.Buffer{newBuf("dy", 1024, 512), newBuf("x", 1024, 256)}, newBuf("dw", 512, 256),
			[]string{"transpose4", "matmul_nn_v7_"}},
		{"A·B with A and C in one arena", graph.MatMul{}, []*gpu.Buffer{aInArena, newBuf("w", 256, 512)}, cInArena,
			[]string{gpu.CopyName, "matmul_nn_v7_"}},
		{"A·B on separate buffers", graph.MatMul{}, []*gpu.Buffer{newBuf("a", 1024, 256), newBuf("w", 256, 512)}, newBuf("c", 1024, 512),
			[]string{"matmul_nn_v7_"}},
		{"decoding-sized A·Bᵀ", graph.MatMul{TransB: true}, []*gpu.Buffer{newBuf("x", 4, 256), newBuf("w", 512, 256)}, newBuf("y", 4, 512),
			[]string{"matmul_nt_v3_"}},
		{"router logits x·Wᵀ (9 columns)", graph.MatMul{TransB: true}, []*gpu.Buffer{newBuf("x", 10496, 128), newBuf("w", 9, 128)}, newBuf("y", 10496, 9),
			[]string{"matmul_nt_v12_n9"}},
		{"router logits with a residual", graph.MatMul{TransB: true, Residual: true}, []*gpu.Buffer{newBuf("x", 40, 128), newBuf("w", 9, 128), newBuf("r", 40, 9)}, newBuf("y", 40, 9),
			[]string{"matmul_nt_res_v12_n9"}},
		{"narrow, K not a multiple of 4", graph.MatMul{TransB: true}, []*gpu.Buffer{newBuf("x", 40, 126), newBuf("w", 9, 126)}, newBuf("y", 40, 9),
			[]string{"matmul_nt_v2"}},
		{"17 columns", graph.MatMul{TransB: true}, []*gpu.Buffer{newBuf("x", 40, 128), newBuf("w", 17, 128)}, newBuf("y", 40, 17),
			[]string{"matmul_nt_v2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := dev.NewRecorder()
			defer rec.Release()
			require.NoError(t, c.op.Encode(dev, rec, c.in, []*gpu.Buffer{c.out}))
			var names []string
			for _, s := range rec.Steps() {
				names = append(names, s.Name())
			}
			if !cpu {
				for _, n := range names {
					require.False(t, strings.HasPrefix(n, "transpose") || strings.HasPrefix(n, "scale") || n == gpu.CopyName, "added %s on a GPU: %v", n, names)
				}
				return
			}
			// Variant 7 dispatches once per group of windows; collapse them.
			var kinds []string
			for _, n := range names {
				if len(kinds) == 0 || !strings.HasPrefix(n, kinds[len(kinds)-1]) {
					kinds = append(kinds, n)
				}
			}
			require.Len(t, kinds, len(c.want), "recorded %v", names)
			for i, w := range c.want {
				require.True(t, strings.HasPrefix(kinds[i], w), "dispatch %d is %s, want %s… (all: %v)", i, kinds[i], w, names)
			}
		})
	}
}

// Variant 7 narrows its workgroup to the columns there are (16 invocations
// of 16 columns; at N = 128 half would idle). The forward x·Wᵀ at
// ocr-small's inference and training shapes, as a step runs it (variant 9),
// with the narrowed workgroup (auto) and with 16 invocations forced, in one
// process so the ratios hold on a shared machine:
// go test ./graph/ -run '^$' -bench MatMulNarrowColumns -benchtime 8x -count 4.
func BenchmarkMatMulNarrowColumns(b *testing.B) {
	dev := gputest.Device(b)
	rng := rand.New(rand.NewSource(1))
	for _, s := range [][3]int{{10496, 128, 128}, {10496, 384, 128}, {1184, 128, 128}, {1184, 384, 128}} {
		M, K, N := s[0], s[1], s[2]
		x := optest.Random(rng, graph.F32(M, K), -1, 1)
		w := optest.Random(rng, graph.F32(N, K), -1, 1)
		flops := 2.0 * float64(M*K*N)
		for _, c := range []struct {
			name string
			wgx  int
		}{{"auto", 0}, {"wgx16", 16}} {
			b.Run(fmt.Sprintf("%dx%dx%d/%s", M, K, N, c.name), func(b *testing.B) {
				op := graph.MatMul{TransB: true, Variant: 9, Tile: graph.MatMulTile{WGX: c.wgx}}
				b.ReportMetric(flops/optest.BenchOp(b, dev, op, x, w)/1e9, "GFLOP/s")
			})
		}
	}
}

// Weight gradients dW = dyᵀ·x (P×Q over R rows) by variant 11 (row passes)
// against variant 9 (dy transposed into scratch, then v7), the automatic
// choice of CPU adapters before variant 11: ocr-small's (hidden 128,
// 1184 tokens) and small-dense's (1024 tokens) shapes.
func BenchmarkMatMulRowPasses(b *testing.B) {
	dev := gputest.Device(b)
	rng := rand.New(rand.NewSource(1))
	for _, s := range [][3]int{{384, 128, 1184}, {256, 128, 1184}, {128, 128, 1184}, {1536, 256, 1024}, {256, 768, 1024}, {512, 256, 1024}} {
		P, Q, R := s[0], s[1], s[2]
		dy := optest.Random(rng, graph.F32(R, P), -1, 1)
		x := optest.Random(rng, graph.F32(R, Q), -1, 1)
		flops := 2.0 * float64(P*Q*R)
		for _, v := range []int{9, 11} {
			b.Run(fmt.Sprintf("%dx%dx%d/v%d", P, Q, R, v), func(b *testing.B) {
				b.ReportMetric(flops/optest.BenchOp(b, dev, graph.MatMul{TransA: true, Variant: v}, dy, x)/1e9, "GFLOP/s")
			})
		}
	}
}

// A router's logits x·Wᵀ (8 experts and a copy expert, hidden 128) at ocr-small's prefill
// (10496 tokens), training (1184) and decoding (256) shapes, by variant 2 (the fallback for N
// not a multiple of 4) and variant 12 (one row per invocation):
// go test ./graph/ -run '^$' -bench MatMulRouter -benchtime 20x -count 3.
func BenchmarkMatMulRouter(b *testing.B) {
	dev := gputest.Device(b)
	rng := rand.New(rand.NewSource(1))
	for _, M := range []int{10496, 1184, 256} {
		const K, N = 128, 9
		x := optest.Random(rng, graph.F32(M, K), -1, 1)
		w := optest.Random(rng, graph.F32(N, K), -1, 1)
		for _, v := range []int{2, 12} {
			b.Run(fmt.Sprintf("%dx%dx%d/v%d", M, K, N, v), func(b *testing.B) {
				op := graph.MatMul{TransB: true, Variant: v}
				b.ReportMetric(2*float64(M*K*N)/optest.BenchOp(b, dev, op, x, w)/1e9, "GFLOP/s")
			})
		}
	}
}
