package graph

import (
	"fmt"
	"math"

	"github.com/moegpu/moegpu/gpu"
)

// RowsWrite writes a window of rows into a persistent matrix in place:
// hist[start+r] = x[r] (rows past hist's end are dropped). Inputs: hist
// (cap, d) f32 State, updated; x (q, d) f32; start (1) u32, written by the
// host. No outputs. Speculative decoding keeps each position's hidden state
// this way, so later submissions can read a window of positions back.
type RowsWrite struct{}

// RowsRead reads a window of rows of a persistent matrix: y[r] =
// hist[start+r], zeros past hist's end. Inputs: hist (cap, d), start (1)
// u32. Output: y (Q, d).
type RowsRead struct{ Q int }

// StridedRows takes one row of every Stride: y[b] = x[b·Stride + Offset].
// Input x (n·Stride, d) f32; output y (n, d). A decoding graph that needs
// one position of each sequence (batch·seq rows, sequence-major) reads it
// this way, with Stride the sequence length. No gradient (inference only).
type StridedRows struct{ Stride, Offset int }

// DraftPick is greedy drafting on the GPU: best = argmax(logits[at]) (ties
// to the lower id, NaN below every number); outputs tokens with
// tokens[at] = best, and draft (1) = best. Inputs: tokens (q) u32, logits
// (q, vocab) f32, at (1) u32 (clamped to q−1).
type DraftPick struct{}

// Name implements Op.
func (RowsWrite) Name() string { return "rows_write" }

// Name implements Op.
func (RowsRead) Name() string { return "rows_read" }

// Name implements Op.
func (DraftPick) Name() string { return "draft_pick" }

// Name implements Op.
func (StridedRows) Name() string { return "strided_rows" }

// Outputs implements Op.
func (s StridedRows) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	if err := wantRank("x", in[0], 2, gpu.F32); err != nil {
		return nil, err
	}
	if s.Stride < 1 || s.Offset < 0 || s.Offset >= s.Stride || in[0].Shape[0]%s.Stride != 0 {
		return nil, fmt.Errorf("row %d of every %d: want 0 ≤ offset < stride and rows (%d) a multiple of the stride", s.Offset, s.Stride, in[0].Shape[0])
	}
	return []Spec{F32(in[0].Shape[0]/s.Stride, in[0].Shape[1])}, nil
}

// Reference implements Op.
func (s StridedRows) Reference(in []*Host) ([]*Host, error) {
	n, d := in[0].Shape[0]/s.Stride, in[0].Shape[1]
	y := NewHost(F32(n, d))
	for b := 0; b < n; b++ {
		r := b*s.Stride + s.Offset
		copy(y.Data[b*d:(b+1)*d], in[0].Data[r*d:(r+1)*d])
	}
	return []*Host{y}, nil
}

// Encode implements Op.
func (s StridedRows) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	n, d := out[0].Shape[0], out[0].Shape[1]
	if n*d == 0 {
		return nil
	}
	k, err := rowsKernel(dev, "strided_rows", []gpu.Access{gpu.Read, gpu.ReadWrite})
	if err != nil {
		return err
	}
	return rec.Dispatch(k, dev.Grid1D(gpu.CeilDiv(n*d, 64)), []uint32{uint32(n), uint32(d), uint32(s.Stride), uint32(s.Offset)}, in[0], out[0])
}

// Updates implements InPlace: hist.
func (RowsWrite) Updates() []int { return []int{0} }

// Outputs implements Op.
func (RowsWrite) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 3); err != nil {
		return nil, err
	}
	if err := wantRank("hist", in[0], 2, gpu.F32); err != nil {
		return nil, err
	}
	if err := wantRank("x", in[1], 2, gpu.F32); err != nil {
		return nil, err
	}
	if in[0].Shape[1] != in[1].Shape[1] || in[2].DType != gpu.U32 || in[2].Len() != 1 {
		return nil, fmt.Errorf("hist %v, x %v and start %s do not agree", in[0].Shape, in[1].Shape, in[2])
	}
	return []Spec{}, nil
}

// Outputs implements Op.
func (r RowsRead) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 2); err != nil {
		return nil, err
	}
	if err := wantRank("hist", in[0], 2, gpu.F32); err != nil {
		return nil, err
	}
	if in[1].DType != gpu.U32 || in[1].Len() != 1 || r.Q < 1 {
		return nil, fmt.Errorf("start %s and window %d rows: want a one-element u32 and ≥ 1 row", in[1], r.Q)
	}
	return []Spec{F32(r.Q, in[0].Shape[1])}, nil
}

