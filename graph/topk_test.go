package graph_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
)

// topkInput draws values from a small set so that rows are full of ties,
// and sprinkles in NaN, ±inf and ±0 when special is set.
func topkInput(rng *rand.Rand, rows, n int, special bool) *graph.Host {
	x := graph.NewHost(graph.F32(rows, n))
	pool := []float64{math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 0}
	for i := range x.Data {
		x.Data[i] = float64(rng.Intn(9)-4) * 0.5
		if special && rng.Intn(6) == 0 {
			x.Data[i] = pool[rng.Intn(len(pool))]
		}
	}
	return x
}

// Selection moves values without arithmetic: the GPU must match exactly,
// indices included (ties to the lower index, NaN last).
func TestTopKMatchesReferenceExactly(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(1))
	for _, variant := range []int{1, 2, 3, 4, 5} {
		for _, rows := range []int{1, 3, 17, 129} {
			for _, n := range []int{1, 3, 17, 64, 129} {
				for _, k := range []int{1, 3, 17, 64, n} {
					if k > n || (k == n && k <= 17) || (variant == 1 && k > 256) || (variant == 5 && k > 64) {
						continue
					}
					special := rows != 3 // rows of 3: ties only
					name := fmt.Sprintf("v%d/rows%d,n%d,K%d,special=%v", variant, rows, n, k, special)
					t.Run(name, func(t *testing.T) {
						optest.CheckOp(t, dev, graph.TopK{K: k, Variant: variant}, optest.Tol{}, topkInput(rng, rows, n, special))
					})
				}
			}
		}
	}
}

// Distinct random values at the routing shape, and a K beyond the
// insertion kernel's automatic range.
func TestTopKOnRoutingAndWideShapes(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(2))
	for _, c := range []struct{ rows, n, k, variant int }{
		{512, 64, 8, 0}, {512, 64, 8, 2}, {512, 64, 8, 3}, {512, 64, 8, 4}, {512, 64, 8, 5}, {5, 300, 100, 0}, {5, 300, 128, 1}, {3, 220, 200, 1},
		{3, 1000, 200, 0}, {2, 32000, 50, 0}, {2, 32000, 50, 3},
	} {
		t.Run(fmt.Sprintf("v%d/rows%d,n%d,K%d", c.variant, c.rows, c.n, c.k), func(t *testing.T) {
			x := optest.Random(rng, graph.F32(c.rows, c.n), -3, 3)
			optest.CheckOp(t, dev, graph.TopK{K: c.k, Variant: c.variant}, optest.Tol{}, x)
		})
	}
}

func TestTopKOrdersTiesAndNaNAsDocumented(t *testing.T) {
	nan := math.NaN()
	x, _ := graph.HostFrom(graph.F32(1, 6), []float64{nan, 1, math.Inf(-1), 1, math.Copysign(0, -1), 0})
	out := optest.MustRef(t, graph.TopK{K: 6}, x)
	optest.Close(t, "indices", out[1].Data, []float64{1, 3, 4, 5, 2, 0}, optest.Tol{})
	for _, variant := range []int{1, 2, 3, 4, 5} {
		got, err := graph.RunOp(gputest.Device(t), graph.TopK{K: 6, Variant: variant}, x)
		if err != nil {
			t.Fatal(err)
		}
		optest.Close(t, fmt.Sprintf("variant %d indices", variant), got[1].Data, out[1].Data, optest.Tol{})
		optest.Close(t, fmt.Sprintf("variant %d values", variant), got[0].Data, out[0].Data, optest.Tol{})
	}
}

// On llvmpipe a per-row variant whose loops would exceed the compiler's
// iteration cap must refuse rather than return a half-done selection; on
// adapters without that cap it must give the right answer.
func TestTopKOverTheLoopBudgetRefusesOrIsRight(t *testing.T) {
	dev := gputest.Device(t)
	x := optest.Random(rand.New(rand.NewSource(9)), graph.F32(1, 32000), -1, 1)
	op := graph.TopK{K: 50, Variant: 2}
	got, err := graph.RunOp(dev, op, x)
	if strings.EqualFold(dev.Info.DeviceType, "cpu") {
		if !errors.Is(err, gpu.ErrUnsupported) {
			t.Fatalf("K=50 passes over 32000 columns in one invocation: got %v, want ErrUnsupported", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	want := optest.MustRef(t, op, x)
	optest.Close(t, "indices", got[1].Data, want[1].Data, optest.Tol{})
}

func TestTopKRejectsBadK(t *testing.T) {
	for _, k := range []int{0, -1, 5} {
		if _, err := (graph.TopK{K: k}).Outputs([]graph.Spec{graph.F32(3, 4)}); err == nil {
			t.Errorf("K=%d of 4 accepted", k)
		}
	}
	if _, err := (graph.TopK{K: 1}).Outputs([]graph.Spec{graph.F32(4)}); err == nil {
		t.Error("rank-1 input accepted")
	}
}

// go test ./graph/ -run '^$' -bench TopK
func BenchmarkTopK(b *testing.B) {
	rng := rand.New(rand.NewSource(3))
	for _, c := range []struct{ rows, n, k int }{{4096, 64, 8}, {4096, 64, 64}} {
		x := optest.Random(rng, graph.F32(c.rows, c.n), -3, 3)
		bytes := int64(c.rows*c.n*4 + c.rows*c.k*8)
		for _, variant := range []int{1, 2, 3, 4, 5} {
			if variant == 3 && c.k > 8 {
				continue // barriers make it ~100× slower on lavapipe: seconds per op
			}
			b.Run(fmt.Sprintf("v%d/rows%d,n%d,K%d", variant, c.rows, c.n, c.k), func(b *testing.B) {
				benchOpThroughput(b, graph.TopK{K: c.k, Variant: variant}, bytes, x)
			})
		}
	}
}
