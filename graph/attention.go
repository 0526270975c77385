package graph

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/moegpu/moegpu/gpu"
)

// Attention ops: causal grouped-query self-attention with an optional
// sliding window and an optional learnable per-head attention sink
// (MiMo-V2-Flash, TECHNIQUES §5), its backward, and KV-cache decoding.
// Kernels are in shaders/attention.wgsl.
//
// Activations are rank 2, (tokens, features), tokens = B·T in batch-major
// order (token b·T + t); a head's features are the contiguous slice
// [h·dh, (h+1)·dh) of its row. Query head h reads kv head h / (QH/KVH).
//
// Gradient rule: AttentionBackward writes (=) dq, dk, dv and ds.

// attnMaxHeadDim bounds the head dim: each invocation keeps a few head rows
// in private memory, which the driver unrolls into registers. At 256 the
// kernels compiled for 4–8 s each on lavapipe and the largest private
// arrays are where lavapipe's compiler has crashed (see attnBlock); larger
// heads need a kernel that tiles the head dimension.
const attnMaxHeadDim = 128

// Invocations per workgroup and keys per online-softmax block (shader
// overrides WG and KB). On lavapipe KB 4, 8 and 16 were within noise.
const (
	attnWG = 64
	attnKB = 8
)

// attnBlock is the number of rows one invocation handles (shader QB) in a
// kernel that keeps `arrays` head rows per row in private memory: the
// largest of 4 and 2 with arrays·QB·dh ≤ 512 floats, else 1, and 1 for
// head dims over 64. Each key (or query) row a kernel loads then serves QB
// rows; on lavapipe every per-lane load is a gather, so this is the main
// lever there. Measured on lavapipe, B=1, T=512, 8 heads of 64, global, CPU
// time: the forward (2 arrays) took 100 ms at QB 1, 56 at 2, 35 at 4 and
// 117 at 8 (spilled); dq (3 arrays) 101 at QB 1, 60 at 2, 83 at 4; the
// whole backward 240 at QB 1 and 134 at 2, and dk/dv (4 arrays) at QB 4
// crashed lavapipe's shader compiler. At dh 128 the forward with QB 2 took
// 12 s to compile, against 0.9 s with QB 1.
func attnBlock(arrays, dh int) int {
	if dh > 64 {
		return 1
	}
	for _, b := range []int{4, 2} {
		if arrays*b*dh <= 512 {
			return b
		}
	}
	return 1
}

// Attention is causal multi-head attention with grouped-query heads,
// optionally restricted to a sliding window and optionally with an
// attention sink: the attention layer of the model (global and SWA
// layers, MTP blocks). Query i attends keys j with i − W < j ≤ i (all
// j ≤ i when Window is 0); with a Prefix of P positions the upper bound is
// max(i, P − 1) instead, so the first P positions attend each other in
// both directions (PaliGemma's prefix-LM mask: an OCR model's image
// tokens) and the positions after them stay causal.
//
// Inputs (q, k, v[, s]): q (B·T, QHeads·HeadDim), k and v (B·T,
// KVHeads·HeadDim), and when Sink the per-head sink logits s (QHeads),
// which enter the softmax denominator only:
//
//	m_i = max(max_j a_ij, s_h), p_ij = exp(a_ij − m_i) / (exp(s_h − m_i) + Σ_j exp(a_ij − m_i)).
//
// Outputs (o, lse): o (B·T, QHeads·HeadDim) and lse (B, QHeads, T), the
// log of each row's softmax denominator (sink term included), which the
// backward needs. The kernel streams over keys with a running max and sum,
// so memory is O(T) and a window costs O(T·W). HeadDim is at most 128.
type Attention struct {
	Batch, Seq, QHeads, KVHeads, HeadDim int
	// Window is the sliding-window size W; 0 means global attention.
	Window int
	// Prefix is the number P of leading positions of every sequence that
	// attend each other in both directions; 0 means fully causal.
	Prefix int
	// Sink adds the sink-logit input s.
	Sink bool
	// Scale multiplies q·k; 0 means 1/√HeadDim (rounded to f32).
	Scale float32
	// SeparateSinkGrad (backward only) computes the sink's gradient in a
	// dispatch of its own instead of inside the dk/dv dispatch: the
	// unfused path, same values, kept for checking.
	SeparateSinkGrad bool
}

