package moe

import (
	"fmt"
	"math"
	"sort"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
)

// Route is the router after its linear layer: affinities, top-k selection
// on affinity + bias, and gates (DeepSeek-V3 §2.1.2; LongCat-Flash's
// router with softmax scoring over routed and copy experts).
//
// Inputs: logits (n, Et) f32, the router's x·W_rᵀ over Et = routed + copy
// experts; bias (Et) f32, e_score_correction_bias (State).
// Outputs: scores (n, Et) f32, sigmoid or softmax of the logits; gates
// (n, K) f32; idx (n, K) u32, the chosen experts, best first.
//
//	idx   = top-K of scores + bias (ranking as graph.TopK: NaN lowest, ties to the lower index)
//	gates = Scale · scores[idx] / (Norm ? Σ_k scores[idx_k] : 1)
//
// The bias only selects. Gradients flow to the logits through the gates
// (and through scores, when the balance loss uses them); not to the bias,
// not through the selection.
type Route struct {
	K       int
	Softmax bool    // softmax scoring (else sigmoid)
	Norm    bool    // normalise the gates over the selected experts
	Scale   float32 // routed_scaling_factor
}

// Name implements graph.Op.
func (r Route) Name() string { return fmt.Sprintf("moe_route_top%d", r.K) }

// Outputs implements graph.Op.
func (r Route) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if err := graph.WantInputs(in, 2); err != nil {
		return nil, err
	}
	if err := graph.WantRank("logits", in[0], 2, gpu.F32); err != nil {
		return nil, err
	}
	if err := graph.WantRank("bias", in[1], 1, gpu.F32); err != nil {
		return nil, err
	}
	n, et := in[0].Shape[0], in[0].Shape[1]
	if in[1].Shape[0] != et {
		return nil, fmt.Errorf("bias has %d entries for %d experts", in[1].Shape[0], et)
	}
	if r.K < 1 || r.K > et {
		return nil, fmt.Errorf("top-k %d: need 1 ≤ K ≤ experts %d", r.K, et)
	}
	if !(r.Scale > 0) || math.IsInf(float64(r.Scale), 0) {
		return nil, fmt.Errorf("scaling factor %g: want a positive finite number", r.Scale)
	}
	return []graph.Spec{graph.F32(n, et), graph.F32(n, r.K), graph.U32(n, r.K)}, nil
}

func (r Route) scores(logits []float64) []float64 {
	s := make([]float64, len(logits))
	if r.Softmax {
		m := math.Inf(-1)
		for _, l := range logits {
			m = math.Max(m, l)
		}
		sum := 0.0
		for _, l := range logits {
			sum += math.Exp(l - m)
		}
		for i, l := range logits {
			s[i] = math.Exp(l-m) / sum
		}
		return s
	}
	for i, l := range logits {
		s[i] = 1 / (1 + math.Exp(-l))
	}
	return s
}

// before ranks a ahead of b: descending with NaN last (as graph.TopK).
func before(a, b float64) bool {
	if math.IsNaN(a) {
		return false
	}
	if math.IsNaN(b) {
		return true
	}
	return a > b
}

// Reference implements graph.Op. The selection key s + b is rounded to
// float32, as the GPU computes it.
func (r Route) Reference(in []*graph.Host) ([]*graph.Host, error) {
	outs, err := r.Outputs([]graph.Spec{in[0].Spec, in[1].Spec})
	if err != nil {
		return nil, err
	}
	n, et := in[0].Shape[0], in[0].Shape[1]
	scores, gates, idx := graph.NewHost(outs[0]), graph.NewHost(outs[1]), graph.NewHost(outs[2])
	order := make([]int, et)
	key := make([]float64, et)
	for t := 0; t < n; t++ {
		s := r.scores(in[0].Data[t*et : (t+1)*et])
		copy(scores.Data[t*et:], s)
		for i := range order {
			order[i] = i
			key[i] = float64(float32(s[i]) + float32(in[1].Data[i]))
		}
		sort.SliceStable(order, func(a, b int) bool { return before(key[order[a]], key[order[b]]) })
		sum := 0.0
		for k := 0; k < r.K; k++ {
			sum += s[order[k]]
		}
		div := 1.0
		if r.Norm {
			div = sum
		}
		for k := 0; k < r.K; k++ {
			idx.Data[t*r.K+k] = float64(order[k])
			gates.Data[t*r.K+k] = float64(r.Scale) * s[order[k]] / div
		}
	}
	return []*graph.Host{scores, gates, idx}, nil
}

func (r Route) params(n, et int, hasDS bool) []uint32 {
	b := func(v bool) uint32 {
		if v {
			return 1
		}
		return 0
	}
	return []uint32{uint32(n), uint32(et), uint32(r.K), b(r.Softmax), b(r.Norm), math.Float32bits(r.Scale), b(hasDS), 0}
}

