package graph

import (
	"fmt"
	"math"

	"github.com/moegpu/moegpu/gpu"
)

// IgnoreTarget is the target value of positions that carry no loss
// (padding, prompt tokens): their loss and gradient are 0.
const IgnoreTarget uint32 = 0xFFFFFFFF

// CheckTargets reports the first target that is neither a class index
// below v nor IgnoreTarget. The kernels cannot report bad values (shapes are
// all the shape rule sees): they treat any target ≥ V as ignored, so callers
// that want an error check on the host with this.
func CheckTargets(targets []uint32, v int) error {
	for i, t := range targets {
		if t != IgnoreTarget && int64(t) >= int64(v) {
			return fmt.Errorf("cross entropy: target %d at position %d is out of range for %d classes (use IgnoreTarget to skip a position)", t, i, v)
		}
	}
	return nil
}

// CrossEntropy is the training loss of next-token prediction: inputs
// logits (N, V) f32 and targets (N) u32; outputs loss (N) f32, the
// per-row −log softmax(logits[n])[targets[n]], and lse (N) f32, the row's
// log-sum-exp, which the backward needs. Rows whose target is ≥ V
// (IgnoreTarget, or any out-of-range value) get loss 0; their lse is still
// computed. The loss is not reduced: the caller weights and sums rows.
type CrossEntropy struct {
	// Variant picks the forward kernel: 0 automatic (on CPU adapters 3, or
	// 1 when V % 4 ≠ 0, while V fits llvmpipeLoopBudget, else 2; 2 on
	// GPUs), 1 one invocation per row looping over V, 2 one workgroup per
	// row with shared-memory reductions, 3 as 1 with vec4 loads (needs
	// V % 4 == 0, else 1).
	Variant int
}

// Name implements Op.
func (CrossEntropy) Name() string { return "cross_entropy" }

func ceCheck(logits, targets Spec) error {
	if err := wantRank("logits", logits, 2, gpu.F32); err != nil {
		return err
	}
	if err := wantRank("targets", targets, 1, gpu.U32); err != nil {
		return err
	}
	if logits.Shape[1] < 1 {
		return fmt.Errorf("logits %v: need at least one class", logits.Shape)
	}
	if targets.Shape[0] != logits.Shape[0] {
		return fmt.Errorf("%d targets for %d rows of logits", targets.Shape[0], logits.Shape[0])
	}
	return nil
}

// Outputs implements Op.
func (CrossEntropy) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 2); err != nil {
		return nil, err
	}
	if err := ceCheck(in[0], in[1]); err != nil {
		return nil, err
	}
	n := in[0].Shape[0]
	return []Spec{F32(n), F32(n)}, nil
}

// ceTarget returns the class index of row r, or -1 when the row is ignored.
func ceTarget(t float64, v int) int {
	if t < 0 || t >= float64(v) {
		return -1
	}
	return int(t)
}

// Reference implements Op.
func (c CrossEntropy) Reference(in []*Host) ([]*Host, error) {
	outs, err := c.Outputs([]Spec{in[0].Spec, in[1].Spec})
	if err != nil {
		return nil, err
	}
	loss, lse := NewHost(outs[0]), NewHost(outs[1])
	n, v := in[0].Shape[0], in[0].Shape[1]
	for r := 0; r < n; r++ {
		row := in[0].Data[r*v : (r+1)*v]
		m := math.Inf(-1)
		for _, x := range row {
			m = math.Max(m, x)
		}
		s := 0.0
		for _, x := range row {
			s += math.Exp(x - m)
		}
		lse.Data[r] = m + math.Log(s)
		if t := ceTarget(in[1].Data[r], v); t >= 0 {
			loss.Data[r] = lse.Data[r] - row[t]
		}
	}
	return []*Host{loss, lse}, nil
}

// Workgroup geometry, specialised into the WGSL: invocations per row of
// ce_forward_wg, and columns per invocation of ce_backward_chunks.
const (
	ceRowWG = 256
	ceChunk = 256
)

// ceTrips is the loop iterations per invocation of each forward variant.
func ceTrips(variant, v int) int {
	switch variant {
	case 1:
		return 2 * v
	case 2:
		return 2*gpu.CeilDiv(v, ceRowWG) + 16
	}
	return 2 * (v / 4)
}

