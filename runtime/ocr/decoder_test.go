package ocr

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/generate"
	"github.com/moegpu/moegpu/runtime/ocrimage"
	"github.com/moegpu/moegpu/runtime/train"
)

// tinyImageConfig is a small image model: 4×8 images in 2-pixel strips (4 image tokens).
func tinyImageConfig(t *testing.T) *config.ModelConfig {
	t.Helper()
	c, err := config.Parse([]byte(fmt.Sprintf(`{"vocab_size": %d, "hidden_size": 32, "num_hidden_layers": 2,
		"num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 48,
		"max_position_embeddings": 48, "sliding_window": 8, "layer_types": ["sliding_attention", "full_attention"],
		"attention_sink": true, "tie_word_embeddings": true,
		"image_height": 4, "patch_width": 2, "max_image_width": 8,
		"training": {"batch_size": 2, "seq_len": 41, "learning_rate": 0.01, "warmup_steps": 1}}`, VocabSize)))
	require.NoError(t, err)
	return c
}

// fakeLines renders random pixel blocks with random printable text: no OCR to learn, but
// every path of the task runs.
func fakeLines() (Renderer, Preparer) {
	render := func(rng *rand.Rand) (Rendered, error) {
		n := 1 + rng.IntN(MaxChars+4) // sometimes too long: drawn again
		b := make([]byte, n)
		x := make([]float64, n)
		for i := range b {
			b[i] = byte(' ' + rng.IntN(95))
			x[i] = 1 + 1.5*float64(i) // one character every 1.5 pixels
		}
		g := image.NewGray(image.Rect(0, 0, 2+rng.IntN(12), 4))
		for i := range g.Pix {
			g.Pix[i] = uint8(rng.IntN(256))
		}
		return Rendered{Image: g, Text: string(b), CharX: x}, nil
	}
	prepare := func(img *image.Gray, height, maxWidth int) ([]Prepared, bool) {
		w := img.Rect.Dx()
		if w > maxWidth || img.Rect.Dy() != height {
			return nil, false
		}
		pix := make([]float32, height*w)
		for i := range pix {
			pix[i] = float32(img.Pix[i]) / 255
		}
		return []Prepared{{Pix: pix, Width: w, X: func(x float64) float64 { return x }}}, true
	}
	return render, prepare
}

func TestTaskLaysOutImageTokensThenText(t *testing.T) {
	c := tinyImageConfig(t)
	r, p := fakeLines()
	task, err := NewTaskWith(c, r, p)
	require.NoError(t, err)
	require.Equal(t, 4+MaxChars+2, task.MaxSeqLen())
	b, err := task.ImageBatch(rand.New(rand.NewPCG(1, 2)), 3, 40)
	require.NoError(t, err)
	again, err := task.ImageBatch(rand.New(rand.NewPCG(1, 2)), 3, 40)
	require.NoError(t, err)
	require.Equal(t, b, again, "a seed fixes the batch")
	require.Len(t, b.Pixels, 3*4*8)
	var sum float64
	for r := 0; r < 3; r++ {
		row := b.Tokens[r*40 : (r+1)*40]
		require.Equal(t, []uint32{IMG, IMG, IMG, IMG, BOS}, row[:5])
		var ids []int
		for _, id := range row[5:] {
			ids = append(ids, int(id))
		}
		text := Decode(ids)
		require.NotEmpty(t, text)
		require.LessOrEqual(t, len(text), MaxChars)
		for i := 4; i < 5+len(text); i++ { // BOS … last character predict the next token
			require.Equal(t, row[i+1], b.Targets[r*40+i])
			sum += float64(b.Weights[r*40+i])
		}
		require.Equal(t, uint32(EOS), b.Targets[r*40+4+len(text)])
	}
	require.InDelta(t, 1, sum, 1e-5, "weights are 1/count")
	// With alignment_loss_weight, image tokens over the line (and one past it) are scored on
	// the character centred in their strip: strip p of 2 pixels holds x in [2p, 2p+2), so the
	// characters at 1, 2.5, 4, 5.5, 7 … fall in strips 0, 1, 2, 2, 3 … (nearest the middle wins).
	c.AlignmentLossWeight = 0.5
	task, err = NewTaskWith(c, r, p)
	require.NoError(t, err)
	b, err = task.ImageBatch(rand.New(rand.NewPCG(1, 2)), 3, 40)
	require.NoError(t, err)
	lines, err := task.Lines(rand.New(rand.NewPCG(1, 2)), 3)
	require.NoError(t, err)
	var align float64
	for r, l := range lines {
		ids, _ := Encode(l.Text)
		require.Equal(t, ids[0], l.Strips[0])
		if len(ids) > 2 {
			require.Equal(t, ids[1], l.Strips[1])
		}
		if len(ids) > 3 {
			require.Equal(t, ids[3], l.Strips[2], "x = 5.5 is nearer strip 2's middle (5) than x = 4")
		}
		n := min(4, (l.Width+1)/2+1)
		for p := 0; p < 4; p++ {
			if p < n {
				require.Equal(t, uint32(l.Strips[p]), b.Targets[r*40+p])
				align += float64(b.Weights[r*40+p])
			} else {
				require.Equal(t, graph.IgnoreTarget, b.Targets[r*40+p])
			}
		}
	}
	require.InDelta(t, 0.5, align, 1e-5, "the alignment weights sum to alignment_loss_weight")

	_, _, _, err = task.Batch(nil, 1, 40)
	require.Error(t, err)
	_, err = task.ImageBatch(rand.New(rand.NewPCG(1, 2)), 1, 30)
	require.ErrorContains(t, err, "too short")
}

