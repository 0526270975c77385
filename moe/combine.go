package moe

import (
	"fmt"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
)

// Combine brings expert outputs back to token order (see
// shaders/moe_combine.wgsl):
//
//	y[t] = Σ_k g[t,k]·yp[row of slot (t,k)]   routed choices that got a row
//	     + Σ_k g[t,k]·x[t]                     copy choices (idx ≥ Experts)
//	     + ys[shared row of t]                 Shared: the shared experts
//
// Inputs: yp (rows, d), gates (n, K), idx (n, K) u32, slotRow (n·K) u32,
// rowSlot (rows) u32 (for the backward), x (n, d); with Shared also ys
// (srows, d), sSlotRow (n) u32 and sRowSlot (srows) u32. Output: y (n, d).
// A token that picked a copy expert has no rows: its output is the gated
// identity, and the router learns through that gate.
type Combine struct {
	Experts int
	Shared  bool
}

// Name implements graph.Op.
func (Combine) Name() string { return "moe_combine" }

// Outputs implements graph.Op.
func (c Combine) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	want := 6
	if c.Shared {
		want = 9
	}
	if err := graph.WantInputs(in, want); err != nil {
		return nil, err
	}
	for i, name := range []string{"yp", "gates", "idx", "slotRow", "rowSlot", "x"} {
		rank, t := 2, gpu.F32
		switch name {
		case "idx":
			t = gpu.U32
		case "slotRow", "rowSlot":
			rank, t = 1, gpu.U32
		}
		if err := graph.WantRank(name, in[i], rank, t); err != nil {
			return nil, err
		}
	}
	rows, d := in[0].Shape[0], in[0].Shape[1]
	n, k := in[1].Shape[0], in[1].Shape[1]
	if in[2].Shape[0] != n || in[2].Shape[1] != k || in[3].Shape[0] != n*k || in[4].Shape[0] != rows {
		return nil, fmt.Errorf("gates %v, idx %v, slotRow %v, rowSlot %v do not agree with %d tokens × %d choices and %d rows",
			in[1].Shape, in[2].Shape, in[3].Shape, in[4].Shape, n, k, rows)
	}
	if in[5].Shape[0] != n || in[5].Shape[1] != d {
		return nil, fmt.Errorf("x %v: want (%d, %d)", in[5].Shape, n, d)
	}
	if c.Shared {
		if err := graph.WantRank("ys", in[6], 2, gpu.F32); err != nil {
			return nil, err
		}
		if err := graph.WantRank("sSlotRow", in[7], 1, gpu.U32); err != nil {
			return nil, err
		}
		if err := graph.WantRank("sRowSlot", in[8], 1, gpu.U32); err != nil {
			return nil, err
		}
		if in[6].Shape[1] != d || in[7].Shape[0] != n || in[8].Shape[0] != in[6].Shape[0] {
			return nil, fmt.Errorf("ys %v, sSlotRow %v, sRowSlot %v do not agree with %d tokens of width %d", in[6].Shape, in[7].Shape, in[8].Shape, n, d)
		}
	}
	return []graph.Spec{graph.F32(n, d)}, nil
}

// Reference implements graph.Op.
func (c Combine) Reference(in []*graph.Host) ([]*graph.Host, error) {
	d := in[0].Shape[1]
	n, k := in[1].Shape[0], in[1].Shape[1]
	y := graph.NewHost(graph.F32(n, d))
	for t := 0; t < n; t++ {
		out := y.Data[t*d : (t+1)*d]
		for j := 0; j < k; j++ {
			s := t*k + j
			g := in[1].Data[s]
			if r := in[3].Data[s]; r != invalid {
				for i := range out {
					out[i] += g * in[0].Data[int(r)*d+i]
				}
			} else if int(in[2].Data[s]) >= c.Experts {
				for i := range out {
					out[i] += g * in[5].Data[t*d+i]
				}
			}
		}
		if c.Shared {
			if r := in[7].Data[t]; r != invalid {
				for i := range out {
					out[i] += in[6].Data[int(r)*d+i]
				}
			}
		}
	}
	return []*graph.Host{y}, nil
}

