package graph

import (
	"fmt"
	"math"

	"github.com/moegpu/moegpu/gpu"
)

// RMSNorm normalises each row of x by its root mean square and scales it by
// a learned gain: y = x · rstd · g with rstd = 1/sqrt(mean(x²) + eps). It is
// the pre-norm of every transformer block. Inputs (x (rows, d) or
// (B, rows, d), g (d)); outputs (y, x's shape; rstd, x's shape without the
// last axis). rstd is saved for RMSNormBackward, as llm.c saves layernorm's
// mean and rstd.
type RMSNorm struct {
	// Eps is added to mean(x²); 0 means 1e-5.
	Eps float32
	// Variant selects the kernel: RowwiseAuto, RowwiseSerial or
	// RowwiseWorkgroup.
	Variant int
}

// rmsEps is the epsilon an RMSNorm with Eps == 0 uses.
const rmsEps = 1e-5

func (op RMSNorm) eps() float32 {
	if op.Eps == 0 {
		return rmsEps
	}
	return op.Eps
}

// Name implements Op.
func (RMSNorm) Name() string { return "rmsnorm" }

// rmsnormCheck validates x (rank 2 or 3, non-empty last axis) and g (d) and
// returns the rstd spec.
func rmsnormCheck(x, g Spec) (Spec, error) {
	if err := rowwiseCheck("x", x); err != nil {
		return Spec{}, err
	}
	d := x.Shape[len(x.Shape)-1]
	if d == 0 {
		return Spec{}, fmt.Errorf("x %v: the normalised (last) axis is empty", x.Shape)
	}
	if g.DType != gpu.F32 || len(g.Shape) != 1 || g.Shape[0] != d {
		return Spec{}, fmt.Errorf("gain g: want f32[%d] to match x %v, got %s", d, x.Shape, g)
	}
	return F32(x.Shape[:len(x.Shape)-1]...), nil
}

// Outputs implements Op.
func (RMSNorm) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 2); err != nil {
		return nil, err
	}
	rs, err := rmsnormCheck(in[0], in[1])
	if err != nil {
		return nil, err
	}
	return []Spec{F32(in[0].Shape...), rs}, nil
}

// Reference implements Op.
func (op RMSNorm) Reference(in []*Host) ([]*Host, error) {
	x, g := in[0], in[1]
	outs, err := op.Outputs([]Spec{x.Spec, g.Spec})
	if err != nil {
		return nil, err
	}
	y, rstd := NewHost(outs[0]), NewHost(outs[1])
	rows, d := rowwiseSplit(x.Shape)
	eps := float64(op.eps())
	for r := 0; r < rows; r++ {
		ss := 0.0
		for j := 0; j < d; j++ {
			v := x.Data[r*d+j]
			ss += v * v
		}
		rs := 1 / math.Sqrt(ss/float64(d)+eps)
		rstd.Data[r] = rs
		for j := 0; j < d; j++ {
			y.Data[r*d+j] = x.Data[r*d+j] * rs * g.Data[j]
		}
	}
	return []*Host{y, rstd}, nil
}

// Encode implements Op.
func (op RMSNorm) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	rows, d := rowwiseSplit(in[0].Shape)
	v, err := rowwiseVariant(dev, op.Variant)
	if err != nil {
		return err
	}
	if rows == 0 {
		return nil
	}
	entry := "rmsnorm_wg"
	if v == RowwiseSerial {
		entry = "rmsnorm_rows" + vec4Suffix(d)
	}
	k, err := kernel(dev, "rmsnorm", entry, entry,
		[]gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite, gpu.ReadWrite}, true, rowwiseConsts)
	if err != nil {
		return err
	}
	params := []uint32{uint32(rows), uint32(d), math.Float32bits(op.eps()), 0}
	return rec.Dispatch(k, rowwiseGrid(dev, v, rows), params, in[0], in[1], out[0], out[1])
}

// vec4Suffix names the vec4 entry of a serial kernel when rows of length n
// can be read as vec4s.
func vec4Suffix(n int) string {
	if n > 0 && n%4 == 0 {
		return "4"
	}
	return ""
}

// RMSNormBackward is the gradient of RMSNorm. Inputs (x, g, rstd, dy), with
// rstd the forward's second output; outputs (dx, x's shape; dg (d)).
//
// dg, a parameter gradient, is written (=), not accumulated: it is the sum
// over rows of dy·x·rstd, each column reduced over the rows in a fixed
// order (by extra invocations of dx's dispatch, one dispatch in all), so it
// is deterministic and needs no atomics. Callers that must accumulate add
// it with AddInto.
//
// With Accumulate, dx is added into its previous value (dx += …), which is
// then a fifth input (see Accumulator): how FuseAccumulate folds the
// residual stream's gradient sum into the norm's backward.
type RMSNormBackward struct {
	// Variant selects the kernels as in RMSNorm.
	Variant    int
	Accumulate bool
	// SeparateDG computes dg in a dispatch of its own after dx's, instead
	// of by extra invocations of dx's dispatch: the same sums in the same
	// order (bit-identical), kept for checking.
	SeparateDG bool
}

// Accumulates implements Accumulator.
func (op RMSNormBackward) Accumulates() bool { return op.Accumulate }

// Name implements Op.
func (RMSNormBackward) Name() string { return "rmsnorm_backward" }

