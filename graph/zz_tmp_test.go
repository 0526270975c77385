package graph_test

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/optest"
)

func BenchmarkTmpRMSNormOCR(b *testing.B) {
	rng := rand.New(rand.NewSource(6))
	x, g := rmsnormInputs(rng, []int{1184, 128})
	rstd := optest.Random(rng, graph.F32(1184), 0.5, 1.5)
	dy := optest.Random(rng, graph.F32(1184, 128), -1, 1)
	for _, v := range rowwiseVariants {
		b.Run(fmt.Sprintf("fwd%d", v), func(b *testing.B) { benchRowwise(b, graph.RMSNorm{Variant: v}, 8, x, g) })
		b.Run(fmt.Sprintf("bwd%d", v), func(b *testing.B) { benchRowwise(b, graph.RMSNormBackward{Variant: v}, 12, x, g, rstd, dy) })
	}
	b.Run("add", func(b *testing.B) { benchRowwise(b, graph.Add{}, 12, x, dy) })
}
