package graph_test

import (
	"errors"
	"fmt"
	"math/rand"
	"testing"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
)

// benchOpThroughput records op once on uploaded inputs and times replaying
// the submission, reporting bytes/op as throughput (bytes is the minimum
// traffic the op must move: inputs read once, outputs written once).
func benchOpThroughput(b *testing.B, op graph.Op, bytes int64, in ...*graph.Host) {
	b.Helper()
	dev := gputest.Device(b)
	specs := make([]graph.Spec, len(in))
	for i, h := range in {
		specs[i] = h.Spec
	}
	outs, err := op.Outputs(specs)
	if err != nil {
		b.Fatal(err)
	}
	acc, isAcc := op.(graph.Accumulator)
	gpuIn := in
	if isAcc && acc.Accumulates() {
		gpuIn = in[:len(in)-1]
	}
	var bufs []*gpu.Buffer
	defer func() {
		for _, x := range bufs {
			x.Release()
		}
	}()
	var inB, outB []*gpu.Buffer
	for i, h := range gpuIn {
		x, err := graph.Upload(dev, fmt.Sprintf("bench.in%d", i), h)
		if err != nil {
			b.Fatal(err)
		}
		bufs = append(bufs, x)
		inB = append(inB, x)
	}
	for i, s := range outs {
		x, err := dev.NewBuffer(fmt.Sprintf("bench.out%d", i), s.DType, s.Shape...)
		if err != nil {
			b.Fatal(err)
		}
		bufs = append(bufs, x)
		outB = append(outB, x)
	}
	rec := dev.NewRecorder()
	defer rec.Release()
	if err := op.Encode(dev, rec, inB, outB); err != nil {
		if errors.Is(err, gpu.ErrUnsupported) {
			b.Skip(err)
		}
		b.Fatal(err)
	}
	if err := rec.Submit(); err != nil { // warm-up: pipelines, first-touch
		b.Fatal(err)
	}
	if err := dev.Wait(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(bytes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := rec.Submit(); err != nil {
			b.Fatal(err)
		}
		if err := dev.Wait(); err != nil {
			b.Fatal(err)
		}
	}
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
