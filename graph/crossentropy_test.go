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

// ceTargets draws n targets in [0, v) and marks some rows ignored: one
// with IgnoreTarget and one with the out-of-range value v.
func ceTargets(rng *rand.Rand, n, v int) *graph.Host {
	h := optest.RandomInts(rng, graph.U32(n), v)
	if n >= 3 {
		h.Data[1] = float64(graph.IgnoreTarget)
		h.Data[n-1] = float64(v)
	}
	return h
}

// ceTol: lse and loss are m + log(s) with s an f32 sum of V terms in
// [0, 1]; its rounding grows like √V·2⁻²⁴ ≈ 2e-6 relative at V = 5000
// (serial) and less for the tree, giving ≲ 2e-6 absolute on log(s); m and
// x[t] are exact, and rounding m + log(s) costs 2⁻²⁴ relative. So atol 1e-5
// and rtol 1e-5, also for logits scaled to ±1e4.
var ceTol = optest.Tol{Atol: 1e-5, Rtol: 1e-5}

func TestCrossEntropyMatchesReference(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(1))
	shapes := [][2]int{{1, 1}, {3, 17}, {17, 3}, {129, 129}, {3, 1}, {7, 4}, {5, 1000}, {64, 5000}}
	for _, variant := range []int{1, 2, 3} {
		for _, s := range shapes {
			for _, scale := range []float64{5, 1e4} {
				n, v := s[0], s[1]
				t.Run(fmt.Sprintf("v%d/N%d,V%d,scale%g", variant, n, v, scale), func(t *testing.T) {
					logits := optest.Random(rng, graph.F32(n, v), -scale, scale)
					optest.CheckOp(t, dev, graph.CrossEntropy{Variant: variant}, ceTol, logits, ceTargets(rng, n, v))
				})
			}
		}
	}
}

// Vocabularies past llvmpipe's loop cap (two passes of 40001 > 65535
// iterations) must still be right on the automatic path, and the per-row
// scalar variant must refuse there rather than stop half-way.
func TestCrossEntropyHandlesVocabulariesPastTheLoopBudget(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(6))
	for _, v := range []int{40000, 40001} {
		logits := optest.Random(rng, graph.F32(2, v), -5, 5)
		targets := optest.RandomInts(rng, graph.U32(2), v)
		optest.CheckOp(t, dev, graph.CrossEntropy{}, ceTol, logits, targets)
		if strings.EqualFold(dev.Info.DeviceType, "cpu") && v%4 != 0 {
			if _, err := graph.RunOp(dev, graph.CrossEntropy{Variant: 1}, logits, targets); !errors.Is(err, gpu.ErrUnsupported) {
				t.Errorf("variant 1 at V=%d on llvmpipe: got %v, want ErrUnsupported", v, err)
			}
		}
	}
}

func TestCrossEntropyIgnoredRowsCarryNoLossOrGradient(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(2))
	n, v := 4, 7
	logits := optest.Random(rng, graph.F32(n, v), -3, 3)
	targets, _ := graph.HostFrom(graph.U32(n), []float64{float64(graph.IgnoreTarget), 7, 1 << 31, 2})
	fwd, err := graph.RunOp(dev, graph.CrossEntropy{}, logits, targets)
	if err != nil {
		t.Fatal(err)
	}
	optest.Close(t, "loss of ignored rows", fwd[0].Data[:3], []float64{0, 0, 0}, optest.Tol{})
	if fwd[0].Data[3] <= 0 {
		t.Fatalf("loss of a real row is %g, want > 0", fwd[0].Data[3])
	}
	dloss, _ := graph.HostFrom(graph.F32(n), []float64{1, 1, 1, 1})
	bwd, err := graph.RunOp(dev, graph.CrossEntropyBackward{}, logits, targets, fwd[1], dloss)
	if err != nil {
		t.Fatal(err)
	}
	optest.Close(t, "dlogits of ignored rows", bwd[0].Data[:3*v], make([]float64, 3*v), optest.Tol{})
}

// ceLse runs the reference forward and rounds lse to f32, as the GPU
// stores it, so GPU and reference backward see the same input.
func ceLse(t *testing.T, logits, targets *graph.Host) *graph.Host {
	lse := optest.MustRef(t, graph.CrossEntropy{}, logits, targets)[1]
	for i, x := range lse.Data {
		lse.Data[i] = float64(float32(x))
	}
	return lse
}

func TestCrossEntropyBackwardMatchesFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	n, v := 5, 7
	logits := optest.Random(rng, graph.F32(n, v), -3, 3)
	targets := ceTargets(rng, n, v)
	w := optest.Random(rng, graph.F32(n), -1, 1)
	loss := func(in []*graph.Host) float64 {
		return optest.Dot(optest.MustRef(t, graph.CrossEntropy{}, in...)[0].Data, w.Data)
	}
	grads := func(in []*graph.Host) []*graph.Host {
		lse := optest.MustRef(t, graph.CrossEntropy{}, in...)[1] // float64, unrounded
		return optest.MustRef(t, graph.CrossEntropyBackward{}, in[0], in[1], lse, w)
	}
	optest.CheckGrad(t, "cross_entropy", []*graph.Host{logits, targets}, []int{0}, loss, grads, optest.GradTol)
}

