package graph

import (
	"fmt"

	"github.com/moegpu/moegpu/gpu"
)

// Embedding turns token ids into vectors: inputs table (V, D) f32 and ids
// (N) u32, output y (N, D) with y[n] = table[ids[n]].
//
// An id ≥ V gives a row of zeros, on the GPU and in the reference alike: the
// shape rule cannot see id values, so the kernel must never read outside the
// table, and a defined result beats an undefined one. Callers that want an
// error validate ids on the host.
type Embedding struct {
	// Variant picks the kernel: 0 automatic, 1 one invocation per element,
	// 2 one invocation per vec4 (needs D % 4 == 0; falls back to 1).
	Variant int
}

// Name implements Op.
func (Embedding) Name() string { return "embedding" }

// Outputs implements Op.
func (Embedding) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 2); err != nil {
		return nil, err
	}
	if err := wantRank("table", in[0], 2, gpu.F32); err != nil {
		return nil, err
	}
	if err := wantRank("ids", in[1], 1, gpu.U32); err != nil {
		return nil, err
	}
	return []Spec{F32(in[1].Shape[0], in[0].Shape[1])}, nil
}

// Reference implements Op.
func (e Embedding) Reference(in []*Host) ([]*Host, error) {
	outs, err := e.Outputs([]Spec{in[0].Spec, in[1].Spec})
	if err != nil {
		return nil, err
	}
	y := NewHost(outs[0])
	v, d := in[0].Shape[0], in[0].Shape[1]
	for n, idf := range in[1].Data {
		id := int(idf)
		if id < 0 || id >= v {
			continue // out-of-range id: zeros
		}
		copy(y.Data[n*d:(n+1)*d], in[0].Data[id*d:(id+1)*d])
	}
	return []*Host{y}, nil
}

// Encode implements Op.
func (e Embedding) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	const wg = 256
	v, d := in[0].Shape[0], in[0].Shape[1]
	n := in[1].Shape[0]
	variant := e.Variant
	if variant == 0 || (variant == 2 && d%4 != 0) {
		variant = 1
		if d%4 == 0 {
			variant = 2
		}
	}
	entry, width := "embedding_forward", d
	if variant == 2 {
		entry, width = "embedding_forward_vec4", d/4
	}
	k, err := kernel(dev, "embedding", entry, entry, []gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite}, true, nil)
	if err != nil {
		return err
	}
	grid := dev.Grid1D(gpu.CeilDiv(n*width, wg))
	return rec.Dispatch(k, grid, []uint32{uint32(n), uint32(width), uint32(v), 0}, in[0], in[1], out[0])
}

// EmbeddingBackward is the gradient of Embedding with respect to the table:
// inputs dy (N, D) f32, ids (N) u32 and the previous table gradient (V, D);
// output dtable (V, D) = previous + scatter-add of dy rows at ids. It is an
// Accumulator (parameter gradients accumulate). Positions with an id ≥ V
// contribute nothing, matching the forward's zero rows.
type EmbeddingBackward struct {
	// Variant picks the kernel: 0 automatic (1, or 2 on llvmpipe when N
	// exceeds llvmpipeLoopBudget), 1 deterministic — a
	// link pass finds, for each position, the next position with the same
	// id (O(N²) u32 reads), then the first position of each id sums its
	// chain in order and is the only writer of its table row (O(N·D));
	// results are bit-for-bit reproducible. 2 atomic — each element of dy
	// is added with an atomic-exchange loop on the f32 bits (O(N·D); the
	// addition order, and so the rounding, varies between runs).
	Variant int
}

// Name implements Op.
func (EmbeddingBackward) Name() string { return "embedding_backward" }

// Accumulates implements Accumulator: dtable += scatter(dy).
func (EmbeddingBackward) Accumulates() bool { return true }

