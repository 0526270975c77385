package graph

import (
	"fmt"

	"github.com/moegpu/moegpu/gpu"
)

// ConcatCols joins two f32 matrices side by side: inputs x1 (rows, a) and
// x2 (rows, b), output y (rows, a+b) with y[r] = [x1[r], x2[r]]. The
// multi-token-prediction modules concatenate an embedding and a hidden
// state this way before their projection (DeepSeek-V3 §2.2).
type ConcatCols struct{}

// SplitCols is ConcatCols's inverse and backward: input x (rows, a+b),
// outputs y1 (rows, A) and y2 (rows, a+b−A).
type SplitCols struct{ A int }

// Name implements Op.
func (ConcatCols) Name() string { return "concat_cols" }

// Name implements Op.
func (SplitCols) Name() string { return "split_cols" }

// Outputs implements Op.
func (ConcatCols) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 2); err != nil {
		return nil, err
	}
	for i, s := range in {
		if err := wantRank(fmt.Sprintf("x%d", i+1), s, 2, gpu.F32); err != nil {
			return nil, err
		}
	}
	if in[0].Shape[0] != in[1].Shape[0] {
		return nil, fmt.Errorf("x1 has %d rows, x2 %d", in[0].Shape[0], in[1].Shape[0])
	}
	return []Spec{F32(in[0].Shape[0], in[0].Shape[1]+in[1].Shape[1])}, nil
}

// Outputs implements Op.
func (s SplitCols) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	if err := wantRank("x", in[0], 2, gpu.F32); err != nil {
		return nil, err
	}
	rows, w := in[0].Shape[0], in[0].Shape[1]
	if s.A < 0 || s.A > w {
		return nil, fmt.Errorf("split at column %d of %d", s.A, w)
	}
	return []Spec{F32(rows, s.A), F32(rows, w-s.A)}, nil
}

// Reference implements Op.
func (ConcatCols) Reference(in []*Host) ([]*Host, error) {
	rows, a, b := in[0].Shape[0], in[0].Shape[1], in[1].Shape[1]
	y := NewHost(F32(rows, a+b))
	for r := 0; r < rows; r++ {
		copy(y.Data[r*(a+b):], in[0].Data[r*a:(r+1)*a])
		copy(y.Data[r*(a+b)+a:], in[1].Data[r*b:(r+1)*b])
	}
	return []*Host{y}, nil
}

// Reference implements Op.
func (s SplitCols) Reference(in []*Host) ([]*Host, error) {
	rows, w := in[0].Shape[0], in[0].Shape[1]
	a, b := s.A, w-s.A
	y1, y2 := NewHost(F32(rows, a)), NewHost(F32(rows, b))
	for r := 0; r < rows; r++ {
		copy(y1.Data[r*a:(r+1)*a], in[0].Data[r*w:r*w+a])
		copy(y2.Data[r*b:(r+1)*b], in[0].Data[r*w+a:(r+1)*w])
	}
	return []*Host{y1, y2}, nil
}

func concatKernel(dev *gpu.Device, entry string) (*gpu.Kernel, error) {
	return kernel(dev, "concat", entry, entry, []gpu.Access{gpu.ReadWrite, gpu.ReadWrite, gpu.ReadWrite}, true, map[string]string{"WG": "64u"})
}

// Encode implements Op.
func (ConcatCols) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	rows, a, b := in[0].Shape[0], in[0].Shape[1], in[1].Shape[1]
	k, err := concatKernel(dev, "concat_cols")
	if err != nil {
		return err
	}
	return rec.Dispatch(k, dev.Grid1D(gpu.CeilDiv(rows*(a+b), 64)), []uint32{uint32(rows), uint32(a), uint32(b), 0}, in[0], in[1], out[0])
}

// Encode implements Op.
func (s SplitCols) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	rows, w := in[0].Shape[0], in[0].Shape[1]
	k, err := concatKernel(dev, "split_cols")
	if err != nil {
		return err
	}
	return rec.Dispatch(k, dev.Grid1D(gpu.CeilDiv(rows*w, 64)), []uint32{uint32(rows), uint32(s.A), uint32(w - s.A), 0}, out[0], out[1], in[0])
}

// Backward implements Differentiable.
func (ConcatCols) Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor {
	return g.Apply(SplitCols{A: n.In[0].Shape[1]}, dOut[0])
}

// Backward implements Differentiable: a missing part's gradient is zero.
func (s SplitCols) Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor {
	d := make([]*Tensor, 2)
	for i := range d {
		d[i] = dOut[i]
		if d[i] == nil {
			d[i] = g.Apply1(Zeros{Spec: n.Out[i].Spec})
		}
	}
	return []*Tensor{g.Apply1(ConcatCols{}, d[0], d[1])}
}