// AttentionBackward is the gradient of Attention (same fields). Inputs
// (q, k, v[, s], o, lse, do), where o and lse are Attention's outputs and
// do the gradient of o; outputs (dq, dk, dv[, ds]) of the shapes of q, k,
// v and s. With p_ij = exp(a_ij − lse_i) and D_i = do_i·o_i:
// ds_ij = p_ij(do_i·v_j − D_i), dq_i = scale Σ_j ds_ij k_j, dk_j = scale
// Σ_i ds_ij q_i, dv_j = Σ_i p_ij do_i, and ds_h = −Σ_{b,i} exp(s_h −
// lse_i)·D_i. Deterministic: dq is computed per query row, dk and dv per key
// row looping over the queries that see it, ds per head; no atomics.
type AttentionBackward Attention

// AttentionCached is Attention for generation: QLen new queries per
// sequence attend to keys and values held in a KV cache, which
// KVCacheWrite must already have updated with these tokens' keys and
// values (apply KVCacheWrite for k and for v before this op in the graph).
//
// Inputs (q, kcache, vcache, pos[, s]): q (B·QLen, QHeads·HeadDim);
// kcache and vcache (B, KVHeads, Capacity, HeadDim); pos (1) u32, the
// number of tokens cached before these queries, a storage buffer so one
// recorded dispatch serves every decode step; s (QHeads) when Sink.
// Output o (B·QLen, QHeads·HeadDim).
//
// Query t sits at absolute position pos+t and sees positions
// max(0, pos+t−W+1) … pos+t (0 … pos+t if global), or up to
// min(Prefix−1, pos+QLen−1) when that is later: a prefix must be written in
// one chunk (its queries see the whole prefix only if the chunk holds it). The cache is a ring:
// position p lives in slot p % Capacity. Capacity rule: a chunk needs
// every position from pos−W+1 to pos+QLen−1 at once, so the result is
// exact when Capacity ≥ min(Window + QLen − 1, longest sequence) for a
// windowed layer (QLen being the largest chunk the cache serves, e.g. the
// prefill) and Capacity ≥ longest sequence for a global one. With less,
// queries attend only to the positions still in the ring (pos+QLen−Capacity
// onwards): a truncation, not an error, since pos is known only on the
// GPU. Only Capacity ≥ QLen is checked (a chunk must not overwrite itself).
type AttentionCached struct {
	Batch, QLen, QHeads, KVHeads, HeadDim int
	// Window is the sliding-window size W; 0 means global attention.
	Window int
	// Prefix is Attention's Prefix: positions below it see each other in
	// both directions.
	Prefix int
	// Sink adds the sink-logit input s.
	Sink bool
	// Scale multiplies q·k; 0 means 1/√HeadDim (rounded to f32).
	Scale float32
	// Capacity is the number of cache slots per (batch, kv head).
	Capacity int
}

// KVCacheWrite stores the keys (or values) of QLen new tokens per sequence
// into a ring-buffer KV cache at slots (pos+t) % Capacity, for
// AttentionCached to read. Inputs (k, pos, cache): k (B·QLen,
// KVHeads·HeadDim), pos (1) u32, cache (B, KVHeads, Capacity, HeadDim), a
// persistent (State) tensor. No outputs: it updates cache in place
// (InPlace, Updates() = [2]), so the planner always keeps it; ops that
// read the cache must come after it in the graph.
type KVCacheWrite struct {
	Batch, QLen, KVHeads, HeadDim int
	Capacity                      int
}

// Name implements Op.
func (Attention) Name() string { return "attention" }

// Name implements Op.
func (AttentionBackward) Name() string { return "attention_backward" }

// Name implements Op.
func (AttentionCached) Name() string { return "attention_cached" }

// Name implements Op.
func (KVCacheWrite) Name() string { return "kv_cache_write" }

// Updates implements InPlace: the cache (input 2).
func (KVCacheWrite) Updates() []int { return []int{2} }

// attnGeom is the geometry shared by the attention ops.
type attnGeom struct {
	batch, seq, qh, kvh, dh, window, prefix int
	sink                                    bool
	scale                                   float32
}

func (a Attention) geom() attnGeom {
	return attnGeom{a.Batch, a.Seq, a.QHeads, a.KVHeads, a.HeadDim, a.Window, a.Prefix, a.Sink, a.Scale}
}

