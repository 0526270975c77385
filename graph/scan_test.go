package graph_test

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
)

// benchOpThroughput times op and reports bytes/op as throughput (bytes is
// the minimum traffic the op must move: inputs read once, outputs written
// once).
func benchOpThroughput(b *testing.B, op graph.Op, bytes int64, in ...*graph.Host) {
	b.Helper()
	sec := optest.BenchOp(b, gputest.Device(b), op, in...)
	b.ReportMetric(float64(bytes)/sec/1e9, "GB/s")
}

// Integer sums are exact: the GPU must match the reference bit for bit.
// 70000 takes three levels of serial chunks (70000 → 1094 → 18 → 1) and
// two of blocks; 1<<20+3 takes three levels of blocks.
func TestExclusiveScanMatchesReferenceExactly(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(1))
	sizes := append(append([]int{}, optest.Awkward...), 0, 4, 64, 65, 1000, 1024, 1025, 70000, 70004, 1<<20+3, 1<<20)
	for _, variant := range []int{1, 2, 3} {
		for _, n := range sizes {
			t.Run(fmt.Sprintf("v%d/n%d", variant, n), func(t *testing.T) {
				optest.CheckOp(t, dev, graph.ExclusiveScan{Variant: variant}, optest.Tol{}, optest.RandomInts(rng, graph.U32(n), 100))
			})
		}
	}
}

// Large values whose total stays below 2³² (every high bit exercised, no
// wrap), and values whose total wraps, which must wrap modulo 2³² exactly
// as u32 arithmetic does.
func TestExclusiveScanLargeAndWrappingValues(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(2))
	for _, variant := range []int{1, 2, 3} {
		noWrap := optest.RandomInts(rng, graph.U32(1000), 4_000_000) // total < 4e9 < 2³²
		noWrap.Data[999] = 1<<32 - 1 - 4_000_000*999                 // y[999] still below 2³²
		optest.CheckOp(t, dev, graph.ExclusiveScan{Variant: variant}, optest.Tol{}, noWrap)
		wrap := optest.RandomInts(rng, graph.U32(3000), 1<<32-1)
		optest.CheckOp(t, dev, graph.ExclusiveScan{Variant: variant}, optest.Tol{}, wrap)
	}
}

func TestExclusiveScanRejectsBadInput(t *testing.T) {
	for _, in := range [][]graph.Spec{{graph.F32(4)}, {graph.U32(2, 2)}, {graph.U32(3), graph.U32(3)}} {
		if _, err := (graph.ExclusiveScan{}).Outputs(in); err == nil {
			t.Errorf("%v accepted", in)
		}
	}
}

// go test ./graph/ -run '^$' -bench ExclusiveScan
func BenchmarkExclusiveScan(b *testing.B) {
	n := 1 << 20
	x := optest.RandomInts(rand.New(rand.NewSource(3)), graph.U32(n), 100)
	for _, variant := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("v%d/n%d", variant, n), func(b *testing.B) {
			benchOpThroughput(b, graph.ExclusiveScan{Variant: variant}, int64(n*8), x)
		})
	}
}
