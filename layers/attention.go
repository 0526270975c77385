package layers

import (
	"fmt"

	"github.com/moegpu/moegpu/graph"
)

// AttentionConfig describes one self-attention block: grouped-query
// attention with RoPE, causal, global or over a sliding window, with an
// optional learnable per-head sink (MiMo-V2-Flash, gpt-oss).
type AttentionConfig struct {
	Hidden, Heads, KVHeads, HeadDim int
	RotaryDim                       int     // leading dims of each head that RoPE rotates
	RopeTheta                       float32 // RoPE base
	Window                          int     // sliding window W (query i sees keys i−W+1 … i); 0 = global
	// Prefix is how many leading positions attend to each other in both
	// directions (graph.Attention's Prefix; an OCR model's image tokens
	// with prefix_lm); 0 = causal. Decoding must write them in one chunk.
	Prefix      int
	Sink        bool
	Std, OutStd float64 // init std of q/k/v and of o_proj
	// Unfused builds q_proj, k_proj and v_proj as three matmuls (and the
	// FFN's gate_proj and up_proj as two) instead of one fused projection
	// each: the same parameters and values (up to f32 summation order in
	// the input gradient), kept selectable for checking.
	Unfused bool
}

// KVCache configures a decoding graph's attention: new tokens are written
// into a per-layer cache (a ring buffer of Window + MaxChunk − 1 slots on
// sliding layers, MaxSeq slots otherwise) at CachePos and attend to it.
type KVCache struct {
	MaxSeq, MaxChunk int
	CachePos         *graph.Tensor // (1) u32 input: tokens already in the cache
	// QueryPos, when set, is a (1) u32 input: the position of the chunk's row QueryRow,
	// the one query of each sequence that attends. Every row's keys and values still go
	// into the cache (and every row's query is projected, in the fused q/k/v matmul), but
	// the other rows' attention and output projection are not computed: the block returns
	// (batch, Hidden), that row's output (a prefill whose other rows' outputs nobody reads;
	// see model.DecodeOptions.OneOutput).
	QueryPos *graph.Tensor
	QueryRow int
}

// Attention is a built attention block's state: the caches it owns when
// decoding (k, v; nil when training) and their slot count.
type Attention struct {
	K, V     *graph.Tensor
	Capacity int
}

// SelfAttention appends q/k/v projections, RoPE, attention (over the batch
// of batch sequences of seq tokens, or against a KV cache when cache is not
// nil) and the output projection to h (batch·seq, Hidden), returning
// (batch·seq, Hidden). Parameters are named as Hugging Face names them:
// {prefix}.q_proj.weight … {prefix}.o_proj.weight, {prefix}.sinks (q, k
// and v stored as one fused {prefix}.qkv_proj.weight whose parts carry
// those names, unless a.Unfused).
func SelfAttention(g *graph.Graph, linear LinearFunc, prefix string, h, positions *graph.Tensor, a AttentionConfig,
	batch, seq int, cache *KVCache) (*graph.Tensor, Attention) {
	D, H, KV, dh := a.Hidden, a.Heads, a.KVHeads, a.HeadDim
	var q, k, v *graph.Tensor
	if a.Unfused {
		q = linear(g, prefix+".q_proj", h, D, H*dh, a.Std)
		k = linear(g, prefix+".k_proj", h, D, KV*dh, a.Std)
		v = linear(g, prefix+".v_proj", h, D, KV*dh, a.Std)
		// Queries and keys turn by the same angles: one dispatch rotates both.
		qk := g.Apply(graph.RoPE{Heads: H, KHeads: KV, HeadDim: dh, RotaryDim: a.RotaryDim, Base: a.RopeTheta}, q, k, positions)
		q, k = qk[0], qk[1]
	} else {
		// One matmul for q, k and v (vLLM's qkv_proj; checkpoints keep the
		// three Hugging Face tensors), split and rotated in one dispatch.
		qkv := FusedLinear(g, linear, prefix+".qkv_proj", h, D, []string{prefix + ".q_proj", prefix + ".k_proj", prefix + ".v_proj"},
			[]int{H * dh, KV * dh, KV * dh}, a.Std)
		s := g.Apply(graph.RoPEQKV{Heads: H, KHeads: KV, VHeads: KV, HeadDim: dh, RotaryDim: a.RotaryDim, Base: a.RopeTheta}, qkv, positions)
		q, k, v = s[0], s[1], s[2]
	}
	var sink *graph.Tensor
	if a.Sink {
		sink = g.Param(prefix+".sinks", graph.F32(H))
		sink.NoDecay, sink.Role = true, "sink"
	}
	var o *graph.Tensor
	var st Attention
	if cache == nil {
		in := []*graph.Tensor{q, k, v}
		if sink != nil {
			in = append(in, sink)
		}
		o = g.Apply(graph.Attention{Batch: batch, Seq: seq, QHeads: H, KVHeads: KV, HeadDim: dh, Window: a.Window, Prefix: a.Prefix, Sink: sink != nil}, in...)[0]
	} else {
		capacity := cache.MaxSeq
		if a.Window > 0 && a.Window+cache.MaxChunk-1 < capacity {
			capacity = a.Window + cache.MaxChunk - 1
		}
		if cache.MaxChunk < seq {
			g.Fail(fmt.Errorf("%s: chunk bound %d is below this step's %d tokens", prefix, cache.MaxChunk, seq))
		}
		if a.Prefix > cache.MaxChunk {
			g.Fail(fmt.Errorf("%s: a prefix of %d positions attends both ways, so it must be written in one chunk, but chunks hold at most %d tokens", prefix, a.Prefix, cache.MaxChunk))
		}
		st.Capacity = capacity
		st.K = g.State(prefix+".cache.k", graph.F32(batch, KV, capacity, dh))
		st.V = g.State(prefix+".cache.v", graph.F32(batch, KV, capacity, dh))
		w := graph.KVCacheWrite{Batch: batch, QLen: seq, KVHeads: KV, HeadDim: dh, Capacity: capacity}
		g.Apply(w, k, cache.CachePos, st.K)
		g.Apply(w, v, cache.CachePos, st.V)
		qlen, pos := seq, cache.CachePos
		if cache.QueryPos != nil {
			if cache.QueryRow < 0 || cache.QueryRow >= seq {
				g.Fail(fmt.Errorf("%s: query row %d of a %d-token chunk", prefix, cache.QueryRow, seq))
			}
			q = g.Apply1(graph.StridedRows{Stride: seq, Offset: cache.QueryRow}, q)
			qlen, pos = 1, cache.QueryPos
		}
		ain := []*graph.Tensor{q, st.K, st.V, pos}
		if sink != nil {
			ain = append(ain, sink)
		}
		o = g.Apply1(graph.AttentionCached{Batch: batch, QLen: qlen, QHeads: H, KVHeads: KV, HeadDim: dh, Window: a.Window, Prefix: a.Prefix, Sink: sink != nil, Capacity: capacity}, ain...)
	}
	return linear(g, prefix+".o_proj", o, H*dh, D, a.OutStd), st
}