func (a AttentionCached) geom() attnGeom {
	return attnGeom{a.Batch, a.QLen, a.QHeads, a.KVHeads, a.HeadDim, a.Window, a.Prefix, a.Sink, a.Scale}
}

// check validates the fields; seqName names the sequence length field.
func (g attnGeom) check(seqName string) error {
	for _, f := range []struct {
		name string
		v    int
	}{{"Batch", g.batch}, {seqName, g.seq}, {"QHeads", g.qh}, {"KVHeads", g.kvh}, {"HeadDim", g.dh}} {
		if f.v < 1 {
			return fmt.Errorf("%s = %d, want ≥ 1", f.name, f.v)
		}
	}
	if g.qh%g.kvh != 0 {
		return fmt.Errorf("QHeads = %d is not a multiple of KVHeads = %d", g.qh, g.kvh)
	}
	if g.dh > attnMaxHeadDim {
		return fmt.Errorf("HeadDim = %d, at most %d supported", g.dh, attnMaxHeadDim)
	}
	if g.window < 0 {
		return fmt.Errorf("Window = %d, want ≥ 0 (0 = global)", g.window)
	}
	if g.prefix < 0 {
		return fmt.Errorf("Prefix = %d, want ≥ 0 (0 = causal)", g.prefix)
	}
	if math.IsNaN(float64(g.scale)) || math.IsInf(float64(g.scale), 0) {
		return fmt.Errorf("Scale = %g, want a finite number (0 = 1/√HeadDim)", g.scale)
	}
	return nil
}

// effScale is the score scale both the GPU (in f32) and the reference use.
func (g attnGeom) effScale() float32 {
	if g.scale == 0 {
		return float32(1 / math.Sqrt(float64(g.dh)))
	}
	return g.scale
}

// attnWant checks one input's dtype and shape.
func attnWant(what string, s Spec, want Spec) error {
	if s.DType != want.DType || !slices.Equal(s.Shape, want.Shape) {
		return fmt.Errorf("%s: want %s, got %s", what, want, s)
	}
	return nil
}

// attnCheckInputs checks in against the named specs, in order.
func attnCheckInputs(in []Spec, names []string, want []Spec) error {
	if len(in) != len(want) {
		return fmt.Errorf("want %d inputs (%s), got %d", len(want), strings.Join(names, ", "), len(in))
	}
	for i := range want {
		if err := attnWant(names[i], in[i], want[i]); err != nil {
			return err
		}
	}
	return nil
}

// qkvSpecs are the forward's input specs and names.
func (g attnGeom) qkvSpecs() ([]string, []Spec) {
	rows := g.batch * g.seq
	names := []string{"q", "k", "v"}
	specs := []Spec{F32(rows, g.qh*g.dh), F32(rows, g.kvh*g.dh), F32(rows, g.kvh*g.dh)}
	if g.sink {
		names = append(names, "s")
		specs = append(specs, F32(g.qh))
	}
	return names, specs
}

// Outputs implements Op.
func (a Attention) Outputs(in []Spec) ([]Spec, error) {
	g := a.geom()
	if err := g.check("Seq"); err != nil {
		return nil, err
	}
	names, specs := g.qkvSpecs()
	if err := attnCheckInputs(in, names, specs); err != nil {
		return nil, err
	}
	return []Spec{F32(g.batch*g.seq, g.qh*g.dh), F32(g.batch, g.qh, g.seq)}, nil
}

// Outputs implements Op.
func (a AttentionBackward) Outputs(in []Spec) ([]Spec, error) {
	g := Attention(a).geom()
	if err := g.check("Seq"); err != nil {
		return nil, err
	}
	names, specs := g.qkvSpecs()
	out := append([]Spec(nil), specs...)
	rows := g.batch * g.seq
	names = append(names, "o", "lse", "do")
	specs = append(specs, F32(rows, g.qh*g.dh), F32(g.batch, g.qh, g.seq), F32(rows, g.qh*g.dh))
	if err := attnCheckInputs(in, names, specs); err != nil {
		return nil, err
	}
	return out, nil
}

