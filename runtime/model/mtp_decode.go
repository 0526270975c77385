package model

import (
	"fmt"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/layers"
	"github.com/moegpu/moegpu/runtime/config"
)

// HistoryName is the State matrix holding level k's hidden state at every
// position during speculative decoding: k = 0 the main model's last hidden
// state, k ≥ 1 MTP module k's output.
func HistoryName(k int) string { return fmt.Sprintf("mtp.history.%d", k) }

// MTPDecoder is the drafting graph of MTP speculative decoding: the D
// modules run in sequence over a window of Q positions starting at Start,
// each with its own KV cache, reading the previous level's hidden states
// from its history (the main model's for module 1) and writing its own.
// Module k reads Tokens[k−1] (the token k ahead of each window position;
// at the window index At, modules k ≥ 2 take module k−1's greedy draft
// instead, picked on the GPU), and Drafts[k−1] (1) is its greedy draft at
// At: the token k+1 ahead of that position. One submission drafts all D
// tokens; the readback is D token ids.
type MTPDecoder struct {
	Config    *config.ModelConfig
	Graph     *graph.Graph
	Q         int
	Start     *graph.Tensor   // (1) u32 input: the window's first position (and the modules' cache position)
	Positions *graph.Tensor   // (Q) u32 input: Start … Start+Q−1
	At        *graph.Tensor   // (1) u32 input: the window index to draft from
	Tokens    []*graph.Tensor // per module: (Q) u32 input
	Drafts    []*graph.Tensor // per module: (1) u32 output
}

// BuildMTPDecode builds the drafting graph for a window of q positions.
// Parameters are named as in training graphs (the modules' own, and the
// main model's embedding and head, shared by name with the main decode
// graphs, as are the histories).
func BuildMTPDecode(c *config.ModelConfig, q int, opt DecodeOptions) (*MTPDecoder, error) {
	if !c.HasMTP() {
		return nil, fmt.Errorf("model: speculative decoding needs MTP modules (num_nextn_predict_layers > 0)")
	}
	if q < 1 || q > opt.MaxChunk {
		return nil, fmt.Errorf("model: an MTP window of %d positions must be in 1..%d (the cache's chunk bound)", q, opt.MaxChunk)
	}
	g := graph.New()
	m := &MTPDecoder{Config: c, Graph: g, Q: q}
	D, V := c.HiddenSize, c.VocabSize
	m.Start = g.Input("mtp.start", graph.U32(1))
	m.Positions = g.Input("mtp.positions", graph.U32(q))
	m.At = g.Input("mtp.at", graph.U32(1))
	embed := g.Param("model.embed_tokens.weight", graph.F32(V, D))
	head := func(h *graph.Tensor) *graph.Tensor { return g.Apply1(graph.MatMul{TransB: true}, h, embed) }
	if !c.TieWordEmbeddings {
		dt := gpu.F32
		if opt.F16Weights && D%4 == 0 && V%4 == 0 {
			dt = gpu.F16
		}
		w := g.Param("lm_head.weight", graph.Spec{DType: dt, Shape: []int{V, D}})
		head = func(h *graph.Tensor) *graph.Tensor {
			if dt == gpu.F16 {
				return g.Apply1(graph.MatMulF16{TransB: true}, h, w)
			}
			return g.Apply1(graph.MatMul{TransB: true}, h, w)
		}
	}
	cfg := mtpConfig(c, opt.Unfused)
	for k := 1; k <= cfg.Modules; k++ {
		m.Tokens = append(m.Tokens, g.Input(fmt.Sprintf("mtp.%d.tokens", k), graph.U32(q)))
	}
	kv := &layers.KVCache{MaxSeq: opt.MaxSeq, MaxChunk: opt.MaxChunk, CachePos: m.Start}
	tok := m.Tokens[0]
	hist := make([]*graph.Tensor, cfg.Modules)
	for k := range hist {
		hist[k] = g.State(HistoryName(k), graph.F32(opt.MaxSeq, D))
	}
	for k := 1; k <= cfg.Modules; k++ {
		h := g.Apply1(graph.RowsRead{Q: q}, hist[k-1], m.Start)
		mod := layers.MTP(g, layers.Linear, cfg, k, h, tok, m.Positions, embed, head, 1, q, kv)
		next := m.Tokens[0] // the last module's pick only drafts
		if k < cfg.Modules {
			g.Apply(graph.RowsWrite{}, hist[k], mod.Hidden, m.Start)
			next = m.Tokens[k]
		}
		pick := g.Apply(graph.DraftPick{}, next, mod.Logits, m.At)
		tok = pick[0]
		m.Drafts = append(m.Drafts, pick[1])
	}
	if err := g.Err(); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return m, nil
}
