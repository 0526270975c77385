// Package layers builds transformer blocks out of graph ops: embedding,
// linear, RMSNorm, rotary embedding, attention, feed-forward networks and
// the language-model loss. Parameters are named the way Hugging Face
// checkpoints name them (model.layers.0.self_attn.q_proj.weight …) and
// stored in the same layouts (a linear weight is (out, in)), so weights move
// between this runtime and other tools.
package layers

import (
	"fmt"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
)

// Linear is y = x·Wᵀ with W (out, in) as in PyTorch's nn.Linear; x is
// (tokens, in). No bias: the models here do not use one.
func Linear(g *graph.Graph, name string, x *graph.Tensor, in, out int, std float64) *graph.Tensor {
	w := g.Param(name+".weight", graph.F32(out, in))
	w.Init = graph.Init{Dist: "normal", Std: std}
	return g.Apply1(graph.MatMul{TransB: true}, x, w)
}

// LinearF16 is Linear with the weight stored in half precision (an
// inference graph: no gradient flows to it); in and out must be multiples of
// 4.
func LinearF16(g *graph.Graph, name string, x *graph.Tensor, in, out int, std float64) *graph.Tensor {
	w := g.Param(name+".weight", graph.Spec{DType: gpu.F16, Shape: []int{out, in}})
	w.Init = graph.Init{Dist: "normal", Std: std}
	return g.Apply1(graph.MatMulF16{TransB: true}, x, w)
}

// FusedLinear is one linear layer whose weight stacks several projections
// of x along the output dim (vLLM's qkv_proj and gate_up_proj): one matmul
// instead of len(parts), output (tokens, Σ outs) with the projections' columns
// in order. The weight {name}.weight (Σ outs, in) has graph parts
// {parts[i]}.weight of outs[i] rows, so checkpoints hold the projections
// under their own Hugging Face names and shapes.
func FusedLinear(g *graph.Graph, linear LinearFunc, name string, x *graph.Tensor, in int, parts []string, outs []int, std float64) *graph.Tensor {
	total := 0
	ps := make([]graph.Part, len(parts))
	for i, p := range parts {
		ps[i] = graph.Part{Name: p + ".weight", Rows: outs[i]}
		total += outs[i]
	}
	y := linear(g, name, x, in, total, std)
	if w := g.Lookup(name + ".weight"); w != nil {
		g.SetParts(w, ps...)
	} else {
		g.Fail(fmt.Errorf("%s: the linear layer made no %s.weight", name, name))
	}
	return y
}

// LinearFunc builds a linear layer; FFNWith takes one so an inference graph
// can use f16 weights.
type LinearFunc func(g *graph.Graph, name string, x *graph.Tensor, in, out int, std float64) *graph.Tensor

// RMSNorm normalises each row of x (tokens, d) and scales by a learned
// gain that starts at one and is not weight-decayed.
func RMSNorm(g *graph.Graph, name string, x *graph.Tensor, d int, eps float32) *graph.Tensor {
	gain := g.Param(name+".weight", graph.F32(d))
	gain.Init = graph.Init{Dist: "ones"}
	gain.NoDecay, gain.Role = true, "norm"
	return g.Apply(graph.RMSNorm{Eps: eps}, x, gain)[0]
}

// Embedding looks up token ids (tokens) in a (vocab, d) table. It returns
// the vectors and the table, which a tied LM head reuses. Embeddings are
// not weight-decayed unless the trainer is told otherwise.
func Embedding(g *graph.Graph, name string, ids *graph.Tensor, vocab, d int, std float64) (*graph.Tensor, *graph.Tensor) {
	table := g.Param(name+".weight", graph.F32(vocab, d))
	table.Init = graph.Init{Dist: "normal", Std: std}
	table.NoDecay, table.Role = true, "embedding"
	return g.Apply1(graph.Embedding{}, table, ids), table
}

// Activation names an FFN nonlinearity as config.json spells it.
type Activation string

// FFN activations.
const (
	SiLU  Activation = "silu"  // SwiGLU: down(silu(gate(x)) · up(x))
	ReLU2 Activation = "relu2" // ReLU²: down(relu(up(x))²)
)

// FFN is the dense feed-forward block (tokens, d) → (tokens, d) with hidden
// size h: SwiGLU (gate, up, down projections) or ReLU² (up, down).
func FFN(g *graph.Graph, prefix string, x *graph.Tensor, d, h int, act Activation, std, outStd float64) *graph.Tensor {
	return FFNWith(g, Linear, prefix, x, d, h, act, std, outStd, false)
}

// FFNWith is FFN with the linear layers built by linear. SwiGLU's gate and
// up projections are one fused gate_up_proj matmul (checkpoints keep
// gate_proj and up_proj) followed by SiluAndMul, unless unfused.
func FFNWith(g *graph.Graph, linear LinearFunc, prefix string, x *graph.Tensor, d, h int, act Activation, std, outStd float64, unfused bool) *graph.Tensor {
	switch {
	case act == ReLU2:
		up := linear(g, prefix+".up_proj", x, d, h, std)
		return linear(g, prefix+".down_proj", g.Apply1(graph.ReLUSquared{}, up), h, d, outStd)
	case unfused:
		gate := linear(g, prefix+".gate_proj", x, d, h, std)
		up := linear(g, prefix+".up_proj", x, d, h, std)
		return linear(g, prefix+".down_proj", g.Apply1(graph.SwiGLU{}, gate, up), h, d, outStd)
	default:
		gu := FusedLinear(g, linear, prefix+".gate_up_proj", x, d, []string{prefix + ".gate_proj", prefix + ".up_proj"}, []int{h, h}, std)
		return linear(g, prefix+".down_proj", g.Apply1(graph.SiluAndMul{}, gu), h, d, outStd)
	}
}

// LMLoss is the language-model loss: the weighted sum over positions of
// −log softmax(logits)[target]. weights (tokens) carry the mask and the
// 1/count of the mean; targets use graph.IgnoreTarget where there is no
// loss. It returns the scalar loss and the per-position losses.
func LMLoss(g *graph.Graph, logits, targets, weights *graph.Tensor) (loss, perToken *graph.Tensor) {
	ce := g.Apply(graph.CrossEntropy{}, logits, targets)
	return g.Apply1(graph.WeightedSum{}, ce[0], weights), ce[0]
}