// Outputs implements Op.
func (a AttentionCached) Outputs(in []Spec) ([]Spec, error) {
	g := a.geom()
	if err := g.check("QLen"); err != nil {
		return nil, err
	}
	if err := attnCheckCapacity(a.Capacity, a.QLen); err != nil {
		return nil, err
	}
	cache := F32(g.batch, g.kvh, a.Capacity, g.dh)
	names := []string{"q", "kcache", "vcache", "pos"}
	specs := []Spec{F32(g.batch*g.seq, g.qh*g.dh), cache, cache, U32(1)}
	if g.sink {
		names = append(names, "s")
		specs = append(specs, F32(g.qh))
	}
	if err := attnCheckInputs(in, names, specs); err != nil {
		return nil, err
	}
	return []Spec{F32(g.batch*g.seq, g.qh*g.dh)}, nil
}

// attnCheckCapacity checks that a chunk of qlen tokens fits in the ring.
func attnCheckCapacity(capacity, qlen int) error {
	if capacity < qlen {
		return fmt.Errorf("Capacity = %d is less than QLen = %d: a chunk would overwrite itself", capacity, qlen)
	}
	return nil
}

// Outputs implements Op: none; the cache is updated in place.
func (w KVCacheWrite) Outputs(in []Spec) ([]Spec, error) {
	for _, f := range []struct {
		name string
		v    int
	}{{"Batch", w.Batch}, {"QLen", w.QLen}, {"KVHeads", w.KVHeads}, {"HeadDim", w.HeadDim}, {"Capacity", w.Capacity}} {
		if f.v < 1 {
			return nil, fmt.Errorf("%s = %d, want ≥ 1", f.name, f.v)
		}
	}
	if err := attnCheckCapacity(w.Capacity, w.QLen); err != nil {
		return nil, err
	}
	names := []string{"k", "pos", "cache"}
	specs := []Spec{F32(w.Batch*w.QLen, w.KVHeads*w.HeadDim), U32(1), F32(w.Batch, w.KVHeads, w.Capacity, w.HeadDim)}
	if err := attnCheckInputs(in, names, specs); err != nil {
		return nil, err
	}
	return []Spec{}, nil
}

// ---- CPU reference ----

// attnRowRef is the reference for one query row: keys at key(0..n-1)
// (their k and v rows), query row qr, sink logit (if sink). It writes o
// and returns lse.
func attnRowRef(qr []float64, n int, kv func(j int) (k, v []float64), sink bool, s float64, scale float64, o []float64) float64 {
	a := make([]float64, n)
	m := math.Inf(-1)
	if sink {
		m = s
	}
	for j := 0; j < n; j++ {
		kj, _ := kv(j)
		dot := 0.0
		for d := range qr {
			dot += qr[d] * kj[d]
		}
		a[j] = scale * dot
		m = math.Max(m, a[j])
	}
	z := 0.0
	if sink {
		z = math.Exp(s - m)
	}
	for j := range a {
		z += math.Exp(a[j] - m)
	}
	for d := range o {
		o[d] = 0
	}
	for j := range a {
		p := math.Exp(a[j]-m) / z
		_, vj := kv(j)
		for d := range o {
			o[d] += p * vj[d]
		}
	}
	return m + math.Log(z)
}

// attnWindowLo is the first key position query position i sees.
func attnWindowLo(i, window int) int {
	if window > 0 && i-window+1 > 0 {
		return i - window + 1
	}
	return 0
}

// attnSeenHi is the last key position query position i sees with a prefix
// of p positions, at most last.
func attnSeenHi(i, p, last int) int {
	if p-1 > i {
		return min(p-1, last)
	}
	return i
}

// Reference implements Op.
func (a Attention) Reference(in []*Host) ([]*Host, error) {
	g := a.geom()
	q, k, v := in[0], in[1], in[2]
	dh, B, T, QH, KVH := g.dh, g.batch, g.seq, g.qh, g.kvh
	o := NewHost(F32(B*T, QH*dh))
	lse := NewHost(F32(B, QH, T))
	scale := float64(g.effScale())
	for b := 0; b < B; b++ {
		for h := 0; h < QH; h++ {
			kvh := h / (QH / KVH)
			s := 0.0
			if g.sink {
				s = in[3].Data[h]
			}
			for i := 0; i < T; i++ {
				lo, hi := attnWindowLo(i, g.window), attnSeenHi(i, g.prefix, T-1)
				kv := func(j int) ([]float64, []float64) {
					r := ((b*T+lo+j)*KVH + kvh) * dh
					return k.Data[r : r+dh], v.Data[r : r+dh]
				}
				qr := ((b*T+i)*QH + h) * dh
				lse.Data[(b*QH+h)*T+i] = attnRowRef(q.Data[qr:qr+dh], hi-lo+1, kv, g.sink, s, scale, o.Data[qr:qr+dh])
			}
		}
	}
	return []*Host{o, lse}, nil
}

