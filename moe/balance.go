package moe

import (
	"fmt"
	"math"
	"slices"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
)

// BalanceLoss is the classic load-balancing loss over a whole batch
// (Switch Transformer §2.2; DeepSeek-V3 Eq. 17–20 with T = the batch):
//
//	f_i = E/(K·n) · #{(t,k): idx[t,k] = i}        (constant in the backward)
//	P_i = (1/n) Σ_t s[t,i] / Σ_{j<E} s[t,j]
//	L   = Alpha · Σ_{i<E} f_i·P_i
//
// over the E routed experts (copy experts, ids ≥ E, take no part). f counts
// the actual selection (top-k of score + bias). With uniform routing L =
// Alpha. Inputs: scores (n, Et) f32, idx (n, K) u32. Outputs: loss (1) f32,
// f (E) f32.
type BalanceLoss struct {
	Experts int
	Alpha   float32
}

// Name implements graph.Op.
func (BalanceLoss) Name() string { return "moe_balance_loss" }

// Outputs implements graph.Op.
func (b BalanceLoss) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if err := graph.WantInputs(in, 2); err != nil {
		return nil, err
	}
	if err := graph.WantRank("scores", in[0], 2, gpu.F32); err != nil {
		return nil, err
	}
	if err := graph.WantRank("idx", in[1], 2, gpu.U32); err != nil {
		return nil, err
	}
	if b.Experts < 1 || b.Experts > in[0].Shape[1] || in[1].Shape[0] != in[0].Shape[0] {
		return nil, fmt.Errorf("scores %v, idx %v and %d routed experts do not agree", in[0].Shape, in[1].Shape, b.Experts)
	}
	return []graph.Spec{graph.F32(1), graph.F32(b.Experts)}, nil
}

// Reference implements graph.Op.
func (b BalanceLoss) Reference(in []*graph.Host) ([]*graph.Host, error) {
	n, et := in[0].Shape[0], in[0].Shape[1]
	k := in[1].Shape[1]
	E := b.Experts
	loss, f := graph.NewHost(graph.F32(1)), graph.NewHost(graph.F32(E))
	for _, e := range in[1].Data {
		if int(e) < E {
			f.Data[int(e)]++
		}
	}
	P := make([]float64, E)
	for t := 0; t < n; t++ {
		s := in[0].Data[t*et : t*et+E]
		sum := 0.0
		for _, v := range s {
			sum += v
		}
		for i, v := range s {
			P[i] += v / sum / float64(n)
		}
	}
	for i := range f.Data {
		f.Data[i] *= float64(E) / float64(k*n)
		loss.Data[0] += float64(b.Alpha) * f.Data[i] * P[i]
	}
	return []*graph.Host{loss, f}, nil
}

func (b BalanceLoss) params(n, et, k int) []uint32 {
	return []uint32{uint32(n), uint32(et), uint32(k), uint32(b.Experts), math.Float32bits(b.Alpha), 0, 0, 0}
}

// Encode implements graph.Op: row sums, per-expert f and P, the sum.
func (b BalanceLoss) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	n, et := in[0].Shape[0], in[0].Shape[1]
	k := in[1].Shape[1]
	if bud := graph.LoopBudget(dev); bud > 0 && n*(k+1) > bud {
		return graph.OverBudget(dev, fmt.Sprintf("moe_balance_loss over %d tokens", n), n*(k+1))
	}
	rs, err := rec.Scratch("moe_balance.rowsum", gpu.F32, max(n, 1))
	if err != nil {
		return err
	}
	pp, err := rec.Scratch("moe_balance.p", gpu.F32, b.Experts)
	if err != nil {
		return err
	}
	acc := []gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite, gpu.ReadWrite, gpu.ReadWrite, gpu.ReadWrite}
	for _, st := range []struct {
		entry string
		grid  [3]uint32
	}{{"balance_rowsum", grid(dev, n)}, {"balance_expert", grid(dev, b.Experts)}, {"balance_loss", [3]uint32{1, 1, 1}}} {
		kern, err := graph.Kernel(dev, "moe_balance", st.entry, "moe_"+st.entry, acc, true, consts())
		if err != nil {
			return err
		}
		if err := rec.Dispatch(kern, st.grid, b.params(n, et, k), in[0], in[1], rs, pp, out[1], out[0]); err != nil {
			return err
		}
	}
	return nil
}

// Backward implements graph.Differentiable: the scores' gradient, f held
// constant; none for idx.
func (b BalanceLoss) Backward(g *graph.Graph, n *graph.Node, dOut []*graph.Tensor) []*graph.Tensor {
	if dOut[0] == nil {
		return []*graph.Tensor{nil, nil}
	}
	return []*graph.Tensor{g.Apply1(BalanceLossBackward{BalanceLoss: b}, n.In[0], n.Out[1], dOut[0]), nil}
}

