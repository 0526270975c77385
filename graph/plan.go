package graph

import (
	"fmt"
	"sort"
)

// Plan is a compiled schedule: the nodes needed for the requested outputs,
// in topological order, and a placement of every activation in one arena
// such that tensors alive at the same time never overlap. Persistent
// tensors (inputs, parameters, state, constants) live outside the arena.
type Plan struct {
	Graph   *Graph
	Nodes   []*Node
	Outputs []*Tensor
	// Offset is each activation's byte offset in the arena.
	Offset map[*Tensor]uint64
	// Live is each activation's lifetime as [first, last] node index.
	Live map[*Tensor][2]int
	// Own maps activations kept outside the arena (Tensor.Persist, and
	// tensors sharing storage with one through an accumulating op) to the
	// tensor whose buffer holds them.
	Own map[*Tensor]*Tensor
	// ArenaBytes is the arena size; NaiveBytes what one buffer per
	// activation would take.
	ArenaBytes, NaiveBytes uint64
	// OwnBytes is what the activations kept outside the arena take.
	OwnBytes uint64
	// Packs lists groups of persistent tensors (parameters, state, or
	// activations kept outside the arena) that the plan's ops want laid
	// out one after another in one buffer, in order (see Packer).
	Packs [][]*Tensor
	align uint64
}

// Bytes is a tensor's size rounded up to the plan's alignment.
func (p *Plan) Bytes(t *Tensor) uint64 { return alignUp(uint64(t.Len()*t.DType.Size()), p.align) }

func alignUp(x, a uint64) uint64 {
	if x == 0 {
		x = 1
	}
	return (x + a - 1) / a * a
}