// Reference implements Op.
func (a AttentionBackward) Reference(in []*Host) ([]*Host, error) {
	g := Attention(a).geom()
	q, k, v := in[0], in[1], in[2]
	rest := in[3:]
	var s *Host
	if g.sink {
		s, rest = rest[0], rest[1:]
	}
	o, lse, do := rest[0], rest[1], rest[2]
	dh, B, T, QH, KVH := g.dh, g.batch, g.seq, g.qh, g.kvh
	dq, dk, dv := NewHost(q.Spec), NewHost(k.Spec), NewHost(v.Spec)
	out := []*Host{dq, dk, dv}
	var ds *Host
	if g.sink {
		ds = NewHost(s.Spec)
		out = append(out, ds)
	}
	scale := float64(g.effScale())
	dot := func(x, y []float64) float64 {
		t := 0.0
		for d := range x {
			t += x[d] * y[d]
		}
		return t
	}
	for b := 0; b < B; b++ {
		for h := 0; h < QH; h++ {
			kvh := h / (QH / KVH)
			for i := 0; i < T; i++ {
				qr := ((b*T+i)*QH + h) * dh
				qi, doi := q.Data[qr:qr+dh], do.Data[qr:qr+dh]
				L := lse.Data[(b*QH+h)*T+i]
				D := dot(doi, o.Data[qr:qr+dh])
				if g.sink {
					ds.Data[h] -= math.Exp(s.Data[h]-L) * D
				}
				for j := attnWindowLo(i, g.window); j <= attnSeenHi(i, g.prefix, T-1); j++ {
					kr := ((b*T+j)*KVH + kvh) * dh
					kj, vj := k.Data[kr:kr+dh], v.Data[kr:kr+dh]
					p := math.Exp(scale*dot(qi, kj) - L)
					dsij := p * (dot(doi, vj) - D)
					for d := 0; d < dh; d++ {
						dq.Data[qr+d] += scale * dsij * kj[d]
						dk.Data[kr+d] += scale * dsij * qi[d]
						dv.Data[kr+d] += p * doi[d]
					}
				}
			}
		}
	}
	return out, nil
}

// Reference implements Op. pos is read from in[3]; positions overwritten
// in the ring are skipped as on the GPU.
func (a AttentionCached) Reference(in []*Host) ([]*Host, error) {
	g := a.geom()
	q, kc, vc := in[0], in[1], in[2]
	pos := int(in[3].Data[0])
	dh, B, T, QH, KVH, C := g.dh, g.batch, g.seq, g.qh, g.kvh, a.Capacity
	o := NewHost(F32(B*T, QH*dh))
	scale := float64(g.effScale())
	for b := 0; b < B; b++ {
		for h := 0; h < QH; h++ {
			kvh := h / (QH / KVH)
			s := 0.0
			if g.sink {
				s = in[4].Data[h]
			}
			for t := 0; t < T; t++ {
				p := pos + t
				lo := attnWindowLo(p, g.window)
				if end := pos + T; end-C > lo {
					lo = end - C
				}
				kv := func(j int) ([]float64, []float64) {
					r := ((b*KVH+kvh)*C + (lo+j)%C) * dh
					return kc.Data[r : r+dh], vc.Data[r : r+dh]
				}
				qr := ((b*T+t)*QH + h) * dh
				attnRowRef(q.Data[qr:qr+dh], attnSeenHi(p, g.prefix, pos+T-1)-lo+1, kv, g.sink, s, scale, o.Data[qr:qr+dh])
			}
		}
	}
	return []*Host{o}, nil
}

// Reference implements Op: it writes the rows of k into in[2] (the cache)
// in place and returns no outputs.
func (w KVCacheWrite) Reference(in []*Host) ([]*Host, error) {
	k, cache := in[0], in[2]
	pos := int(in[1].Data[0])
	dh := w.HeadDim
	for b := 0; b < w.Batch; b++ {
		for t := 0; t < w.QLen; t++ {
			slot := (pos + t) % w.Capacity
			for g := 0; g < w.KVHeads; g++ {
				src := ((b*w.QLen+t)*w.KVHeads + g) * dh
				dst := ((b*w.KVHeads+g)*w.Capacity + slot) * dh
				copy(cache.Data[dst:dst+dh], k.Data[src:src+dh])
			}
		}
	}
	return []*Host{}, nil
}

