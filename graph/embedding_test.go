package graph_test

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
)

// embeddingIDs draws n ids in [0, v+extra): extra > 0 includes out-of-range
// ids, which must read as zero rows.
func embeddingIDs(rng *rand.Rand, n, v, extra int) *graph.Host {
	h := optest.RandomInts(rng, graph.U32(n), v+extra)
	if n > 0 && extra > 0 {
		h.Data[0] = 0xFFFFFFFF // the largest u32 must not wrap into range
	}
	return h
}

// The forward only copies values, so the GPU must match exactly.
func TestEmbeddingMatchesReferenceExactly(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(1))
	for _, variant := range []int{1, 2} {
		for _, s := range [][3]int{{1, 1, 1}, {3, 17, 4}, {17, 3, 129}, {129, 129, 17}, {40, 64, 100}} {
			v, d, n := s[0], s[1], s[2]
			t.Run(fmt.Sprintf("v%d/V%d,D%d,N%d", variant, v, d, n), func(t *testing.T) {
				table := optest.Random(rng, graph.F32(v, d), -1, 1)
				ids := embeddingIDs(rng, n, v, 2)
				optest.CheckOp(t, dev, graph.Embedding{Variant: variant}, optest.Tol{}, table, ids)
			})
		}
	}
}

func TestEmbeddingOutOfRangeIDsGiveZeroRows(t *testing.T) {
	dev := gputest.Device(t)
	table := optest.Random(rand.New(rand.NewSource(2)), graph.F32(3, 4), 1, 2)
	ids, _ := graph.HostFrom(graph.U32(3), []float64{2, 3, 0xFFFFFFFF})
	got, err := graph.RunOp(dev, graph.Embedding{}, table, ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range got[0].Data[4:] {
		if x != 0 {
			t.Fatalf("out-of-range id row element %d = %g, want 0", i, x)
		}
	}
	optest.Close(t, "in-range row", got[0].Data[:4], table.Data[8:12], optest.Tol{})
}

// The backward of a gather is linear in the table, so finite differences
// of Σ w·y must equal the scatter of w exactly up to float64 rounding.
func TestEmbeddingBackwardMatchesFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	v, d, n := 5, 3, 17
	table := optest.Random(rng, graph.F32(v, d), -1, 1)
	ids := embeddingIDs(rng, n, v, 1)
	w := optest.Random(rng, graph.F32(n, d), -1, 1)
	loss := func(in []*graph.Host) float64 {
		return optest.Dot(optest.MustRef(t, graph.Embedding{}, in...)[0].Data, w.Data)
	}
	grads := func(in []*graph.Host) []*graph.Host {
		return optest.MustRef(t, graph.EmbeddingBackward{}, w, in[1], graph.NewHost(table.Spec))
	}
	optest.CheckGrad(t, "embedding", []*graph.Host{table, ids}, []int{0}, loss, grads, optest.GradTol)
}

// Tolerance: each table element is the previous value plus an f32 sum of
// the dy rows sharing its id (at most ~N/V+few terms of magnitude ≤ 1 here,
// ≤ 50 terms); f32 rounding of such a sum stays below 50·2⁻²⁴·50 ≈ 1.5e-4
// in the worst case and ~1e-6 typically, so atol 1e-5 with rtol 1e-5.
func TestEmbeddingBackwardMatchesReference(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(4))
	tol := optest.Tol{Atol: 1e-5, Rtol: 1e-5}
	for _, variant := range []int{1, 2} {
		for _, s := range [][3]int{{1, 1, 1}, {3, 17, 129}, {17, 3, 17}, {129, 129, 3}, {7, 64, 300}} {
			v, d, n := s[0], s[1], s[2]
			t.Run(fmt.Sprintf("v%d/V%d,D%d,N%d", variant, v, d, n), func(t *testing.T) {
				dy := optest.Random(rng, graph.F32(n, d), -1, 1)
				ids := embeddingIDs(rng, n, v, 2)
				prev := optest.Random(rng, graph.F32(v, d), -1, 1)
				optest.CheckOp(t, dev, graph.EmbeddingBackward{Variant: variant}, tol, dy, ids, prev)
			})
		}
	}
}

// Variant 1 has one writer per table element and a fixed summation order.
func TestEmbeddingBackwardDeterministicVariantIsReproducible(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(5))
	v, d, n := 4, 33, 500
	dy := optest.Random(rng, graph.F32(n, d), -1, 1)
	ids := embeddingIDs(rng, n, v, 0)
	prev := graph.NewHost(graph.F32(v, d))
	first, err := graph.RunOp(dev, graph.EmbeddingBackward{Variant: 1}, dy, ids, prev)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		again, err := graph.RunOp(dev, graph.EmbeddingBackward{Variant: 1}, dy, ids, prev)
		if err != nil {
			t.Fatal(err)
		}
		optest.Close(t, "rerun", again[0].Data, first[0].Data, optest.Tol{})
	}
}

func TestEmbeddingRejectsBadShapes(t *testing.T) {
	cases := []struct {
		name string
		op   graph.Op
		in   []graph.Spec
	}{
		{"f32 ids", graph.Embedding{}, []graph.Spec{graph.F32(4, 2), graph.F32(3)}},
		{"rank-1 table", graph.Embedding{}, []graph.Spec{graph.F32(4), graph.U32(3)}},
		{"one input", graph.Embedding{}, []graph.Spec{graph.F32(4, 2)}},
		{"dy rows ≠ ids", graph.EmbeddingBackward{}, []graph.Spec{graph.F32(3, 2), graph.U32(4), graph.F32(5, 2)}},
		{"dy width ≠ table width", graph.EmbeddingBackward{}, []graph.Spec{graph.F32(3, 2), graph.U32(3), graph.F32(5, 3)}},
	}
	for _, c := range cases {
		if _, err := c.op.Outputs(c.in); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

// go test ./graph/ -run '^$' -bench Embedding
func BenchmarkEmbedding(b *testing.B) {
	rng := rand.New(rand.NewSource(6))
	v, d, n := 32000, 256, 512
	table := optest.Random(rng, graph.F32(v, d), -1, 1)
	ids := optest.RandomInts(rng, graph.U32(n), v)
	for _, variant := range []int{1, 2} {
		b.Run(fmt.Sprintf("forward/v%d/V%d,D%d,N%d", variant, v, d, n), func(b *testing.B) {
			benchOpThroughput(b, graph.Embedding{Variant: variant}, int64(n*d*8+n*4), table, ids)
		})
	}
	dy := optest.Random(rng, graph.F32(n, d), -1, 1)
	prev := graph.NewHost(graph.F32(v, d))
	for _, variant := range []int{1, 2} {
		b.Run(fmt.Sprintf("backward/v%d/V%d,D%d,N%d", variant, v, d, n), func(b *testing.B) {
			benchOpThroughput(b, graph.EmbeddingBackward{Variant: variant}, int64(n*d*12+n*4), dy, ids, prev)
		})
	}
}
