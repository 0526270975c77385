package graph

import (
	"fmt"

	"github.com/moegpu/moegpu/gpu"
)

// Transpose swaps the last two axes of a rank-2 or rank-3 f32 tensor:
// (R, C) → (C, R) and (B, R, C) → (B, C, R). Its gradient is itself.
type Transpose struct{}

// Name implements Op.
func (Transpose) Name() string { return "transpose" }

func splitBatch(shape []int) (b, r, c int) {
	if len(shape) == 3 {
		return shape[0], shape[1], shape[2]
	}
	return 1, shape[0], shape[1]
}

// Outputs implements Op.
func (Transpose) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	s := in[0]
	if s.DType != gpu.F32 || (len(s.Shape) != 2 && len(s.Shape) != 3) {
		return nil, fmt.Errorf("want f32 of rank 2 or 3, got %s", s)
	}
	out := append([]int(nil), s.Shape...)
	n := len(out)
	out[n-1], out[n-2] = out[n-2], out[n-1]
	return []Spec{{DType: gpu.F32, Shape: out}}, nil
}

// Reference implements Op.
func (t Transpose) Reference(in []*Host) ([]*Host, error) {
	outs, err := t.Outputs([]Spec{in[0].Spec})
	if err != nil {
		return nil, err
	}
	y := NewHost(outs[0])
	b, r, c := splitBatch(in[0].Shape)
	x := in[0].Data
	for bi := 0; bi < b; bi++ {
		for i := 0; i < r; i++ {
			for j := 0; j < c; j++ {
				y.Data[bi*r*c+j*r+i] = x[bi*r*c+i*c+j]
			}
		}
	}
	return []*Host{y}, nil
}

// Encode implements Op.
func (Transpose) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	const wg = 256
	b, r, c := splitBatch(in[0].Shape)
	entry, n := "transpose", b*r*c
	if r%4 == 0 && c%4 == 0 {
		entry, n = "transpose4", b*r*c/16
	}
	k, err := kernel(dev, "transpose", entry, entry, []gpu.Access{gpu.Read, gpu.ReadWrite}, true, nil)
	if err != nil {
		return err
	}
	grid := dev.Grid1D(gpu.CeilDiv(n, wg))
	return rec.Dispatch(k, grid, []uint32{uint32(b), uint32(r), uint32(c), 0}, in[0], out[0])
}

// Backward implements Differentiable: the gradient of a transpose is the
// transposed gradient.
func (Transpose) Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor {
	return []*Tensor{g.Apply1(Transpose{}, dOut[0])}
}
