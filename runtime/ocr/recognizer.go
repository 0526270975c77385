package ocr

import (
	"encoding/json"
	"fmt"
	"image"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/generate"
	"github.com/moegpu/moegpu/runtime/ocrimage"
)

// DefaultBatch is Options.Batch when unset. On lavapipe, reading the 900 held-out lines
// (1206 pieces) at 256 took 13.3–14.2 ms a line against 14.5–14.8 at 64 in three alternating
// runs (`moegpu ocr --eval DIR --batch N`), the same texts; after the decoder moved ended
// pieces out of its steps, 512 was slower than 256 (11.6 and 12.1 against 10.3 and 11.4 ms a
// line, two alternating runs). The prefill of 256 pieces plans a 56 MiB activation arena.
const DefaultBatch = 256

// Options shape a Recognizer.
type Options struct {
	// Batch is the most line segments that go through the model side by side (default
	// DefaultBatch). Fewer segments use a smaller batch (1, 4, 16, 64, then multiples of 64: each size is
	// compiled when first needed), so one short line does not pay for a full batch.
	Batch int
	// F16 stores the linear layers' weights in half precision.
	F16 bool
	// Speculative reads each segment with MTP speculative decoding (one at a time; the model
	// must have MTP modules) instead of the batched greedy decoder. The text is the same.
	Speculative bool
	// SingleLine reads each image as one text line (a crop of a line, as Tesseract's --psm 7
	// does): its tallest line box, so slivers of the lines above and below are not read as
	// lines of their own.
	SingleLine bool
	// NoRepeatCheck turns off the two checks against the model's strip predictions that a
	// model trained with the alignment loss gets: the repeat check (checkRepeats: stretches
	// the text decoder read twice, which the strip predictions hold once, are then kept) and
	// the leader check (checkLeader: a text that runs on in a leader run such as "-----" and
	// loses the number after it is then kept).
	NoRepeatCheck bool
	// NoSecondLook turns off the second look: a line the model doubts (a confidence under a
	// tier of SecondLook) is otherwise cut again at the tier's scales and read again, and the
	// most confident reading kept. Speculative reading has no second look.
	NoSecondLook bool
	// AllLines keeps every line of a page, also those notText leaves out: lines the model
	// doubts and reads as mostly punctuation.
	AllLines bool
}

// Recognizer reads the text of images with an OCR model directory (the shipped model or a
// checkpoint of `moegpu train --task ocr`). Not safe for concurrent use.
type Recognizer struct {
	dir  string
	dev  *gpu.Device
	opt  Options
	cfg  *config.ModelConfig
	decs map[int]*Decoder // by batch size
	spec *generate.Speculative
	// weights are the model's weights by tensor name (readWeights), read once for every
	// decoder.
	weights map[string][]float64
	// ws lends the decoders' graphs one arena and one set of scratch pools (graph.Workspace):
	// the decoders read one at a time, so a decoder built for a batch's last, smaller part or
	// for the second look touches no new memory for them.
	ws *graph.Workspace
}

