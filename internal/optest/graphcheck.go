package optest

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
)

// GraphCheck describes a whole-graph gradient check: the loss must already
// have its backward pass (g.Backward(loss)). Inputs not in Fixed get
// uniform values in [-Scale, Scale].
type GraphCheck struct {
	Graph *graph.Graph
	Loss  *graph.Tensor
	Fixed map[*graph.Tensor][]float64 // e.g. token ids, targets, weights
	Scale float64
	// FDSamples is how many elements of each parameter are checked by
	// finite differences (all when 0 or more than the parameter holds).
	FDSamples int
	Tol       Tol // GPU vs reference
	Seed      int64
}

// CheckGraph compares the loss and every parameter gradient of the GPU
// executor with the reference executor, and the reference gradients with
// central finite differences of the reference loss.
func CheckGraph(t *testing.T, dev *gpu.Device, c GraphCheck) {
	t.Helper()
	g := c.Graph
	outs := []*graph.Tensor{c.Loss}
	params := g.Params()
	for _, p := range params {
		if p.Grad == nil {
			t.Fatalf("parameter %s has no gradient", p.Name)
		}
		outs = append(outs, p.Grad)
	}
	plan, err := g.Plan(outs, uint64(dev.Limits.MinStorageBufferOffsetAlignment))
	if err != nil {
		t.Fatal(err)
	}
	ref := graph.NewReference(plan)
	ex, err := graph.NewGPU(dev, plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	rng := rand.New(rand.NewSource(c.Seed))
	vals := map[*graph.Tensor][]float64{}
	for _, tn := range append(g.Inputs(), params...) {
		if v, ok := c.Fixed[tn]; ok {
			vals[tn] = v
		} else {
			vals[tn] = Random(rng, tn.Spec, -c.Scale, c.Scale).Data
		}
		for _, e := range []graph.Executor{ref, ex} {
			if err := e.Set(tn, vals[tn]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := ref.Run(); err != nil {
		t.Fatal(err)
	}
	if err := ex.Run(); err != nil {
		t.Fatal(err)
	}
	want, err := ref.Get(outs...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ex.Get(outs...)
	if err != nil {
		t.Fatal(err)
	}
	for i := range outs {
		name := "loss"
		if i > 0 {
			name = "d loss / d " + params[i-1].Name
		}
		Close(t, name+" (gpu vs reference)", got[i], want[i], c.Tol)
	}
	// Finite differences on the reference, forward only.
	fwd, err := g.Plan([]*graph.Tensor{c.Loss}, 256)
	if err != nil {
		t.Fatal(err)
	}
	lossAt := func() float64 {
		r := graph.NewReference(fwd)
		for tn, v := range vals {
			if err := r.Set(tn, v); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Run(); err != nil {
			t.Fatal(err)
		}
		l, err := r.Get(c.Loss)
		if err != nil {
			t.Fatal(err)
		}
		return l[0][0]
	}
	const h = 1e-6
	for i, p := range params {
		idx := rng.Perm(p.Len())
		if c.FDSamples > 0 && c.FDSamples < len(idx) {
			idx = idx[:c.FDSamples]
		}
		var num, ana []float64
		for _, j := range idx {
			orig := vals[p][j]
			vals[p][j] = orig + h
			lp := lossAt()
			vals[p][j] = orig - h
			lm := lossAt()
			vals[p][j] = orig
			num = append(num, (lp-lm)/(2*h))
			ana = append(ana, want[i+1][j])
		}
		Close(t, fmt.Sprintf("d loss / d %s (finite differences, %d elements)", p.Name, len(idx)), ana, num, GradTol)
	}
}