// ---- backward rule ----

// Backward implements Differentiable: one AttentionBackward node gives dq,
// dk, dv (and ds). lse is saved for the backward, not a differentiable
// output: a gradient reaching it is an error.
func (a Attention) Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor {
	none := make([]*Tensor, len(n.In))
	if len(dOut) > 1 && dOut[1] != nil {
		g.fail(fmt.Errorf("attention: gradient with respect to lse is not supported (lse is saved for the backward only)"))
		return none
	}
	if dOut[0] == nil {
		return none
	}
	in := append(append([]*Tensor(nil), n.In...), n.Out[0], n.Out[1], dOut[0])
	return g.Apply(AttentionBackward(a), in...)
}

// ---- GPU encoding ----

// attnKernel compiles one entry of shaders/attention.wgsl for head dim dh:
// rows are vec4s when dh % 4 == 0 and scalars otherwise (the shader's
// marked lines are rewritten for the latter).
func attnKernel(dev *gpu.Device, entry string, dh, qb int, sink bool, bind []gpu.Access) (*gpu.Kernel, error) {
	src, err := shaderSource("attention")
	if err != nil {
		return nil, err
	}
	dv := dh / 4
	if dh%4 != 0 {
		dv = dh
		for _, r := range [][2]string{
			{"alias VT = vec4<f32>;", "alias VT = f32;"},
			{"fn vsum(x: VT) -> f32 { return dot(x, VT(1.0)); }", "fn vsum(x: VT) -> f32 { return x; }"},
		} {
			if strings.Count(src, r[0]) != 1 {
				return nil, fmt.Errorf("attention shader: marker %q not found once", r[0])
			}
			src = strings.Replace(src, r[0], r[1], 1)
		}
	}
	consts := map[string]string{
		"DV":   fmt.Sprintf("%du", dv),
		"KB":   fmt.Sprintf("%du", attnKB),
		"WG":   fmt.Sprintf("%du", attnWG),
		"QB":   fmt.Sprintf("%du", qb),
		"SINK": fmt.Sprint(sink),
	}
	name := fmt.Sprintf("%s_dh%d_qb%d", entry, dh, qb)
	if sink {
		name += "_sink"
	}
	return dev.Kernel(gpu.KernelSpec{Name: name, Source: src, Entry: entry, Bindings: bind, Params: true, Constants: consts})
}

// attnParams packs the shader's Params.
func attnParams(g attnGeom, capacity int) []uint32 {
	return []uint32{uint32(g.batch), uint32(g.seq), uint32(g.qh), uint32(g.kvh),
		uint32(g.window), math.Float32bits(g.effScale()), uint32(capacity), uint32(g.prefix)}
}

var (
	attnR  = gpu.Read
	attnRW = gpu.ReadWrite
)

// Encode implements Op.
func (a Attention) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	g := a.geom()
	qb := attnBlock(2, g.dh)
	k, err := attnKernel(dev, "attn_fwd", g.dh, qb, g.sink, []gpu.Access{attnR, attnR, attnR, attnR, attnRW, attnRW})
	if err != nil {
		return err
	}
	s := in[0] // unread placeholder when there is no sink
	if g.sink {
		s = in[3]
	}
	rows := g.batch * g.qh * gpu.CeilDiv(g.seq, qb)
	return rec.Dispatch(k, dev.Grid1D(gpu.CeilDiv(rows, attnWG)), attnParams(g, 0), in[0], in[1], in[2], s, out[0], out[1])
}