// Plan schedules the nodes that the outputs depend on and places the
// activations. align is the storage-offset alignment of the target adapter
// (256 is safe everywhere). Outputs stay alive until the end of the plan.
func (g *Graph) Plan(outputs []*Tensor, align uint64) (*Plan, error) {
	if g.err != nil {
		return nil, g.err
	}
	if align == 0 {
		align = 256
	}
	// Dead-code elimination: keep nodes that lead to an output or that
	// update persistent state in place.
	needed := map[*Tensor]bool{}
	for _, o := range outputs {
		if o == nil || o.ID < 0 {
			return nil, fmt.Errorf("plan: invalid output tensor")
		}
		needed[o] = true
	}
	keep := make([]bool, len(g.Nodes))
	for i := len(g.Nodes) - 1; i >= 0; i-- {
		n := g.Nodes[i]
		use := updatesInPlace(n)
		for _, o := range n.Out {
			use = use || needed[o]
		}
		if use {
			keep[i] = true
			for _, in := range n.In {
				needed[in] = true
			}
		}
	}
	p := &Plan{Graph: g, Outputs: outputs, Offset: map[*Tensor]uint64{}, Live: map[*Tensor][2]int{}, align: align}
	for i, n := range g.Nodes {
		if !keep[i] {
			continue
		}
		if u, ok := n.Op.(InPlace); ok {
			for _, k := range u.Updates() {
				if in := n.In[k]; !in.Kind.Persistent() {
					return nil, fmt.Errorf("plan: %s updates %s in place, but it is an %s; in-place updates need a parameter or state tensor", n.Op.Name(), in.Name, in.Kind)
				}
			}
		}
		p.Nodes = append(p.Nodes, n)
		if pk, ok := n.Op.(Packer); ok {
			for _, grp := range pk.Packs(len(n.In)) {
				ts := make([]*Tensor, len(grp))
				for j, k := range grp {
					ts[j] = n.In[k]
				}
				p.Packs = append(p.Packs, ts)
			}
		}
	}
	// Lifetimes. An accumulating op's output 0 shares its last input's
	// storage, so the two form one lifetime; that input must die there.
	alias := map[*Tensor]*Tensor{} // output → storage owner
	owner := func(t *Tensor) *Tensor {
		for alias[t] != nil {
			t = alias[t]
		}
		return t
	}
	end := len(p.Nodes)
	for i, n := range p.Nodes {
		if accumulates(n.Op) {
			acc := n.In[len(n.In)-1]
			if acc.Kind != Activation {
				return nil, fmt.Errorf("plan: %s accumulates into %s, which is %s, not an activation", n.Op.Name(), acc.Name, acc.Kind)
			}
			alias[n.Out[0]] = acc
		}
		for _, o := range n.Out {
			r := owner(o)
			if l, ok := p.Live[r]; ok {
				p.Live[r] = [2]int{l[0], i}
			} else {
				p.Live[r] = [2]int{i, i}
			}
		}
		for _, in := range n.In {
			if in.Kind != Activation {
				continue
			}
			r := owner(in)
			l := p.Live[r]
			if i > l[1] {
				l[1] = i
			}
			p.Live[r] = l
		}
	}
	for i, n := range p.Nodes {
		if !accumulates(n.Op) {
			continue
		}
		acc := n.In[len(n.In)-1]
		for _, m := range p.Nodes[i+1:] {
			for _, in := range m.In {
				if in == acc {
					return nil, fmt.Errorf("plan: %s accumulates into %s, which %s reads afterwards", n.Op.Name(), acc.Name, m.Op.Name())
				}
			}
		}
	}
	isOutput := map[*Tensor]bool{}
	for _, o := range outputs {
		isOutput[o] = true
	}
	for _, n := range p.Nodes {
		if accumulates(n.Op) {
			if acc := n.In[len(n.In)-1]; isOutput[acc] {
				return nil, fmt.Errorf("plan: %s accumulates into %s, which is also a requested output and would be overwritten", n.Op.Name(), acc.Name)
			}
		}
	}
	for _, o := range outputs {
		if o.Kind == Activation {
			r := owner(o)
			l := p.Live[r]
			p.Live[r] = [2]int{l[0], end}
		}
	}
	// Tensors marked Persist (parameter gradients) get buffers of their
	// own, outside the arena; an alias group is persistent if any member
	// is.
	p.Own = map[*Tensor]*Tensor{}
	ownRoot := map[*Tensor]bool{}
	for t := range p.Live {
		if t.Persist {
			ownRoot[t] = true
		}
	}
	for out := range alias {
		if out.Persist {
			ownRoot[owner(out)] = true
		}
	}
	// Best-fit placement in order of first use.
	var free []span
	var top uint64
	roots := make([]*Tensor, 0, len(p.Live))
	for t := range p.Live {
		if ownRoot[t] {
			p.Own[t] = t
			p.OwnBytes += p.Bytes(t)
			continue
		}
		roots = append(roots, t)
	}
	sort.Slice(roots, func(i, j int) bool {
		li, lj := p.Live[roots[i]], p.Live[roots[j]]
		if li[0] != lj[0] {
			return li[0] < lj[0]
		}
		return roots[i].ID < roots[j].ID
	})
	type release struct {
		at int
		b  span
	}
	var pending []release
	for _, t := range roots {
		l := p.Live[t]
		// Free every block whose tensor died strictly before this one is born.
		rest := pending[:0]
		for _, r := range pending {
			if r.at < l[0] {
				free = insertFree(free, r.b.off, r.b.size)
			} else {
				rest = append(rest, r)
			}
		}
		pending = rest
		size := p.Bytes(t)
		p.NaiveBytes += size
		best := -1
		for i, b := range free {
			if b.size >= size && (best < 0 || b.size < free[best].size) {
				best = i
			}
		}
		var off uint64
		if best >= 0 {
			off = free[best].off
			if free[best].size == size {
				free = append(free[:best], free[best+1:]...)
			} else {
				free[best] = span{free[best].off + size, free[best].size - size}
			}
		} else {
			// Grow the arena, reusing a free block that ends at the top.
			if n := len(free); n > 0 && free[n-1].off+free[n-1].size == top {
				off = free[n-1].off
				free = free[:n-1]
			} else {
				off = top
			}
			top = off + size
		}
		p.Offset[t] = off
		pending = append(pending, release{l[1], span{off, size}})
	}
	for out := range alias {
		r := owner(out)
		if ownRoot[r] {
			p.Own[out] = r
		} else if _, ok := p.Live[r]; ok {
			p.Offset[out] = p.Offset[r]
		}
	}
	p.ArenaBytes = top
	return p, nil
}

// span is a free range of the arena.
type span struct{ off, size uint64 }

// insertFree adds a range to the sorted free list, merging neighbours.
func insertFree(free []span, off, size uint64) []span {
	i := sort.Search(len(free), func(i int) bool { return free[i].off > off })
	free = append(free, span{})
	copy(free[i+1:], free[i:])
	free[i] = span{off, size}
	if i+1 < len(free) && free[i].off+free[i].size == free[i+1].off {
		free[i].size += free[i+1].size
		free = append(free[:i+1], free[i+2:]...)
	}
	if i > 0 && free[i-1].off+free[i-1].size == free[i].off {
		free[i-1].size += free[i].size
		free = append(free[:i], free[i+1:]...)
	}
	return free
}

// InPlace is implemented by ops that update some inputs in place (an
// optimizer step writes its parameter and moments). Such nodes are always
// kept by the planner, and their listed inputs must be persistent.
type InPlace interface {
	Updates() []int
}

func updatesInPlace(n *Node) bool {
	u, ok := n.Op.(InPlace)
	return ok && len(u.Updates()) > 0
}

// Packer is implemented by ops that run faster when groups of their inputs
// sit one after another in one buffer (a multi-tensor optimizer step then
// binds all parameters as one range). Packs lists each group as input
// indices, in layout order, given the node's number of inputs. It is a layout wish, not a requirement: the
// GPU executor packs what it can (each tensor's slot rounded up to the
// storage offset alignment, the padding zero, a buffer no larger than one
// storage binding) and the op must still run on tensors it did not pack.
type Packer interface {
	Packs(inputs int) [][]int
}
