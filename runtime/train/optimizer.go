package train

import (
	"github.com/moegpu/moegpu/graph"
)

// Options are build choices of a training step that are not part of the
// model config: kept selectable so a faster path can be checked against
// the one it replaced.
type Options struct {
	// PerParameterOptimizer builds the optimizer as it was first written:
	// per parameter a SumSquares, an Add into the global norm and an AdamW
	// (three to five dispatches each), instead of SumSquaresGroup and
	// AdamWGroup over parameters, gradients and moments packed into flat
	// buffers (four dispatches in all).
	PerParameterOptimizer bool
	// UnfusedProjections builds q/k/v and the FFN's gate/up as separate
	// matmuls (model.BuildTrainUnfused) instead of one fused projection
	// each; parameters, checkpoints and values are the same.
	UnfusedProjections bool
	// Unfused skips graph.FuseAccumulate, which folds the backward pass's
	// gradient sums into the matmuls that produce them.
	Unfused bool
}

// addOptimizer folds the backward pass's gradient sums into their matmuls
// (unless opt.Unfused), appends global-norm clipping and AdamW for every
// parameter to the step, and records each parameter's moments and decay
// setting.
func (t *Trainer) addOptimizer(g *graph.Graph, params []*graph.Tensor, opt Options) {
	if !opt.Unfused {
		keep := append([]*graph.Tensor{t.Model.Loss, t.Model.LMLoss}, moeStats(t.Model)...)
		g.FuseAccumulate(append(keep, t.Model.MTPLoss...)...)
	}
	t.hyperDecay = g.Input("opt.hyper.decay", graph.F32(4))
	t.hyperNo = g.Input("opt.hyper.no_decay", graph.F32(4))
	for _, p := range params {
		mv := [2]*graph.Tensor{g.State("opt.m."+p.Name, p.Spec), g.State("opt.v."+p.Name, p.Spec)}
		// A fused parameter's moments are saved part by part, as it is.
		if len(p.Parts) > 0 {
			for k, prefix := range []string{"opt.m.", "opt.v."} {
				parts := make([]graph.Part, len(p.Parts))
				for i, pt := range p.Parts {
					parts[i] = graph.Part{Name: prefix + pt.Name, Rows: pt.Rows}
				}
				g.SetParts(mv[k], parts...)
			}
		}
		t.moments[p] = mv
		if !p.NoDecay || (t.Train.DecayEmbeddings && p.Role == "embedding") {
			t.decayed[p] = true
		}
	}
	if opt.PerParameterOptimizer {
		for _, p := range params {
			ss := g.Apply1(graph.SumSquares{}, p.Grad)
			if t.gradNorm2 == nil {
				t.gradNorm2 = ss
			} else {
				t.gradNorm2 = g.Apply1(graph.Add{}, t.gradNorm2, ss)
			}
		}
		for _, p := range params {
			h := t.hyperNo
			if t.decayed[p] {
				h = t.hyperDecay
			}
			mv := t.moments[p]
			g.Apply(t.opt, p, p.Grad, mv[0], mv[1], h, t.gradNorm2)
		}
		return
	}
	// Decayed parameters first, so AdamWGroup runs in two ranges.
	var order []*graph.Tensor
	for _, decay := range []bool{true, false} {
		for _, p := range params {
			if t.decayed[p] == decay {
				order = append(order, p)
			}
		}
	}
	n := len(order)
	in := make([]*graph.Tensor, 4*n, 4*n+3)
	op := graph.AdamWGroup{AdamW: t.opt, Decay: make([]bool, n)}
	for i, p := range order {
		mv := t.moments[p]
		in[i], in[n+i], in[2*n+i], in[3*n+i] = p, p.Grad, mv[0], mv[1]
		op.Decay[i] = t.decayed[p]
	}
	t.gradNorm2 = g.Apply1(graph.SumSquaresGroup{}, in[n:2*n]...)
	g.Apply(op, append(in, t.hyperDecay, t.hyperNo, t.gradNorm2)...)
}
