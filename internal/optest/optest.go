// Package optest is the one harness every op test uses: GPU output against
// the CPU reference with a stated tolerance, and reference gradients
// against central finite differences in float64.
package optest

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
)

// Awkward are sizes that are not multiples of any tile: every op is tested
// on them as well as on round sizes.
var Awkward = []int{1, 3, 17, 129}

// Random fills a tensor with uniform values in [lo, hi).
func Random(rng *rand.Rand, s graph.Spec, lo, hi float64) *graph.Host {
	h := graph.NewHost(s)
	for i := range h.Data {
		h.Data[i] = lo + (hi-lo)*rng.Float64()
	}
	if s.DType == gpu.F32 || s.DType == gpu.F16 {
		for i := range h.Data { // representable, so GPU and CPU see the same input
			h.Data[i] = float64(float32(h.Data[i]))
		}
	}
	return h
}

// RandomInts fills a u32/i32 tensor with integers in [0, n).
func RandomInts(rng *rand.Rand, s graph.Spec, n int) *graph.Host {
	h := graph.NewHost(s)
	for i := range h.Data {
		h.Data[i] = float64(rng.Intn(n))
	}
	return h
}

// Tol is an elementwise tolerance |got-want| ≤ Atol + Rtol·|want|.
type Tol struct{ Atol, Rtol float64 }

func (t Tol) String() string { return fmt.Sprintf("atol=%g rtol=%g", t.Atol, t.Rtol) }

// Compare returns an error describing the worst violation, or nil.
func Compare(what string, got, want []float64, tol Tol) error {
	if len(got) != len(want) {
		return fmt.Errorf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst, wi, bad := 0.0, -1, 0
	for i := range got {
		if math.IsNaN(got[i]) != math.IsNaN(want[i]) {
			return fmt.Errorf("%s[%d]: got %g, want %g", what, i, got[i], want[i])
		}
		d := math.Abs(got[i] - want[i])
		lim := tol.Atol + tol.Rtol*math.Abs(want[i])
		if d > lim {
			bad++
			if d-lim > worst {
				worst, wi = d-lim, i
			}
		}
	}
	if bad > 0 {
		return fmt.Errorf("%s: %d/%d values outside %s; worst [%d] got %.9g want %.9g (|diff| %.3g)",
			what, bad, len(got), tol, wi, got[wi], want[wi], math.Abs(got[wi]-want[wi]))
	}
	return nil
}

// Close fails the test when got and want differ beyond tol.
func Close(t testing.TB, what string, got, want []float64, tol Tol) {
	t.Helper()
	if err := Compare(what, got, want, tol); err != nil {
		t.Fatal(err)
	}
}

// CheckOp runs op on the GPU and on the reference with the same inputs and
// compares every output (see Check).
func CheckOp(t testing.TB, dev *gpu.Device, op graph.Op, tol Tol, in ...*graph.Host) []*graph.Host {
	t.Helper()
	got, err := Check(dev, op, tol, in...)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// GradTol is the tolerance for reference gradients against central finite
// differences, both in float64: truncation error is O(h²)≈1e-12 and
// cancellation O(ε/h)≈1e-10 at h=1e-6, so 1e-6 absolute is loose enough for
// smooth ops yet catches any wrong term.
var GradTol = Tol{Atol: 1e-6, Rtol: 1e-5}

// CheckGrad compares an analytic gradient with central finite differences
// of a scalar loss. loss evaluates the forward reference at the given inputs
// and returns Σ w·y for a fixed random w; grads returns the analytic
// gradient of that same loss with respect to inputs[k] for each k in wrt.
func CheckGrad(t testing.TB, name string, in []*graph.Host, wrt []int,
	loss func(in []*graph.Host) float64, grads func(in []*graph.Host) []*graph.Host, tol Tol) {
	t.Helper()
	g := grads(in)
	if len(g) != len(wrt) {
		t.Fatalf("%s: %d gradients for %d inputs", name, len(g), len(wrt))
	}
	const h = 1e-6
	for gi, k := range wrt {
		x := in[k].Data
		num := make([]float64, len(x))
		for i := range x {
			orig := x[i]
			x[i] = orig + h
			lp := loss(in)
			x[i] = orig - h
			lm := loss(in)
			x[i] = orig
			num[i] = (lp - lm) / (2 * h)
		}
		Close(t, fmt.Sprintf("%s d/d input %d (finite differences)", name, k), g[gi].Data, num, tol)
	}
}

// Dot is Σ a·b, the projection that turns a tensor output into the scalar
// loss finite differences need.
func Dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// MustRef runs the reference and fails the test on error.
func MustRef(t testing.TB, op graph.Op, in ...*graph.Host) []*graph.Host {
	t.Helper()
	out, err := graph.RunReference(op, in...)
	if err != nil {
		t.Fatalf("%s reference: %v", op.Name(), err)
	}
	return out
}