// Tolerance: each gradient is dloss·(exp(x − lse) − [j = t]) with |dloss| ≤
// 1; x − lse is one f32 subtraction (exact when within a factor of two,
// else one rounding of a value ≲ 2·scale, i.e. ≲ 20·2⁻²⁴ relative at scale
// 5) and exp adds a few ulps: atol 1e-6, rtol 1e-5. At scale 1e4 every
// softmax value that is not exactly 0 or 1 sits near a tie with the max,
// where x − lse is small and exact, so the same tolerance holds.
func TestCrossEntropyBackwardMatchesReference(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(4))
	tol := optest.Tol{Atol: 1e-6, Rtol: 1e-5}
	for _, variant := range []int{1, 2, 3} {
		for _, s := range [][2]int{{1, 1}, {3, 17}, {17, 3}, {129, 129}, {5, 4}, {16, 2000}, {3, 300}} {
			for _, scale := range []float64{5, 1e4} {
				n, v := s[0], s[1]
				t.Run(fmt.Sprintf("v%d/N%d,V%d,scale%g", variant, n, v, scale), func(t *testing.T) {
					logits := optest.Random(rng, graph.F32(n, v), -scale, scale)
					targets := ceTargets(rng, n, v)
					dloss := optest.Random(rng, graph.F32(n), -1, 1)
					optest.CheckOp(t, dev, graph.CrossEntropyBackward{Variant: variant}, tol, logits, targets, ceLse(t, logits, targets), dloss)
				})
			}
		}
	}
}

// Large logits must neither overflow exp nor lose the loss: a row with one
// logit 1e4 above the rest has loss ≈ 0 at that target and ≈ 1e4 elsewhere.
func TestCrossEntropyIsStableForLargeLogits(t *testing.T) {
	dev := gputest.Device(t)
	for _, variant := range []int{1, 2, 3} {
		logits, _ := graph.HostFrom(graph.F32(2, 3), []float64{3e4, 2e4, 2e4, 3e4, 2e4, 2e4})
		targets, _ := graph.HostFrom(graph.U32(2), []float64{0, 1})
		got, err := graph.RunOp(dev, graph.CrossEntropy{Variant: variant}, logits, targets)
		if err != nil {
			t.Fatal(err)
		}
		optest.Close(t, fmt.Sprintf("variant %d loss", variant), got[0].Data, []float64{0, 1e4}, optest.Tol{Atol: 1e-6, Rtol: 1e-6})
		for _, x := range got[1].Data {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				t.Fatalf("variant %d: lse %v", variant, got[1].Data)
			}
		}
	}
}

func TestCheckTargetsNamesTheBadPosition(t *testing.T) {
	if err := graph.CheckTargets([]uint32{0, 4, graph.IgnoreTarget}, 5); err != nil {
		t.Fatalf("valid targets rejected: %v", err)
	}
	err := graph.CheckTargets([]uint32{0, 5, 1}, 5)
	if err == nil {
		t.Fatal("target 5 of 5 classes accepted")
	}
	t.Log(err)
}

func TestCrossEntropyRejectsBadShapes(t *testing.T) {
	cases := []struct {
		name string
		op   graph.Op
		in   []graph.Spec
	}{
		{"f32 targets", graph.CrossEntropy{}, []graph.Spec{graph.F32(3, 4), graph.F32(3)}},
		{"rows ≠ targets", graph.CrossEntropy{}, []graph.Spec{graph.F32(3, 4), graph.U32(4)}},
		{"zero classes", graph.CrossEntropy{}, []graph.Spec{graph.F32(3, 0), graph.U32(3)}},
		{"lse length", graph.CrossEntropyBackward{}, []graph.Spec{graph.F32(3, 4), graph.U32(3), graph.F32(2), graph.F32(3)}},
		{"dloss rank", graph.CrossEntropyBackward{}, []graph.Spec{graph.F32(3, 4), graph.U32(3), graph.F32(3), graph.F32(3, 1)}},
	}
	for _, c := range cases {
		if _, err := c.op.Outputs(c.in); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

// go test ./graph/ -run '^$' -bench CrossEntropy
func BenchmarkCrossEntropy(b *testing.B) {
	rng := rand.New(rand.NewSource(5))
	n, v := 512, 32000
	logits := optest.Random(rng, graph.F32(n, v), -5, 5)
	targets := optest.RandomInts(rng, graph.U32(n), v)
	for _, variant := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("forward/v%d/N%d,V%d", variant, n, v), func(b *testing.B) {
			benchOpThroughput(b, graph.CrossEntropy{Variant: variant}, int64(n*v*4), logits, targets)
		})
	}
	lse := optest.Random(rng, graph.F32(n), 10, 11)
	dloss := optest.Random(rng, graph.F32(n), -1, 1)
	for _, variant := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("backward/v%d/N%d,V%d", variant, n, v), func(b *testing.B) {
			benchOpThroughput(b, graph.CrossEntropyBackward{Variant: variant}, int64(n*v*8), logits, targets, lse, dloss)
		})
	}
}