// Outputs implements Op.
func (DraftPick) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 3); err != nil {
		return nil, err
	}
	if err := wantRank("tokens", in[0], 1, gpu.U32); err != nil {
		return nil, err
	}
	if err := wantRank("logits", in[1], 2, gpu.F32); err != nil {
		return nil, err
	}
	if in[1].Shape[0] != in[0].Shape[0] || in[2].DType != gpu.U32 || in[2].Len() != 1 {
		return nil, fmt.Errorf("tokens %v, logits %v and at %s do not agree", in[0].Shape, in[1].Shape, in[2])
	}
	return []Spec{in[0], U32(1)}, nil
}

// Reference implements Op.
func (RowsWrite) Reference(in []*Host) ([]*Host, error) {
	capRows, d := in[0].Shape[0], in[0].Shape[1]
	start := int(in[2].Data[0])
	for r := 0; r < in[1].Shape[0] && start+r < capRows; r++ {
		copy(in[0].Data[(start+r)*d:(start+r+1)*d], in[1].Data[r*d:(r+1)*d])
	}
	return []*Host{}, nil
}

// Reference implements Op.
func (r RowsRead) Reference(in []*Host) ([]*Host, error) {
	capRows, d := in[0].Shape[0], in[0].Shape[1]
	start := int(in[1].Data[0])
	y := NewHost(F32(r.Q, d))
	for i := 0; i < r.Q && start+i < capRows; i++ {
		copy(y.Data[i*d:(i+1)*d], in[0].Data[(start+i)*d:(start+i+1)*d])
	}
	return []*Host{y}, nil
}

// Reference implements Op.
func (DraftPick) Reference(in []*Host) ([]*Host, error) {
	q, v := in[1].Shape[0], in[1].Shape[1]
	row := min(int(in[2].Data[0]), q-1)
	best := 0
	for i := 1; i < v; i++ {
		x, b := in[1].Data[row*v+i], in[1].Data[row*v+best]
		if !math.IsNaN(x) && (math.IsNaN(b) || x > b) {
			best = i
		}
	}
	out := &Host{Spec: in[0].Spec, Data: append([]float64(nil), in[0].Data...)}
	out.Data[row] = float64(best)
	d := NewHost(U32(1))
	d.Data[0] = float64(best)
	return []*Host{out, d}, nil
}

func rowsKernel(dev *gpu.Device, entry string, acc []gpu.Access) (*gpu.Kernel, error) {
	return kernel(dev, "rows", entry, entry, acc, true, map[string]string{"WG": "64u"})
}

// Encode implements Op.
func (RowsWrite) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	q, d := in[1].Shape[0], in[1].Shape[1]
	k, err := rowsKernel(dev, "rows_write", []gpu.Access{gpu.ReadWrite, gpu.ReadWrite, gpu.Read})
	if err != nil {
		return err
	}
	return rec.Dispatch(k, dev.Grid1D(gpu.CeilDiv(q*d, 64)), []uint32{uint32(q), uint32(d), uint32(in[0].Shape[0]), 0}, in[1], in[0], in[2])
}

// Encode implements Op.
func (r RowsRead) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	d := in[0].Shape[1]
	k, err := rowsKernel(dev, "rows_read", []gpu.Access{gpu.ReadWrite, gpu.ReadWrite, gpu.Read})
	if err != nil {
		return err
	}
	return rec.Dispatch(k, dev.Grid1D(gpu.CeilDiv(r.Q*d, 64)), []uint32{uint32(r.Q), uint32(d), uint32(in[0].Shape[0]), 0}, out[0], in[0], in[1])
}

// Encode implements Op.
func (DraftPick) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	q, v := in[1].Shape[0], in[1].Shape[1]
	if b := loopBudget(dev); b > 0 && v+q > b {
		return overBudget(dev, fmt.Sprintf("draft_pick over %d tokens", v), v+q)
	}
	k, err := rowsKernel(dev, "draft_pick", []gpu.Access{gpu.Read, gpu.Read, gpu.Read, gpu.ReadWrite, gpu.ReadWrite})
	if err != nil {
		return err
	}
	return rec.Dispatch(k, [3]uint32{1, 1, 1}, []uint32{uint32(q), 0, 0, uint32(v)}, in[0], in[1], in[2], out[0], out[1])
}
