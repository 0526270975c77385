package graph_test

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
)

// Transpose moves values without arithmetic, so the GPU must match exactly;
// shapes with both sizes multiples of 4 take the 4×4-block kernel.
func TestTransposeMatchesReferenceExactly(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(1))
	for _, shape := range [][]int{{1, 1}, {3, 17}, {129, 3}, {2, 17, 129}, {64, 64}, {4, 4}, {8, 132}, {3, 20, 12}, {4, 6}} {
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			x := optest.Random(rng, graph.F32(shape...), -1, 1)
			optest.CheckOp(t, dev, graph.Transpose{}, optest.Tol{}, x)
		})
	}
}

func TestTransposeRejectsWrongRank(t *testing.T) {
	_, err := graph.Transpose{}.Outputs([]graph.Spec{graph.F32(4)})
	if err == nil {
		t.Fatal("rank-1 transpose accepted")
	}
}