// Open loads the model in dir onto dev. It reads and checks the model's config and weights (a
// missing file, another model's checkpoint, a non-finite weight: an error naming it); the GPU
// graphs of each batch size are compiled when a read first needs them, so a kernel the adapter
// cannot run is reported by the first read.
func Open(dir string, dev *gpu.Device, opt Options) (*Recognizer, error) {
	if dev == nil {
		return nil, fmt.Errorf("ocr: recognition runs on a GPU adapter")
	}
	if opt.F16 && !dev.HasF16() {
		return nil, fmt.Errorf("ocr: half-precision weights need shader-f16, which %s lacks: %w", dev.Info.Label(), gpu.ErrUnsupported)
	}
	if opt.Batch <= 0 {
		opt.Batch = DefaultBatch
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	r := &Recognizer{dir: dir, dev: dev, opt: opt, cfg: cfg, decs: map[int]*Decoder{}, ws: &graph.Workspace{}}
	if opt.Speculative {
		if opt.F16 {
			return nil, fmt.Errorf("ocr: speculative decoding runs with f32 weights")
		}
		maxSeq := len(Prompt(cfg.ImageTokens())) + maxNew + 2*cfg.NumNextNPredictLayers
		if maxSeq > cfg.MaxPositionEmbeddings {
			maxSeq = cfg.MaxPositionEmbeddings
		}
		if r.spec, err = generate.NewSpeculative(cfg, dev, generate.Options{MaxSeq: maxSeq}); err != nil {
			return nil, err
		}
		if err := r.spec.LoadWeights(dir + "/" + WeightsFile); err != nil {
			r.Close()
			return nil, err
		}
	}
	// The weights are read and checked now, so a bad model directory fails here, and once:
	// the decoder of each batch size a call needs is compiled when first used and loaded from
	// them. (Speculative reading has its own, checked by LoadWeights above.)
	if r.spec == nil {
		if r.weights, err = readWeights(dir, cfg, opt.F16); err != nil {
			r.Close()
			return nil, err
		}
	}
	return r, nil
}

// reuseRows is the most padding rows decoder takes on to read with a decoder already built
// rather than build one of the usual size: building one (its graphs, new kernels, their first
// run) costs about what a prefill of 30–80 rows does on lavapipe.
const reuseRows = 32

// decoder returns the decoder for n segments (for more than Batch, the Batch one, which reads
// them Batch at a time): one already built that holds n with at most reuseRows rows to spare,
// else the smallest of 1, 4, 16, 64, then multiples of 64 (and the configured Batch) that
// holds n, at most Batch. A batch's prefill costs about the same per
// row, padding rows included, so the last part of a long read (182 pieces after four batches
// of 256, say) goes in 192 rows, not 256.
func (r *Recognizer) decoder(n int) (*Decoder, error) {
	var near *Decoder
	for size, d := range r.decs {
		if size >= min(n, r.opt.Batch) && size-n <= reuseRows && (near == nil || size < near.Batch) {
			near = d
		}
	}
	if near != nil {
		return near, nil
	}
	size := 1
	for size < n && size < 64 {
		size *= 4
	}
	if size < n {
		size = (n + 63) / 64 * 64
	}
	size = min(size, r.opt.Batch)
	if d := r.decs[size]; d != nil {
		return d, nil
	}
	d, err := newDecoder(r.dir, r.dev, size, r.opt.F16, false, !r.opt.NoRepeatCheck, r.weights, r.ws)
	if err != nil {
		return nil, err
	}
	r.decs[size] = d
	return d, nil
}

// Close releases the model.
func (r *Recognizer) Close() {
	for _, d := range r.decs {
		d.Close()
	}
	r.ws.Close()
	if r.spec != nil {
		r.spec.Close()
	}
}

// Adapter names the GPU adapter the model runs on.
func (r *Recognizer) Adapter() string { return r.dev.Info.Label() }

// LineResult is one recognised text line of an image.
type LineResult struct {
	Box  image.Rectangle `json:"box"`  // the line in source-image pixels
	Text string          `json:"text"` // its segments' texts joined by a space
	// Segments is how many pieces the line was cut into at whitespace (lines wider than the
	// model's max_image_width at its height).
	Segments int `json:"segments"`
	// Ms is the line's share of the decoding time of the batches it was in (ms).
	Ms float64 `json:"ms"`
	// Confidence is the geometric mean of the probabilities the model gave the tokens it read
	// for the line (Decoder.ReadConfidence; over several segments, weighted by their lengths),
	// in (0, 1]: near 1 for print it reads with ease, low for noise or pictures read as text.
	// 0 (left out of the JSON) with Speculative, which does not compute it.
	Confidence float64 `json:"confidence,omitempty"`
	// Spec holds the speculative decoding statistics of the line's segments (Speculative only).
	Spec *SpecStats `json:"speculative,omitempty"`
}

// MarshalJSON writes Box as {"x0", "y0", "x1", "y1"} (source pixels, x1 and y1 exclusive),
// in the snake_case of the other keys, Ms to 0.01 ms and Confidence to 4 decimals.
func (l LineResult) MarshalJSON() ([]byte, error) {
	type plain LineResult // without this method
	type box struct {
		X0 int `json:"x0"`
		Y0 int `json:"y0"`
		X1 int `json:"x1"`
		Y1 int `json:"y1"`
	}
	l.Ms, l.Confidence = RoundTo(l.Ms, 100), RoundTo(l.Confidence, 1e4)
	return json.Marshal(struct {
		Box box `json:"box"`
		plain
	}{box{l.Box.Min.X, l.Box.Min.Y, l.Box.Max.X, l.Box.Max.Y}, plain(l)})
}

// RoundTo rounds x to the nearest 1/scale, for JSON (a sum like 7.061999999999999 is written
// 7.06 with scale 100).
func RoundTo(x, scale float64) float64 { return math.Round(x*scale) / scale }

// SpecStats summarises MTP speculative decoding over some segments.
type SpecStats struct {
	Rounds   int   `json:"rounds"`   // verify steps after the prefill
	Tokens   int   `json:"tokens"`   // tokens produced
	Attempts []int `json:"attempts"` // per head: drafts checked
	Accepts  []int `json:"accepts"`  // per head: drafts accepted
}

// MeanAccepted is the mean number of drafts accepted per round.
func (s *SpecStats) MeanAccepted() float64 {
	n := 0
	for _, a := range s.Accepts {
		n += a
	}
	if s.Rounds == 0 {
		return 0
	}
	return float64(n) / float64(s.Rounds)
}

// Acceptance is head k's (0-based) conditional acceptance rate.
func (s *SpecStats) Acceptance(k int) float64 {
	if k >= len(s.Attempts) || s.Attempts[k] == 0 {
		return 0
	}
	return float64(s.Accepts[k]) / float64(s.Attempts[k])
}

// Add adds o's counts to s, head by head.
func (s *SpecStats) Add(o SpecStats) {
	s.Rounds += o.Rounds
	s.Tokens += o.Tokens
	for k := range o.Attempts {
		if k >= len(s.Attempts) {
			s.Attempts, s.Accepts = append(s.Attempts, 0), append(s.Accepts, 0)
		}
		s.Attempts[k] += o.Attempts[k]
		s.Accepts[k] += o.Accepts[k]
	}
}

// Result is the text of one image.
type Result struct {
	Lines []LineResult `json:"lines"`
	// PrepareMs is the time spent decoding the file's pixels into line tensors; DecodeMs the
	// model's time over all lines.
	PrepareMs float64 `json:"prepare_ms"`
	DecodeMs  float64 `json:"decode_ms"`
}

// Spec is the speculative decoding statistics summed over the image's lines; nil when it was
// read without (Options.Speculative off).
func (res Result) Spec() *SpecStats {
	var sum *SpecStats
	for _, l := range res.Lines {
		if l.Spec != nil {
			if sum == nil {
				sum = &SpecStats{}
			}
			sum.Add(*l.Spec)
		}
	}
	return sum
}

// Text is the lines' texts, one per line, in reading order.
func (res Result) Text() string {
	s := ""
	for i, l := range res.Lines {
		if i > 0 {
			s += "\n"
		}
		s += l.Text
	}
	return s
}

// Progress is told after each batch how many of the image's segments are read.
type Progress func(done, total int)

// Recognize finds the text lines of img (see ocrimage.Prepare: grey, polarity, lines in
// reading order, pieces at whitespace) and reads them. progress may be nil.
func (r *Recognizer) Recognize(img image.Image, progress Progress) (Result, error) {
	res, err := r.RecognizeAll([]image.Image{img}, progress)
	if err != nil {
		return Result{}, err
	}
	return res[0], nil
}

// segRef is one segment of one line of one image.
type segRef struct {
	img, line int
	seg       ocrimage.Segment // padded to max_image_width when its batch is read
}

// RecognizeAll reads several images, batching the segments of all of them together, so a
// page of short lines or a folder of one-line images costs few GPU submissions.
func (r *Recognizer) RecognizeAll(imgs []image.Image, progress Progress) ([]Result, error) {
	c := r.cfg
	out := make([]Result, len(imgs))
	// As many images as a batch holds make at least a full batch of pieces (a blank image
	// aside): the batch's decoder is built while the images are prepared, its graph and
	// kernels on one core while the preparation takes the others.
	var built chan error
	if r.spec == nil && len(imgs) >= r.opt.Batch && r.decs[r.opt.Batch] == nil {
		built = make(chan error, 1)
		go func() {
			_, err := r.decoder(r.opt.Batch)
			built <- err
		}()
	}
	prepared, err := r.prepareAll(imgs, out)
	if built != nil {
		if berr := <-built; err == nil {
			err = berr
		}
	}
	if err != nil {
		return nil, err
	}
	var segs []segRef
	for i, p := range prepared {
		out[i].Lines = make([]LineResult, len(p.lines))
		for j, l := range p.lines {
			out[i].Lines[j] = LineResult{Box: l.Box, Segments: len(l.Segments)}
			for _, s := range l.Segments {
				segs = append(segs, segRef{img: i, line: j, seg: s})
			}
		}
	}
	pieces := make([]ocrimage.Segment, len(segs))
	for k, s := range segs {
		pieces[k] = s.seg
	}
	texts := make([]string, len(segs))
	conf := make([]float64, len(segs))
	if r.spec != nil {
		for k, s := range segs {
			t, st, el, err := r.readSpeculative(s.seg.Padded(c.MaxImageWidth))
			if err != nil {
				return nil, err
			}
			texts[k] = t
			l := &out[s.img].Lines[s.line]
			l.Ms += el
			l.Spec = mergeSpec(l.Spec, st)
			out[s.img].DecodeMs += el
			if progress != nil {
				progress(k+1, len(segs))
			}
		}
	} else {
		var ms []float64
		texts, conf, ms, err = r.readGreedy(pieces, func(done int) {
			if progress != nil {
				progress(done, len(segs))
			}
		})
		if err != nil {
			return nil, err
		}
		for k, s := range segs {
			out[s.img].Lines[s.line].Ms += ms[k]
			out[s.img].DecodeMs += ms[k]
		}
	}
	// Each line's pieces are consecutive in segs.
	for k := 0; k < len(segs); {
		e := k + 1
		for e < len(segs) && segs[e].img == segs[k].img && segs[e].line == segs[k].line {
			e++
		}
		l := &out[segs[k].img].Lines[segs[k].line]
		l.Text, l.Confidence = r.joinText(pieces[k:e], texts[k:e], conf[k:e])
		k = e
	}
	if r.spec == nil && !r.opt.NoSecondLook {
		if err := r.secondLook(imgs, prepared, out); err != nil {
			return nil, err
		}
	}
	for i, p := range prepared {
		lines := out[i].Lines[:0]
		var counted []bool // whether each kept line is a row DashRow counted
		for j, d := range p.dashes {
			l := out[i].Lines[j]
			dashes := takesCount(d, l.Text)
			if dashes {
				l.Text = d
			} else if r.judgesPage() && !r.opt.AllLines && notText(l) {
				continue
			}
			lines, counted = append(lines, l), append(counted, dashes)
		}
		out[i].Lines = lines
		if r.judgesPage() {
			recountFlatRows(out[i].Lines, counted)
		}
	}
	return out, nil
}

// judgesPage says whether the readings of an image are a page's whose lines the model's
// confidence can judge (notText, recountFlatRows): not an image read as one line, nor
// speculative reading, which has no confidence.
func (r *Recognizer) judgesPage() bool { return r.spec == nil && !r.opt.SingleLine }

// Bounds of recountFlatRows.
const (
	// pitchLines is the fewest lines a page's character pitch is measured on.
	pitchLines = 3
	// pitchConfidence is the least confidence of a line the pitch is measured on.
	pitchConfidence = 0.9
	// overlong is how many times the characters its width holds at the page's pitch a row of
	// flat glyphs must be read as to be recounted.
	overlong = 1.5
)

// recountFlatRows recounts the rows of flat glyphs of a page (lines read as dashes, equals
// signs or underscores only, flatGlyphsOnly, that ocrimage.DashRow did not count: counted[j]
// false) that the model read implausibly long. In a run of identical glyphs nothing tells
// the text decoder where it is, and it can run on: a photographed receipt's 26 dashes, their
// gaps blurred shut, read as 104. The page's character pitch is the median of box width over
// characters of its lines read with confidence pitchConfidence or more and at least 8
// characters long (pitchLines of them at least; a receipt's monospaced face gives its
// dashes' pitch, a proportional face a pitch about 1.5 times a dash's, which undercounts);
// a row read as more than overlong times the characters its box holds at that pitch becomes
// that many of its most frequent glyph.
func recountFlatRows(lines []LineResult, counted []bool) {
	var pitches []float64
	for _, l := range lines {
		if n := len(strings.TrimSpace(l.Text)); l.Confidence >= pitchConfidence && n >= 8 && !flatGlyphsOnly(l.Text) {
			pitches = append(pitches, float64(l.Box.Dx())/float64(n))
		}
	}
	if len(pitches) < pitchLines {
		return
	}
	slices.Sort(pitches)
	pitch := pitches[len(pitches)/2]
	for j := range lines {
		l := &lines[j]
		if counted[j] || !flatGlyphsOnly(l.Text) {
			continue
		}
		counts := map[rune]int{}
		n := 0
		for _, c := range l.Text {
			if c != ' ' {
				counts[c]++
				n++
			}
		}
		fits := int(math.Round(float64(l.Box.Dx()) / pitch))
		if fits < 1 || float64(n) <= overlong*float64(fits) {
			continue
		}
		var glyph rune
		for _, c := range "-=_" {
			if counts[c] > counts[glyph] {
				glyph = c
			}
		}
		l.Text = strings.Repeat(string(glyph), fits)
	}
}

// joinText is joinLine's text of the line's pieces that textPieces keeps, and its confidence
// over all of them: leaving a doubted piece out must not make a reading look surer than
// another of the same line (the second look keeps the most confident).
func (r *Recognizer) joinText(pieces []ocrimage.Segment, texts []string, conf []float64) (string, float64) {
	p, t, c := r.textPieces(pieces, texts, conf)
	text, _ := joinLine(p, t, c, r.cfg.ImageHeight)
	_, cf := joinLine(pieces, texts, conf, r.cfg.ImageHeight)
	return text, cf
}

// textPieces returns a line's pieces, their readings and confidences: on a page whose lines
// the confidence judges (judgesPage; not with AllLines), without the pieces of a line of
// several that notText would leave out as a line of their own, unless that is all of them. A
// table's faint column line that survives its erasure is a piece of its own between two
// cells, read as "--" with a confidence near 0.57.
func (r *Recognizer) textPieces(pieces []ocrimage.Segment, texts []string, conf []float64) ([]ocrimage.Segment, []string, []float64) {
	if !r.judgesPage() || r.opt.AllLines || len(pieces) < 2 {
		return pieces, texts, conf
	}
	var p []ocrimage.Segment
	var t []string
	var c []float64
	for i := range pieces {
		if !notText(LineResult{Text: texts[i], Confidence: conf[i]}) {
			p, t, c = append(p, pieces[i]), append(t, texts[i]), append(c, conf[i])
		}
	}
	if len(p) == 0 || len(p) == len(pieces) {
		return pieces, texts, conf
	}
	return p, t, c
}

// Bounds of notText.
const (
	// notTextConfidence is the confidence under which a page's line may be no text.
	notTextConfidence = 0.6
	// notTextAlnum is the share of letters and digits among a line's characters (spaces
	// aside) under which a doubted line is no text.
	notTextAlnum = 0.5
)

// notText says whether a line of a page is something the line finder took for text that is
// not: the model doubts it (confidence under notTextConfidence) and reads it as mostly
// punctuation (letters and digits under notTextAlnum of its characters), as it reads a
// photographed table's blurred grid, the shaded edge of a photo, or the rim of a card:
// "ane-----------", "==========2=== v -----". Such lines are left out of a page whose lines
// the confidence judges (judgesPage; not with Options.AllLines). On six page sets (260
// screenshots and photographs) this left out 0, 1, 0, 0, 1 and 15 lines (CER of
// sets B and F 2.82 → 2.77 % and 10.41 → 8.16 %) and made 2 pages worse by 1 and 2
// characters; at a confidence of 0.7, photographed receipts lost rows of dashes.
func notText(l LineResult) bool {
	if l.Confidence >= notTextConfidence {
		return false
	}
	n, alnum := 0, 0
	for _, c := range l.Text {
		if c == ' ' {
			continue
		}
		n++
		if unicode.IsLetter(c) || unicode.IsDigit(c) {
			alnum++
		}
	}
	return float64(alnum) < notTextAlnum*float64(n) || n == 0
}

// takesCount says whether a page's line the model read as reading is read as count instead,
// the row of dashes or equals signs ocrimage.DashRow counted ("" where it counted none): where
// the reading holds flat glyphs only (flatGlyphsOnly), and, for equals signs, no space (a row
// of equals signs set with spaces passes DashRow's gap test in some faces; the model sees the
// spaces).
func takesCount(count, reading string) bool {
	return count != "" && flatGlyphsOnly(reading) && !(count[0] == '=' && strings.Contains(reading, " "))
}

// flatGlyphsOnly says whether text is made of dashes, equals signs, underscores and spaces
// only, at least one of them not a space: what the model reads a row of dashes as when it
// miscounts it ("---- =========--" for 26 dashes). Such a reading of a line that
// ocrimage.DashRow counts is replaced by the count; another reading (a row of tildes, which
// a blur can make look like bars) is the model's call.
func flatGlyphsOnly(text string) bool {
	return strings.TrimSpace(text) != "" && strings.Trim(text, "-=_ ") == ""
}

// readGreedy reads pieces with the batched greedy decoder and returns each one's text, its
// confidence (Decoder.ReadConfidence) and its share of the decoding time in ms. progress, if
// not nil, is told how many pieces are read after each batch.
func (r *Recognizer) readGreedy(pieces []ocrimage.Segment, progress func(done int)) (texts []string, conf, ms []float64, err error) {
	texts = make([]string, len(pieces))
	conf = make([]float64, len(pieces))
	ms = make([]float64, len(pieces))
	// A batch decodes until its longest text ends, so pieces of similar width (and so similar
	// text length) go together: narrow ones stop early. Rows are independent, so the texts do
	// not depend on the grouping.
	order := make([]int, len(pieces))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return pieces[order[a]].Width < pieces[order[b]].Width })
	// The repeat and leader checks need the strip predictions of the few pieces whose texts
	// they could change (checksMayChange); those are run for all batches together at the end
	// (Decoder.lazyStrips), a few submissions in all rather than one or more a batch.
	var need []int           // pieces whose strip predictions the checks need
	var needImgs [][]float32 // their images, as read
	var dec *Decoder
	for k := 0; k < len(pieces); {
		var err error
		if dec, err = r.decoder(len(pieces) - k); err != nil {
			return nil, nil, nil, err
		}
		part := order[k:min(k+dec.Batch, len(pieces))]
		imgs := make([][]float32, len(part))
		for j, i := range part {
			// Padded batch by batch, so the memory of one batch's images serves the next.
			imgs[j] = pieces[i].Padded(r.cfg.MaxImageWidth)
		}
		start := time.Now()
		got, strips, cf, err := dec.read(imgs)
		if err == nil && strips != nil { // the prefill had every position's output
			err = dec.check(imgs, got, strips)
		}
		if err != nil {
			return nil, nil, nil, err
		}
		share := float64(time.Since(start).Microseconds()) / 1000 / float64(len(part))
		for j, i := range part {
			texts[i], conf[i], ms[i] = got[j], cf[j], share
			if dec.repeats && strips == nil && checksMayChange(got[j]) {
				need, needImgs = append(need, i), append(needImgs, imgs[j])
			}
		}
		k += len(part)
		if progress != nil {
			progress(k)
		}
	}
	if len(need) > 0 {
		start := time.Now()
		got := make([]string, len(need))
		for j, i := range need {
			got[j] = texts[i]
		}
		if err := dec.check(needImgs, got, nil); err != nil {
			return nil, nil, nil, err
		}
		share := float64(time.Since(start).Microseconds()) / 1000 / float64(len(need))
		for j, i := range need {
			texts[i] = got[j]
			ms[i] += share
		}
	}
	return texts, conf, ms, nil
}