// A briefly trained tiny image model: the batched decoder reads every line exactly as the
// one-line generator (greedy, the same weights) does, with a prefill chunk padded past the
// prompt (7 image tokens and BOS: chunks of 4 when the chunk bound is 5). With prefix_lm the
// image tokens attend both ways, so the prompt goes in one chunk of 8. With the alignment
// loss, the decoder also reads the strip predictions (every image position's output, across
// the prefill's chunks: the same as in one chunk) and its texts are the generator's after the
// repeat check against them.
func TestDecoderMatchesTheOneLineGenerator(t *testing.T) {
	t.Run("dense", func(t *testing.T) { testDecoder(t, false, false, false) })
	t.Run("moe with a copy expert", func(t *testing.T) { testDecoder(t, true, false, false) })
	t.Run("prefix_lm", func(t *testing.T) { testDecoder(t, false, true, false) })
	t.Run("alignment loss and the repeat check", func(t *testing.T) { testDecoder(t, false, false, true) })
}

func testDecoder(t *testing.T, moe, prefixLM, align bool) {
	dev := gputest.Device(t)
	c := tinyImageConfig(t)
	c.MaxImageWidth = 14 // 7 image tokens: a prompt of 8 goes in a padded chunk
	c.PrefixLM = prefixLM
	if align {
		c.AlignmentLossWeight = 0.5
		// Large weights: the image positions' outputs differ from position to position
		// (after three steps from the usual 0.02 they are all the same token).
		c.InitializerRange = 0.5
	}
	if moe {
		c.NRoutedExperts, c.NumExpertsPerTok, c.MoEIntermediateSize, c.ZeroExpertNum = 4, 2, 16, 1
		c.ApplyDefaults()
	}
	require.NoError(t, c.Validate())
	r, p := fakeLines()
	task, err := NewTaskWith(c, r, p)
	require.NoError(t, err)
	tr, err := train.New(c, task, train.GPU, dev, 3)
	require.NoError(t, err)
	defer tr.Close()
	require.NoError(t, tr.Init())
	for i := 0; i < 3; i++ {
		_, err := tr.StepOnce()
		require.NoError(t, err)
	}
	dir := t.TempDir()
	require.NoError(t, tr.Save(dir, train.GPU))

	lines, err := task.Lines(rand.New(rand.NewPCG(5, 6)), 3)
	require.NoError(t, err)
	images := [][]float32{lines[0].Pixels, lines[1].Pixels, lines[2].Pixels}
	defer func(v int) { maxPrefillChunk = v }(maxPrefillChunk)
	maxPrefillChunk = 5
	for _, batch := range []int{3, 4} {
		d, err := NewDecoder(dir, dev, batch, false)
		require.NoError(t, err)
		if prefixLM {
			require.Equal(t, 8, d.chunk)
		} else {
			require.Equal(t, 4, d.chunk)
		}
		// The prefill's last layer runs its FFN at the BOS only (model.DecodeOptions.OneOutput).
		first, _, err := d.Read(images)
		require.NoError(t, err)
		raw, strips, conf, err := d.read(images)
		require.NoError(t, err)
		_, conf2, _, err := d.ReadConfidence(images)
		require.NoError(t, err)
		require.Equal(t, conf, conf2)
		if moe {
			require.NoError(t, d.CountRouting()) // rebuilt: every position through every layer
		} else {
			require.Error(t, d.CountRouting())
		}
		got, _, err := d.Read(images)
		require.NoError(t, err)
		require.Equal(t, got, first)
		require.Equal(t, align, d.repeats)
		require.Equal(t, len(images), len(raw))
		// The prefill has one output a line, so read gives no strip predictions.
		require.Nil(t, strips)
		if align {
			// The strip predictions of a prefill with every position's output, its prompt in
			// one chunk, then in chunks of 4 as d's.
			maxPrefillChunk = 64
			one, err := newDecoder(dir, dev, batch, false, true, true, nil, nil)
			require.NoError(t, err)
			require.Equal(t, 8, one.chunk)
			_, want, _, err := one.read(images)
			one.Close()
			maxPrefillChunk = 5
			require.NoError(t, err)
			require.Len(t, want, len(images))
			chunked, err := newDecoder(dir, dev, batch, false, true, true, nil, nil)
			require.NoError(t, err)
			_, same, _, err := chunked.read(images)
			chunked.Close()
			require.NoError(t, err)
			require.Equal(t, want, same)
			// lazyStrips gives the same for the lines whose texts the checks could change,
			// stripRows lines a submission, and nil for the others.
			defer func(v int) { stripRows = v }(stripRows)
			stripRows = 2
			lazy, err := d.lazyStrips(images, []string{"abab", "no repeats", "x ---"})
			require.NoError(t, err)
			require.Equal(t, [][]int{want[0], nil, want[2]}, lazy)
			lazy, err = d.lazyStrips(images, []string{"abab", "abab", "abab"})
			require.NoError(t, err)
			require.Equal(t, want, lazy)
			lazy, err = d.lazyStrips(images, []string{"a", "b", "c"})
			require.NoError(t, err)
			require.Equal(t, [][]int{nil, nil, nil}, lazy)
			for i := range raw {
				require.Len(t, want[i], 7)
				require.Equal(t, checkStrips(raw[i], stripText(want[i])), got[i])
			}
		} else {
			require.Equal(t, raw, got)
		}
		d.Close()
		if r := d.Routing; r != nil {
			require.Equal(t, 3*7, r.ImageTokens, "every image token of the 3 lines, no padding")
			// BOS and each token fed back (the EOS, if any, is not fed), per line.
			require.LessOrEqual(t, r.TextTokens, 3*maxNew)
			require.GreaterOrEqual(t, r.TextTokens, 3)
			for i := range r.Layers {
				require.LessOrEqual(t, r.ImageSkips[i], r.ImageTokens)
				require.LessOrEqual(t, r.TextSkips[i], r.TextTokens)
			}
		}
		for i, img := range images {
			require.Equal(t, oneLine(t, dev, c, dir, img), raw[i], "batch %d, line %d", batch, i)
			// The confidence from the step graphs' softmax agrees with one from the one-line
			// generator's logits, softmax in float64. Both run the same f32 model, their sums
			// in other orders: logits agree to about 1e-6 of their size, so the probabilities
			// to a few 1e-6 (measured below 1e-7 here).
			want := lineConfidence(t, dev, c, dir, img)
			require.InEpsilon(t, want, conf[i], 1e-5, "batch %d, line %d", batch, i)
			require.Greater(t, conf[i], 0.0)
			require.LessOrEqual(t, conf[i], 1.0)
		}
	}
}

