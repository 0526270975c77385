package graph

import "slices"

// FuseAccumulate folds sums into the ops that feed them: a node y = Add(a,
// b) where one operand is output 0 of an op with an accumulating form
// (MatMul, RMSNormBackward) that nothing else reads, and the other an
// activation that no later node reads, becomes that op accumulating into
// the other operand (its Accumulate flag, so y shares that operand's
// storage): one dispatch and one pass over y fewer. An accumulating op
// that starts from a Zeros read nowhere else (an embedding's gradient)
// accumulates into the other operand instead, and the Zeros goes too.
// Where the other operand must survive (the residual stream, which a norm's
// backward reads later), a matmul producer adds it as a residual into a
// new tensor (MatMul.Residual): the forward pass's residual adds. This
// is what the backward pass sums: the input gradients of q/k/v, of gate/up and of tied
// embeddings (matmuls), and the residual stream's gradient with each
// norm's. Tensors in keep (outputs the caller will read) are never folded
// away or overwritten. Call it after Backward and before Plan; it returns
// the number of sums folded. The graph computes the same values (up to f32
// rounding order on the GPU); not calling it is the unfused path.
func (g *Graph) FuseAccumulate(keep ...*Tensor) int {
	if g.err != nil {
		return 0
	}
	kept := map[*Tensor]bool{}
	for _, t := range keep {
		kept[t] = true
	}
	uses := map[*Tensor]int{}
	for _, n := range g.Nodes {
		for _, in := range n.In {
			uses[in]++
		}
	}
	// readLater reports whether a node after node i reads t.
	readLater := func(t *Tensor, i int) bool {
		for _, m := range g.Nodes[i+1:] {
			if slices.Contains(m.In, t) {
				return true
			}
		}
		return false
	}
	// consumersAfter reports whether every reader of t comes after node i.
	consumersAfter := func(t *Tensor, i int) bool {
		for _, m := range g.Nodes[:i+1] {
			for _, in := range m.In {
				if in == t {
					return false
				}
			}
		}
		return true
	}
	removed := map[*Node]bool{}
	fused := 0
	for i, n := range g.Nodes {
		if _, ok := n.Op.(Add); !ok || len(n.In) != 2 {
			continue
		}
		// Sides where p accumulates into fresh zeros come first: p then
		// accumulates into the other operand instead, and the zeros go.
		sides := [][2]int{{1, 0}, {0, 1}}
		if zeroAcc(n.In[0], uses) && !zeroAcc(n.In[1], uses) {
			sides = [][2]int{{0, 1}, {1, 0}}
		}
		for _, side := range sides {
			p, acc := n.In[side[0]], n.In[side[1]]
			pn := p.node
			if pn == nil || p == acc || removed[pn] {
				continue
			}
			op, ok := accumulating(pn.Op)
			var zeros *Node
			if zeroAcc(p, uses) {
				op, ok, zeros = pn.Op, true, pn.In[len(pn.In)-1].node
			}
			if !ok || p.out != 0 || uses[p] != 1 || kept[p] {
				continue
			}
			// acc is overwritten here: nothing may read it later (earlier
			// readers are done with it), and the folded op must not read it.
			if acc.Kind != Activation || kept[acc] || acc.DType != n.Out[0].DType ||
				numel(acc.Shape) != numel(n.Out[0].Shape) || readLater(acc, i) || slices.Contains(pn.In, acc) {
				// The residual stream's add (acc is still needed, so it
				// cannot be overwritten): a matmul that adds acc as a
				// residual into a new tensor instead.
				mm, isMM := pn.Op.(MatMul)
				if !isMM || mm.Accumulate || mm.Residual || zeros != nil || acc.DType != n.Out[0].DType ||
					!slices.Equal(acc.Shape, p.Shape) || !slices.Equal(p.Shape, n.Out[0].Shape) {
					continue
				}
				mm.Residual = true
				op = mm
			}
			// The producer's other outputs move to the Add's place: every
			// reader of them must come later.
			later := true
			for _, o := range pn.Out[1:] {
				later = later && consumersAfter(o, i)
			}
			if !later {
				continue
			}
			n.Op = op
			ins := pn.In
			if zeros != nil {
				ins = ins[:len(ins)-1]
				removed[zeros] = true
			}
			n.In = append(append([]*Tensor{}, ins...), acc)
			for _, o := range pn.Out[1:] {
				o.node = n
				n.Out = append(n.Out, o)
			}
			removed[pn] = true
			uses[p] = 0
			fused++
			break
		}
	}
	if fused > 0 {
		nodes := g.Nodes[:0]
		for _, n := range g.Nodes {
			if !removed[n] {
				nodes = append(nodes, n)
			}
		}
		g.Nodes = nodes
	}
	return fused
}

// zeroAcc reports whether t is output 0 of an accumulating op whose
// previous value is a Zeros that nothing else reads (an embedding's
// gradient starts so): the op can accumulate into another tensor instead.
func zeroAcc(t *Tensor, uses map[*Tensor]int) bool {
	n := t.node
	if n == nil || t.out != 0 || !accumulates(n.Op) {
		return false
	}
	z := n.In[len(n.In)-1]
	if z.node == nil || uses[z] != 1 {
		return false
	}
	_, ok := z.node.Op.(Zeros)
	return ok
}

// accumulating returns the accumulating form of an op (output 0 added into
// an extra last input), if it has one and is not already in it.
func accumulating(op Op) (Op, bool) {
	switch o := op.(type) {
	case MatMul:
		if !o.Accumulate && !o.Residual { // a residual matmul already adds its own R
			o.Accumulate = true
			return o, true
		}
	case RMSNormBackward:
		if !o.Accumulate {
			o.Accumulate = true
			return o, true
		}
	}
	return nil, false
}
