// Package model builds the decoder-only transformer a config describes as
// a graph: for training (a whole batch of sequences, with the loss) and for
// generation (a few new tokens per step against a KV cache). Both graphs
// name their parameters alike, so one set of weights serves both.
package model

import (
	"fmt"
	"math"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/layers"
	"github.com/moegpu/moegpu/moe"
	"github.com/moegpu/moegpu/runtime/config"
)

// Model is a built graph with its host-facing tensors.
type Model struct {
	Config *config.ModelConfig
	Graph  *graph.Graph
	Batch  int // sequences
	Seq    int // tokens per sequence in this graph (QLen when decoding)

	Tokens    *graph.Tensor // (Batch·Seq) u32 input
	Positions *graph.Tensor // (Batch·Seq) u32 input: absolute position of each token
	Logits    *graph.Tensor // (Batch·Seq, vocab); (Batch, vocab) with DecodeOptions.OneOutput

	// Image models only (config image_height > 0): PixelValues (Batch,
	// image_height, max_image_width) f32 input, 1 = ink, one line image per
	// sequence; PatchCols (Batch·Seq) u32 input, the strip each position
	// reads (graph.NoPatch at text positions). The patch embedding of a
	// position's strip is added to its token embedding.
	PixelValues, PatchCols *graph.Tensor

	// Training graphs only.
	Targets *graph.Tensor // (Batch·Seq) u32 input, graph.IgnoreTarget where no loss
	Weights *graph.Tensor // (Batch·Seq) f32 input: 1/count where a target, else 0
	Loss    *graph.Tensor // scalar: LMLoss plus the MoE layers' balance losses
	LMLoss  *graph.Tensor // scalar: the language-model loss alone

	// MoE holds the mixture-of-experts FFN layers, in layer order (empty
	// for a dense model).
	MoE []*moe.Layer

	// MTP holds the multi-token-prediction modules of a training graph
	// (config num_nextn_predict_layers; empty without). Module k (1-based,
	// index k−1) reads MTPTokens[k−1] (the token ids shifted k ahead within
	// each sequence, PAD past its end) and predicts MTPTargets[k−1] with
	// MTPWeights[k−1] (the targets shifted k ahead, and their 1/count
	// weights); MTPLoss[k−1] is its cross-entropy, and Loss adds
	// MTPLambda·Σ_k MTPLoss, MTPLambda (1) being λ/D written by the host
	// each step (so λ can follow a schedule).
	MTP                               []layers.MTPModule
	MTPTokens, MTPTargets, MTPWeights []*graph.Tensor
	MTPLoss                           []*graph.Tensor
	MTPLambda                         *graph.Tensor

	// Decoding graphs only.
	CachePos *graph.Tensor // (1) u32 input: tokens already in the cache
	// QueryPos (OneOutput with more than one token per sequence only) is a (1) u32 input,
	// CachePos + OutputPos: the position of the one query the last layer's attention
	// computes (layers.KVCache.QueryPos).
	QueryPos  *graph.Tensor
	OutputPos int // DecodeOptions.OutputPos, where QueryPos is set (query_pos = cache_pos + OutputPos)
	// Next (Argmax only): (Batch·Seq, 1) u32 argmax of each position's
	// logits ((Batch, 1) with OneOutput), and NextLogit its value
	// (non-finite when the logits are).
	Next, NextLogit *graph.Tensor
	// NextProb (NextProb only): (Batch·Seq, 1) f32, the probability
	// softmax(logits) gives Next, in the layout of NextLogit.
	NextProb *graph.Tensor
	Caches   []*graph.Tensor // per layer: k cache, v cache (State)
	Capacity []int           // per layer: ring-buffer slots

	unfused bool // built with DecodeOptions.Unfused
}

// layerWindow is the sliding window of layer i (0 = global).
func layerWindow(c *config.ModelConfig, i int) int {
	if len(c.LayerTypes) > i && c.LayerTypes[i] == config.SlidingAttention {
		return c.SlidingWindow
	}
	return 0
}

// BuildTrain builds the training graph for batch sequences of seq tokens:
// logits, per-token loss and the scalar loss.
func BuildTrain(c *config.ModelConfig, batch, seq int) (*Model, error) {
	return build(c, batch, seq, false, DecodeOptions{})
}

