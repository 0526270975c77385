package moe

import (
	"fmt"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
)

// Dispatch turns the router's choices into the expert-contiguous row
// layout that GroupedMatMul works on, entirely on the GPU (see
// shaders/moe_dispatch.wgsl).
//
// A slot is one (token, choice): slot t·K + k in routed mode, slot t in
// shared mode (one per token, for the shared experts, which every token that
// is not skipped visits). A token is skipped when one of its choices is a
// copy expert (id ≥ Experts): none of its slots gets a row.
//
// Input: idx (n, K) u32 from Route.
// Outputs, with E = Experts (routed mode) or 1 (shared mode), ks = K or 1:
//
//	seg      (2·E) u32: expert e's first row (a multiple of RowAlign) and row count
//	raw      (E) u32: slots per expert before the capacity cut (the load)
//	rowSlot  (Rows) u32: the slot each row holds, or 0xFFFFFFFF
//	slotRow  (n·ks) u32: the row each slot went to, or 0xFFFFFFFF (copy
//	         choice, skipped token, or dropped over capacity)
//
// Within an expert, slots keep token order; with a Capacity, an expert's
// slots past the first Capacity are dropped (its rows stop there).
type Dispatch struct {
	Experts int  // routed experts; ids ≥ Experts are copy experts
	Shared  bool // shared mode: one slot per token that is not skipped, all to expert 0
	// Capacity is the most rows an expert takes (0: no limit, dropless).
	Capacity int
	// Variant picks the kernels: 0 automatic (1 for at most
	// oneDispatchPairs (chunk, expert) pairs, as in decoding, else 4); 1
	// all four steps in one workgroup of one dispatch (dispatch_one; on
	// llvmpipe within its loop budget, else refused); 4 four dispatches.
	// A decoding step of ocr-small (256 tokens, three MoE layers) records
	// 18 dispatches fewer with 1.
	Variant int
}

// oneDispatchPairs bounds the (chunk, expert) pairs the automatic choice
// runs in one workgroup: 4 per invocation; beyond it, the four dispatches
// spread the work over every core.
const oneDispatchPairs = 4 * wg

// Rows is the static row count of the permuted layout for n tokens with K
// choices: every slot plus the worst-case alignment padding.
func (d Dispatch) Rows(n, k int) int {
	e, ks := d.experts(), k
	if d.Shared {
		ks = 1
	}
	return n*ks + e*(RowAlign-1)
}

func (d Dispatch) experts() int {
	if d.Shared {
		return 1
	}
	return d.Experts
}

// Name implements graph.Op.
func (d Dispatch) Name() string {
	if d.Shared {
		return "moe_dispatch_shared"
	}
	return "moe_dispatch"
}

// Outputs implements graph.Op.
func (d Dispatch) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if err := graph.WantInputs(in, 1); err != nil {
		return nil, err
	}
	if err := graph.WantRank("idx", in[0], 2, gpu.U32); err != nil {
		return nil, err
	}
	if d.Experts < 1 {
		return nil, fmt.Errorf("experts %d: want ≥ 1", d.Experts)
	}
	if d.Capacity < 0 {
		return nil, fmt.Errorf("capacity %d: want ≥ 0", d.Capacity)
	}
	n, k := in[0].Shape[0], in[0].Shape[1]
	e, ks := d.experts(), k
	if d.Shared {
		ks = 1
	}
	return []graph.Spec{graph.U32(2 * e), graph.U32(e), graph.U32(d.Rows(n, k)), graph.U32(n * ks)}, nil
}

// Reference implements graph.Op.
func (d Dispatch) Reference(in []*graph.Host) ([]*graph.Host, error) {
	outs, err := d.Outputs([]graph.Spec{in[0].Spec})
	if err != nil {
		return nil, err
	}
	seg, raw, rowSlot, slotRow := graph.NewHost(outs[0]), graph.NewHost(outs[1]), graph.NewHost(outs[2]), graph.NewHost(outs[3])
	for i := range rowSlot.Data {
		rowSlot.Data[i] = invalid
	}
	for i := range slotRow.Data {
		slotRow.Data[i] = invalid
	}
	n, k := in[0].Shape[0], in[0].Shape[1]
	idx := in[0].Data
	E, ks := d.experts(), k
	if d.Shared {
		ks = 1
	}
	skipped := func(t int) bool {
		for j := 0; j < k; j++ {
			if int(idx[t*k+j]) >= d.Experts {
				return true
			}
		}
		return false
	}
	expertOf := func(t, j int) int {
		if d.Shared {
			return 0
		}
		return int(idx[t*k+j])
	}
	lists := make([][]int, E)
	for t := 0; t < n; t++ {
		if skipped(t) {
			continue
		}
		for j := 0; j < ks; j++ {
			e := expertOf(t, j)
			lists[e] = append(lists[e], t*ks+j)
		}
	}
	start := 0
	for e, l := range lists {
		rows := len(l)
		if d.Capacity > 0 {
			rows = min(rows, d.Capacity)
		}
		raw.Data[e] = float64(len(l))
		seg.Data[2*e], seg.Data[2*e+1] = float64(start), float64(rows)
		for r, s := range l[:rows] {
			rowSlot.Data[start+r] = float64(s)
			slotRow.Data[s] = float64(start + r)
		}
		start += (rows + RowAlign - 1) / RowAlign * RowAlign
	}
	return []*graph.Host{seg, raw, rowSlot, slotRow}, nil
}

