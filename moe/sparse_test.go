package moe_test

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
	"github.com/moegpu/moegpu/moe"
)

// reluSquaredRows routes n tokens to k of e experts and fills the permuted
// activation rows with ReLU² of uniform values (about half exact zeros, a
// share of them forced to zero to reach sparsity); rows outside every
// segment hold NaN, which must not reach any output.
func reluSquaredRows(t *testing.T, rng *rand.Rand, n, k, e, inner int, sparsity float64) (*graph.Host, *graph.Host) {
	disp := optest.MustRef(t, moe.Dispatch{Experts: e}, choices(rng, n, k, e))
	seg, rowSlot := disp[0], disp[2]
	R := rowSlot.Shape[0]
	h := graph.NewHost(graph.F32(R, inner))
	for r := 0; r < R; r++ {
		for i := 0; i < inner; i++ {
			v := math.NaN()
			if rowSlot.Data[r] != 0xffffffff {
				v = 0
				if rng.Float64() >= sparsity {
					v = float64(float32(math.Pow(rng.Float64(), 2)))
				}
			}
			h.Data[r*inner+i] = v
		}
	}
	return h, seg
}

func TestSparseDownMatchesTheDenseProduct(t *testing.T) {
	dev := gputest.Device(t)
	for _, inner := range optest.Awkward {
		for _, n := range []int{1, 17, 70} {
			for _, sparsity := range []float64{0, 0.9, 1} {
				t.Run(fmt.Sprintf("I%d/N%d/sparsity%.1f", inner, n, sparsity), func(t *testing.T) {
					rng := rand.New(rand.NewSource(int64(inner*n + 1)))
					h, seg := reluSquaredRows(t, rng, 23, 2, 5, inner, sparsity)
					w := optest.Random(rng, graph.F32(5, n, inner), -1, 1)
					optest.CheckOp(t, dev, moe.SparseDown{Experts: 5}, optest.Tol{Atol: 1e-5, Rtol: 1e-5}, h, w, seg)
				})
			}
		}
	}
}

func TestActivationSparsityCountsOnlyRoutedRows(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(2))
	h, seg := reluSquaredRows(t, rng, 40, 2, 6, 33, 0.7)
	h.Data[0] = 0 // first rows are expert 0's: add a small non-zero
	got := optest.CheckOp(t, dev, moe.ActivationSparsity{Experts: 6}, optest.Tol{Atol: 1e-6, Rtol: 1e-5}, h, seg)
	require.InDelta(t, 0.7, got[0].Data[0], 0.05)
}
