package graph

import (
	"fmt"
	"math"

	"github.com/moegpu/moegpu/gpu"
)

// Row-reduction variants shared by Softmax and RMSNorm (and their
// backwards). Both are kept because the best one depends on the adapter.
const (
	// RowwiseAuto picks RowwiseSerial on CPU adapters and RowwiseWorkgroup
	// elsewhere.
	RowwiseAuto = 0
	// RowwiseSerial runs one invocation per row with a serial loop (vec4
	// loads when the row length is a multiple of 4): no barriers, no shared
	// memory, which is what a CPU Vulkan driver such as lavapipe runs best.
	RowwiseSerial = 1
	// RowwiseWorkgroup runs one workgroup per row and combines partial
	// results with a shared-memory tree reduction: the usual choice on
	// discrete GPUs, where one invocation per row leaves most lanes idle.
	RowwiseWorkgroup = 2
)

// rowwiseVariant resolves a Variant field for dev, rejecting unknown values.
func rowwiseVariant(dev *gpu.Device, v int) (int, error) {
	switch v {
	case RowwiseAuto:
		if dev.Info.DeviceType == "cpu" {
			return RowwiseSerial, nil
		}
		return RowwiseWorkgroup, nil
	case RowwiseSerial, RowwiseWorkgroup:
		return v, nil
	}
	return 0, fmt.Errorf("unknown variant %d (want 0, 1 or 2)", v)
}

// Workgroup sizes of the row kernels, passed to the shaders' overrides:
// rows per workgroup for RowwiseSerial (ROW_WG) and invocations per row for
// RowwiseWorkgroup (RED_WG, a power of two).
const (
	rowwiseWG    = 64
	rowwiseRedWG = 256
)

// rowwiseConsts are the override values every row kernel is compiled with.
var rowwiseConsts = map[string]string{
	"ROW_WG": fmt.Sprintf("%du", rowwiseWG),
	"RED_WG": fmt.Sprintf("%du", rowwiseRedWG),
}

// rowwiseGrid is the grid of a row kernel: rows/ROW_WG workgroups for
// RowwiseSerial, one workgroup per row for RowwiseWorkgroup.
func rowwiseGrid(dev *gpu.Device, variant, rows int) [3]uint32 {
	if variant == RowwiseSerial {
		return dev.Grid1D(gpu.CeilDiv(rows, rowwiseWG))
	}
	return dev.Grid1D(rows)
}

// rowwiseSplit splits a shape into rows (the product of the leading axes) and
// the length of the last axis.
func rowwiseSplit(shape []int) (rows, cols int) {
	n := len(shape)
	return numel(shape[:n-1]), shape[n-1]
}

// rowwiseCheck checks that s is f32 of rank 2 or 3 (leading axes are rows).
func rowwiseCheck(what string, s Spec) error {
	if s.DType != gpu.F32 || (len(s.Shape) != 2 && len(s.Shape) != 3) {
		return fmt.Errorf("%s: want f32 of rank 2 or 3, got %s", what, s)
	}
	return nil
}

func rowwiseSameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Softmax normalises each row of x (rows, cols) — or (B, rows, cols), the
// leading axes flattened — over its last axis: y = exp(x − max) / Σ exp(x −
// max). Attention probabilities and router gates need it; subtracting the
// row maximum keeps it exact for logits of any size.
type Softmax struct {
	// Variant selects the kernel: RowwiseAuto, RowwiseSerial or
	// RowwiseWorkgroup.
	Variant int
}

// Name implements Op.
func (Softmax) Name() string { return "softmax" }

// Outputs implements Op: one input x, one output y of x's shape.
func (Softmax) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	if err := rowwiseCheck("x", in[0]); err != nil {
		return nil, err
	}
	return []Spec{F32(in[0].Shape...)}, nil
}

