package generate

import (
	"fmt"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/runtime/model"
)

// patchCols is the image strip each of a step's positions reads in an image model: position
// p < image tokens reads strip p (the image tokens come first in every sequence), later
// positions none. nil for a text-only model.
func patchCols(m *model.Model, pos int) []float64 {
	if m.PatchCols == nil {
		return nil
	}
	img := m.Config.ImageTokens()
	cols := make([]float64, m.Seq)
	for i := range cols {
		cols[i] = graph.NoPatch
		if p := pos + i; p < img {
			cols[i] = float64(p)
		}
	}
	return cols
}

// setImage writes one line image into the pixel_values input of each step that has one.
func setImage(cfgModel *model.Model, pixels []float32, steps map[*model.Model]graph.Executor) error {
	c := cfgModel.Config
	if !c.HasImage() {
		return fmt.Errorf("generate: the model reads no image (its config has no image_height)")
	}
	if want := c.ImageHeight * c.MaxImageWidth; len(pixels) != want {
		return fmt.Errorf("generate: image has %d pixels, want %d (image_height %d × max_image_width %d)",
			len(pixels), want, c.ImageHeight, c.MaxImageWidth)
	}
	v := make([]float64, len(pixels))
	for i, p := range pixels {
		v[i] = float64(p)
	}
	for m, ex := range steps {
		if m == nil || ex == nil || m.PixelValues == nil {
			continue
		}
		if err := ex.Set(m.PixelValues, v); err != nil {
			return err
		}
	}
	return nil
}

// SetImage gives an image model the line image the next prompt starts with: (image_height,
// max_image_width) f32 row-major, 1 = ink, 0 = paper, padded with 0 past the line's width. The
// prompt then starts with the model's image tokens (see ocr). It stays until the next SetImage.
func (g *Generator) SetImage(pixels []float32) error {
	return setImage(g.Model, pixels, map[*model.Model]graph.Executor{g.Model: g.Exec, g.prefill: g.preExec})
}

// SetImage is Generator.SetImage for every step of speculative decoding (the MTP modules read
// the main model's hidden states, not the image).
func (s *Speculative) SetImage(pixels []float32) error {
	s.pixels = append(s.pixels[:0], pixels...)
	return setImage(s.step, pixels, map[*model.Model]graph.Executor{s.step: s.stepEx, s.prefill: s.preEx,
		s.verify: s.verifyEx, s.sampleM: s.sampleEx})
}