// BuildTrainUnfused is BuildTrain with q/k/v and gate/up as separate
// matmuls (see layers.AttentionConfig.Unfused): the same parameters and
// values, kept to check the fused graph against.
func BuildTrainUnfused(c *config.ModelConfig, batch, seq int) (*Model, error) {
	return build(c, batch, seq, false, DecodeOptions{Unfused: true})
}

// BuildDecode builds a generation step: qlen new tokens per sequence that
// attend to a KV cache of maxSeq positions (global layers) or of a window
// plus the largest chunk any step over the same cache feeds, maxChunk
// (sliding layers). Steps built with the same maxSeq and maxChunk have
// caches of the same shapes, so a prefill step and a one-token step can
// share them.
func BuildDecode(c *config.ModelConfig, batch, qlen int, opt DecodeOptions) (*Model, error) {
	if opt.MaxChunk < qlen {
		return nil, fmt.Errorf("model: chunk bound %d is below this step's %d tokens", opt.MaxChunk, qlen)
	}
	m, err := build(c, batch, qlen, true, opt)
	if err != nil || opt.Unfused {
		return m, err
	}
	// The residual adds go into the projections that feed them (the
	// stream is not read again in a forward-only step): two dispatches a
	// layer fewer. What callers read is kept.
	keep := []*graph.Tensor{m.Logits, m.Next, m.NextLogit}
	if m.NextProb != nil {
		keep = append(keep, m.NextProb)
	}
	for _, l := range m.MoE {
		keep = append(keep, l.Idx)
	}
	m.Graph.FuseAccumulate(keep...)
	return m, m.Graph.Err()
}

// DecodeOptions shape a generation graph.
type DecodeOptions struct {
	MaxSeq   int // positions the KV caches hold
	MaxChunk int // most tokens any step over the same caches feeds
	// F16Weights stores the linear layers' weights in half precision
	// (packed, widened in the kernel; f32 arithmetic), halving their
	// memory. Layers whose sizes are not multiples of 4, embeddings and
	// norms stay f32.
	F16Weights bool
	// HiddenHistory keeps every position's last hidden state (before the
	// final norm) in a State matrix mtp.history.0 (MaxSeq, d), written at
	// the positions each step feeds: the MTP modules of speculative
	// decoding read it (BuildMTPDecode).
	HiddenHistory bool
	// Argmax adds Next: the greedy next token of every position, computed
	// on the GPU, so a step reads back token ids instead of logits rows.
	Argmax bool
	// NextProb (with Argmax) adds NextProb: the probability of each
	// greedy token, the largest of softmax(logits) (a softmax and a top-1
	// over the logits, two dispatches a step), for a reader's confidence.
	NextProb bool
	// Unfused builds q/k/v and gate/up as separate matmuls (see
	// layers.AttentionConfig.Unfused).
	Unfused bool
	// OneOutput builds a step whose outputs (Logits, Next, NextLogit) are
	// those of one position of each sequence, OutputPos (0 ≤ OutputPos <
	// the step's tokens per sequence): (Batch, vocab) and (Batch, 1). The
	// last layer's attention (from that position's query, QueryPos), output
	// projection, FFN, the final norm and the head then run on Batch rows,
	// not Batch·qlen: a prefill reads only its last prompt token's output,
	// and the KV caches of every layer come from that layer's input, so the
	// other positions' last-layer outputs are never needed. Not with
	// HiddenHistory.
	OneOutput bool
	OutputPos int
	// TextOnly, for an image model, builds a graph that feeds text
	// positions only (the decoding steps after the image prefix): no
	// pixel_values or patch_cols input (PixelValues and PatchCols stay nil)
	// and no patch embedding, whose work would be thrown away at every
	// text position; the graph has no model.patch_embed parameters.
	TextOnly bool
}