// Encode implements Op.
func (c CrossEntropy) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	n, v := in[0].Shape[0], in[0].Shape[1]
	variant := c.Variant
	if variant == 3 && v%4 != 0 {
		variant = 1
	}
	// CPU adapters (the only ones with a loop budget) run invocations as
	// SIMD lanes, where per-row loops beat shared-memory reductions.
	budget := loopBudget(dev)
	fits := func(variant int) bool { return budget == 0 || ceTrips(variant, v) <= budget }
	if variant == 0 {
		switch {
		case budget == 0:
			variant = 2
		case v%4 == 0 && fits(3):
			variant = 3
		case fits(1):
			variant = 1
		default:
			variant = 2
		}
	}
	if !fits(variant) {
		return overBudget(dev, fmt.Sprintf("cross entropy variant %d, V=%d", variant, v), ceTrips(variant, v))
	}
	acc := []gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite, gpu.ReadWrite}
	params := []uint32{uint32(n), uint32(v), 0, 0}
	switch variant {
	case 1:
		const wg = 64
		k, err := kernel(dev, "crossentropy", "ce_forward_rows", "ce_forward_rows", acc, true, nil)
		if err != nil {
			return err
		}
		return rec.Dispatch(k, dev.Grid1D(gpu.CeilDiv(n, wg)), params, in[0], in[1], out[0], out[1])
	case 3:
		const wg = 64
		k, err := kernel(dev, "crossentropy", "ce_forward_rows_vec4", "ce_forward_rows_vec4", acc, true, nil)
		if err != nil {
			return err
		}
		return rec.Dispatch(k, dev.Grid1D(gpu.CeilDiv(n, wg)), params, in[0], in[1], out[0], out[1])
	case 2:
		k, err := kernel(dev, "crossentropy", "ce_forward_wg", "ce_forward_wg", acc, true,
			map[string]string{"RWG": fmt.Sprintf("%du", ceRowWG)})
		if err != nil {
			return err
		}
		return rec.Dispatch(k, dev.Grid1D(n), params, in[0], in[1], out[0], out[1])
	}
	return fmt.Errorf("unknown variant %d", c.Variant)
}

// CrossEntropyBackward is the fused softmax + cross-entropy gradient:
// inputs logits (N, V), targets (N) u32, lse (N) from CrossEntropy and
// dloss (N); output dlogits (N, V) = dloss[n]·(softmax(logits[n]) −
// onehot(targets[n])), written (an activation gradient), and 0 on rows whose
// target is ≥ V.
type CrossEntropyBackward struct {
	// Variant picks the kernel: 0 automatic, 1 one invocation per element,
	// 2 one invocation per vec4 (needs V % 4 == 0, else 1), 3 one
	// invocation per 256-column chunk of a row. Automatic is 2 when V % 4
	// == 0, else 1.
	Variant int
}

// Name implements Op.
func (CrossEntropyBackward) Name() string { return "cross_entropy_backward" }

// Outputs implements Op.
func (CrossEntropyBackward) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 4); err != nil {
		return nil, err
	}
	if err := ceCheck(in[0], in[1]); err != nil {
		return nil, err
	}
	n := in[0].Shape[0]
	for i, what := range []string{"lse", "dloss"} {
		s := in[2+i]
		if err := wantRank(what, s, 1, gpu.F32); err != nil {
			return nil, err
		}
		if s.Shape[0] != n {
			return nil, fmt.Errorf("%s has %d values for %d rows", what, s.Shape[0], n)
		}
	}
	return []Spec{F32(in[0].Shape...)}, nil
}

// Reference implements Op.
func (c CrossEntropyBackward) Reference(in []*Host) ([]*Host, error) {
	outs, err := c.Outputs([]Spec{in[0].Spec, in[1].Spec, in[2].Spec, in[3].Spec})
	if err != nil {
		return nil, err
	}
	dx := NewHost(outs[0])
	n, v := in[0].Shape[0], in[0].Shape[1]
	for r := 0; r < n; r++ {
		t := ceTarget(in[1].Data[r], v)
		if t < 0 {
			continue
		}
		for j := 0; j < v; j++ {
			g := math.Exp(in[0].Data[r*v+j] - in[2].Data[r])
			if j == t {
				g--
			}
			dx.Data[r*v+j] = in[3].Data[r] * g
		}
	}
	return []*Host{dx}, nil
}

// Encode implements Op.
func (c CrossEntropyBackward) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	const wg = 64
	n, v := in[0].Shape[0], in[0].Shape[1]
	variant := c.Variant
	if variant == 0 || (variant == 2 && v%4 != 0) {
		variant = 1
		if v%4 == 0 {
			variant = 2
		}
	}
	var entry string
	var work int
	var consts map[string]string
	switch variant {
	case 1:
		entry, work = "ce_backward", n*v
	case 2:
		entry, work = "ce_backward_vec4", n*v/4
	case 3:
		entry, work = "ce_backward_chunks", n*gpu.CeilDiv(v, ceChunk)
		consts = map[string]string{"CHUNK": fmt.Sprintf("%du", ceChunk)}
	default:
		return fmt.Errorf("unknown variant %d", c.Variant)
	}
	k, err := kernel(dev, "crossentropy", entry, entry,
		[]gpu.Access{gpu.Read, gpu.Read, gpu.Read, gpu.Read, gpu.ReadWrite}, true, consts)
	if err != nil {
		return err
	}
	return rec.Dispatch(k, dev.Grid1D(gpu.CeilDiv(work, wg)), []uint32{uint32(n), uint32(v), 0, 0}, in[0], in[1], in[2], in[3], out[0])
}

// Backward implements Differentiable: the fused softmax − onehot gradient
// of the logits; targets get none, and the saved lse output carries none.
func (c CrossEntropy) Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor {
	if dOut[0] == nil {
		return []*Tensor{nil, nil}
	}
	return []*Tensor{g.Apply1(CrossEntropyBackward{}, n.In[0], n.In[1], n.Out[1], dOut[0]), nil}
}
