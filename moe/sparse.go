package moe

import (
	"fmt"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
)

// SparseDown is the down projection of ReLU² experts for inference: the
// same product as GroupedMatMul{TransW: true} (y = h·W_eᵀ per expert
// segment, zeros elsewhere), computed by compacting each row's non-zero
// activations first and looping over those only, so its cost falls with
// the activation sparsity that ReLU² gives (ReLU² Wins, arXiv 2402.03804).
// It has no backward: training uses GroupedMatMul.
//
// Inputs: h (R, I) f32, w (E, N, I) f32 (Hugging Face (out, in) per
// expert), seg (2E) u32 as for GroupedMatMul. Output: y (R, N). The weight
// stack must fit one storage binding (ErrUnsupported otherwise).
type SparseDown struct{ Experts int }

// Name implements graph.Op.
func (SparseDown) Name() string { return "moe_sparse_down" }

func (s SparseDown) dense() GroupedMatMul { return GroupedMatMul{Experts: s.Experts, TransW: true} }

// Outputs implements graph.Op.
func (s SparseDown) Outputs(in []graph.Spec) ([]graph.Spec, error) { return s.dense().Outputs(in) }

// Reference implements graph.Op: the dense product.
func (s SparseDown) Reference(in []*graph.Host) ([]*graph.Host, error) {
	return s.dense().Reference(in)
}

// Encode implements graph.Op: compaction, then the sparse product.
func (s SparseDown) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	R, I := in[0].Shape[0], in[0].Shape[1]
	N := in[1].Shape[1]
	if b := graph.LoopBudget(dev); b > 0 && 2*I+64 > b {
		return graph.OverBudget(dev, fmt.Sprintf("moe_sparse_down with expert size %d", I), 2*I+64)
	}
	if R == 0 {
		return nil
	}
	idx, err := rec.Scratch("moe_sparse_down.idx", gpu.U32, R*I)
	if err != nil {
		return err
	}
	val, err := rec.Scratch("moe_sparse_down.val", gpu.F32, R*I)
	if err != nil {
		return err
	}
	cnt, err := rec.Scratch("moe_sparse_down.cnt", gpu.U32, R)
	if err != nil {
		return err
	}
	acc := []gpu.Access{gpu.Read, gpu.Read, gpu.Read, gpu.ReadWrite, gpu.ReadWrite, gpu.ReadWrite, gpu.ReadWrite}
	params := []uint32{uint32(R), uint32(I), uint32(N), uint32(s.Experts)}
	cols := gpu.CeilDiv(N, wg) * wg
	for _, st := range []struct {
		entry string
		items int
	}{{"sparse_compact", R}, {"sparse_down", R * cols}} {
		k, err := graph.Kernel(dev, "moe_sparse", st.entry, "moe_"+st.entry, acc, true, consts())
		if err != nil {
			return err
		}
		if err := rec.Dispatch(k, grid(dev, st.items), params, in[0], in[1], in[2], idx, val, cnt, out[0]); err != nil {
			return err
		}
	}
	return nil
}

// ActivationSparsity measures how sparse the experts' activations are over
// the rows that hold a token (for ReLU² experts, ReLU² Wins §3): output
// (2) f32 = [share of activations exactly zero, share of the non-zero
// ones below 1 % of their row's largest magnitude]. Inputs: h (R, I) f32,
// seg (2E) u32.
type ActivationSparsity struct{ Experts int }

// Name implements graph.Op.
func (ActivationSparsity) Name() string { return "moe_activation_sparsity" }

// Outputs implements graph.Op.
func (a ActivationSparsity) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if err := graph.WantInputs(in, 2); err != nil {
		return nil, err
	}
	if err := graph.WantRank("h", in[0], 2, gpu.F32); err != nil {
		return nil, err
	}
	if in[1].DType != gpu.U32 || in[1].Len() != 2*a.Experts {
		return nil, fmt.Errorf("seg %s: want u32 (%d)", in[1], 2*a.Experts)
	}
	return []graph.Spec{graph.F32(2)}, nil
}

// Reference implements graph.Op.
func (a ActivationSparsity) Reference(in []*graph.Host) ([]*graph.Host, error) {
	R, I := in[0].Shape[0], in[0].Shape[1]
	segs, err := groupedSegments(in[1], a.Experts, R)
	if err != nil {
		return nil, err
	}
	var zero, small, total, nonzero float64
	for _, s := range segs {
		for r := s[0]; r < s[0]+s[1]; r++ {
			row := in[0].Data[r*I : (r+1)*I]
			mx := 0.0
			for _, v := range row {
				mx = max(mx, abs(v))
			}
			for _, v := range row {
				total++
				switch {
				case v == 0:
					zero++
				case abs(v) < 0.01*mx:
					small++
					nonzero++
				default:
					nonzero++
				}
			}
		}
	}
	out := graph.NewHost(graph.F32(2))
	if total > 0 {
		out.Data[0] = zero / total
	}
	if nonzero > 0 {
		out.Data[1] = small / nonzero
	}
	return []*graph.Host{out}, nil
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// Encode implements graph.Op: per-row counts, then one reduction.
func (a ActivationSparsity) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	R, I := in[0].Shape[0], in[0].Shape[1]
	if b := graph.LoopBudget(dev); b > 0 && max(3*I, 3*R) > b {
		return graph.OverBudget(dev, "moe_activation_sparsity", max(3*I, 3*R))
	}
	rows, err := rec.Scratch("moe_activation_sparsity.rows", gpu.F32, max(3*R, 1))
	if err != nil {
		return err
	}
	acc := []gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite, gpu.ReadWrite}
	params := []uint32{uint32(R), uint32(I), 0, uint32(a.Experts)}
	for _, st := range []struct {
		entry string
		grid  [3]uint32
	}{{"sparsity_rows", grid(dev, R)}, {"sparsity_reduce", [3]uint32{1, 1, 1}}} {
		k, err := graph.Kernel(dev, "moe_sparsity", st.entry, "moe_"+st.entry, acc, true, consts())
		if err != nil {
			return err
		}
		if err := rec.Dispatch(k, st.grid, params, in[0], in[1], rows, out[0]); err != nil {
			return err
		}
	}
	return nil
}