func build(c *config.ModelConfig, batch, seq int, decode bool, opt DecodeOptions) (*Model, error) {
	maxSeq, maxChunk := opt.MaxSeq, opt.MaxChunk
	if batch <= 0 || seq <= 0 {
		return nil, fmt.Errorf("model: batch and sequence length must be positive, got %d and %d", batch, seq)
	}
	g := graph.New()
	m := &Model{Config: c, Graph: g, Batch: batch, Seq: seq, unfused: opt.Unfused}
	n := batch * seq
	D, H, KV, dh := c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim
	std, outStd := initStds(c)
	eps := float32(c.RMSNormEps)
	rotary := rotaryDim(c)

	if decode && opt.OneOutput && (opt.OutputPos < 0 || opt.OutputPos >= seq || opt.HiddenHistory) {
		return nil, fmt.Errorf("model: one output at position %d of %d tokens per sequence (and not with the hidden-state history)", opt.OutputPos, seq)
	}
	m.Tokens = g.Input("tokens", graph.U32(n))
	m.Positions = g.Input("positions", graph.U32(n))
	if decode {
		m.CachePos = g.Input("cache_pos", graph.U32(1))
	}
	linear := layers.Linear
	if decode && opt.F16Weights {
		linear = func(g *graph.Graph, name string, x *graph.Tensor, in, out int, std float64) *graph.Tensor {
			if in%4 == 0 && out%4 == 0 {
				return layers.LinearF16(g, name, x, in, out, std)
			}
			return layers.Linear(g, name, x, in, out, std)
		}
	}
	x, embed := layers.Embedding(g, "model.embed_tokens", m.Tokens, c.VocabSize, D, std)
	if c.HasImage() && !(decode && opt.TextOnly) {
		m.PixelValues = g.Input("pixel_values", graph.F32(batch, c.ImageHeight, c.MaxImageWidth))
		m.PatchCols = g.Input("patch_cols", graph.U32(n))
		p := layers.PatchEmbedding(g, linear, "model.patch_embed.proj", m.PixelValues, m.PatchCols,
			c.ImageHeight, c.PatchWidth, D, std)
		x = g.Apply1(graph.Add{}, x, p)
	}
	for i := 0; i < c.NumHiddenLayers; i++ {
		p := fmt.Sprintf("model.layers.%d", i)
		win := layerWindow(c, i)
		h := layers.RMSNorm(g, p+".input_layernorm", x, D, eps)
		attn := layers.AttentionConfig{Hidden: D, Heads: H, KVHeads: KV, HeadDim: dh, RotaryDim: rotary,
			RopeTheta: float32(c.RopeTheta), Window: win, Prefix: c.AttentionPrefix(), Sink: c.AttentionSink, Std: std, OutStd: outStd, Unfused: opt.Unfused}
		var kv *layers.KVCache
		// The last layer of a OneOutput step computes one row a sequence from its attention
		// on: only that row's query attends (the other rows' keys and values go into the
		// cache all the same).
		one := decode && opt.OneOutput && i == c.NumHiddenLayers-1 && seq > 1
		if decode {
			kv = &layers.KVCache{MaxSeq: maxSeq, MaxChunk: maxChunk, CachePos: m.CachePos}
			if one {
				m.QueryPos, m.OutputPos = g.Input("query_pos", graph.U32(1)), opt.OutputPos
				kv.QueryPos, kv.QueryRow = m.QueryPos, opt.OutputPos
			}
		}
		o, st := layers.SelfAttention(g, linear, p+".self_attn", h, m.Positions, attn, batch, seq, kv)
		if decode {
			m.Caches = append(m.Caches, st.K, st.V)
			m.Capacity = append(m.Capacity, st.Capacity)
		}
		if one {
			x = g.Apply1(graph.StridedRows{Stride: seq, Offset: opt.OutputPos}, x)
		}
		x = g.Apply1(graph.Add{}, x, o)
		h = layers.RMSNorm(g, p+".post_attention_layernorm", x, D, eps)
		var f *graph.Tensor
		if c.IsMoELayer(i) {
			var l *moe.Layer
			f, l = moe.Build(g, p+".mlp", h, MoEOptions(c, std, outStd))
			m.MoE = append(m.MoE, l)
		} else {
			f = layers.FFNWith(g, linear, p+".mlp", h, D, c.IntermediateSize, layers.Activation(c.HiddenAct), std, outStd, opt.Unfused)
		}
		x = g.Apply1(graph.Add{}, x, f)
	}
	trunk := x
	x = layers.RMSNorm(g, "model.norm", x, D, eps)
	var headW *graph.Tensor // the untied LM head, shared with the MTP modules
	head := func(h *graph.Tensor) *graph.Tensor {
		if c.TieWordEmbeddings {
			return g.Apply1(graph.MatMul{TransB: true}, h, embed)
		}
		if headW == nil {
			out := linear(g, "lm_head", h, D, c.VocabSize, std)
			headW = out.Producer().In[1]
			return out
		}
		if headW.DType == gpu.F16 {
			return g.Apply1(graph.MatMulF16{TransB: true}, h, headW)
		}
		return g.Apply1(graph.MatMul{TransB: true}, h, headW)
	}
	m.Logits = head(x)
	if decode && opt.HiddenHistory {
		hist := g.State(HistoryName(0), graph.F32(maxSeq, D))
		g.Apply(graph.RowsWrite{}, hist, trunk, m.CachePos)
	}
	if decode && opt.Argmax {
		top := g.Apply(graph.TopK{K: 1}, m.Logits)
		m.NextLogit, m.Next = top[0], top[1]
		if opt.NextProb {
			// The largest probability is the greedy token's (softmax keeps the order; on a
			// tie of logits both have it).
			m.NextProb = g.Apply(graph.TopK{K: 1}, g.Apply1(graph.Softmax{}, m.Logits))[0]
		}
	}
	if !decode {
		m.Targets = g.Input("targets", graph.U32(n))
		m.Weights = g.Input("loss_weights", graph.F32(n))
		m.LMLoss, _ = layers.LMLoss(g, m.Logits, m.Targets, m.Weights)
		m.Loss = m.LMLoss
		if c.HasMTP() {
			m.buildMTP(trunk, embed, head)
		}
		for _, l := range m.MoE {
			if l.AuxLoss != nil {
				m.Loss = g.Apply1(graph.Add{}, m.Loss, l.AuxLoss)
			}
		}
	}
	if err := g.Err(); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return m, nil
}

