package bench

import "github.com/moegpu/moegpu/runtime/config"

// traffic is the bytes one op of the case must move at least: the case's
// own count when it has one (memory-bound kernels), else every input read
// once and every output written once.
func (c benchCase) traffic() float64 {
	if c.bytes > 0 {
		return c.bytes
	}
	n := 0.0
	for _, s := range c.in {
		n += float64(s.Len() * s.DType.Size())
	}
	if out, err := c.op.Outputs(c.in); err == nil {
		for _, s := range out {
			n += float64(s.Len() * s.DType.Size())
		}
	}
	return n
}

// FlopCount is the model FLOPs of one training step, split the way
// TrainFlops adds them up.
type FlopCount struct {
	// MatmulParams is N below: the parameters one token multiplies by.
	MatmulParams float64 `json:"matmul_params"`
	// Dense is 6·N·tokens (plus the patch embedding on image tokens and
	// the MTP modules), Attention the score and value products.
	Dense     float64 `json:"dense"`
	Attention float64 `json:"attention"`
	Total     float64 `json:"total"`
}

// TrainFlops counts the model FLOPs of one training step of cfg on a
// batch × seq token batch, by the usual convention (Kaplan et al.; PaLM's
// MFU): a multiply-add is 2 FLOPs, the backward pass costs twice the
// forward, and only matrix products count (norms, activations, softmax and
// the optimizer are left out):
//
//	FLOPs = 6 · N · tokens + Σ_layers 12 · heads · head_dim · pairs · batch
//
// N is the active parameters a token multiplies by: config.ActiveParamCount
// (an MoE layer counts its router, top-k routed and shared experts; a token
// the copy expert skips is still counted, so the figure is an upper bound
// at a non-zero skip rate) less the input embedding when it is not tied to
// the LM head (a lookup, no products) and less the patch embedding, which
// counts 6·(image_height·patch_width·hidden) on image tokens only; plus,
// per MTP module, its 2d→d projection, attention block, dense FFN and the
// shared LM head over every position. pairs is the causal (query, key)
// pairs of one sequence: seq·(seq+1)/2 for full attention, fewer with a
// sliding window; 12·head_dim per pair and head is q·kᵀ and p·v (2·head_dim
// each) forward and twice that backward.
func TrainFlops(cfg *config.ModelConfig, batch, seq int) FlopCount {
	D, V := float64(cfg.HiddenSize), float64(cfg.VocabSize)
	H, KV, dh := float64(cfg.NumAttentionHeads), float64(cfg.NumKeyValueHeads), float64(cfg.HeadDim)
	tokens := float64(batch * seq)
	n := float64(cfg.ActiveParamCount())
	if !cfg.TieWordEmbeddings {
		n -= V * D
	}
	dense := 0.0
	if cfg.HasImage() {
		patch := float64(cfg.ImageHeight*cfg.PatchWidth) * D
		n -= patch
		dense += 6 * patch * float64(batch*min(cfg.ImageTokens(), seq))
	}
	attnBlock := D*(H*dh) + 2*D*(KV*dh) + (H*dh)*D
	mtp := 0.0
	for k := 0; k < cfg.NumNextNPredictLayers; k++ {
		ffn := 3 * D * float64(cfg.MTPIntermediateSize)
		if cfg.HiddenAct == config.ActReLU2 {
			ffn = 2 * D * float64(cfg.MTPIntermediateSize)
		}
		mtp += 2*D*D + attnBlock + ffn + V*D
	}
	dense += 6 * (n + mtp) * tokens
	attn := 0.0
	for i := 0; i < cfg.NumHiddenLayers; i++ {
		w := 0
		if cfg.IsSliding(i) {
			w = cfg.SlidingWindow
		}
		attn += 12 * H * dh * float64(causalPairs(seq, w)) * float64(batch)
	}
	for k := 0; k < cfg.NumNextNPredictLayers; k++ {
		attn += 12 * H * dh * float64(causalPairs(seq, cfg.MTPSlidingWindow)) * float64(batch)
	}
	return FlopCount{MatmulParams: n + mtp, Dense: dense, Attention: attn, Total: dense + attn}
}

// causalPairs is the (query, key) pairs causal attention scores in one
// sequence of seq tokens with a sliding window of w keys (0: none).
func causalPairs(seq, w int) int {
	pairs := 0
	for i := 0; i < seq; i++ {
		lo := 0
		if w > 0 {
			lo = max(0, i-w+1)
		}
		pairs += i - lo + 1
	}
	return pairs
}