// dispatchChunk is the tokens one count/scatter invocation walks: at least
// 64, and few enough chunks (≤ 128) that the single offsets invocation
// stays short.
func dispatchChunk(n int) int { return max(64, gpu.CeilDiv(n, 128)) }

// Encode implements graph.Op: fill, count, offsets and scatter, four
// dispatches or one (see Variant); the per-chunk counts live in recorder
// scratch.
func (d Dispatch) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	n, k := in[0].Shape[0], in[0].Shape[1]
	E, ks := d.experts(), k
	if d.Shared {
		ks = 1
	}
	if d.Variant != 0 && d.Variant != 1 && d.Variant != 4 {
		return fmt.Errorf("%s: unknown variant %d", d.Name(), d.Variant)
	}
	chunk := dispatchChunk(n)
	nchunks := gpu.CeilDiv(n, chunk)
	rows := d.Rows(n, k)
	budget := graph.LoopBudget(dev)
	if budget > 0 {
		if it := chunk * (k + ks); it > budget {
			return graph.OverBudget(dev, fmt.Sprintf("%s of %d tokens", d.Name(), n), it)
		}
		if it := (nchunks + 1) * E; it > budget {
			return graph.OverBudget(dev, fmt.Sprintf("%s over %d experts", d.Name(), E), it)
		}
	}
	if n == 0 {
		return nil
	}
	one := d.Variant == 1 || (d.Variant == 0 && nchunks*E <= oneDispatchPairs)
	// dispatch_one's invocations loop over every step in turn.
	if it := gpu.CeilDiv(max(rows, n*ks), wg) + 2*gpu.CeilDiv(nchunks*E, wg)*chunk*(k+ks) + (nchunks+1)*E; one && budget > 0 && it > budget {
		if d.Variant == 1 {
			return graph.OverBudget(dev, fmt.Sprintf("%s of %d tokens in one dispatch", d.Name(), n), it)
		}
		one = false
	}
	cnt, err := rec.Scratch(d.Name()+".chunk_counts", gpu.U32, nchunks*E)
	if err != nil {
		return err
	}
	capacity := uint32(invalid)
	if d.Capacity > 0 {
		capacity = uint32(d.Capacity)
	}
	mode := uint32(0)
	if d.Shared {
		mode = 1
	}
	params := []uint32{uint32(n), uint32(k), uint32(E), mode, capacity, uint32(chunk), uint32(nchunks), uint32(rows),
		uint32(d.Experts), 0, 0, 0}
	acc := []gpu.Access{gpu.Read, gpu.ReadWrite, gpu.ReadWrite, gpu.ReadWrite, gpu.ReadWrite, gpu.ReadWrite}
	c := map[string]string{"WG": "64u", "ALIGN": fmt.Sprintf("%du", RowAlign)}
	bufs := []*gpu.Buffer{in[0], cnt, out[0], out[1], out[2], out[3]}
	steps := []struct {
		entry string
		grid  [3]uint32
	}{
		{"dispatch_fill", grid(dev, max(rows, n*ks))},
		{"dispatch_count", grid(dev, nchunks*E)},
		{"dispatch_offsets", [3]uint32{1, 1, 1}},
		{"dispatch_scatter", grid(dev, nchunks*E)},
	}
	if one {
		steps = steps[:1]
		steps[0].entry, steps[0].grid = "dispatch_one", [3]uint32{1, 1, 1}
	}
	for _, step := range steps {
		kern, err := graph.Kernel(dev, "moe_dispatch", step.entry, "moe_"+step.entry, acc, true, c)
		if err != nil {
			return err
		}
		if err := rec.Dispatch(kern, step.grid, params, bufs...); err != nil {
			return err
		}
	}
	return nil
}

// Gather copies token rows into the permuted layout: xp[r] = x[token of
// row r], or zeros on rows without a slot.
// Inputs: x (n, d) f32, rowSlot (rows) u32 from Dispatch. Output: xp
// (rows, d). SlotsPerToken is K (routed) or 1 (shared): a slot's token is
// slot / SlotsPerToken.
type Gather struct{ SlotsPerToken int }

// Name implements graph.Op.
func (Gather) Name() string { return "moe_gather" }

// Outputs implements graph.Op.
func (o Gather) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if err := graph.WantInputs(in, 2); err != nil {
		return nil, err
	}
	if err := graph.WantRank("x", in[0], 2, gpu.F32); err != nil {
		return nil, err
	}
	if err := graph.WantRank("rowSlot", in[1], 1, gpu.U32); err != nil {
		return nil, err
	}
	if o.SlotsPerToken < 1 {
		return nil, fmt.Errorf("slots per token %d: want ≥ 1", o.SlotsPerToken)
	}
	return []graph.Spec{graph.F32(in[1].Shape[0], in[0].Shape[1])}, nil
}