// buildMTP appends the training graph's MTP modules after the trunk's last
// hidden state h^0 (before the final norm).
func (m *Model) buildMTP(h, embed *graph.Tensor, head func(*graph.Tensor) *graph.Tensor) {
	c, g := m.Config, m.Graph
	n := m.Batch * m.Seq
	cfg := mtpConfig(c, m.unfused)
	m.MTPLambda = g.Input("mtp.lambda", graph.F32(1))
	for k := 1; k <= cfg.Modules; k++ {
		tok := g.Input(fmt.Sprintf("mtp.%d.tokens", k), graph.U32(n))
		tgt := g.Input(fmt.Sprintf("mtp.%d.targets", k), graph.U32(n))
		w := g.Input(fmt.Sprintf("mtp.%d.loss_weights", k), graph.F32(n))
		mod := layers.MTP(g, layers.Linear, cfg, k, h, tok, m.Positions, embed, head, m.Batch, m.Seq, nil)
		ce, _ := layers.LMLoss(g, mod.Logits, tgt, w)
		m.MTP = append(m.MTP, mod)
		m.MTPTokens, m.MTPTargets, m.MTPWeights = append(m.MTPTokens, tok), append(m.MTPTargets, tgt), append(m.MTPWeights, w)
		m.MTPLoss = append(m.MTPLoss, ce)
		m.Loss = g.Apply1(graph.Add{}, m.Loss, g.Apply1(graph.MulScalar{}, ce, m.MTPLambda))
		h = mod.Hidden
	}
}

