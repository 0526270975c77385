package ocr

import (
	"fmt"
	"image"
	"math/rand/v2"
	"sync"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/train"
)

// TaskName is the name `moegpu train --task` knows the OCR task by.
const TaskName = "ocr"

// MaxChars is the longest text a training line holds.
const MaxChars = 32

// Rendered is one drawn line: an image of printed text at its natural size, the text it shows
// and, when the renderer knows them, each character's centre x in image pixels (CharX, one per
// byte of Text; nil when unknown).
type Rendered struct {
	Image *image.Gray
	Text  string
	CharX []float64
}

// Renderer draws one line.
type Renderer func(rng *rand.Rand) (Rendered, error)

// Prepared is a line as the model reads it: an ink map of the model's height and Width ≤ the
// model's max_image_width columns, row-major, 1 = ink; X maps an x of the rendered image to
// the prepared one (nil when unknown).
type Prepared struct {
	Pix   []float32
	Width int
	X     func(float64) float64
}

// Preparer turns a rendered line into what the model reads: one piece, or for a line wider
// than maxWidth at that height its pieces in order, cut as the recognizer cuts a user's line
// (each piece's X maps into its own columns). ok is false when nothing usable came out (the
// task then draws another line).
type Preparer func(img *image.Gray, height, maxWidth int) (pieces []Prepared, ok bool)

// Task is the OCR training task: every sequence is one rendered line's image tokens, then
// BOS, its text and EOS (see the package doc). It implements train.ImageSource. Lines are
// rendered on the fly from the batch's generator, so a seed fixes the whole stream.
type Task struct {
	height, width, patch, imageTokens int
	align                             float64 // alignment_loss_weight
	render                            Renderer
	prepare                           Preparer
}

// NewTaskWith builds the task for an image model's geometry (config image_height,
// max_image_width, patch_width) from a renderer and a preparer.
func NewTaskWith(c *config.ModelConfig, render Renderer, prepare Preparer) (*Task, error) {
	if !c.HasImage() {
		return nil, fmt.Errorf("ocr: the config has no image fields (image_height, patch_width, max_image_width); the ocr task needs an image model")
	}
	return &Task{height: c.ImageHeight, width: c.MaxImageWidth, patch: c.PatchWidth, imageTokens: c.ImageTokens(),
		align: c.AlignmentLossWeight, render: render, prepare: prepare}, nil
}

// Name implements train.Source.
func (t *Task) Name() string { return TaskName }

// MaxSeqLen implements train.Source: the image tokens, BOS, MaxChars characters and EOS.
func (t *Task) MaxSeqLen() int { return t.imageTokens + MaxChars + 2 }

// VocabSize implements train.ImageSource.
func (t *Task) VocabSize() int { return VocabSize }

// CheckConfig implements train.ImageSource: the model must read images of the task's geometry.
func (t *Task) CheckConfig(c *config.ModelConfig) error {
	if c.ImageHeight != t.height || c.MaxImageWidth != t.width || c.PatchWidth != t.patch {
		return fmt.Errorf("ocr: the task renders %d×%d images in %d-pixel strips; the config reads %d×%d in %d-pixel strips",
			t.height, t.width, t.patch, c.ImageHeight, c.MaxImageWidth, c.PatchWidth)
	}
	return nil
}

// Batch implements train.Source; the OCR task needs an image model, so it is an error.
func (t *Task) Batch(*rand.Rand, int, int) ([]uint32, []uint32, []float32, error) {
	return nil, nil, nil, fmt.Errorf("ocr: the task gives line images; train it with an image model (ImageBatch)")
}

// Line is one prepared training or evaluation line.
type Line struct {
	Text   string
	Pixels []float32 // (height, max width) row-major, 1 = ink, 0 past Width
	Width  int
	// Strips holds, per image token, the token id of the character whose centre falls in that
	// strip (the one nearest the strip's middle when several do), PAD where none does; nil when
	// the renderer gave no character positions.
	Strips []int
}

// maxTries bounds the draws for one line (a text too wide for the model is drawn again).
const maxTries = 50

// Sample draws one line that fits the model: text of at most MaxChars printable ASCII
// characters whose prepared image is at most max_image_width wide. A rendered line too wide
// for the model gives one of its pieces, drawn at random, as the recognizer reads such a
// line: its text is the characters whose centres fall inside the piece, without the spaces at
// either end (so it needs the renderer's character positions; without them the line is
// drawn again).
func (t *Task) Sample(rng *rand.Rand) (Line, error) {
	for try := 0; try < maxTries; try++ {
		r, err := t.render(rng)
		if err != nil {
			return Line{}, fmt.Errorf("ocr: rendering a line: %w", err)
		}
		text, charX := r.Text, r.CharX
		if len(text) == 0 || len(text) > MaxChars {
			continue
		}
		pieces, ok := t.prepare(r.Image, t.height, t.width)
		if !ok || len(pieces) == 0 {
			continue
		}
		p := pieces[0]
		if len(pieces) > 1 {
			if len(charX) != len(text) || pieces[0].X == nil {
				continue
			}
			p = pieces[rng.IntN(len(pieces))]
			text, charX = pieceText(text, charX, p)
			if len(text) == 0 {
				continue
			}
		}
		ids, err := Encode(text)
		if err != nil {
			continue
		}
		w := p.Width
		full := make([]float32, t.height*t.width)
		for y := 0; y < t.height; y++ {
			copy(full[y*t.width:y*t.width+w], p.Pix[y*w:(y+1)*w])
		}
		l := Line{Text: text, Pixels: full, Width: w}
		if len(charX) == len(text) && p.X != nil {
			l.Strips = t.strips(ids, charX, p.X)
		}
		return l, nil
	}
	return Line{}, fmt.Errorf("ocr: no line out of %d drawn fits %d×%d pixels and %d characters", maxTries, t.height, t.width, MaxChars)
}