// Encode implements graph.Op.
func (r Route) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	n, et := in[0].Shape[0], in[0].Shape[1]
	if b := graph.LoopBudget(dev); b > 0 && (r.K+3)*et > b {
		return graph.OverBudget(dev, fmt.Sprintf("%s over %d experts", r.Name(), et), (r.K+3)*et)
	}
	k, err := graph.Kernel(dev, "moe_route", "route_forward", "moe_route_forward",
		[]gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite, gpu.ReadWrite, gpu.ReadWrite}, true, consts())
	if err != nil {
		return err
	}
	return rec.Dispatch(k, grid(dev, n), r.params(n, et, false), in[0], in[1], out[0], out[1], out[2])
}

// Backward implements graph.Differentiable: the logits' gradient from the
// gates' (and the scores', when a balance loss reads them).
func (r Route) Backward(g *graph.Graph, n *graph.Node, dOut []*graph.Tensor) []*graph.Tensor {
	if dOut[1] == nil && dOut[0] == nil {
		return []*graph.Tensor{nil, nil}
	}
	dg := dOut[1]
	if dg == nil {
		dg = g.Apply1(graph.Zeros{Spec: n.Out[1].Spec})
	}
	in := []*graph.Tensor{n.Out[0], n.Out[2], dg}
	if dOut[0] != nil {
		in = append(in, dOut[0])
	}
	return []*graph.Tensor{g.Apply1(RouteBackward{Route: r}, in...), nil}
}

// RouteBackward is the gradient of Route with respect to its logits.
// Inputs: scores (n, Et), idx (n, K) u32, dgates (n, K), and optionally
// dscores (n, Et), a direct gradient of the scores. Output: dlogits
// (n, Et). See shaders/moe_route.wgsl for the formulas.
type RouteBackward struct{ Route Route }

// Name implements graph.Op.
func (r RouteBackward) Name() string { return "moe_route_backward" }

// Outputs implements graph.Op.
func (r RouteBackward) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 3 && len(in) != 4 {
		return nil, fmt.Errorf("want 3 or 4 inputs (scores, idx, dgates[, dscores]), got %d", len(in))
	}
	if err := graph.WantRank("scores", in[0], 2, gpu.F32); err != nil {
		return nil, err
	}
	n, et := in[0].Shape[0], in[0].Shape[1]
	if err := graph.WantRank("idx", in[1], 2, gpu.U32); err != nil {
		return nil, err
	}
	if err := graph.WantRank("dgates", in[2], 2, gpu.F32); err != nil {
		return nil, err
	}
	if in[1].Shape[0] != n || in[1].Shape[1] != r.Route.K || in[2].Shape[0] != n || in[2].Shape[1] != r.Route.K {
		return nil, fmt.Errorf("idx %v and dgates %v: want (%d, %d)", in[1].Shape, in[2].Shape, n, r.Route.K)
	}
	if len(in) == 4 && (in[3].DType != gpu.F32 || in[3].Len() != n*et) {
		return nil, fmt.Errorf("dscores %s: want f32 (%d, %d)", in[3], n, et)
	}
	return []graph.Spec{graph.F32(n, et)}, nil
}

// Reference implements graph.Op.
func (r RouteBackward) Reference(in []*graph.Host) ([]*graph.Host, error) {
	n, et, K := in[0].Shape[0], in[0].Shape[1], r.Route.K
	out := graph.NewHost(graph.F32(n, et))
	scale := float64(r.Route.Scale)
	for t := 0; t < n; t++ {
		s := in[0].Data[t*et : (t+1)*et]
		d := out.Data[t*et : (t+1)*et]
		if len(in) == 4 {
			copy(d, in[3].Data[t*et:(t+1)*et])
		}
		G, A := 0.0, 0.0
		for k := 0; k < K; k++ {
			e := int(in[1].Data[t*K+k])
			G += s[e]
			A += in[2].Data[t*K+k] * s[e]
		}
		for k := 0; k < K; k++ {
			e := int(in[1].Data[t*K+k])
			dg := in[2].Data[t*K+k]
			if r.Route.Norm {
				d[e] += scale * (dg/G - A/(G*G))
			} else {
				d[e] += scale * dg
			}
		}
		if r.Route.Softmax {
			dot := 0.0
			for i := range d {
				dot += s[i] * d[i]
			}
			for i := range d {
				d[i] = s[i] * (d[i] - dot)
			}
		} else {
			for i := range d {
				d[i] *= s[i] * (1 - s[i])
			}
		}
	}
	return []*graph.Host{out}, nil
}

// Encode implements graph.Op.
func (r RouteBackward) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	n, et := in[0].Shape[0], in[0].Shape[1]
	k, err := graph.Kernel(dev, "moe_route", "route_backward", "moe_route_backward",
		[]gpu.Access{gpu.Read, gpu.Read, gpu.Read, gpu.Read, gpu.ReadWrite}, true, consts())
	if err != nil {
		return err
	}
	ds := in[0] // unused stand-in when there is no direct score gradient
	if len(in) == 4 {
		ds = in[3]
	}
	return rec.Dispatch(k, grid(dev, n), r.Route.params(n, et, len(in) == 4), in[0], in[1], in[2], ds, out[0])
}
