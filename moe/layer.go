package moe

import (
	"fmt"
	"math"

	"github.com/moegpu/moegpu/graph"
)

// Balancing modes of a layer (Options.Balance).
const (
	BalanceNone     = "none"      // no balancing
	BalanceLBL      = "lbl"       // load-balancing loss, coefficient Options.Alpha
	BalanceBiasSign = "bias_sign" // aux-loss-free bias, sign rule with step Options.Gamma
	BalanceBiasPID  = "bias_pid"  // aux-loss-free bias driven by a PID controller
)

// Options describe one MoE FFN layer; runtime/model fills them from a
// config's MoE fields (config.MoEConfig, whose documentation gives the
// defaults and Hugging Face names).
type Options struct {
	Hidden       int     // model width d
	Experts      int     // routed experts E
	TopK         int     // choices per token K (over routed and copy experts)
	Shared       int     // shared experts S (one FFN of S·Intermediate)
	Copies       int     // copy (zero-computation) experts Z
	Intermediate int     // each expert's hidden size
	ReLU2        bool    // ReLU² experts (up, down); else SwiGLU (gate, up, down)
	Softmax      bool    // softmax scoring; else sigmoid
	Norm         bool    // gates normalised over the selected experts
	Scale        float32 // routed_scaling_factor
	// CapacityFactor > 0 caps each expert at ⌈CapacityFactor·n·K/E⌉ rows;
	// slots past it are dropped (the residual carries the token). 0 is
	// dropless.
	CapacityFactor float64
	Balance        string  // Balance* mode
	Alpha          float32 // load-balancing loss coefficient (BalanceLBL)
	Gamma          float32 // sign-rule step (BalanceBiasSign)
	Kp, Ki, Kd     float32 // PID gains (BalanceBiasPID)
	// SkipTarget > 0 drives the copy experts' bias so that this share of
	// tokens skips the FFN; SkipPID selects the PID rule (else sign, with
	// SkipGamma).
	SkipTarget             float32
	SkipPID                bool
	SkipGamma              float32
	SkipKp, SkipKi, SkipKd float32
	Std, OutStd            float64 // init std of the input-side and output-side weights
	// SparseDown computes ReLU² experts' down projection with SparseDown
	// (inference graphs only: it has no backward).
	SparseDown bool
}

// Layer is a built MoE FFN: the tensors a trainer reads, saves and updates.
type Layer struct {
	Prefix string
	Opt    Options
	Router *graph.Tensor // (E+Z, d) Param: mlp.gate.weight
	Bias   *graph.Tensor // (E+Z) State: mlp.gate.e_score_correction_bias
	// Ctrl (2·(E+Z)) State: the controllers' integrators and previous
	// errors, saved with the optimizer state.
	Ctrl   *graph.Tensor
	Scores *graph.Tensor // (n, E+Z) router affinities
	Gates  *graph.Tensor // (n, K)
	Idx    *graph.Tensor // (n, K) u32 chosen experts
	// Stats (StatLoad + E): MaxVio, skip rate, entropy, dropped slots,
	// non-finite affinities and the load share of each expert (see Stats).
	Stats *graph.Tensor
	// AuxLoss (1) is the balance loss when Balance is BalanceLBL, else nil.
	AuxLoss *graph.Tensor
	// Hidden is the experts' activation (rows, Intermediate) in permuted
	// row order, and Seg the rows each expert owns.
	Hidden, Seg *graph.Tensor
	// Sparsity (2), for ReLU² experts only (else nil): the share of exact
	// zeros among the routed experts' activations and the share of
	// non-zeros below 1 % of their row's largest (ActivationSparsity).
	Sparsity *graph.Tensor
}

// Build appends an MoE FFN over x (n, d) and returns its output (n, d) and
// the layer. prefix is the block's parameter prefix ("model.layers.3.mlp");
// tensors are named as Hugging Face DeepSeek-V3 / Qwen-MoE checkpoints
// name them, with the experts stacked per projection:
//
//	{prefix}.gate.weight                        (E+Z, d) router
//	{prefix}.gate.e_score_correction_bias       (E+Z) State
//	{prefix}.experts.gate_proj.weight           (E, I, d)   SwiGLU only
//	{prefix}.experts.up_proj.weight             (E, I, d)
//	{prefix}.experts.down_proj.weight           (E, d, I)
//	{prefix}.shared_experts.{gate,up}_proj.weight (S·I, d), down_proj (d, S·I)
//
// Each expert's weight is in the (out, in) layout of nn.Linear; the stack
// is what stacked-expert checkpoints hold.
func Build(g *graph.Graph, prefix string, x *graph.Tensor, o Options) (*graph.Tensor, *Layer) {
	l := &Layer{Prefix: prefix, Opt: o}
	if err := o.validate(); err != nil {
		g.Fail(fmt.Errorf("%s: %w", prefix, err))
		return x, l
	}
	n, d := x.Shape[0], o.Hidden
	et := o.Experts + o.Copies
	l.Router = g.Param(prefix+".gate.weight", graph.F32(et, d))
	l.Router.Init = graph.Init{Dist: "normal", Std: o.Std}
	l.Bias = g.State(prefix+".gate.e_score_correction_bias", graph.F32(et))
	l.Ctrl = g.State(prefix+".gate.controller_state", graph.F32(2*et))
	logits := g.Apply1(graph.MatMul{TransB: true}, x, l.Router)
	r := g.Apply(Route{K: o.TopK, Softmax: o.Softmax, Norm: o.Norm, Scale: o.Scale}, logits, l.Bias)
	l.Scores, l.Gates, l.Idx = r[0], r[1], r[2]

	capacity := 0
	if o.CapacityFactor > 0 {
		capacity = max(1, int(math.Ceil(o.CapacityFactor*float64(n*o.TopK)/float64(o.Experts))))
	}
	disp := g.Apply(Dispatch{Experts: o.Experts, Capacity: capacity}, l.Idx)
	seg, raw, rowSlot, slotRow := disp[0], disp[1], disp[2], disp[3]
	l.Seg = seg
	xp := g.Apply1(Gather{SlotsPerToken: o.TopK}, x, rowSlot)
	yp, hidden := l.experts(g, prefix+".experts", xp, seg, o.Experts, o.Intermediate)
	l.Hidden = hidden
	if o.ReLU2 {
		l.Sparsity = g.Apply1(ActivationSparsity{Experts: o.Experts}, hidden, seg)
	}

	in := []*graph.Tensor{yp, l.Gates, l.Idx, slotRow, rowSlot, x}
	if o.Shared > 0 {
		sd := g.Apply(Dispatch{Experts: o.Experts, Shared: true}, l.Idx)
		xs := g.Apply1(Gather{SlotsPerToken: 1}, x, sd[2])
		ys, _ := l.experts(g, prefix+".shared_experts", xs, sd[0], 0, o.Shared*o.Intermediate)
		in = append(in, ys, sd[3], sd[2])
	}
	y := g.Apply1(Combine{Experts: o.Experts, Shared: o.Shared > 0}, in...)
	l.Stats = g.Apply1(Stats{Experts: o.Experts}, l.Scores, l.Idx, raw, seg)
	if o.Balance == BalanceLBL {
		l.AuxLoss = g.Apply(BalanceLoss{Experts: o.Experts, Alpha: o.Alpha}, l.Scores, l.Idx)[0]
	}
	return y, l
}

