package graph_test

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
)

func TestConcatAndSplitColumnsMatchReferenceAndFiniteDifferences(t *testing.T) {
	dev := gputest.Device(t)
	for _, rows := range optest.Awkward {
		for _, ab := range [][2]int{{1, 1}, {3, 17}, {64, 64}, {0, 5}} {
			t.Run(fmt.Sprintf("rows%d/a%d/b%d", rows, ab[0], ab[1]), func(t *testing.T) {
				rng := rand.New(rand.NewSource(int64(rows)))
				x1 := optest.Random(rng, graph.F32(rows, ab[0]), -1, 1)
				x2 := optest.Random(rng, graph.F32(rows, ab[1]), -1, 1)
				y := optest.CheckOp(t, dev, graph.ConcatCols{}, optest.Tol{}, x1, x2)[0]
				parts := optest.CheckOp(t, dev, graph.SplitCols{A: ab[0]}, optest.Tol{}, y)
				optest.Close(t, "split(concat(x1, x2)) = x1", parts[0].Data, x1.Data, optest.Tol{})
				optest.Close(t, "split(concat(x1, x2)) = x2", parts[1].Data, x2.Data, optest.Tol{})
				w := optest.Random(rng, y.Spec, -1, 1)
				loss := func(in []*graph.Host) float64 {
					return optest.Dot(optest.MustRef(t, graph.ConcatCols{}, in...)[0].Data, w.Data)
				}
				grads := func([]*graph.Host) []*graph.Host { return optest.MustRef(t, graph.SplitCols{A: ab[0]}, w) }
				optest.CheckGrad(t, "concat", []*graph.Host{x1, x2}, []int{0, 1}, loss, grads, optest.GradTol)
			})
		}
	}
}
