package config

import "fmt"

// ImageConfig holds the fields of a model that reads a text-line image before its text (the
// OCR model): the image, normalised to image_height pixels and at most max_image_width wide
// (1 = ink, 0 = paper), is cut into vertical strips patch_width pixels wide, and each strip
// becomes one token through a linear patch embedding (model.patch_embed.proj, ViT's patch
// embedding with patches as tall as the line). A sequence is max_image_width/patch_width image
// tokens, then BOS, the text and EOS; the loss covers the text only. All three fields zero (the
// default) is a text-only model.
//
// alignment_loss_weight (training only, default 0) also scores each image token on the
// character drawn in its strip, with this weight against the text loss's 1 (see
// ocr.Task.ImageBatch).
//
// prefix_lm (default false) lets the image tokens attend to each other in both directions, in
// every decoder layer (PaliGemma's prefix-LM mask; graph.Attention's Prefix): a strip then sees
// the strips to its right, not only those to its left. The text after them stays causal, and the
// MTP modules' attention stays causal. Decoding writes the image tokens in one prefill chunk.
type ImageConfig struct {
	ImageHeight         int     `json:"image_height"`          // pixels
	PatchWidth          int     `json:"patch_width"`           // pixels per image token
	MaxImageWidth       int     `json:"max_image_width"`       // pixels; a multiple of patch_width
	AlignmentLossWeight float64 `json:"alignment_loss_weight"` // ≥ 0
	PrefixLM            bool    `json:"prefix_lm"`             // image tokens attend both ways
}

// AttentionPrefix is the number of leading positions that attend to each other in both
// directions in the decoder layers: the image tokens with prefix_lm, else 0 (causal).
func (m *ImageConfig) AttentionPrefix() int {
	if !m.PrefixLM {
		return 0
	}
	return m.ImageTokens()
}

// HasImage reports whether the model reads an image before its text.
func (m *ImageConfig) HasImage() bool { return m.ImageHeight > 0 }

// ImageTokens is the number of image tokens at the start of every sequence.
func (m *ImageConfig) ImageTokens() int {
	if m.PatchWidth <= 0 {
		return 0
	}
	return m.MaxImageWidth / m.PatchWidth
}

// maxImageSide bounds image_height and max_image_width, so a typo cannot ask for gigabytes.
const maxImageSide = 4096

func (m *ImageConfig) validateImage(maxPos int) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !(m.AlignmentLossWeight >= 0) || m.AlignmentLossWeight > 1e6 {
		bad("alignment_loss_weight must be a finite number ≥ 0, got %g", m.AlignmentLossWeight)
	}
	if m.ImageHeight == 0 && m.PatchWidth == 0 && m.MaxImageWidth == 0 {
		if m.AlignmentLossWeight != 0 {
			bad("alignment_loss_weight is set but the model reads no image (image_height is 0)")
		}
		if m.PrefixLM {
			bad("prefix_lm is set but the model reads no image (image_height is 0): it applies to image tokens")
		}
		return errs
	}
	for _, f := range []struct {
		key string
		v   int
	}{{"image_height", m.ImageHeight}, {"patch_width", m.PatchWidth}, {"max_image_width", m.MaxImageWidth}} {
		if f.v < 1 || f.v > maxImageSide {
			bad("%s must be in [1, %d] when an image model sets any of image_height, patch_width, max_image_width; got %d", f.key, maxImageSide, f.v)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	if m.MaxImageWidth%m.PatchWidth != 0 {
		bad("max_image_width %d must be a multiple of patch_width %d", m.MaxImageWidth, m.PatchWidth)
	}
	if n := m.ImageTokens(); n+2 > maxPos {
		bad("max_image_width/patch_width = %d image tokens leave no room for text within max_position_embeddings %d", n, maxPos)
	}
	return errs
}