// joinLine makes a line's text and confidence from its pieces' readings. Pieces cut at a word
// space join with one, unless their texts show a URL, address or hyphenated word there
// (joinSpace); pieces of one long word, without. The confidence is the pieces' geometric means
// combined, each weighted by its characters and EOS (0 when none has one: speculative reading).
func joinLine(pieces []ocrimage.Segment, texts []string, conf []float64, height int) (string, float64) {
	var text string
	var logSum, weight float64
	for k, p := range pieces {
		if conf[k] > 0 {
			w := float64(len(texts[k]) + 1)
			logSum += w * math.Log(conf[k])
			weight += w
		}
		if text != "" && texts[k] != "" && p.Space && joinSpace(text, texts[k], p.Gap, height) {
			text += " "
		}
		text += texts[k]
	}
	if weight == 0 {
		return text, 0
	}
	return text, math.Exp(logSum / weight)
}

// SecondLookTier is one band of the second look (Options.NoSecondLook): a line whose first
// reading's confidence is under Below, and not under the Below of a tier before it, is cut
// again from its image at each horizontal scale of Scales (ocrimage.StretchLine, then
// LineStrips) and read again, and of its readings the one with the highest confidence is kept.
// A model often reads a face narrower or wider than its training faces, or a blurred, noisy or
// low-resolution line, better at another width, and its confidence says which reading to keep.
type SecondLookTier struct {
	Below  float64   // confidence, 0 to 1
	Scales []float64 // widths relative to the line's own, > 0
}