// BalanceLossBackward is ∂L/∂s[t,m] = dL·Alpha/n·(f_m/S_t − Σ_i f_i s[t,i]/S_t²)
// for routed m, 0 for copy experts, with S_t = Σ_{j<E} s[t,j].
// Inputs: scores (n, Et), f (E), dL (1). Output: dscores (n, Et).
type BalanceLossBackward struct{ BalanceLoss BalanceLoss }

// Name implements graph.Op.
func (BalanceLossBackward) Name() string { return "moe_balance_loss_backward" }

// Outputs implements graph.Op.
func (b BalanceLossBackward) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if err := graph.WantInputs(in, 3); err != nil {
		return nil, err
	}
	if err := graph.WantRank("scores", in[0], 2, gpu.F32); err != nil {
		return nil, err
	}
	if in[1].Len() != b.BalanceLoss.Experts || in[2].Len() != 1 {
		return nil, fmt.Errorf("f %v and dL %v: want (%d) and (1)", in[1].Shape, in[2].Shape, b.BalanceLoss.Experts)
	}
	return []graph.Spec{in[0]}, nil
}

// Reference implements graph.Op.
func (b BalanceLossBackward) Reference(in []*graph.Host) ([]*graph.Host, error) {
	n, et := in[0].Shape[0], in[0].Shape[1]
	E := b.BalanceLoss.Experts
	f := in[1].Data
	out := graph.NewHost(in[0].Spec)
	c := in[2].Data[0] * float64(b.BalanceLoss.Alpha) / float64(n)
	for t := 0; t < n; t++ {
		s := in[0].Data[t*et : t*et+E]
		S, A := 0.0, 0.0
		for j, v := range s {
			S += v
			A += f[j] * v
		}
		for j := 0; j < E; j++ {
			out.Data[t*et+j] = c * (f[j]/S - A/(S*S))
		}
	}
	return []*graph.Host{out}, nil
}

// Encode implements graph.Op.
func (b BalanceLossBackward) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	n, et := in[0].Shape[0], in[0].Shape[1]
	kern, err := graph.Kernel(dev, "moe_balance", "balance_backward", "moe_balance_backward",
		[]gpu.Access{gpu.Read, gpu.Read, gpu.Read, gpu.ReadWrite}, true, consts())
	if err != nil {
		return err
	}
	return rec.Dispatch(kern, grid(dev, n), b.BalanceLoss.params(n, et, 1), in[0], in[1], in[2], out[0])
}

// Stats indices: the layout of the Stats op's output.
const (
	StatMaxVio    = 0 // (max load − mean load) / mean load over routed experts
	StatSkipRate  = 1 // share of tokens that picked a copy expert
	StatEntropy   = 2 // mean router entropy, nats, of scores normalised over all experts
	StatDropped   = 3 // slots dropped over capacity (a count)
	StatNonFinite = 4 // non-finite affinities (a count; non-zero is an error)
	StatLoad      = 5 // StatLoad + i: routed expert i's share of the load
)

// Stats computes a router's per-step statistics on the GPU, read back with
// the loss (layout: the Stat* constants; see shaders/moe_balance.wgsl).
// Inputs: scores (n, Et), idx (n, K) u32, raw (E) u32 and seg (2E) u32
// from the routed Dispatch. Output: stats (5 + E) f32.
type Stats struct{ Experts int }

// Name implements graph.Op.
func (Stats) Name() string { return "moe_stats" }

// Outputs implements graph.Op.
func (s Stats) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if err := graph.WantInputs(in, 4); err != nil {
		return nil, err
	}
	if in[2].Len() != s.Experts || in[3].Len() != 2*s.Experts || in[1].Shape[0] != in[0].Shape[0] {
		return nil, fmt.Errorf("scores %v, idx %v, raw %v, seg %v do not agree with %d experts", in[0].Shape, in[1].Shape, in[2].Shape, in[3].Shape, s.Experts)
	}
	return []graph.Spec{graph.F32(StatLoad + s.Experts)}, nil
}