// ShiftForMTP builds module k's inputs from a batch laid out as
// tasks.Task.Batch lays it out (batch rows of seq tokens; targets[i] is the
// token after position i, graph.IgnoreTarget where there is no loss):
// tokens shifted k ahead within each row (pad past its end), targets
// shifted k ahead (ignored past the end), and weights 1/count over the
// positions that keep a target, so CE_k is a mean like the main loss.
func ShiftForMTP(tokens, targets []uint32, batch, seq, k int, pad, ignore uint32) (tok, tgt []uint32, w []float32) {
	n := batch * seq
	tok, tgt, w = make([]uint32, n), make([]uint32, n), make([]float32, n)
	count := 0
	for b := 0; b < batch; b++ {
		for i := 0; i < seq; i++ {
			at, from := b*seq+i, b*seq+i+k
			tok[at], tgt[at] = pad, ignore
			if i+k < seq {
				tok[at], tgt[at] = tokens[from], targets[from]
			}
			if tgt[at] != ignore {
				count++
			}
		}
	}
	for i, t := range tgt {
		if t != ignore {
			w[i] = 1 / float32(count)
		}
	}
	return tok, tgt, w
}

// MoEOptions turns a config's MoE fields into one layer's options.
func MoEOptions(c *config.ModelConfig, std, outStd float64) moe.Options {
	return moe.Options{
		Hidden: c.HiddenSize, Experts: c.NRoutedExperts, TopK: c.NumExpertsPerTok, Shared: c.NSharedExperts,
		Copies: c.ZeroExpertNum, Intermediate: c.MoEIntermediateSize, ReLU2: c.MoEHiddenAct == config.ActReLU2,
		Softmax: c.ScoringFunc == config.ScoringSoftmax, Norm: c.NormTopKProb, Scale: float32(c.RoutedScalingFactor),
		CapacityFactor: c.CapacityFactor, Balance: c.MoEBalance, Alpha: float32(c.AuxLossAlpha),
		Gamma: float32(c.BiasUpdateSpeed), Kp: float32(c.BiasPIDKp), Ki: float32(c.BiasPIDKi), Kd: float32(c.BiasPIDKd),
		SkipTarget: float32(c.MoESkipTarget), SkipPID: c.MoESkipController == "pid",
		SkipGamma: float32(c.MoESkipUpdateSpeed), SkipKp: float32(c.MoESkipPIDKp), SkipKi: float32(c.MoESkipPIDKi), SkipKd: float32(c.MoESkipPIDKd),
		Std: std, OutStd: outStd,
	}
}

// State lists the persistent non-trained tensors a checkpoint carries
// with the weights: each MoE layer's e_score_correction_bias.
func (m *Model) State() []*graph.Tensor {
	var out []*graph.Tensor
	for _, l := range m.MoE {
		out = append(out, l.Bias)
	}
	return out
}

// ControllerState lists the balancing controllers' integrators, which a
// checkpoint carries with the optimizer state.
func (m *Model) ControllerState() []*graph.Tensor {
	var out []*graph.Tensor
	for _, l := range m.MoE {
		out = append(out, l.Ctrl)
	}
	return out
}

// Params lists the trainable parameters.
func (m *Model) Params() []*graph.Tensor { return m.Graph.Params() }

// initStds are the init std of input-side weights and of the projections
// that write into the residual stream (scaled down by depth).
func initStds(c *config.ModelConfig) (std, outStd float64) {
	std = c.InitializerRange
	return std, std / math.Sqrt(2*float64(c.NumHiddenLayers))
}

// rotaryDim is the even number of leading head dims RoPE rotates.
func rotaryDim(c *config.ModelConfig) int {
	return int(math.Round(c.PartialRotaryFactor*float64(c.HeadDim)/2)) * 2
}

// mtpConfig describes a config's MTP modules for layers.MTP, in training
// and decoding graphs alike.
func mtpConfig(c *config.ModelConfig, unfused bool) layers.MTPConfig {
	std, outStd := initStds(c)
	return layers.MTPConfig{
		Modules: c.NumNextNPredictLayers, FirstLayer: c.NumHiddenLayers, Intermediate: c.MTPIntermediateSize,
		Act: layers.Activation(c.HiddenAct), Eps: float32(c.RMSNormEps),
		Attention: layers.AttentionConfig{Hidden: c.HiddenSize, Heads: c.NumAttentionHeads, KVHeads: c.NumKeyValueHeads,
			HeadDim: c.HeadDim, RotaryDim: rotaryDim(c), RopeTheta: float32(c.RopeTheta), Window: c.MTPSlidingWindow,
			Sink: c.AttentionSink, Std: std, OutStd: outStd, Unfused: unfused},
	}
}