// SecondLook lists the second look's tiers, by increasing Below: a line read with a confidence
// under 0.95 is read again 0.85 and 1.2 times as wide, one read with 0.95 to 0.98 again 1.2
// times as wide. Chosen on six held-out sets of 900 lines (`moegpu ocr --write-eval DIR --seed
// S`, S = 1…6), every line also read at both scales and each rule applied afterwards: the
// first tier alone took the sets' CER from 1.56–2.43 % to 1.27–2.09 % with 0.21 readings more a
// line; with the second tier, 1.18–1.98 % with 0.32; both scales up to 0.98, 1.11–1.94 % with
// 0.43. Lines of 0.95–0.98 read again at 1.2× rather than 0.85× read four sets of six better.
var SecondLook = []SecondLookTier{
	{Below: 0.95, Scales: []float64{0.85, 1.2}},
	{Below: 0.98, Scales: []float64{1.2}},
}

// SecondLookPitch narrows a tier's scales by the line's character pitch: its width in columns
// of the model's input (image_height rows tall), over the characters of its first reading. A
// line of narrower characters than Narrow columns is not read narrower (no scale under 1); one
// of wider characters than Wide, not wider (none over 1); a tier left with no scale keeps all
// of them. A first-tier line was read at 0.85× and 1.2× before; on the six held-out sets, of
// its two readings the more confident was the 1.2× one for 50 of 60 lines of pitch under 11,
// and the 0.85× one for 222 of 310 of pitch 18 or more. With these bounds the sets' CER went
// from 1.18/1.37/1.36/1.98/1.37/1.52 % to 1.19/1.41/1.39/1.90/1.36/1.50 % (mean 1.466 to
// 1.460) with 0.266 readings more a line instead of 0.322.
var SecondLookPitch = struct{ Narrow, Wide float64 }{Narrow: 11, Wide: 20}

