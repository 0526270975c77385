package layers

import (
	"fmt"

	"github.com/moegpu/moegpu/graph"
)

// MTPConfig describes the multi-token-prediction modules appended to a
// model (DeepSeek-V3 §2.2).
type MTPConfig struct {
	Modules      int // D
	FirstLayer   int // the layer index of module 1 (num_hidden_layers): modules are named model.layers.{FirstLayer+k−1}
	Attention    AttentionConfig
	Intermediate int
	Act          Activation
	Eps          float32
}

// MTPModule is one built module's tensors.
type MTPModule struct {
	Hidden *graph.Tensor // (n, d) h^k, the module's output hidden state
	Logits *graph.Tensor // (n, vocab) predictions of the token k+1 ahead
	Attn   Attention     // KV cache state when decoding
}

// MTP appends module k (1-based) to a graph: with h the previous hidden
// state h^{k−1} (n, d) and shifted the token ids t_{i+k} (n),
//
//	h'  = eh_proj([enorm(Emb(t_{i+k})); hnorm(h)])     (embedding first, as public implementations)
//	h^k = TransformerBlock(h')                          (sliding-window attention, dense FFN)
//	logits_k = head(shared_head.norm(h^k))
//
// The embedding table embed and the output head are the main model's
// (head maps (n, d) to (n, vocab)). Parameters carry the Hugging Face
// DeepSeek-V3 names under model.layers.{FirstLayer+k−1}: enorm, hnorm,
// eh_proj (d, 2d), input_layernorm, self_attn.*, post_attention_layernorm,
// mlp.*, shared_head.norm.
func MTP(g *graph.Graph, linear LinearFunc, c MTPConfig, k int, h, shifted, positions, embed *graph.Tensor,
	head func(*graph.Tensor) *graph.Tensor, batch, seq int, cache *KVCache) MTPModule {
	d := c.Attention.Hidden
	p := fmt.Sprintf("model.layers.%d", c.FirstLayer+k-1)
	e := g.Apply1(graph.Embedding{}, embed, shifted)
	e = RMSNorm(g, p+".enorm", e, d, c.Eps)
	hn := RMSNorm(g, p+".hnorm", h, d, c.Eps)
	x := linear(g, p+".eh_proj", g.Apply1(graph.ConcatCols{}, e, hn), 2*d, d, c.Attention.Std)
	a := RMSNorm(g, p+".input_layernorm", x, d, c.Eps)
	o, st := SelfAttention(g, linear, p+".self_attn", a, positions, c.Attention, batch, seq, cache)
	x = g.Apply1(graph.Add{}, x, o)
	f := FFNWith(g, linear, p+".mlp", RMSNorm(g, p+".post_attention_layernorm", x, d, c.Eps), d, c.Intermediate, c.Act, c.Attention.Std, c.Attention.OutStd, c.Attention.Unfused)
	x = g.Apply1(graph.Add{}, x, f)
	return MTPModule{Hidden: x, Logits: head(RMSNorm(g, p+".shared_head.norm", x, d, c.Eps)), Attn: st}
}