// Reference implements graph.Op.
func (s Stats) Reference(in []*graph.Host) ([]*graph.Host, error) {
	n, et := in[0].Shape[0], in[0].Shape[1]
	k := in[1].Shape[1]
	E := s.Experts
	out := graph.NewHost(graph.F32(StatLoad + E))
	var skip, h, bad float64
	for t := 0; t < n; t++ {
		for j := 0; j < k; j++ {
			if int(in[1].Data[t*k+j]) >= E {
				skip++
				break
			}
		}
		row := in[0].Data[t*et : (t+1)*et]
		sum, nb := 0.0, 0.0
		for _, v := range row {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				nb++
			} else {
				sum += v
			}
		}
		bad += nb
		if nb == 0 && sum > 0 {
			for _, v := range row {
				if q := v / sum; q > 0 {
					h -= q * math.Log(q)
				}
			}
		}
	}
	total := 0.0
	for i := 0; i < E; i++ {
		total += in[2].Data[i]
		out.Data[StatDropped] += in[2].Data[i] - in[3].Data[2*i+1]
	}
	if mean := total / float64(E); mean > 0 {
		out.Data[StatMaxVio] = (slices.Max(in[2].Data) - mean) / mean
	}
	for i := 0; i < E; i++ {
		if total > 0 {
			out.Data[StatLoad+i] = in[2].Data[i] / total
		}
	}
	out.Data[StatSkipRate] = skip / float64(n)
	out.Data[StatEntropy] = h / float64(n)
	out.Data[StatNonFinite] = bad
	return []*graph.Host{out}, nil
}

// Encode implements graph.Op.
func (s Stats) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	n, et := in[0].Shape[0], in[0].Shape[1]
	k := in[1].Shape[1]
	if b := graph.LoopBudget(dev); b > 0 && max(n, 3*et+k) > b {
		return graph.OverBudget(dev, fmt.Sprintf("moe_stats over %d tokens", n), max(n, 3*et+k))
	}
	tok, err := rec.Scratch("moe_stats.tokens", gpu.F32, max(3*n, 1))
	if err != nil {
		return err
	}
	params := []uint32{uint32(n), uint32(et), uint32(k), uint32(s.Experts), 0, 0, 0, 0}
	acc := []gpu.Access{gpu.Read, gpu.Read, gpu.Read, gpu.Read, gpu.ReadWrite, gpu.ReadWrite}
	for _, st := range []struct {
		entry string
		grid  [3]uint32
	}{{"stats_token", grid(dev, n)}, {"stats_reduce", [3]uint32{1, 1, 1}}} {
		kern, err := graph.Kernel(dev, "moe_stats", st.entry, "moe_"+st.entry, acc, true, consts())
		if err != nil {
			return err
		}
		if err := rec.Dispatch(kern, st.grid, params, in[0], in[1], in[2], in[3], tok, out[0]); err != nil {
			return err
		}
	}
	return nil
}

// Controller modes of BiasUpdate.
const (
	CtrlNone = 0 // leave the bias alone
	CtrlSign = 1 // b += γ·sign(error) (arXiv 2408.15664; DeepSeek-V3)
	CtrlPID  = 2 // b = kp·e + ki·Σe + kd·Δe, the integrator clamped to ±IMax
)

// BiasUpdate runs the balancing controllers after a step, on the GPU: the
// routed experts' bias from their load shares (re-centred to mean zero so
// it cannot drift), the copy experts' bias from the skip rate against
// SkipTarget. See shaders/moe_balance.wgsl for the rules. It is in place
// (graph.InPlace) and has no outputs.
//
// Inputs: bias (Et) f32 State, updated; ctrl (2·Et) f32 State, the PID
// integrators and previous errors, updated; stats (5 + E) f32 from Stats.
// A step whose stats count non-finite affinities leaves both alone.
type BiasUpdate struct {
	Experts        int
	Mode           int
	Gamma          float32
	Kp, Ki, Kd     float32
	SkipMode       int
	SkipTarget     float32
	SkipGamma      float32
	SkipKp, SkipKi float32
	SkipKd         float32
	IMax           float32
}

// Name implements graph.Op.
func (BiasUpdate) Name() string { return "moe_bias_update" }

// Updates implements graph.InPlace: bias and ctrl.
func (BiasUpdate) Updates() []int { return []int{0, 1} }

// Outputs implements graph.Op.
func (b BiasUpdate) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if err := graph.WantInputs(in, 3); err != nil {
		return nil, err
	}
	et := in[0].Len()
	if in[1].Len() != 2*et || in[2].Len() != StatLoad+b.Experts || b.Experts < 1 || b.Experts > et {
		return nil, fmt.Errorf("bias %v, ctrl %v, stats %v do not agree with %d routed experts", in[0].Shape, in[1].Shape, in[2].Shape, b.Experts)
	}
	if b.Mode < CtrlNone || b.Mode > CtrlPID || b.SkipMode < CtrlNone || b.SkipMode > CtrlPID {
		return nil, fmt.Errorf("controller modes %d, %d: want 0 (none), 1 (sign) or 2 (PID)", b.Mode, b.SkipMode)
	}
	return []graph.Spec{}, nil
}

