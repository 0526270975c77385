package graph_test

import (
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
)

// A hidden tensor read by three linear layers, one weight used twice (as
// tied embeddings are): FuseAccumulate folds the gradient sums into the
// matmuls that feed them, and the fused graph's gradients still match the
// reference on the GPU and finite differences on the reference, on sizes
// that are not multiples of the tiles.
func TestFuseAccumulateFoldsGradientSumsIntoMatMuls(t *testing.T) {
	dev := gputest.Device(t)
	for _, sh := range [][3]int{{13, 6, 5}, {17, 8, 12}, {1, 3, 1}} {
		rows, d, o := sh[0], sh[1], sh[2]
		g := graph.New()
		x := g.Input("x", graph.F32(rows, d))
		w0 := g.Param("w0", graph.F32(d, d))
		w1 := g.Param("w1", graph.F32(o, d))
		w2 := g.Param("w2", graph.F32(o+2, d))
		nt := graph.MatMul{TransB: true}
		h := g.Apply1(nt, x, w0)
		y1 := g.Apply1(nt, h, w1)
		y2 := g.Apply1(nt, h, w2)
		y3 := g.Apply1(nt, g.Apply1(graph.Scale{Factor: 0.5}, h), w1)
		loss := g.Apply1(graph.Add{}, g.Apply1(graph.SumSquares{}, y1),
			g.Apply1(graph.Add{}, g.Apply1(graph.SumSquares{}, y2), g.Apply1(graph.SumSquares{}, y3)))
		require.NoError(t, g.Backward(loss))
		before := len(g.Nodes)
		keep := []*graph.Tensor{loss, w0.Grad, w1.Grad, w2.Grad}
		n := g.FuseAccumulate(keep...)
		// h's gradient: three products summed (2 folds); w1's: two (1 fold).
		require.Equal(t, 3, n)
		require.Equal(t, before-n, len(g.Nodes))
		optest.CheckGraph(t, dev, optest.GraphCheck{Graph: g, Loss: loss, Scale: 1,
			Tol: optest.Tol{Atol: 1e-5, Rtol: 1e-4}, Seed: 5})
	}
}

// A pre-norm residual block, r = h + (RMSNorm(h)·W₁ᵀ), as the model's: the
// residual gradient is read by the block's backward first, then summed
// with the norm's dx, which FuseAccumulate folds into RMSNormBackward
// (besides h's own matmul sum: none here), and the forward add becomes the
// matmul's residual input. Gradients still match the reference and finite
// differences.
func TestFuseAccumulateFoldsTheResidualGradientIntoTheNormBackward(t *testing.T) {
	dev := gputest.Device(t)
	for _, sh := range [][2]int{{13, 6}, {9, 8}} {
		rows, d := sh[0], sh[1]
		g := graph.New()
		x := g.Input("x", graph.F32(rows, d))
		w0 := g.Param("w0", graph.F32(d, d))
		w1 := g.Param("w1", graph.F32(d, d))
		gain := g.Param("gain", graph.F32(d))
		nt := graph.MatMul{TransB: true}
		h := g.Apply1(nt, x, w0)
		n := g.Apply(graph.RMSNorm{}, h, gain)[0]
		r := g.Apply1(graph.Add{}, h, g.Apply1(nt, n, w1))
		loss := g.Apply1(graph.SumSquares{}, r)
		require.NoError(t, g.Backward(loss))
		// The backward's residual sum, and the forward's residual add
		// (h is read later by the norm's backward, so it becomes the
		// matmul's residual input instead of its accumulator).
		require.Equal(t, 2, g.FuseAccumulate(loss, w0.Grad, w1.Grad, gain.Grad))
		folded, residual := false, false
		for _, nd := range g.Nodes {
			if o, ok := nd.Op.(graph.RMSNormBackward); ok && o.Accumulate {
				folded = true
			}
			if o, ok := nd.Op.(graph.MatMul); ok && o.Residual {
				residual = true
				require.Same(t, r, nd.Out[0], "the residual matmul should produce the add's output")
			}
		}
		require.True(t, folded, "the residual sum should fold into rmsnorm_backward")
		require.True(t, residual, "the residual add should fold into the matmul")
		optest.CheckGraph(t, dev, optest.GraphCheck{Graph: g, Loss: loss, Scale: 1,
			Tol: optest.Tol{Atol: 1e-5, Rtol: 1e-4}, Seed: 7})
	}
}

