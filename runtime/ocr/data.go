package ocr

import (
	"image"
	"math/rand/v2"

	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/ocrdata"
	"github.com/moegpu/moegpu/runtime/ocrimage"
)

// TrainStretch is the horizontal glyph scale of training lines (ocrdata.Options.Stretch):
// factors in [1/1.25, 1.25], so the model meets faces narrower and wider than the training
// families. Lines of the validation split are drawn as the fonts are.
const TrainStretch = 0.25

// NewTask is the OCR task on lines rendered by ocrdata from the given font split (training
// fonts for training, stretched by TrainStretch; the held-out validation families for
// evaluation), all conditions mixed as ocrdata's training mix, prepared exactly as the
// recognizer prepares a user's image.
func NewTask(c *config.ModelConfig, split ocrdata.Split) (*Task, error) {
	o := ocrdata.Options{Split: split}
	if split == ocrdata.Train {
		o.Stretch = TrainStretch
	}
	gen, err := ocrdata.New(o)
	if err != nil {
		return nil, err
	}
	return NewTaskWith(c, Render(gen, ""), PrepareLine)
}

// Render is a Renderer drawing from gen: any condition of its mix when cond is "", else that
// condition.
func Render(gen *ocrdata.Generator, cond string) Renderer {
	return func(rng *rand.Rand) (Rendered, error) {
		var l ocrdata.Line
		var err error
		if cond == "" {
			l, err = gen.Sample(rng)
		} else {
			l, err = gen.SampleCondition(rng, cond)
		}
		return Rendered{Image: l.Image, Text: l.Text, CharX: l.CharX}, err
	}
}

// PrepareLine is the Preparer of real training: the recognizer's own chain (ocrimage's
// Normalize, SplitLines, LineStrips) on a one-line image, keeping its line as --line reads it
// (singleLine: the tallest line box and the boxes touching it; a crop may also show slivers of
// the lines above and below, which stay out), in one piece or, wider than maxWidth
// at this height, in the pieces the recognizer cuts it into. ok is false for a blank image.
func PrepareLine(img *image.Gray, height, maxWidth int) ([]Prepared, bool) {
	ink := ocrimage.Normalize(img)
	if ink.Blank {
		return nil, false
	}
	boxes := ocrimage.SplitLines(ink)
	if len(boxes) == 0 {
		return nil, false
	}
	best := singleLine(boxes) // as the recognizer reads an image as one line
	segs := ocrimage.LineStrips(ink, best, height, maxWidth)
	if len(segs) == 0 {
		return nil, false
	}
	// Every piece shares the line's scale: the first starts at the box's left edge, each next
	// one at its Start in the scaled line.
	last := segs[len(segs)-1]
	scale := float64(last.Start+last.Width) / float64(best.Dx())
	x0 := float64(best.Min.X)
	out := make([]Prepared, len(segs))
	for i, s := range segs {
		off := float64(s.Start)
		out[i] = Prepared{Pix: s.Pix, Width: s.Width, X: func(x float64) float64 { return (x-x0)*scale - off }}
	}
	return out, true
}