func sign(v float64) float64 {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// Reference implements graph.Op: it updates bias and ctrl in place.
func (b BiasUpdate) Reference(in []*graph.Host) ([]*graph.Host, error) {
	bias, ctrl, st := in[0].Data, in[1].Data, in[2].Data
	et, E := len(bias), b.Experts
	if st[StatNonFinite] > 0 {
		return []*graph.Host{}, nil
	}
	imax := float64(b.IMax)
	pid := func(i int, err float64, kp, ki, kd float32) float64 {
		integ := math.Max(-imax, math.Min(imax, ctrl[i]+err))
		v := float64(kp)*err + float64(ki)*integ + float64(kd)*(err-ctrl[et+i])
		ctrl[i], ctrl[et+i] = integ, err
		return v
	}
	if b.Mode != CtrlNone {
		mean := 1 / float64(E)
		sum := 0.0
		for i := 0; i < E; i++ {
			err := (mean - st[StatLoad+i]) / mean
			if b.Mode == CtrlSign {
				bias[i] += float64(b.Gamma) * sign(err)
			} else {
				bias[i] = pid(i, err, b.Kp, b.Ki, b.Kd)
			}
			sum += bias[i]
		}
		for i := 0; i < E; i++ {
			bias[i] -= sum / float64(E)
		}
	}
	if b.SkipMode != CtrlNone && et > E {
		err := float64(b.SkipTarget) - st[StatSkipRate]
		v := bias[E]
		if b.SkipMode == CtrlSign {
			v += float64(b.SkipGamma) * sign(err)
		} else {
			v = pid(E, err, b.SkipKp, b.SkipKi, b.SkipKd)
		}
		for i := E; i < et; i++ {
			bias[i] = v
		}
	}
	return []*graph.Host{}, nil
}

// Encode implements graph.Op.
func (b BiasUpdate) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	et := in[0].Len()
	kern, err := graph.Kernel(dev, "moe_stats", "bias_update", "moe_bias_update",
		[]gpu.Access{gpu.ReadWrite, gpu.ReadWrite, gpu.Read}, true, consts())
	if err != nil {
		return err
	}
	f := math.Float32bits
	params := []uint32{uint32(et), uint32(b.Experts), uint32(b.Mode), uint32(b.SkipMode), f(b.Gamma), f(b.Kp), f(b.Ki), f(b.Kd),
		f(b.SkipTarget), f(b.IMax), f(b.SkipGamma), f(b.SkipKp), f(b.SkipKi), f(b.SkipKd), 0, 0}
	return rec.Dispatch(kern, [3]uint32{1, 1, 1}, params, in[0], in[1], in[2])
}

// Reshape gives a tensor another shape with the same element count, by
// copying (the graph has no views): a shared expert's (out, in) weight seen
// as a stack of one expert for GroupedMatMul. Its backward reshapes back.
type Reshape struct{ Shape []int }

// Name implements graph.Op.
func (Reshape) Name() string { return "moe_reshape" }

// Outputs implements graph.Op.
func (r Reshape) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if err := graph.WantInputs(in, 1); err != nil {
		return nil, err
	}
	out := graph.Spec{DType: in[0].DType, Shape: slices.Clone(r.Shape)}
	if out.Len() != in[0].Len() {
		return nil, fmt.Errorf("reshape %v to %v changes the element count", in[0].Shape, r.Shape)
	}
	return []graph.Spec{out}, nil
}

// Reference implements graph.Op.
func (r Reshape) Reference(in []*graph.Host) ([]*graph.Host, error) {
	return []*graph.Host{{Spec: graph.Spec{DType: in[0].DType, Shape: slices.Clone(r.Shape)}, Data: slices.Clone(in[0].Data)}}, nil
}

// Encode implements graph.Op.
func (r Reshape) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	n := in[0].Len()
	kern, err := graph.Kernel(dev, "moe_gather", "copy_values", "moe_copy_values", []gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite}, true, consts())
	if err != nil {
		return err
	}
	return rec.Dispatch(kern, grid(dev, n), []uint32{uint32(n), 1, 1, 0}, in[0], in[0], out[0])
}

// Backward implements graph.Differentiable.
func (r Reshape) Backward(g *graph.Graph, n *graph.Node, dOut []*graph.Tensor) []*graph.Tensor {
	return []*graph.Tensor{g.Apply1(Reshape{Shape: n.In[0].Shape}, dOut[0])}
}
