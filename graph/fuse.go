package graph

// FuseAccumulate folds sums into the matrix products that feed them: a node
// y = Add(a, b) where one operand is a MatMul's output that nothing else
// reads, and the other an activation that nothing else reads, becomes that
// MatMul accumulating into the other operand (MatMul.Accumulate, so y
// shares its storage): one dispatch and one pass over y fewer. This is
// what the backward pass of a tensor feeding several linear layers sums
// (the input gradients of q/k/v, of gate/up, of tied embeddings). Tensors
// in keep (outputs the caller will read) are never folded away or
// overwritten. Call it after Backward and before Plan; it returns the
// number of sums folded. The graph computes the same values (up to f32
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
	removed := map[*Node]bool{}
	fused := 0
	for _, n := range g.Nodes {
		if _, ok := n.Op.(Add); !ok || len(n.In) != 2 {
			continue
		}
		for _, side := range [][2]int{{1, 0}, {0, 1}} {
			p, acc := n.In[side[0]], n.In[side[1]]
			pn := p.node
			if pn == nil || p == acc || removed[pn] {
				continue
			}
			mm, ok := pn.Op.(MatMul)
			if !ok || mm.Accumulate || len(pn.Out) != 1 || uses[p] != 1 || kept[p] {
				continue
			}
			if acc.Kind != Activation || uses[acc] != 1 || kept[acc] || acc.DType != n.Out[0].DType ||
				numel(acc.Shape) != numel(n.Out[0].Shape) {
				continue
			}
			mm.Accumulate = true
			n.Op = mm
			n.In = []*Tensor{pn.In[0], pn.In[1], acc}
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