// secondLookScales returns the scales a line read with confidence conf, whose characters are
// pitch columns apart on average, is read again at (SecondLook, SecondLookPitch), or nil.
func secondLookScales(conf, pitch float64) []float64 {
	for _, t := range SecondLook {
		if conf >= t.Below {
			continue
		}
		var keep []float64
		for _, f := range t.Scales {
			if !(pitch < SecondLookPitch.Narrow && f < 1 || pitch >= SecondLookPitch.Wide && f > 1) {
				keep = append(keep, f)
			}
		}
		if len(keep) == 0 {
			return t.Scales
		}
		return keep
	}
	return nil
}

// linePitch is a line's character pitch for secondLookScales: the width of its pieces in
// columns of the model's input over the characters of text (at least one).
func linePitch(l ocrimage.Line, text string) float64 {
	w := 0
	for _, s := range l.Segments {
		w += s.Width
	}
	return float64(w) / float64(max(len(text), 1))
}

// secondLook reads the lines of out that a tier of SecondLook holds again at each of its
// scales, all in one batched read, and keeps for each line the reading with the highest
// confidence. An image with such lines is levelled again (keeping every image's ink
// through the first reading would double the memory a folder of pages takes); that time goes
// to its PrepareMs, the extra decoding time to the lines read again.
func (r *Recognizer) secondLook(imgs []image.Image, prepared []page, out []Result) error {
	c := r.cfg
	type variant struct{ img, line, from, to int } // pieces[from:to] are one line's reading
	// Each image's doubted lines are cut again on up to GOMAXPROCS goroutines, image by
	// image; the pieces then go in image order, as the image's own cuts would.
	type cut struct {
		line int
		segs []ocrimage.Segment
	}
	cuts := make([][]cut, len(out))
	eachImage(len(out), func(i int) {
		start := time.Now()
		var ink *ocrimage.Ink // levelled again for the image's first doubted line
		var cutFrom map[located]*ocrimage.Ink
		for j, l := range out[i].Lines {
			scales := secondLookScales(l.Confidence, linePitch(prepared[i].lines[j], l.Text))
			if scales == nil {
				continue
			}
			if ink == nil {
				ink, _, _ = r.level(imgs[i])
				cutFrom = r.lineInks(ink)
			}
			k := ink
			if lk := cutFrom[located{prepared[i].boxes[j], prepared[i].panels[j]}]; lk != nil {
				k = lk
			}
			strips := ocrimage.Strips(r.opt.SingleLine)
			for _, f := range scales {
				wide, box := ocrimage.StretchLine(k, prepared[i].boxes[j], f)
				if segs := strips(wide, box, c.ImageHeight, c.MaxImageWidth); len(segs) > 0 {
					cuts[i] = append(cuts[i], cut{j, segs})
				}
			}
		}
		if ink != nil {
			out[i].PrepareMs += float64(time.Since(start).Microseconds()) / 1000
		}
	})
	var variants []variant
	var pieces []ocrimage.Segment
	for i, cs := range cuts {
		for _, ct := range cs {
			variants = append(variants, variant{i, ct.line, len(pieces), len(pieces) + len(ct.segs)})
			pieces = append(pieces, ct.segs...)
		}
	}
	if len(pieces) == 0 {
		return nil
	}
	texts, conf, ms, err := r.readGreedy(pieces, nil)
	if err != nil {
		return err
	}
	for _, v := range variants {
		l := &out[v.img].Lines[v.line]
		for k := v.from; k < v.to; k++ {
			l.Ms += ms[k]
			out[v.img].DecodeMs += ms[k]
		}
		if text, cf := r.joinText(pieces[v.from:v.to], texts[v.from:v.to], conf[v.from:v.to]); cf > l.Confidence {
			l.Text, l.Confidence, l.Segments = text, cf, v.to-v.from
		}
	}
	return nil
}