// pieceText is the part of a line's text (with its characters' centres) that piece p shows:
// the characters centred in its columns, less the spaces at either end.
func pieceText(text string, charX []float64, p Prepared) (string, []float64) {
	var b []byte
	var xs []float64
	for i := 0; i < len(text); i++ {
		if x := p.X(charX[i]); x >= 0 && x < float64(p.Width) {
			b, xs = append(b, text[i]), append(xs, charX[i])
		}
	}
	for len(b) > 0 && b[0] == ' ' {
		b, xs = b[1:], xs[1:]
	}
	for len(b) > 0 && b[len(b)-1] == ' ' {
		b, xs = b[:len(b)-1], xs[:len(xs)-1]
	}
	return string(b), xs
}

// strips labels each image token with the character centred in its strip.
func (t *Task) strips(ids []int, charX []float64, toPrepared func(float64) float64) []int {
	out := make([]int, t.imageTokens)
	best := make([]float64, t.imageTokens) // distance of the label from its strip's middle
	for i, x := range charX {
		px := toPrepared(x)
		s := int(px / float64(t.patch))
		if px < 0 || s >= t.imageTokens {
			continue
		}
		d := px - (float64(s)+0.5)*float64(t.patch)
		if d < 0 {
			d = -d
		}
		if out[s] == PAD || d < best[s] {
			out[s], best[s] = ids[i], d
		}
	}
	return out
}

// Lines draws n lines, rendered in parallel from seeds drawn first from rng, so the result
// depends on rng alone.
func (t *Task) Lines(rng *rand.Rand, n int) ([]Line, error) {
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = rng.Uint64()
	}
	lines := make([]Line, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	const workers = 2
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				lines[i], errs[i] = t.Sample(rand.New(rand.NewPCG(seeds[i], uint64(i))))
			}
		}(w)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return lines, nil
}

// ImageBatch implements train.ImageSource: batchSize lines, each row laid out as the image
// tokens (IMG), BOS, the text, EOS and PAD to seqLen; targets are the next token from BOS
// through the last character (so the text and EOS are scored), weights 1/count there. With
// the config's alignment_loss_weight α > 0 (and a renderer that knows where it drew each
// character), image token p is also scored on the character centred in its strip (PAD where
// none is; over the line's strips and one more), weights α/count there: dense supervision of
// where each character is, which the text decoder's attention then finds (as character-level
// attention supervision does in attention OCR models trained on synthetic text).
func (t *Task) ImageBatch(rng *rand.Rand, batchSize, seqLen int) (train.ImageBatch, error) {
	if batchSize < 1 {
		return train.ImageBatch{}, fmt.Errorf("ocr: batch size %d must be positive", batchSize)
	}
	if seqLen < t.MaxSeqLen() {
		return train.ImageBatch{}, fmt.Errorf("ocr: seqLen %d is too short; %d image tokens and %d characters need %d",
			seqLen, t.imageTokens, MaxChars, t.MaxSeqLen())
	}
	lines, err := t.Lines(rng, batchSize)
	if err != nil {
		return train.ImageBatch{}, err
	}
	n := batchSize * seqLen
	b := train.ImageBatch{Tokens: make([]uint32, n), Targets: make([]uint32, n), Weights: make([]float32, n),
		Pixels: make([]float32, 0, batchSize*t.height*t.width)}
	for i := range b.Targets {
		b.Targets[i] = graph.IgnoreTarget
	}
	count, aligned := 0, 0
	for r, l := range lines {
		ids, _ := Encode(l.Text)
		row := b.Tokens[r*seqLen : (r+1)*seqLen]
		for p := 0; p < t.imageTokens; p++ {
			row[p] = IMG
		}
		pos := t.imageTokens
		row[pos] = BOS
		for i, id := range ids {
			row[pos+1+i] = uint32(id)
		}
		row[pos+1+len(ids)] = EOS
		for i := pos; i <= pos+len(ids); i++ {
			b.Targets[r*seqLen+i] = row[i+1]
			count++
		}
		b.Pixels = append(b.Pixels, l.Pixels...)
		if t.align > 0 && l.Strips != nil {
			// The alignment loss: image token p predicts the character in its strip, over the
			// line's strips and one past them (blank).
			for p := 0; p < min(t.imageTokens, (l.Width+t.patch-1)/t.patch+1); p++ {
				b.Targets[r*seqLen+p] = uint32(l.Strips[p])
				aligned++
			}
		}
	}
	w := float32(1 / float64(count))
	for i, tg := range b.Targets {
		if tg != graph.IgnoreTarget {
			b.Weights[i] = w
		}
	}
	if aligned > 0 {
		wa := float32(t.align / float64(aligned))
		for r := 0; r < batchSize; r++ {
			for p := 0; p < t.imageTokens; p++ {
				if b.Targets[r*seqLen+p] != graph.IgnoreTarget {
					b.Weights[r*seqLen+p] = wa
				}
			}
		}
	}
	return b, nil
}

// Prompt is the token prompt the model reads a line image with: its image tokens, then BOS.
func (t *Task) Prompt() []int { return Prompt(t.imageTokens) }

// Prompt is the prompt of a model with imageTokens image tokens: that many IMG, then BOS.
func Prompt(imageTokens int) []int {
	p := make([]int, imageTokens+1)
	for i := range p[:imageTokens] {
		p[i] = IMG
	}
	p[imageTokens] = BOS
	return p
}