// Tied embeddings: the table's gradient is the embedding's scatter-add
// (which starts from zeros) plus the LM head's weight gradient. The
// scatter-add then accumulates into the head's gradient instead, so the
// Zeros and the sum both go; gradients still match the reference and
// finite differences, with ids that repeat and rows no id picks.
func TestFuseAccumulateLetsTheEmbeddingGradientAccumulateIntoTheTiedHeads(t *testing.T) {
	dev := gputest.Device(t)
	for _, sh := range [][3]int{{13, 7, 6}, {32, 11, 8}} {
		rows, vocab, d := sh[0], sh[1], sh[2]
		g := graph.New()
		ids := g.Input("ids", graph.U32(rows))
		table := g.Param("table", graph.F32(vocab, d))
		w := g.Param("w", graph.F32(d, d))
		h := g.Apply1(graph.Embedding{}, table, ids)
		h = g.Apply1(graph.MatMul{TransB: true}, h, w)
		logits := g.Apply1(graph.MatMul{TransB: true}, h, table)
		loss := g.Apply1(graph.SumSquares{}, logits)
		require.NoError(t, g.Backward(loss))
		count := func(name string) int {
			c := 0
			for _, nd := range g.Nodes {
				if nd.Op.Name() == name {
					c++
				}
			}
			return c
		}
		require.Equal(t, 1, count("zeros"))
		before := len(g.Nodes)
		require.Equal(t, 1, g.FuseAccumulate(loss, table.Grad, w.Grad))
		require.Equal(t, 0, count("zeros"), "the embedding gradient should accumulate into the head's")
		require.Equal(t, before-2, len(g.Nodes), "the sum and the zeros go")
		optest.CheckGraph(t, dev, optest.GraphCheck{Graph: g, Loss: loss, Scale: 1,
			Tol: optest.Tol{Atol: 1e-5, Rtol: 1e-4}, Seed: 9,
			Fixed: map[*graph.Tensor][]float64{ids: optest.RandomInts(rand.New(rand.NewSource(int64(rows))), ids.Spec, vocab-2).Data}})
	}
}

// A residual matmul made by one fold is not folded again as an
// accumulator (it already adds its own R): y = (r + x·Wᵀ) + 2u keeps both
// terms, against the reference and finite differences.
func TestFuseAccumulateNeverStacksAnAccumulatorOnAResidualMatMul(t *testing.T) {
	dev := gputest.Device(t)
	g := graph.New()
	r := g.Input("r", graph.F32(2, 4))
	u := g.Input("u", graph.F32(2, 4))
	x := g.Input("x", graph.F32(2, 3))
	w := g.Param("w", graph.F32(4, 3))
	s := g.Apply1(graph.Add{}, r, g.Apply1(graph.MatMul{TransB: true}, x, w))
	y := g.Apply1(graph.Add{}, s, g.Apply1(graph.Scale{Factor: 2}, u))
	loss := g.Apply1(graph.SumSquares{}, y)
	require.NoError(t, g.Backward(loss))
	g.FuseAccumulate(loss, w.Grad)
	for _, nd := range g.Nodes {
		if o, ok := nd.Op.(graph.MatMul); ok {
			require.False(t, o.Accumulate && o.Residual, "a matmul both accumulates and adds a residual: %s", o.Name())
		}
	}
	require.NoError(t, g.Err())
	optest.CheckGraph(t, dev, optest.GraphCheck{Graph: g, Loss: loss, Scale: 1, Tol: optest.Tol{Atol: 1e-5, Rtol: 1e-4}, Seed: 11})
}
