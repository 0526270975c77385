package graph_test

import (
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
)

func TestRowsReadWriteAndDraftPickMatchReference(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(3))
	for _, start := range []int{0, 5, 18} { // 18: the window runs past the end
		hist := optest.Random(rng, graph.F32(20, 17), -1, 1)
		st, _ := graph.HostFrom(graph.U32(1), []float64{float64(start)})
		optest.CheckOp(t, dev, graph.RowsRead{Q: 4}, optest.Tol{}, hist, st)
		// RowsWrite is in place: run it in a graph and read hist back.
		x := optest.Random(rng, graph.F32(4, 17), -1, 1)
		g := graph.New()
		h, xs, s := g.State("hist", hist.Spec), g.State("x", x.Spec), g.State("start", st.Spec)
		g.Apply(graph.RowsWrite{}, h, xs, s)
		plan, err := g.Plan(nil, 256)
		require.NoError(t, err)
		ex, err := graph.NewGPU(dev, plan, nil)
		require.NoError(t, err)
		require.NoError(t, ex.Set(h, hist.Data))
		require.NoError(t, ex.Set(xs, x.Data))
		require.NoError(t, ex.Set(s, st.Data))
		require.NoError(t, ex.Run())
		got, err := ex.Get(h)
		require.NoError(t, err)
		ex.Close()
		_, err = graph.RunReference(graph.RowsWrite{}, hist, x, st)
		require.NoError(t, err)
		optest.Close(t, "hist after rows_write", got[0], hist.Data, optest.Tol{})
	}
	logits := optest.Random(rng, graph.F32(5, 43), -3, 3)
	logits.Data[2*43+7] = math.NaN()
	logits.Data[2*43+9] = 10
	tokens := optest.RandomInts(rng, graph.U32(5), 43)
	for _, at := range []float64{2, 4, 9} {
		a, _ := graph.HostFrom(graph.U32(1), []float64{at})
		got := optest.CheckOp(t, dev, graph.DraftPick{}, optest.Tol{}, tokens, logits, a)
		if at == 2 {
			require.Equal(t, 9.0, got[1].Data[0])
		}
	}
}

// StridedRows takes row Offset of every Stride rows (awkward row lengths, the first and the
// last row of a stride, a stride of 1), and refuses an offset outside the stride or rows that
// are not a whole number of strides.
func TestStridedRowsMatchesReference(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(4))
	for _, c := range []struct{ rows, d, stride, offset int }{
		{41 * 5, 128, 41, 40}, {41 * 5, 3, 41, 0}, {7 * 3, 17, 7, 3}, {9, 1, 1, 0}, {66, 65, 33, 32},
	} {
		x := optest.Random(rng, graph.F32(c.rows, c.d), -1, 1)
		y := optest.CheckOp(t, dev, graph.StridedRows{Stride: c.stride, Offset: c.offset}, optest.Tol{}, x)[0]
		require.Equal(t, []int{c.rows / c.stride, c.d}, y.Shape)
		require.Equal(t, x.Data[c.offset*c.d], y.Data[0])
	}
	for _, bad := range []graph.StridedRows{{Stride: 4, Offset: 4}, {Stride: 4, Offset: -1}, {Stride: 0}, {Stride: 5}} {
		_, err := bad.Outputs([]graph.Spec{graph.F32(8, 3)})
		require.Error(t, err, "%+v", bad)
	}
}