// Reference implements graph.Op.
func (o Gather) Reference(in []*graph.Host) ([]*graph.Host, error) {
	n, d := in[0].Shape[0], in[0].Shape[1]
	rows := in[1].Shape[0]
	xp := graph.NewHost(graph.F32(rows, d))
	for r := 0; r < rows; r++ {
		s := in[1].Data[r]
		if s == invalid {
			continue
		}
		t := int(s) / o.SlotsPerToken
		if t >= n {
			return nil, fmt.Errorf("row %d holds slot %d, past %d tokens", r, int(s), n)
		}
		copy(xp.Data[r*d:(r+1)*d], in[0].Data[t*d:(t+1)*d])
	}
	return []*graph.Host{xp}, nil
}

// Encode implements graph.Op.
func (o Gather) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	d, rows := in[0].Shape[1], in[1].Shape[0]
	entry, d := vec4Entry("gather_rows", d)
	k, err := graph.Kernel(dev, "moe_gather", entry, "moe_"+entry, []gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite}, true, consts())
	if err != nil {
		return err
	}
	return rec.Dispatch(k, grid(dev, rows*d), []uint32{uint32(rows), uint32(d), uint32(o.SlotsPerToken), 0}, in[0], in[1], out[0])
}

// Backward implements graph.Differentiable: dx[t] = Σ over the token's
// slots of dxp[row of the slot]. It needs slotRow, so the rule finds it on
// the Dispatch node that produced rowSlot.
func (o Gather) Backward(g *graph.Graph, n *graph.Node, dOut []*graph.Tensor) []*graph.Tensor {
	disp := n.In[1].Producer()
	if disp == nil || len(disp.Out) != 4 {
		g.Fail(fmt.Errorf("moe_gather backward: rowSlot must come from a Dispatch"))
		return []*graph.Tensor{nil, nil}
	}
	dx := g.Apply1(GatherBackward{SlotsPerToken: o.SlotsPerToken, Tokens: n.In[0].Shape[0]}, dOut[0], disp.Out[3])
	return []*graph.Tensor{dx, nil}
}

// GatherBackward sums permuted-row gradients back to tokens.
// Inputs: dxp (rows, d), slotRow (n·SlotsPerToken) u32. Output: dx (n, d).
type GatherBackward struct{ SlotsPerToken, Tokens int }

// Name implements graph.Op.
func (GatherBackward) Name() string { return "moe_gather_backward" }

// Outputs implements graph.Op.
func (o GatherBackward) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if err := graph.WantInputs(in, 2); err != nil {
		return nil, err
	}
	if err := graph.WantRank("dxp", in[0], 2, gpu.F32); err != nil {
		return nil, err
	}
	if err := graph.WantRank("slotRow", in[1], 1, gpu.U32); err != nil {
		return nil, err
	}
	if o.SlotsPerToken < 1 || in[1].Shape[0] != o.Tokens*o.SlotsPerToken {
		return nil, fmt.Errorf("slotRow has %d slots, want %d tokens × %d", in[1].Shape[0], o.Tokens, o.SlotsPerToken)
	}
	return []graph.Spec{graph.F32(o.Tokens, in[0].Shape[1])}, nil
}

// Reference implements graph.Op.
func (o GatherBackward) Reference(in []*graph.Host) ([]*graph.Host, error) {
	rows, d := in[0].Shape[0], in[0].Shape[1]
	dx := graph.NewHost(graph.F32(o.Tokens, d))
	for s, r := range in[1].Data {
		if r == invalid {
			continue
		}
		if int(r) >= rows {
			return nil, fmt.Errorf("slot %d maps to row %d, past %d rows", s, int(r), rows)
		}
		t := s / o.SlotsPerToken
		for c := 0; c < d; c++ {
			dx.Data[t*d+c] += in[0].Data[int(r)*d+c]
		}
	}
	return []*graph.Host{dx}, nil
}

// Encode implements graph.Op.
func (o GatherBackward) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	entry, d := vec4Entry("gather_backward", in[0].Shape[1])
	k, err := graph.Kernel(dev, "moe_gather", entry, "moe_"+entry, []gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite}, true, consts())
	if err != nil {
		return err
	}
	return rec.Dispatch(k, grid(dev, o.Tokens*d), []uint32{uint32(o.Tokens), uint32(d), uint32(o.SlotsPerToken), 0}, in[0], in[1], out[0])
}

// vec4Entry picks the vec4 form of a row kernel (entry + "4") when rows of
// length d split into vec4s, and returns the row length in its units.
func vec4Entry(entry string, d int) (string, int) {
	if d%4 == 0 {
		return entry + "4", d / 4
	}
	return entry, d
}