func oneLine(t *testing.T, dev *gpu.Device, c *config.ModelConfig, dir string, img []float32) string {
	t.Helper()
	prompt := Prompt(c.ImageTokens())
	g, err := generate.New(c, "gpu", dev, generate.Options{MaxSeq: generate.PositionsNeeded(len(prompt), maxNew)})
	require.NoError(t, err)
	defer g.Close()
	require.NoError(t, g.LoadWeights(dir+"/"+WeightsFile))
	require.NoError(t, g.SetImage(img))
	out, _, err := g.Generate(prompt, maxNew, EOS, generate.Sampling{}, nil)
	require.NoError(t, err)
	return Decode(out)
}

// lineConfidence is the geometric mean of the probabilities (softmax of the one-line
// generator's logits, in float64) of the tokens greedy decoding chooses for img (special
// tokens, which the text leaves out, included, and the EOS that ends them, if any): what
// Decoder.ReadConfidence should give.
func lineConfidence(t *testing.T, dev *gpu.Device, c *config.ModelConfig, dir string, img []float32) float64 {
	t.Helper()
	prompt := Prompt(c.ImageTokens())
	newGen := func() *generate.Generator {
		g, err := generate.New(c, "gpu", dev, generate.Options{MaxSeq: generate.PositionsNeeded(len(prompt), maxNew)})
		require.NoError(t, err)
		require.NoError(t, g.LoadWeights(dir+"/"+WeightsFile))
		require.NoError(t, g.SetImage(img))
		return g
	}
	first := newGen()
	ids, _, err := first.Generate(prompt, maxNew, EOS, generate.Sampling{}, nil) // the EOS included, if any
	first.Close()
	require.NoError(t, err)
	g := newGen()
	defer g.Close()
	logits, err := g.Prefill(prompt)
	require.NoError(t, err)
	sum := 0.0
	for k, id := range ids {
		m := math.Inf(-1)
		for _, v := range logits {
			m = max(m, v)
		}
		z := 0.0
		for _, v := range logits {
			z += math.Exp(v - m)
		}
		sum += logits[id] - m - math.Log(z)
		if k+1 < len(ids) {
			logits, err = g.Step(id, len(prompt)+k)
			require.NoError(t, err)
		}
	}
	return math.Exp(sum / float64(len(ids)))
}