// Outputs implements Op.
func (op RMSNormBackward) Outputs(in []Spec) ([]Spec, error) {
	n := 4
	if op.Accumulate {
		n = 5
	}
	if err := wantInputs(in, n); err != nil {
		return nil, err
	}
	if op.Accumulate && (in[4].DType != gpu.F32 || numel(in[4].Shape) != numel(in[0].Shape)) {
		return nil, fmt.Errorf("accumulator %s does not match dx %s", in[4], in[0])
	}
	x, g, rstd, dy := in[0], in[1], in[2], in[3]
	rs, err := rmsnormCheck(x, g)
	if err != nil {
		return nil, err
	}
	if rstd.DType != gpu.F32 || !rowwiseSameShape(rstd.Shape, rs.Shape) {
		return nil, fmt.Errorf("rstd: want %s for x %v, got %s", rs, x.Shape, rstd)
	}
	if dy.DType != gpu.F32 || !rowwiseSameShape(dy.Shape, x.Shape) {
		return nil, fmt.Errorf("dy: want %s like x, got %s", x, dy)
	}
	return []Spec{F32(x.Shape...), F32(g.Shape...)}, nil
}

// Reference implements Op.
func (op RMSNormBackward) Reference(in []*Host) ([]*Host, error) {
	x, g, rstd, dy := in[0], in[1], in[2], in[3]
	dx, dg := NewHost(x.Spec), NewHost(g.Spec)
	var prev []float64
	if op.Accumulate {
		prev = in[4].Data
	}
	rows, d := rowwiseSplit(x.Shape)
	for r := 0; r < rows; r++ {
		rs := rstd.Data[r]
		dot := 0.0
		for j := 0; j < d; j++ {
			dot += g.Data[j] * dy.Data[r*d+j] * x.Data[r*d+j]
		}
		for j := 0; j < d; j++ {
			i := r*d + j
			dx.Data[i] = rs*g.Data[j]*dy.Data[i] - x.Data[i]*rs*rs*rs/float64(d)*dot
			if prev != nil {
				dx.Data[i] += prev[i]
			}
			dg.Data[j] += dy.Data[i] * x.Data[i] * rs
		}
	}
	return []*Host{dx, dg}, nil
}

// Encode implements Op: one dispatch for dx and dg (two with SeparateDG).
func (op RMSNormBackward) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	rows, d := rowwiseSplit(in[0].Shape)
	v, err := rowwiseVariant(dev, op.Variant)
	if err != nil {
		return err
	}
	bind := []gpu.Access{gpu.Read, gpu.Read, gpu.Read, gpu.Read, gpu.ReadWrite, gpu.ReadWrite}
	acc := uint32(0)
	if op.Accumulate {
		acc = 1
	}
	params := []uint32{uint32(rows), uint32(d), 0, acc}
	bufs := []*gpu.Buffer{in[0], in[1], in[2], in[3], out[0], out[1]}
	dxEntry, dgEntry, bothEntry := "rmsnorm_bwd_wg", "rmsnorm_dg_wg", "rmsnorm_bwd_wg_dg"
	dgBlocks := gpu.CeilDiv(d, rmsnormDGCols)
	dgGrid, bothGrid := dev.Grid1D(dgBlocks), dev.Grid1D(rows+dgBlocks)
	if v == RowwiseSerial {
		dxEntry, dgEntry, bothEntry = "rmsnorm_bwd_rows"+vec4Suffix(d), "rmsnorm_dg_cols", "rmsnorm_bwd_rows"+vec4Suffix(d)+"_dg"
		if rows == 0 { // no vec4 view of an empty x
			bothEntry = "rmsnorm_bwd_rows_dg"
		}
		dgGrid, bothGrid = dev.Grid1D(gpu.CeilDiv(d, rowwiseWG)), dev.Grid1D(gpu.CeilDiv(max(rows, d), rowwiseWG))
	}
	if !op.SeparateDG {
		// dg runs even with no rows: the sum over zero rows is written as 0.
		k, err := kernel(dev, "rmsnorm", bothEntry, bothEntry, bind, true, rowwiseConsts)
		if err != nil {
			return err
		}
		return rec.Dispatch(k, bothGrid, params, bufs...)
	}
	if rows > 0 {
		k, err := kernel(dev, "rmsnorm", dxEntry, dxEntry, bind, true, rowwiseConsts)
		if err != nil {
			return err
		}
		if err := rec.Dispatch(k, rowwiseGrid(dev, v, rows), params, bufs...); err != nil {
			return err
		}
	}
	k, err := kernel(dev, "rmsnorm", dgEntry, dgEntry, bind, true, rowwiseConsts)
	if err != nil {
		return err
	}
	return rec.Dispatch(k, dgGrid, params, bufs...)
}

// rmsnormDGCols is DG_COLS in rmsnorm.wgsl: columns per workgroup of the
// RowwiseWorkgroup dg kernel.
const rmsnormDGCols = 32

// Backward implements Differentiable. The saved rstd output carries no
// gradient of its own (nothing downstream of the norm reads it).
func (r RMSNorm) Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor {
	if dOut[0] == nil {
		return []*Tensor{nil, nil}
	}
	d := g.Apply(RMSNormBackward{Variant: r.Variant}, n.In[0], n.In[1], n.Out[1], dOut[0])
	if len(d) < 2 { // a recorded shape error; Backward reports it
		return []*Tensor{nil, nil}
	}
	return []*Tensor{d[0], d[1]}
}
