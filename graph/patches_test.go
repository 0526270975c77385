package graph_test

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
)

// patchCols draws n strip indices for images of the given width, about a
// quarter of them NoPatch (text positions) and some past the last strip.
func patchCols(rng *rand.Rand, n, w, p int) *graph.Host {
	h := graph.NewHost(graph.U32(n))
	strips := (w + p - 1) / p
	for i := range h.Data {
		switch rng.Intn(8) {
		case 0, 1:
			h.Data[i] = graph.NoPatch
		case 2:
			h.Data[i] = float64(strips + rng.Intn(3)) // past the image: zeros
		default:
			h.Data[i] = float64(rng.Intn(strips))
		}
	}
	return h
}

// The forward only copies pixels, so GPU and reference must agree exactly;
// the backward sums at most N/B products of one dy element each (≤ 40 terms
// of magnitude ≤ 1 here), so f32 rounding stays below 40·2⁻²⁴ ≈ 2.4e-6:
// atol 1e-5.
func TestColumnPatchesMatchReference(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(21))
	for _, s := range []struct{ b, h, w, p, perImage int }{
		{1, 1, 1, 1, 1}, {1, 32, 256, 4, 70}, {3, 7, 17, 4, 9}, {2, 5, 13, 3, 40}, {4, 32, 33, 8, 5},
	} {
		t.Run(fmt.Sprintf("B%d,H%d,W%d,P%d,S%d", s.b, s.h, s.w, s.p, s.perImage), func(t *testing.T) {
			img := optest.Random(rng, graph.F32(s.b, s.h, s.w), 0, 1)
			cols := patchCols(rng, s.b*s.perImage, s.w, s.p)
			y := optest.CheckOp(t, dev, graph.ColumnPatches{Patch: s.p}, optest.Tol{}, img, cols)[0]
			dy := optest.Random(rng, y.Spec, -1, 1)
			back := graph.ColumnPatchesBackward{Patch: s.p, Images: s.b, Height: s.h, Width: s.w}
			optest.CheckOp(t, dev, back, optest.Tol{Atol: 1e-5}, dy, cols)
		})
	}
}

// A known layout: strip c of image b holds its columns c·P … c·P+P−1,
// row-major by image row.
func TestColumnPatchesLayout(t *testing.T) {
	img, _ := graph.HostFrom(graph.F32(2, 2, 3), []float64{
		1, 2, 3,
		4, 5, 6, // image 0
		7, 8, 9,
		10, 11, 12, // image 1
	})
	cols, _ := graph.HostFrom(graph.U32(4), []float64{1, graph.NoPatch, 0, 1})
	y := optest.MustRef(t, graph.ColumnPatches{Patch: 2}, img, cols)[0]
	want := []float64{
		3, 0, 6, 0, // image 0, strip 1: column 2 and a pixel past W
		0, 0, 0, 0, // text position
		7, 8, 10, 11, // image 1, strip 0
		9, 0, 12, 0, // image 1, strip 1
	}
	optest.Close(t, "patches", y.Data, want, optest.Tol{})
	dev := gputest.Device(t)
	got, err := graph.RunOp(dev, graph.ColumnPatches{Patch: 2}, img, cols)
	if err != nil {
		t.Fatal(err)
	}
	optest.Close(t, "patches on the GPU", got[0].Data, want, optest.Tol{})
}

// The op is linear in the image, so finite differences of Σ w·y must equal
// the backward's scatter of w, including strips that two rows share.
func TestColumnPatchesBackwardMatchesFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewSource(22))
	b, h, w, p, s := 2, 3, 7, 2, 6
	img := optest.Random(rng, graph.F32(b, h, w), -1, 1)
	cols := patchCols(rng, b*s, w, p)
	cols.Data[0], cols.Data[1] = 1, 1 // a strip read twice
	wt := optest.Random(rng, graph.F32(b*s, h*p), -1, 1)
	loss := func(in []*graph.Host) float64 {
		return optest.Dot(optest.MustRef(t, graph.ColumnPatches{Patch: p}, in...)[0].Data, wt.Data)
	}
	grads := func(in []*graph.Host) []*graph.Host {
		return optest.MustRef(t, graph.ColumnPatchesBackward{Patch: p, Images: b, Height: h, Width: w}, wt, in[1])
	}
	optest.CheckGrad(t, "column patches", []*graph.Host{img, cols}, []int{0}, loss, grads, optest.GradTol)
}

func TestColumnPatchesRefusesBadShapes(t *testing.T) {
	for _, c := range []struct {
		op   graph.Op
		in   []graph.Spec
		want string
	}{
		{graph.ColumnPatches{Patch: 0}, []graph.Spec{graph.F32(1, 2, 3), graph.U32(4)}, "strip width"},
		{graph.ColumnPatches{Patch: 2}, []graph.Spec{graph.F32(3, 2, 3), graph.U32(4)}, "split evenly"},
		{graph.ColumnPatches{Patch: 2}, []graph.Spec{graph.F32(2, 3), graph.U32(4)}, "image"},
		{graph.ColumnPatchesBackward{Patch: 2, Images: 1, Height: 2, Width: 3}, []graph.Spec{graph.F32(4, 5), graph.U32(4)}, "do not agree"},
	} {
		_, err := c.op.Outputs(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s%v: error %v, want one saying %q", c.op.Name(), c.in, err, c.want)
		}
	}
}
