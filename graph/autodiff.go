package graph

import (
	"fmt"
	"slices"
)

// Differentiable ops give their backward rule as more graph ops. dOut[j] is
// the gradient of the loss with respect to output j (nil if none reached
// it); the result holds one gradient per input, nil where none flows (token
// ids, for example).
type Differentiable interface {
	Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor
}

// Backward appends the gradient computation of a scalar loss (shape [] or
// [1]) to the graph and sets Grad on every parameter the loss depends on.
// Where a tensor feeds several ops its gradient contributions are summed.
func (g *Graph) Backward(loss *Tensor) error {
	if g.err != nil {
		return g.err
	}
	if loss.Len() != 1 || loss.DType != F32().DType {
		return fmt.Errorf("backward: loss must be a scalar f32, got %s", loss.Spec)
	}
	needs := g.requiresGrad()
	if !needs[loss] {
		return fmt.Errorf("backward: loss %s does not depend on any parameter", loss.Name)
	}
	nodes := g.Nodes // only the forward part
	partials := map[*Tensor][]*Tensor{}
	one := NewHost(loss.Spec)
	one.Data[0] = 1
	partials[loss] = []*Tensor{g.Constant("dloss", one)}
	sum := func(t *Tensor) *Tensor {
		ps := partials[t]
		if len(ps) == 0 {
			return nil
		}
		acc := ps[0]
		for _, p := range ps[1:] {
			acc = g.Apply1(Add{}, acc, p)
		}
		partials[t] = []*Tensor{acc}
		return acc
	}
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		dOut := make([]*Tensor, len(n.Out))
		any := false
		for j, o := range n.Out {
			dOut[j] = sum(o)
			any = any || dOut[j] != nil
		}
		if !any {
			continue
		}
		wanted := false
		for _, in := range n.In {
			wanted = wanted || needs[in]
		}
		if !wanted {
			continue
		}
		d, ok := n.Op.(Differentiable)
		if !ok {
			return fmt.Errorf("backward: op %s has no gradient but its inputs need one", n.Op.Name())
		}
		dIn := d.Backward(g, n, dOut)
		if g.err != nil {
			return fmt.Errorf("backward of %s: %w", n.Op.Name(), g.err)
		}
		if len(dIn) != len(n.In) {
			return fmt.Errorf("backward of %s: %d gradients for %d inputs", n.Op.Name(), len(dIn), len(n.In))
		}
		for k, in := range n.In {
			if dIn[k] == nil || !needs[in] {
				continue
			}
			if !slices.Equal(dIn[k].Shape, in.Shape) || dIn[k].DType != in.DType {
				return fmt.Errorf("backward of %s: gradient of input %d is %s, input is %s", n.Op.Name(), k, dIn[k].Spec, in.Spec)
			}
			partials[in] = append(partials[in], dIn[k])
		}
	}
	for _, p := range g.Params() {
		p.Grad = sum(p)
		if p.Grad != nil {
			p.Grad.Persist = true
		}
	}
	return g.err
}

// requiresGrad marks tensors that depend on a parameter.
func (g *Graph) requiresGrad() map[*Tensor]bool {
	needs := map[*Tensor]bool{}
	for _, t := range g.Tensors {
		if t.Kind == Param {
			needs[t] = true
		}
	}
	for _, n := range g.Nodes {
		for _, in := range n.In {
			if needs[in] {
				for _, o := range n.Out {
					needs[o] = true
				}
				break
			}
		}
	}
	return needs
}