// readSpeculative reads one segment with MTP speculative decoding.
func (r *Recognizer) readSpeculative(pix []float32) (string, generate.SpecStats, float64, error) {
	start := time.Now()
	if err := r.spec.SetImage(pix); err != nil {
		return "", generate.SpecStats{}, 0, err
	}
	prompt := Prompt(r.cfg.ImageTokens())
	out, st, err := r.spec.Generate(prompt, maxNew, EOS, generate.Sampling{}, nil)
	if err != nil {
		return "", generate.SpecStats{}, 0, err
	}
	text := Decode(out)
	if !r.opt.NoRepeatCheck && r.cfg.AlignmentLossWeight > 0 {
		text = checkStrips(text, stripText(r.spec.PromptNext()[:r.cfg.ImageTokens()]))
	}
	return text, st, float64(time.Since(start).Microseconds()) / 1000, nil
}

func mergeSpec(s *SpecStats, st generate.SpecStats) *SpecStats {
	if s == nil {
		s = &SpecStats{}
	}
	s.Add(SpecStats{Rounds: st.Rounds, Tokens: st.NewTokens, Attempts: st.Attempts, Accepts: st.Accepts})
	return s
}

// prepareAll prepares every image (prepare), on as many goroutines as GOMAXPROCS, so the
// host's cores share the work while the GPU waits for it; each image's time goes to its
// PrepareMs in out. The first failing image's error (in image order) is returned.
func (r *Recognizer) prepareAll(imgs []image.Image, out []Result) ([]page, error) {
	lines := make([]page, len(imgs))
	errs := make([]error, len(imgs))
	eachImage(len(imgs), func(i int) {
		start := time.Now()
		lines[i], errs[i] = r.preparePage(imgs[i])
		out[i].PrepareMs = float64(time.Since(start).Microseconds()) / 1000
	})
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return lines, nil
}

