package graph

import (
	"fmt"

	"github.com/moegpu/moegpu/gpu"
)

// WeightedSum is y = Σ_i w_i·x_i over two f32 tensors of the same shape,
// giving a scalar (shape [1]). The training loss is the weighted sum of
// per-token losses, with w = mask/count: the mean over positions that carry
// a loss. Inputs (x, w).
type WeightedSum struct{}

// MulScalar is y = x·s for a tensor x and a one-element tensor s: the
// broadcast that carries a scalar gradient back to every element.
// Inputs (x, s).
type MulScalar struct{}

// Name implements Op.
func (WeightedSum) Name() string { return "weighted_sum" }

// Name implements Op.
func (MulScalar) Name() string { return "mul_scalar" }

// Outputs implements Op.
func (WeightedSum) Outputs(in []Spec) ([]Spec, error) {
	if _, err := sameShape(in, 1, "x", "w"); err != nil {
		return nil, err
	}
	return []Spec{F32(1)}, nil
}

// Outputs implements Op.
func (MulScalar) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 2); err != nil {
		return nil, err
	}
	if in[0].DType != gpu.F32 || in[1].DType != gpu.F32 || in[1].Len() != 1 {
		return nil, fmt.Errorf("want f32 x and a one-element f32 scalar, got %s and %s", in[0], in[1])
	}
	return []Spec{in[0]}, nil
}

// Reference implements Op.
func (WeightedSum) Reference(in []*Host) ([]*Host, error) {
	y := NewHost(F32(1))
	for i, x := range in[0].Data {
		y.Data[0] += x * in[1].Data[i]
	}
	return []*Host{y}, nil
}

// Reference implements Op.
func (MulScalar) Reference(in []*Host) ([]*Host, error) {
	y := NewHost(in[0].Spec)
	for i, x := range in[0].Data {
		y.Data[i] = x * in[1].Data[0]
	}
	return []*Host{y}, nil
}

const reduceWG = 256

func reduceKernel(dev *gpu.Device, entry string) (*gpu.Kernel, error) {
	return kernel(dev, "reduce", entry, entry, []gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite}, true, nil)
}

// Encode implements Op.
func (WeightedSum) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	k, err := reduceKernel(dev, "weighted_sum")
	if err != nil {
		return err
	}
	return rec.Dispatch(k, [3]uint32{1, 1, 1}, []uint32{uint32(in[0].Len()), 0, 0, 0}, in[0], in[1], out[0])
}

// Encode implements Op.
func (MulScalar) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	k, err := reduceKernel(dev, "mul_scalar")
	if err != nil {
		return err
	}
	n := in[0].Len()
	return rec.Dispatch(k, dev.Grid1D(gpu.CeilDiv(n, reduceWG)), []uint32{uint32(n), 0, 0, 0}, in[0], in[1], out[0])
}

// Backward implements Differentiable: dx = w·g, dw = x·g. When g is the
// constant 1 (the loss's own seed), dx is w and dw is x: no dispatch.
func (WeightedSum) Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor {
	if isConstOne(dOut[0]) {
		return []*Tensor{n.In[1], n.In[0]}
	}
	return []*Tensor{g.Apply1(MulScalar{}, n.In[1], dOut[0]), g.Apply1(MulScalar{}, n.In[0], dOut[0])}
}

// Backward implements Differentiable: dx = dy·s, ds = Σ x·dy.
func (MulScalar) Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor {
	return []*Tensor{g.Apply1(MulScalar{}, dOut[0], n.In[1]), g.Apply1(WeightedSum{}, n.In[0], dOut[0])}
}

// Zeros produces a zero tensor of a fixed spec: the starting value of a
// gradient that an Accumulator op (a scatter-add) adds into. No inputs.
type Zeros struct{ Spec Spec }

// Name implements Op.
func (Zeros) Name() string { return "zeros" }

// Outputs implements Op.
func (z Zeros) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 0); err != nil {
		return nil, err
	}
	if z.Spec.DType != gpu.F32 {
		return nil, fmt.Errorf("zeros: only f32, got %s", z.Spec)
	}
	return []Spec{z.Spec}, nil
}

// Reference implements Op.
func (z Zeros) Reference(in []*Host) ([]*Host, error) { return []*Host{NewHost(z.Spec)}, nil }

// Encode implements Op.
func (z Zeros) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	k, err := kernel(dev, "reduce", "zero_fill", "zero_fill", []gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite}, true, nil)
	if err != nil {
		return err
	}
	n := out[0].Len()
	// x and w are unused by zero_fill; bind the output read-only views
	// would alias it, so bind a tiny scratch buffer instead.
	dummy, err := rec.Scratch("zeros.unused", gpu.F32, 1)
	if err != nil {
		return err
	}
	return rec.Dispatch(k, dev.Grid1D(gpu.CeilDiv(n, reduceWG)), []uint32{uint32(n), 0, 0, 0}, dummy, dummy, out[0])
}

// isConstOne reports whether t is a constant holding the single value 1.
func isConstOne(t *Tensor) bool {
	return t != nil && t.Kind == Const && t.Value != nil && len(t.Value.Data) == 1 && t.Value.Data[0] == 1
}