// Reference implements Op.
func (Softmax) Reference(in []*Host) ([]*Host, error) {
	x := in[0]
	y := NewHost(x.Spec)
	rows, cols := rowwiseSplit(x.Shape)
	for r := 0; r < rows; r++ {
		row := x.Data[r*cols : (r+1)*cols]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, v)
		}
		s := 0.0
		for _, v := range row {
			s += math.Exp(v - m)
		}
		for j, v := range row {
			y.Data[r*cols+j] = math.Exp(v-m) / s
		}
	}
	return []*Host{y}, nil
}

// Encode implements Op.
func (op Softmax) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	rows, cols := rowwiseSplit(in[0].Shape)
	return encodeSoftmax(dev, rec, op.Variant, "softmax", rows, cols,
		[]gpu.Access{gpu.Read, gpu.ReadWrite}, in[0], out[0])
}

// SoftmaxBackward is the gradient of Softmax, from its output y rather than
// its input: dx = y·(dy − Σ_j y_j dy_j) per row. Inputs (y, dy), output dx,
// all of one shape.
type SoftmaxBackward struct {
	// Variant selects the kernel as in Softmax.
	Variant int
}

// Name implements Op.
func (SoftmaxBackward) Name() string { return "softmax_backward" }

// Outputs implements Op.
func (SoftmaxBackward) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 2); err != nil {
		return nil, err
	}
	if err := rowwiseCheck("y", in[0]); err != nil {
		return nil, err
	}
	if err := rowwiseCheck("dy", in[1]); err != nil {
		return nil, err
	}
	if !rowwiseSameShape(in[0].Shape, in[1].Shape) {
		return nil, fmt.Errorf("dy shape %v differs from y shape %v", in[1].Shape, in[0].Shape)
	}
	return []Spec{F32(in[0].Shape...)}, nil
}

// Reference implements Op.
func (SoftmaxBackward) Reference(in []*Host) ([]*Host, error) {
	y, dy := in[0], in[1]
	dx := NewHost(y.Spec)
	rows, cols := rowwiseSplit(y.Shape)
	for r := 0; r < rows; r++ {
		s := 0.0
		for j := 0; j < cols; j++ {
			s += y.Data[r*cols+j] * dy.Data[r*cols+j]
		}
		for j := 0; j < cols; j++ {
			dx.Data[r*cols+j] = y.Data[r*cols+j] * (dy.Data[r*cols+j] - s)
		}
	}
	return []*Host{dx}, nil
}

// Encode implements Op.
func (op SoftmaxBackward) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	rows, cols := rowwiseSplit(in[0].Shape)
	return encodeSoftmax(dev, rec, op.Variant, "softmax_bwd", rows, cols,
		[]gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite}, in[0], in[1], out[0])
}

// encodeSoftmax dispatches the forward or backward entry point of the chosen
// variant: softmax_rows[4] / softmax_bwd_rows[4] or softmax_wg /
// softmax_bwd_wg.
func encodeSoftmax(dev *gpu.Device, rec *gpu.Recorder, variant int, entry string, rows, cols int,
	bind []gpu.Access, bufs ...*gpu.Buffer) error {
	v, err := rowwiseVariant(dev, variant)
	if err != nil {
		return err
	}
	if rows*cols == 0 {
		return nil // empty: nothing to write
	}
	if v == RowwiseSerial {
		entry += "_rows" + vec4Suffix(cols)
	} else {
		entry += "_wg"
	}
	k, err := kernel(dev, "softmax", entry, entry, bind, true, rowwiseConsts)
	if err != nil {
		return err
	}
	return rec.Dispatch(k, rowwiseGrid(dev, v, rows), []uint32{uint32(rows), uint32(cols), 0, 0}, bufs...)
}

// Backward implements Differentiable: dx = y·(dy − Σ y·dy).
func (s Softmax) Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor {
	return []*Tensor{g.Apply1(SoftmaxBackward{Variant: s.Variant}, n.Out[0], dOut[0])}
}