// Encode implements graph.Op.
func (c Combine) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	n, k := in[1].Shape[0], in[1].Shape[1]
	entry, d := vec4Entry("combine_forward", in[0].Shape[1])
	kern, err := graph.Kernel(dev, "moe_combine", entry, "moe_"+entry,
		[]gpu.Access{gpu.Read, gpu.Read, gpu.Read, gpu.Read, gpu.Read, gpu.Read, gpu.Read, gpu.ReadWrite}, true, consts())
	if err != nil {
		return err
	}
	ys, sSlot, shared := in[0], in[3], uint32(0) // stand-ins when there is no shared expert
	if c.Shared {
		ys, sSlot, shared = in[6], in[7], 1
	}
	return rec.Dispatch(kern, grid(dev, n*d), []uint32{uint32(n), uint32(d), uint32(k), uint32(c.Experts), shared, 0, 0, 0},
		in[0], in[1], in[2], in[3], in[5], ys, sSlot, out[0])
}

// Backward implements graph.Differentiable: gradients for yp, gates, x
// (the copy path) and ys; none for the index tensors.
func (c Combine) Backward(g *graph.Graph, n *graph.Node, dOut []*graph.Tensor) []*graph.Tensor {
	dy := dOut[0]
	in := n.In
	k := in[1].Shape[1]
	d := make([]*graph.Tensor, len(in))
	d[0] = g.Apply1(CombineGradRows{SlotsPerToken: k, Weighted: true}, dy, in[1], in[4])
	gx := g.Apply(CombineGradGates{Experts: c.Experts}, dy, in[0], in[1], in[2], in[3], in[5])
	d[1], d[5] = gx[0], gx[1]
	if c.Shared {
		d[6] = g.Apply1(CombineGradRows{SlotsPerToken: 1}, dy, dy, in[8])
	}
	return d
}

// CombineGradRows is the gradient of Combine with respect to a permuted
// row tensor: dyp[r] = w·dy[token of row r], w the slot's gate when
// Weighted (routed rows) or 1 (shared rows); zeros on rows without a slot.
// Inputs: dy (n, d), gates (n·ks values; any tensor when not Weighted),
// rowSlot (rows) u32. Output: dyp (rows, d).
type CombineGradRows struct {
	SlotsPerToken int
	Weighted      bool
}

// Name implements graph.Op.
func (CombineGradRows) Name() string { return "moe_combine_grad_rows" }

// Outputs implements graph.Op.
func (o CombineGradRows) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if err := graph.WantInputs(in, 3); err != nil {
		return nil, err
	}
	if err := graph.WantRank("dy", in[0], 2, gpu.F32); err != nil {
		return nil, err
	}
	if err := graph.WantRank("rowSlot", in[2], 1, gpu.U32); err != nil {
		return nil, err
	}
	if o.SlotsPerToken < 1 {
		return nil, fmt.Errorf("slots per token %d: want ≥ 1", o.SlotsPerToken)
	}
	if o.Weighted && (in[1].DType != gpu.F32 || in[1].Len() != in[0].Shape[0]*o.SlotsPerToken) {
		return nil, fmt.Errorf("gates %s: want %d f32 values", in[1], in[0].Shape[0]*o.SlotsPerToken)
	}
	return []graph.Spec{graph.F32(in[2].Shape[0], in[0].Shape[1])}, nil
}

// Reference implements graph.Op.
func (o CombineGradRows) Reference(in []*graph.Host) ([]*graph.Host, error) {
	n, d := in[0].Shape[0], in[0].Shape[1]
	rows := in[2].Shape[0]
	out := graph.NewHost(graph.F32(rows, d))
	for r := 0; r < rows; r++ {
		s := in[2].Data[r]
		if s == invalid {
			continue
		}
		t := int(s) / o.SlotsPerToken
		if t >= n {
			return nil, fmt.Errorf("row %d holds slot %d, past %d tokens", r, int(s), n)
		}
		w := 1.0
		if o.Weighted {
			w = in[1].Data[int(s)]
		}
		for c := 0; c < d; c++ {
			out.Data[r*d+c] = w * in[0].Data[t*d+c]
		}
	}
	return []*graph.Host{out}, nil
}

