package graph

import (
	"fmt"

	"github.com/moegpu/moegpu/gpu"
)

// NoPatch is the strip index of a row that carries no image strip (a text
// position): ColumnPatches gives it a row of zeros.
const NoPatch = 0xFFFFFFFF

// ColumnPatches cuts images into vertical strips, one strip per output row
// (im2col for 1 × Patch-column patches of full height, the tokenisation of
// a text-line image; ViT's patch embedding with patches as tall as the
// image). Inputs: image (B, H, W) f32 row-major, 1 = ink, and cols (N) u32
// with N a multiple of B: row r belongs to sequence b = r / (N/B) and takes
// strip cols[r] of image b. Output: y (N, H·Patch), y[r, h·Patch + j] =
// image[b, h, cols[r]·Patch + j]; a strip index ≥ ceil(W/Patch) (NoPatch
// for text positions) gives zeros, and pixels past W in the last strip read
// as 0. The patch embedding is this followed by a linear layer
// (layers.PatchEmbedding).
type ColumnPatches struct {
	Patch int // strip width P in pixels, ≥ 1
}

// ColumnPatchesBackward is ColumnPatches' gradient with respect to the
// image: inputs dy (N, H·Patch) and cols (N) u32; output dimage (B, H, W),
// written, dimage[b, h, x] = Σ_{r in b, cols[r] = x/P} dy[r, h·P + x%P]
// (summed in increasing r). B, H and W come from the op, as dy alone cannot
// give W.
type ColumnPatchesBackward struct {
	Patch, Images, Height, Width int
}

// Name implements Op.
func (ColumnPatches) Name() string { return "column_patches" }

// Name implements Op.
func (ColumnPatchesBackward) Name() string { return "column_patches_backward" }

func patchShape(p, b, n int) error {
	if p < 1 {
		return fmt.Errorf("strip width %d must be ≥ 1", p)
	}
	if b < 1 || n%b != 0 {
		return fmt.Errorf("%d rows do not split evenly into %d images", n, b)
	}
	return nil
}

// Outputs implements Op.
func (c ColumnPatches) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 2); err != nil {
		return nil, err
	}
	if err := wantRank("image", in[0], 3, gpu.F32); err != nil {
		return nil, err
	}
	if err := wantRank("cols", in[1], 1, gpu.U32); err != nil {
		return nil, err
	}
	if err := patchShape(c.Patch, in[0].Shape[0], in[1].Shape[0]); err != nil {
		return nil, err
	}
	return []Spec{F32(in[1].Shape[0], in[0].Shape[1]*c.Patch)}, nil
}

// Outputs implements Op.
func (c ColumnPatchesBackward) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 2); err != nil {
		return nil, err
	}
	if err := wantRank("dy", in[0], 2, gpu.F32); err != nil {
		return nil, err
	}
	if err := wantRank("cols", in[1], 1, gpu.U32); err != nil {
		return nil, err
	}
	if err := patchShape(c.Patch, c.Images, in[1].Shape[0]); err != nil {
		return nil, err
	}
	if in[0].Shape[0] != in[1].Shape[0] || in[0].Shape[1] != c.Height*c.Patch || c.Width < 1 {
		return nil, fmt.Errorf("dy %v, cols %v and image (%d, %d, %d) with strips of %d do not agree",
			in[0].Shape, in[1].Shape, c.Images, c.Height, c.Width, c.Patch)
	}
	return []Spec{F32(c.Images, c.Height, c.Width)}, nil
}

// strip returns the image column of element j of row r's strip, or -1.
func stripColumn(col float64, p, w, j int) int {
	strips := (w + p - 1) / p
	if col < 0 || col >= float64(strips) {
		return -1
	}
	x := int(col)*p + j
	if x >= w {
		return -1
	}
	return x
}

// Reference implements Op.
func (c ColumnPatches) Reference(in []*Host) ([]*Host, error) {
	outs, err := c.Outputs([]Spec{in[0].Spec, in[1].Spec})
	if err != nil {
		return nil, err
	}
	y := NewHost(outs[0])
	b, h, w := in[0].Shape[0], in[0].Shape[1], in[0].Shape[2]
	n, p := in[1].Shape[0], c.Patch
	s := n / b
	for r := 0; r < n; r++ {
		for row := 0; row < h; row++ {
			for j := 0; j < p; j++ {
				if x := stripColumn(in[1].Data[r], p, w, j); x >= 0 {
					y.Data[r*h*p+row*p+j] = in[0].Data[((r/s)*h+row)*w+x]
				}
			}
		}
	}
	return []*Host{y}, nil
}

// Reference implements Op.
func (c ColumnPatchesBackward) Reference(in []*Host) ([]*Host, error) {
	outs, err := c.Outputs([]Spec{in[0].Spec, in[1].Spec})
	if err != nil {
		return nil, err
	}
	d := NewHost(outs[0])
	h, w, p := c.Height, c.Width, c.Patch
	n := in[1].Shape[0]
	s := n / c.Images
	for r := 0; r < n; r++ {
		for row := 0; row < h; row++ {
			for j := 0; j < p; j++ {
				if x := stripColumn(in[1].Data[r], p, w, j); x >= 0 {
					d.Data[((r/s)*h+row)*w+x] += in[0].Data[r*h*p+row*p+j]
				}
			}
		}
	}
	return []*Host{d}, nil
}

func patchParams(n, s, h, w, p, b int) []uint32 {
	return []uint32{uint32(n), uint32(s), uint32(h), uint32(w), uint32(p), uint32((w + p - 1) / p), uint32(b), 0}
}

// Encode implements Op.
func (c ColumnPatches) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	const wg = 256
	b, h, w := in[0].Shape[0], in[0].Shape[1], in[0].Shape[2]
	n := in[1].Shape[0]
	k, err := kernel(dev, "patches", "column_patches", "column_patches", []gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite}, true, nil)
	if err != nil {
		return err
	}
	return rec.Dispatch(k, dev.Grid1D(gpu.CeilDiv(n*h*c.Patch, wg)), patchParams(n, n/b, h, w, c.Patch, b), in[0], in[1], out[0])
}

// Encode implements Op. Each pixel loops over its sequence's N/B rows, so
// on llvmpipe N/B must stay within the loop budget.
func (c ColumnPatchesBackward) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	const wg = 256
	n := in[1].Shape[0]
	s := n / c.Images
	if budget := loopBudget(dev); budget > 0 && s > budget {
		return overBudget(dev, fmt.Sprintf("column patches backward, %d rows per image", s), s)
	}
	k, err := kernel(dev, "patches", "column_patches_backward", "column_patches_backward",
		[]gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite}, true, nil)
	if err != nil {
		return err
	}
	grid := dev.Grid1D(gpu.CeilDiv(c.Images*c.Height*c.Width, wg))
	return rec.Dispatch(k, grid, patchParams(n, s, c.Height, c.Width, c.Patch, c.Images), in[0], in[1], out[0])
}

// Backward implements Differentiable: the image gets the scatter of dy;
// cols get none.
func (c ColumnPatches) Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor {
	img := n.In[0]
	back := ColumnPatchesBackward{Patch: c.Patch, Images: img.Shape[0], Height: img.Shape[1], Width: img.Shape[2]}
	return []*Tensor{g.Apply1(back, dOut[0], n.In[1]), nil}
}