// eachImage calls f(i) for i in [0, n) on up to GOMAXPROCS goroutines, each taking the next
// index as it finishes one, and returns when every call has.
func eachImage(n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(runtime.GOMAXPROCS(0), n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		}()
	}
	wg.Wait()
}

// prepare finds img's lines and cuts them for the model: every line (slivers of lines cut by
// the image's top or bottom edge and horizontal rules dropped), or with SingleLine one
// (singleLine; the whole image when the line finder finds none in an image that is not blank).
func (r *Recognizer) prepare(img image.Image) ([]ocrimage.Line, error) {
	p, err := r.preparePage(img)
	return p.lines, err
}

// page is a prepared image: its lines, and for the second look each line's box in the ink it
// was cut from and the panel it lies on (ocrimage.Panels; empty for the page's own lines),
// which find that ink again (lineInks).
type page struct {
	lines  []ocrimage.Line
	boxes  []image.Rectangle
	panels []image.Rectangle
	// dashes is, for each line that is a row of dashes (ocrimage.DashRow), the row of that
	// many; "" for the others. The model reads it too, and its reading, if it holds only
	// flat glyphs (flatGlyphsOnly), is replaced by this one.
	dashes []string
}

// located names a line of a page: its box in the ink it was cut from, and its panel.
type located struct{ box, panel image.Rectangle }

// lineInks is the ink each line of a page (ink, as level gives it) is cut from when it is not
// the page's ink itself: the page without its panels, or a panel's own (ocrimage.LocatePage,
// which finds them again as preparePage did); nil when the image is read as one line.
func (r *Recognizer) lineInks(ink *ocrimage.Ink) map[located]*ocrimage.Ink {
	if r.opt.SingleLine {
		return nil
	}
	lines, _ := ocrimage.LocatePage(ink, nil)
	out := make(map[located]*ocrimage.Ink, len(lines))
	for _, l := range lines {
		out[located{l.Box, l.Panel}] = l.Ink
	}
	return out
}