// experts applies a stack of expert FFNs to permuted rows. stack = 0 means
// one (shared) expert whose weights have the dense (out, in) shapes, seen
// as a stack of one.
func (l *Layer) experts(g *graph.Graph, prefix string, xp, seg *graph.Tensor, stack, inter int) (y, hidden *graph.Tensor) {
	o := l.Opt
	e := max(stack, 1)
	weight := func(name string, out, in int, std float64) *graph.Tensor {
		shape := []int{stack, out, in}
		if stack == 0 {
			shape = []int{out, in}
		}
		w := g.Param(prefix+"."+name+".weight", graph.F32(shape...))
		w.Init = graph.Init{Dist: "normal", Std: std}
		return w // a shared expert's (out, in): GroupedMatMul reads it as a stack of one
	}
	mm := func(a, w *graph.Tensor) *graph.Tensor {
		return g.Apply1(GroupedMatMul{Experts: e, TransW: true}, a, w, seg)
	}
	up := mm(xp, weight("up_proj", inter, o.Hidden, o.Std))
	if o.ReLU2 {
		hidden = g.Apply1(graph.ReLUSquared{}, up)
	} else {
		gate := mm(xp, weight("gate_proj", inter, o.Hidden, o.Std))
		hidden = g.Apply1(graph.SwiGLU{}, gate, up)
	}
	down := weight("down_proj", o.Hidden, inter, o.OutStd)
	if o.ReLU2 && o.SparseDown {
		if stack == 0 {
			down = g.Apply1(Reshape{Shape: append([]int{1}, down.Shape...)}, down)
		}
		return g.Apply1(SparseDown{Experts: e}, hidden, down, seg), hidden
	}
	return mm(hidden, down), hidden
}

func (o Options) validate() error {
	switch {
	case o.Experts < 1 || o.TopK < 1 || o.TopK > o.Experts+o.Copies:
		return fmt.Errorf("%d routed + %d copy experts with top-%d", o.Experts, o.Copies, o.TopK)
	case o.Intermediate < 1 || o.Hidden < 1 || o.Shared < 0 || o.Copies < 0:
		return fmt.Errorf("sizes: hidden %d, expert %d, shared %d, copies %d", o.Hidden, o.Intermediate, o.Shared, o.Copies)
	case o.TopK == 1 && o.Norm:
		return fmt.Errorf("top-1 with normalised gates gives the router no gradient")
	}
	switch o.Balance {
	case BalanceNone, BalanceLBL, BalanceBiasSign, BalanceBiasPID, "":
	default:
		return fmt.Errorf("balancing mode %q", o.Balance)
	}
	return nil
}

// NeedsUpdate reports whether the layer has a controller to run after
// each training step.
func (l *Layer) NeedsUpdate() bool {
	return l.Opt.Balance == BalanceBiasSign || l.Opt.Balance == BalanceBiasPID || (l.Opt.SkipTarget > 0 && l.Opt.Copies > 0)
}

// AppendUpdate adds the layer's bias controllers to a training graph, after
// its backward pass: they read this step's Stats and update Bias and Ctrl
// in place, on the GPU.
func (l *Layer) AppendUpdate(g *graph.Graph) {
	if !l.NeedsUpdate() {
		return
	}
	o := l.Opt
	u := BiasUpdate{Experts: o.Experts, Gamma: o.Gamma, Kp: o.Kp, Ki: o.Ki, Kd: o.Kd,
		SkipTarget: o.SkipTarget, SkipGamma: o.SkipGamma, SkipKp: o.SkipKp, SkipKi: o.SkipKi, SkipKd: o.SkipKd, IMax: 1e4}
	switch o.Balance {
	case BalanceBiasSign:
		u.Mode = CtrlSign
	case BalanceBiasPID:
		u.Mode = CtrlPID
	}
	if o.SkipTarget > 0 && o.Copies > 0 {
		u.SkipMode = CtrlSign
		if o.SkipPID {
			u.SkipMode = CtrlPID
		}
	}
	g.Apply(u, l.Bias, l.Ctrl, l.Stats)
}