// Encode implements Op: dq (and D into a scratch buffer), then dk and dv,
// then ds.
func (a AttentionBackward) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	g := Attention(a).geom()
	q, k, v := in[0], in[1], in[2]
	rest := in[3:]
	var s *gpu.Buffer
	if g.sink {
		s, rest = rest[0], rest[1:]
	}
	o, lse, do := rest[0], rest[1], rest[2]
	dd, err := rec.Scratch("attention_backward.D", gpu.F32, g.batch, g.qh, g.seq)
	if err != nil {
		return err
	}
	params := attnParams(g, 0)
	bq, bk := attnBlock(3, g.dh), attnBlock(4, g.dh)
	kq, err := attnKernel(dev, "attn_bwd_dq", g.dh, bq, false,
		[]gpu.Access{attnR, attnR, attnR, attnR, attnR, attnR, attnRW, attnRW})
	if err != nil {
		return err
	}
	if err := rec.Dispatch(kq, dev.Grid1D(gpu.CeilDiv(g.batch*g.qh*gpu.CeilDiv(g.seq, bq), attnWG)), params,
		q, k, v, lse, o, do, out[0], dd); err != nil {
		return err
	}
	rows := g.batch * g.kvh * gpu.CeilDiv(g.seq, bk)
	// The fused entry binds 10 storage buffers; WebGPU guarantees 8.
	if !g.sink || a.SeparateSinkGrad || dev.Limits.MaxStorageBuffersPerShaderStage < 10 {
		kkv, err := attnKernel(dev, "attn_bwd_dkv", g.dh, bk, false,
			[]gpu.Access{attnR, attnR, attnR, attnR, attnR, attnR, attnRW, attnRW})
		if err != nil {
			return err
		}
		if err := rec.Dispatch(kkv, dev.Grid1D(gpu.CeilDiv(rows, attnWG)), params,
			q, k, v, lse, dd, do, out[1], out[2]); err != nil {
			return err
		}
		if !g.sink {
			return nil
		}
		ks, err := attnKernel(dev, "attn_bwd_dsink", g.dh, 1, false, []gpu.Access{attnR, attnR, attnR, attnRW})
		if err != nil {
			return err
		}
		return rec.Dispatch(ks, dev.Grid1D(gpu.CeilDiv(g.qh, attnWG)), params, s, lse, dd, out[3])
	}
	// The sink's gradient rides along in the dk/dv dispatch: one
	// invocation per query head after the key blocks.
	kkv, err := attnKernel(dev, "attn_bwd_dkv_sink", g.dh, bk, false,
		[]gpu.Access{attnR, attnR, attnR, attnR, attnR, attnR, attnRW, attnRW, attnR, attnRW})
	if err != nil {
		return err
	}
	return rec.Dispatch(kkv, dev.Grid1D(gpu.CeilDiv(rows+g.qh, attnWG)), params,
		q, k, v, lse, dd, do, out[1], out[2], s, out[3])
}

// Encode implements Op.
func (a AttentionCached) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	g := a.geom()
	// An invocation computes a block of qb query rows, the rows past a chunk's end repeating
	// its last: the smallest block that holds a short chunk, so that a one-token step does not
	// compute every score and output four times.
	qb := attnBlock(2, g.dh)
	for qb > 1 && qb/2 >= g.seq {
		qb /= 2
	}
	entry := "attn_cached"
	rows := g.batch * g.qh * gpu.CeilDiv(g.seq, qb)
	// One token a sequence with grouped-query heads: a block holds the query heads that
	// share a key head instead, so each key and value row is loaded once for all of them.
	if grp := g.qh / g.kvh; g.seq == 1 && grp > 1 && grp <= attnBlock(2, g.dh) {
		entry, qb, rows = "attn_cached_heads", grp, g.batch*g.kvh
	}
	k, err := attnKernel(dev, entry, g.dh, qb, g.sink, []gpu.Access{attnR, attnR, attnR, attnR, attnRW, attnR})
	if err != nil {
		return err
	}
	s := in[0] // unread placeholder when there is no sink
	if g.sink {
		s = in[4]
	}
	return rec.Dispatch(k, dev.Grid1D(gpu.CeilDiv(rows, attnWG)), attnParams(g, a.Capacity),
		in[0], in[1], in[2], s, out[0], in[3])
}

// Encode implements Op: in is (k, pos, cache); cache is written in place.
func (w KVCacheWrite) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	k, err := attnKernel(dev, "kv_cache_write", w.HeadDim, 1, false, []gpu.Access{attnR, attnR, attnRW})
	if err != nil {
		return err
	}
	dv := w.HeadDim / 4
	if w.HeadDim%4 != 0 {
		dv = w.HeadDim
	}
	n := w.Batch * w.QLen * w.KVHeads * dv
	g := attnGeom{batch: w.Batch, seq: w.QLen, kvh: w.KVHeads, dh: w.HeadDim}
	return rec.Dispatch(k, dev.Grid1D(gpu.CeilDiv(n, attnWG)), attnParams(g, w.Capacity), in[0], in[1], in[2])
}