// The shipped model reads the line pieces of the shipped samples in one batch of 16, the
// lines still decoding moving to step graphs of 8, 4 and 2 rows as the others end, exactly as
// it reads each piece alone (a batch of one, which never moves), and its routers choose the
// copy expert for the same image and text tokens.
func TestDecoderMovesTheLiveLinesToSmallerStepGraphs(t *testing.T) {
	dev := gputest.Device(t)
	dir := filepath.Join("..", "..", "assets", "models", "ocr-small")
	if _, err := os.Stat(filepath.Join(dir, WeightsFile)); err != nil {
		t.Fatalf("the shipped OCR model is missing: %v", err)
	}
	r, err := Open(dir, dev, Options{})
	require.NoError(t, err)
	defer r.Close()
	samples, _ := filepath.Glob("../../assets/samples/*.png")
	require.NotEmpty(t, samples)
	var pieces [][]float32
	for _, path := range samples {
		img, err := ocrimage.Load(path)
		require.NoError(t, err)
		lines, err := r.prepare(img)
		require.NoError(t, err)
		for _, l := range lines {
			for _, s := range l.Segments {
				pieces = append(pieces, s.Padded(r.cfg.MaxImageWidth))
			}
		}
	}
	const batch = 16
	require.LessOrEqual(t, len(pieces), batch)
	defer func(v int) { minStepRows = v }(minStepRows)
	minStepRows = 2

	big, err := NewDecoder(dir, dev, batch, false)
	require.NoError(t, err)
	defer big.Close()
	got, _, err := big.Read(pieces) // the prefill's last FFN at the BOS only
	require.NoError(t, err)
	for k, s := range big.steps {
		require.NotNil(t, s.m, "the %d-row step graph was used", batch>>k)
	}
	require.NoError(t, big.CountRouting())
	every, _, err := big.Read(pieces) // every position through every layer
	require.NoError(t, err)
	require.Equal(t, got, every)

	one, err := NewDecoder(dir, dev, 1, false)
	require.NoError(t, err)
	defer one.Close()
	require.Len(t, one.steps, 1)
	require.NoError(t, one.CountRouting())
	for i, p := range pieces {
		want, _, err := one.Read([][]float32{p})
		require.NoError(t, err)
		require.Equal(t, want[0], got[i], "piece %d", i)
	}
	require.Len(t, big.steps, 4, "step graphs of 16, 8, 4 and 2 rows")
	for k, s := range big.steps {
		require.NotNil(t, s.m, "the %d-row step graph was used", batch>>k)
	}
	require.Equal(t, one.Routing.ImageTokens, big.Routing.ImageTokens)
	require.Equal(t, one.Routing.TextTokens, big.Routing.TextTokens)
	require.Equal(t, one.Routing.ImageSkips, big.Routing.ImageSkips)
	require.Equal(t, one.Routing.TextSkips, big.Routing.TextSkips)
	t.Logf("%d pieces: %q", len(pieces), got)
}