// Encode implements graph.Op.
func (o CombineGradRows) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	rows := in[2].Shape[0]
	entry, d := vec4Entry("combine_grad_rows", in[0].Shape[1])
	kern, err := graph.Kernel(dev, "moe_combine", entry, "moe_"+entry,
		[]gpu.Access{gpu.Read, gpu.Read, gpu.Read, gpu.ReadWrite}, true, consts())
	if err != nil {
		return err
	}
	w := uint32(0)
	if o.Weighted {
		w = 1
	}
	return rec.Dispatch(kern, grid(dev, rows*d), []uint32{uint32(rows), uint32(d), uint32(o.SlotsPerToken), 0, w, 0, 0, 0},
		in[0], in[1], in[2], out[0])
}

// CombineGradGates is the gradient of Combine with respect to the gates
// and, through the copy experts' gated identity, to x:
//
//	dg[t,k] = ⟨dy[t], yp[row]⟩ (routed slot with a row), ⟨dy[t], x[t]⟩ (copy choice), else 0
//	dx[t]   = Σ_{copy k} g[t,k]·dy[t]
//
// Inputs: dy (n, d), yp (rows, d), gates (n, K), idx (n, K) u32, slotRow
// (n·K) u32, x (n, d). Outputs: dgates (n, K), dx (n, d).
type CombineGradGates struct{ Experts int }

// Name implements graph.Op.
func (CombineGradGates) Name() string { return "moe_combine_grad_gates" }

// Outputs implements graph.Op.
func (o CombineGradGates) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if err := graph.WantInputs(in, 6); err != nil {
		return nil, err
	}
	n, d := in[0].Shape[0], in[0].Shape[1]
	if in[1].Shape[1] != d || in[5].Shape[0] != n || in[5].Shape[1] != d || in[2].Shape[0] != n || in[3].Len() != in[2].Len() || in[4].Len() != in[2].Len() {
		return nil, fmt.Errorf("dy %v, yp %v, gates %v, idx %v, slotRow %v, x %v do not agree", in[0].Shape, in[1].Shape, in[2].Shape, in[3].Shape, in[4].Shape, in[5].Shape)
	}
	return []graph.Spec{graph.F32(in[2].Shape...), graph.F32(n, d)}, nil
}

// Reference implements graph.Op.
func (o CombineGradGates) Reference(in []*graph.Host) ([]*graph.Host, error) {
	n, d := in[0].Shape[0], in[0].Shape[1]
	k := in[2].Shape[1]
	dg, dx := graph.NewHost(graph.F32(n, k)), graph.NewHost(graph.F32(n, d))
	for t := 0; t < n; t++ {
		dy := in[0].Data[t*d : (t+1)*d]
		x := in[5].Data[t*d : (t+1)*d]
		for j := 0; j < k; j++ {
			s := t*k + j
			if r := in[4].Data[s]; r != invalid {
				dg.Data[s] = dot(dy, in[1].Data[int(r)*d:(int(r)+1)*d])
			} else if int(in[3].Data[s]) >= o.Experts {
				dg.Data[s] = dot(dy, x)
				for c := range dy {
					dx.Data[t*d+c] += in[2].Data[s] * dy[c]
				}
			}
		}
	}
	return []*graph.Host{dg, dx}, nil
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// Encode implements graph.Op.
func (o CombineGradGates) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	n, d := in[0].Shape[0], in[0].Shape[1]
	k := in[2].Shape[1]
	if b := graph.LoopBudget(dev); b > 0 && (k+1)*(d+1) > b {
		return graph.OverBudget(dev, "moe_combine_grad_gates", (k+1)*(d+1))
	}
	kern, err := graph.Kernel(dev, "moe_combine", "combine_grad_gates", "moe_combine_grad_gates",
		[]gpu.Access{gpu.Read, gpu.Read, gpu.Read, gpu.Read, gpu.Read, gpu.Read, gpu.ReadWrite, gpu.ReadWrite}, true, consts())
	if err != nil {
		return err
	}
	return rec.Dispatch(kern, grid(dev, n), []uint32{uint32(n), uint32(d), uint32(k), uint32(o.Experts), 0, 0, 0, 0},
		in[0], in[1], in[2], in[3], in[4], in[5], out[0], out[1])
}