// level returns img's ink as its lines are cut from (levelled as a page unless SingleLine)
// and the source ink with the slope it was levelled by; nil for a blank image.
func (r *Recognizer) level(img image.Image) (ink, src *ocrimage.Ink, slope float64) {
	if r.opt.SingleLine {
		src = ocrimage.Normalize(ocrimage.Gray(img))
	} else { // a page's background may drift, and it may hold text of both polarities
		src = ocrimage.NormalizePage(ocrimage.Flatten(ocrimage.Gray(img)))
	}
	if src.Blank {
		return nil, nil, 0
	}
	// A page of several lines is levelled first, so that sloping lines do not merge; an image
	// read as one line is levelled line by line in LineStrips, as the model was trained.
	ink = src
	if !r.opt.SingleLine {
		ink, slope = ocrimage.LevelPage(src)
	}
	return ink, src, slope
}

func (r *Recognizer) preparePage(img image.Image) (page, error) {
	c := r.cfg
	if img == nil || img.Bounds().Empty() {
		_, err := ocrimage.Prepare(img, c.ImageHeight, c.MaxImageWidth) // its error names the problem
		return page{}, err
	}
	ink, src, slope := r.level(img)
	if ink == nil {
		return page{}, nil
	}
	p := page{}
	add := func(k *ocrimage.Ink, b, panel image.Rectangle) {
		if l := ocrimage.CutLine(src, k, slope, b, c.ImageHeight, c.MaxImageWidth, r.opt.SingleLine); len(l.Segments) > 0 {
			g, n, _ := ocrimage.DashRow(k, b)
			p.lines = append(p.lines, l)
			p.boxes = append(p.boxes, b)
			p.panels = append(p.panels, panel)
			p.dashes = append(p.dashes, strings.Repeat(string(g), n))
		}
	}
	slivers := func(boxes []image.Rectangle) []image.Rectangle {
		return dropSlivers(boxes, func(b image.Rectangle) image.Rectangle { return ocrimage.SourceBox(src, b, slope) }, src.Rect)
	}
	if !r.opt.SingleLine {
		// A page: its solid areas are not text, and its panels' text is read from their own
		// ink.
		lines, _ := ocrimage.LocatePage(ink, slivers)
		for _, l := range lines {
			add(l.Ink, l.Box, l.Panel)
		}
		return p, nil
	}
	boxes := slivers(ocrimage.SplitLines(ink)) // a crop of one line: its solid areas are its own
	if len(boxes) == 0 {
		// The caller says the image is one line, and it is not blank: faint strokes under
		// heavy noise can stay below the line finder's noise ceiling, so read it whole.
		boxes = []image.Rectangle{ink.Rect}
	}
	add(ink, singleLine(boxes), image.Rectangle{})
	return p, nil
}

// singleLine is the box of an image read as one line: the tallest line box, grown by every
// box that touches or overlaps its rows (and by those that touch what it grows into). The line
// finder can split one line into an upper and a lower band: a light or italic face, whose
// slanted stems make its stem height look short, in a crop that cuts its ascenders. The
// bands touch (the split is at one row); the tallest alone is half a line, read as garbage.
// A neighbouring line's sliver, with paper between it and the line, stays out.
//
// On five held-out sets of 900 lines (`moegpu ocr --write-eval DIR --seed S`, S = 1…5), 22
// images had such touching boxes; read with the shipped model their errors went from 143 edits
// to 36 (18 lines better, 3 the same, 1 worse).
func singleLine(boxes []image.Rectangle) image.Rectangle {
	best := tallest(boxes)
	for grown := true; grown; {
		grown = false
		for _, b := range boxes {
			if !b.In(best) && b.Max.Y >= best.Min.Y && b.Min.Y <= best.Max.Y {
				best, grown = best.Union(b), true
			}
		}
	}
	return best
}

// tallest is the tallest of boxes (the first of equals); boxes is not empty.
func tallest(boxes []image.Rectangle) image.Rectangle {
	best := boxes[0]
	for _, b := range boxes[1:] {
		if b.Dy() > best.Dy() {
			best = b
		}
	}
	return best
}

// dropSlivers removes line boxes that touch the image's top or bottom edge and are less than
// half as tall as the tallest line: the cut-off descenders or ascenders of a neighbouring line
// in a tight crop, not text to read. source maps a box to the image's pixels (bounds), where
// the edge test is made (a levelled page's rows are not the image's; see ocrimage.SourceBox).
func dropSlivers(boxes []image.Rectangle, source func(image.Rectangle) image.Rectangle, bounds image.Rectangle) []image.Rectangle {
	tallest := 0
	for _, b := range boxes {
		tallest = max(tallest, b.Dy())
	}
	var out []image.Rectangle
	for _, b := range boxes {
		sb := source(b)
		edge := sb.Min.Y <= bounds.Min.Y+1 || sb.Max.Y >= bounds.Max.Y-1
		if edge && 2*b.Dy() < tallest {
			continue
		}
		out = append(out, b)
	}
	return out
}