// Outputs implements Op.
func (EmbeddingBackward) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 3); err != nil {
		return nil, err
	}
	if err := wantRank("dy", in[0], 2, gpu.F32); err != nil {
		return nil, err
	}
	if err := wantRank("ids", in[1], 1, gpu.U32); err != nil {
		return nil, err
	}
	if err := wantRank("previous dtable", in[2], 2, gpu.F32); err != nil {
		return nil, err
	}
	if in[0].Shape[0] != in[1].Shape[0] {
		return nil, fmt.Errorf("dy has %d rows but ids has %d", in[0].Shape[0], in[1].Shape[0])
	}
	if in[0].Shape[1] != in[2].Shape[1] {
		return nil, fmt.Errorf("dy width %d does not match table width %d", in[0].Shape[1], in[2].Shape[1])
	}
	return []Spec{F32(in[2].Shape...)}, nil
}

// Reference implements Op.
func (e EmbeddingBackward) Reference(in []*Host) ([]*Host, error) {
	outs, err := e.Outputs([]Spec{in[0].Spec, in[1].Spec, in[2].Spec})
	if err != nil {
		return nil, err
	}
	dt := NewHost(outs[0])
	copy(dt.Data, in[2].Data)
	v, d := in[2].Shape[0], in[2].Shape[1]
	for n, idf := range in[1].Data {
		id := int(idf)
		if id < 0 || id >= v {
			continue
		}
		for j := 0; j < d; j++ {
			dt.Data[id*d+j] += in[0].Data[n*d+j]
		}
	}
	return []*Host{dt}, nil
}

// Encode implements Op. in is (dy, ids); out[0] holds the previous
// gradient. The deterministic variant keeps its (2, N) link table in a
// recorder scratch buffer, freed with the recorder.
func (e EmbeddingBackward) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	const wg = 256
	n, d := in[0].Shape[0], in[0].Shape[1]
	v := out[0].Shape[0]
	params := []uint32{uint32(n), uint32(d), uint32(v), 0}
	grid := dev.Grid1D(gpu.CeilDiv(n*d, wg))
	variant := e.Variant
	budget := loopBudget(dev)
	if variant == 0 {
		variant = 1
		if budget > 0 && n > budget {
			variant = 2
		}
	}
	if variant == 1 && budget > 0 && n > budget {
		return overBudget(dev, fmt.Sprintf("deterministic embedding backward, N=%d", n), n)
	}
	if variant == 2 {
		k, err := kernel(dev, "embedding", "embedding_scatter_atomic", "embedding_scatter_atomic",
			[]gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite}, true, nil)
		if err != nil {
			return err
		}
		return rec.Dispatch(k, grid, params, in[0], in[1], out[0])
	}
	if variant != 1 {
		return fmt.Errorf("unknown variant %d", e.Variant)
	}
	kl, err := kernel(dev, "embedding", "embedding_links", "embedding_links", []gpu.Access{gpu.Read, gpu.ReadWrite}, true, nil)
	if err != nil {
		return err
	}
	scatter, sgrid, sparams := "embedding_scatter", grid, params
	if d%4 == 0 { // same sums, four columns per invocation
		scatter, sgrid = "embedding_scatter_vec4", dev.Grid1D(gpu.CeilDiv(n*d/4, wg))
		sparams = []uint32{uint32(n), uint32(d / 4), uint32(v), 0}
	}
	ks, err := kernel(dev, "embedding", scatter, scatter,
		[]gpu.Access{gpu.Read, gpu.Read, gpu.Read, gpu.ReadWrite}, true, nil)
	if err != nil {
		return err
	}
	links, err := rec.Scratch("embedding_backward.links", gpu.U32, 2, n)
	if err != nil {
		return err
	}
	if err := rec.Dispatch(kl, dev.Grid1D(gpu.CeilDiv(n, wg)), params, in[1], links); err != nil {
		return err
	}
	return rec.Dispatch(ks, sgrid, sparams, in[0], in[1], links, out[0])
}

// Backward implements Differentiable: the table's gradient is a
// scatter-add of dy into a zeroed (V, D) tensor; ids get none.
func (e Embedding) Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor {
	table, ids := n.In[0], n.In[1]
	zero := g.Apply1(Zeros{Spec: table.Spec})
	return []*Tensor{g.Apply1(EmbeddingBackward{}, dOut[0], ids, zero), nil}
}
