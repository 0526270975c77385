package ocr

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/model"
	"github.com/moegpu/moegpu/runtime/weights"
)

// Files of a model directory (a training checkpoint or the shipped model).
const (
	ConfigFile  = "config.json"
	WeightsFile = "model.safetensors"
)

// Decoder reads prepared line images in batches: Batch lines go through the model side by
// side, so a batch costs about as many GPU submissions as one line (a few for the image
// prefix, then one per character of the longest text), greedy (argmax on the GPU, only token
// ids come back). As lines end, the ones still decoding move to a step graph of half the
// rows or less (their KV caches copied over on the GPU), so ended lines stop costing time.
type Decoder struct {
	Config *config.ModelConfig
	Batch  int // lines per batch

	prefill *model.Model
	preExec *graph.GPU
	pix     []float32 // the prefill's pixel values, reused by every Read
	// steps are the one-token decoding graphs, Batch rows first, then half as many each
	// (down to minStepRows), built on first use; steps[0] shares the prefill's caches.
	steps  []*stepGraph
	dev    *gpu.Device
	opt    model.DecodeOptions
	params graph.Buffers // the prefill's parameters and MoE state, by name (no caches)
	chunk  int           // prefill tokens per submission
	prompt []int
	dir    string
	f16    bool
	every  bool // the prefill has every position's output (newDecoder)
	// repeats says Read runs the repeat and leader checks (checkRepeats, checkLeader) on each
	// line's text against the prefill's outputs at the image positions (the model's strip
	// predictions).
	repeats bool
	// stripsPre and stripsExec run the prefill with every position's output for the lines
	// whose strip predictions the checks need, when the prefill has one output a line
	// (lazyStrips, which builds them on first use); stripsPix stages their pixel values.
	stripsPre  *model.Model
	stripsExec *graph.GPU
	stripsPix  []float32
	vals       map[string][]float64 // the weights by tensor name (weights.Read), for CountRouting's rebuild
	// ws lends the arena and scratch pools to all of the decoder's graphs, which run one after
	// another (graph.Workspace): the decoder's own (ownWS, closed with it) or its caller's.
	ws    *graph.Workspace
	ownWS bool

	// Routing, when not nil, counts each MoE layer's copy-expert choices (skips) by token kind
	// over every Read (set it with CountRouting).
	Routing *Routing
}

// Routing counts, per MoE layer (in layer order), the tokens that took a copy expert and so
// skipped the layer's FFN, separately for image tokens and text tokens (BOS and the
// generated characters; padding and the steps of lines already ended are not counted).
type Routing struct {
	Layers                  []string
	ImageTokens, TextTokens int
	ImageSkips, TextSkips   []int
	experts, copies, topK   int
}

// ImageSkipRate is layer i's share of image tokens that skipped its FFN.
func (r *Routing) ImageSkipRate(i int) float64 { return rate(r.ImageSkips[i], r.ImageTokens) }

// TextSkipRate is layer i's share of text tokens that skipped its FFN.
func (r *Routing) TextSkipRate(i int) float64 { return rate(r.TextSkips[i], r.TextTokens) }

func rate(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// stepGraph is a one-token decoding graph of some number of rows and its executor.
type stepGraph struct {
	m  *model.Model
	ex *graph.GPU
}

// minStepRows is the fewest rows a smaller step graph is built for (a variable, so tests can
// go lower): below it a step costs about the same whatever its rows (the dispatches' fixed
// cost).
var minStepRows = 16

// CountRouting starts counting copy-expert choices (an MoE model with copy experts only);
// every Read then also reads the routers' choices back, which costs a little time, and the
// prefill runs the last layer's FFN at every image token too (the decoder is rebuilt so).
func (d *Decoder) CountRouting() error {
	if len(d.steps[0].m.MoE) == 0 || d.Config.ZeroExpertNum == 0 {
		return fmt.Errorf("ocr: the model has no copy experts to count")
	}
	if !d.every {
		ws := d.ws
		if d.ownWS {
			ws = nil
		}
		nd, err := newDecoder(d.dir, d.dev, d.Batch, d.f16, true, d.repeats, d.vals, ws)
		if err != nil {
			return err
		}
		d.Close()
		*d = *nd
	}
	r := &Routing{experts: d.Config.NRoutedExperts, copies: d.Config.ZeroExpertNum, topK: d.Config.NumExpertsPerTok}
	for _, l := range d.steps[0].m.MoE {
		r.Layers = append(r.Layers, l.Prefix)
	}
	r.ImageSkips, r.TextSkips = make([]int, len(r.Layers)), make([]int, len(r.Layers))
	d.Routing = r
	return nil
}

// count adds one submission's routing: idx per layer (B·q, K) u32; counted(b, p) says whether
// row b's position p is a real token (b is the submission's row, which after compaction is not
// the batch's line).
func (r *Routing) count(idx [][]float64, B, q, pos, imageTokens int, counted func(b, p int) bool) {
	for b := 0; b < B; b++ {
		for i := 0; i < q; i++ {
			p := pos + i
			if !counted(b, p) {
				continue
			}
			image := p < imageTokens
			if image {
				r.ImageTokens++
			} else {
				r.TextTokens++
			}
			for l, v := range idx {
				skip := false
				for k := 0; k < r.topK; k++ {
					if e := int(v[(b*q+i)*r.topK+k]); e >= r.experts {
						skip = true
					}
				}
				if skip && image {
					r.ImageSkips[l]++
				} else if skip {
					r.TextSkips[l]++
				}
			}
		}
	}
}

// maxNew is the most tokens a line's decoding produces, its EOS included: a line text never
// holds more than MaxChars characters, so one more is room for the EOS.
const maxNew = MaxChars + 1

// maxPrefillChunk bounds one prefill submission's tokens per line (a variable, so tests can
// make a small prompt take several chunks).
var maxPrefillChunk = 32

// NewDecoder compiles the batched decode steps of an image model on dev and loads the weights
// from a model directory's model.safetensors (MTP modules, if any, are not used). A model
// trained with the alignment loss (alignment_loss_weight > 0) gets the repeat and leader checks
// (checkRepeats, checkLeader) on every line it reads.
func NewDecoder(dir string, dev *gpu.Device, batch int, f16 bool) (*Decoder, error) {
	return newDecoder(dir, dev, batch, f16, false, true, nil, nil)
}

// newDecoder is NewDecoder; with every set, the prefill runs every position through every
// layer (CountRouting needs the last MoE layer's choices on image tokens), else only the BOS
// token goes through the last layer's FFN and the head (model.DecodeOptions.OneOutput).
// repeats asks for the repeat and leader checks, which a model without the alignment loss does
// not get; they take the strip predictions from the prefill when it has every position's
// output, else from lazyStrips, for the few lines that need them. vals holds the weights as
// readWeights returns them (then the file is not read again), or is nil (then they are read
// from dir). ws lends the graphs' transient memory (graph.Workspace): the caller's, shared by
// decoders that never read at the same time, or nil for one of the decoder's own.
func newDecoder(dir string, dev *gpu.Device, batch int, f16, every, repeats bool, vals map[string][]float64, ws *graph.Workspace) (*Decoder, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	repeats = repeats && cfg.AlignmentLossWeight > 0
	if batch < 1 {
		return nil, fmt.Errorf("ocr: batch %d must be at least 1", batch)
	}
	prompt, chunk, opt, preOpt, err := decodeSetup(dir, cfg, f16, every)
	if err != nil {
		return nil, err
	}
	d := &Decoder{Config: cfg, Batch: batch, chunk: chunk, prompt: prompt, dev: dev, dir: dir, f16: f16, every: every, repeats: repeats, opt: opt, vals: vals, ws: ws}
	if d.ws == nil {
		d.ws, d.ownWS = &graph.Workspace{}, true
	}
	if d.prefill, err = model.BuildDecode(cfg, batch, chunk, preOpt); err != nil {
		return nil, err
	}
	shared := graph.Buffers{}
	if d.preExec, err = newExec(d.prefill, dev, shared, d.ws); err != nil {
		d.Close()
		return nil, err
	}
	// The prefill holds every parameter (the steps share all but the patch
	// embedding's with it, by name).
	want := append(d.prefill.Params(), d.prefill.State()...)
	if d.vals == nil {
		if d.vals, err = weights.Read(filepath.Join(dir, WeightsFile), want, mtpWeight(cfg)); err != nil {
			d.Close()
			return nil, err
		}
	}
	if err := weights.Set(d.preExec, want, d.vals); err != nil {
		d.Close()
		return nil, err
	}
	// Smaller step graphs share the parameters and MoE state but have caches of their own.
	caches := map[string]bool{}
	for _, t := range d.prefill.Caches {
		caches[t.Name] = true
	}
	d.params = graph.Buffers{}
	for name, b := range shared {
		if !caches[name] {
			d.params[name] = b
		}
	}
	for rows := batch; ; rows /= 2 {
		d.steps = append(d.steps, &stepGraph{})
		if rows/2 < minStepRows {
			break
		}
	}
	// The first step graph is built now, over the prefill's caches.
	if _, err := d.step(0, shared); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// decodeSetup checks that cfg's positions hold a line's prompt (its image tokens and the BOS)
// and its longest text, and returns the prompt, the tokens of one prefill submission, and the
// options of the one-token steps and of the prefill.
func decodeSetup(dir string, cfg *config.ModelConfig, f16, every bool) (prompt []int, chunk int, opt, preOpt model.DecodeOptions, err error) {
	prompt = Prompt(cfg.ImageTokens())
	// The prompt goes in n chunks of equal size, the last padded with PAD past the prompt: the
	// padding's cache entries lie past the prompt and are overwritten by the generated tokens
	// before any query attends to them (causal attention; a sliding layer's ring holds window
	// + chunk − 1 slots, so the chunk overwrites nothing a later query needs).
	n := (len(prompt) + maxPrefillChunk - 1) / maxPrefillChunk
	if cfg.AttentionPrefix() > 0 {
		n = 1 // prefix_lm: the image tokens attend both ways, so they go in one chunk
	}
	chunk = (len(prompt) + n - 1) / n
	maxSeq := max(len(prompt)+maxNew, n*chunk)
	if maxSeq > cfg.MaxPositionEmbeddings {
		return nil, 0, opt, opt, fmt.Errorf("ocr: %s: %d image tokens and %d characters need %d positions, more than max_position_embeddings %d",
			dir, cfg.ImageTokens(), MaxChars, maxSeq, cfg.MaxPositionEmbeddings)
	}
	opt = model.DecodeOptions{MaxSeq: maxSeq, MaxChunk: chunk, F16Weights: f16, Argmax: true, NextProb: true}
	preOpt = opt
	// Only the BOS's output is read, in the last chunk; earlier chunks' outputs are not read
	// at all, so every chunk may skip the other positions' last FFN.
	preOpt.OneOutput, preOpt.OutputPos = !every, len(prompt)-1-(n-1)*chunk
	return prompt, chunk, opt, preOpt, nil
}

// mtpWeight says whether a checkpoint tensor belongs to cfg's MTP modules, which decoding does
// not use.
func mtpWeight(cfg *config.ModelConfig) func(name string) bool {
	return func(name string) bool {
		for k := 0; k < cfg.NumNextNPredictLayers; k++ {
			if strings.HasPrefix(name, fmt.Sprintf("model.layers.%d.", cfg.NumHiddenLayers+k)) {
				return true
			}
		}
		return false
	}
}

// readWeights reads dir's model.safetensors for the decoding graphs of cfg (all but the MTP
// modules), with weights.Read's checks (names, shapes, finite values), and returns the values
// by tensor name for newDecoder; no GPU work.
func readWeights(dir string, cfg *config.ModelConfig, f16 bool) (map[string][]float64, error) {
	_, chunk, _, preOpt, err := decodeSetup(dir, cfg, f16, true)
	if err != nil {
		return nil, err
	}
	m, err := model.BuildDecode(cfg, 1, chunk, preOpt)
	if err != nil {
		return nil, err
	}
	return weights.Read(filepath.Join(dir, WeightsFile), append(m.Params(), m.State()...), mtpWeight(cfg))
}

// newExec plans m (what callers read kept: the greedy tokens and the routers' choices, for
// CountRouting) and compiles it on dev, sharing parameters and state by name through shared,
// its arena and scratch pools ws's.
func newExec(m *model.Model, dev *gpu.Device, shared graph.Buffers, ws *graph.Workspace) (*graph.GPU, error) {
	outs := []*graph.Tensor{m.Next, m.NextLogit}
	if m.NextProb != nil {
		outs = append(outs, m.NextProb)
	}
	for _, l := range m.MoE {
		outs = append(outs, l.Idx)
	}
	plan, err := m.Graph.Plan(outs, uint64(dev.Limits.MinStorageBufferOffsetAlignment))
	if err != nil {
		return nil, err
	}
	return graph.NewGPUIn(dev, plan, shared, ws)
}

// step returns step graph k (Batch >> k rows), building it on first use over shared's
// buffers (steps after the first: d.params, so their caches are their own).
func (d *Decoder) step(k int, shared graph.Buffers) (*stepGraph, error) {
	if s := d.steps[k]; s.m != nil {
		return s, nil
	}
	// The one-token steps feed text positions only: no patch embedding.
	opt := d.opt
	opt.TextOnly = true
	m, err := model.BuildDecode(d.Config, d.Batch>>k, 1, opt)
	if err != nil {
		return nil, err
	}
	if shared == nil {
		shared = graph.Buffers{}
		for name, b := range d.params {
			shared[name] = b
		}
	}
	ex, err := newExec(m, d.dev, shared, d.ws)
	if err != nil {
		return nil, err
	}
	d.steps[k].m, d.steps[k].ex = m, ex
	return d.steps[k], nil
}

// compact copies the KV caches of the rows at from's slots keep (in order) into to's first
// rows, on the GPU: one copy per cache and run of consecutive slots.
func (d *Decoder) compact(from, to *stepGraph, keep []int) error {
	rec := d.dev.NewRecorder()
	defer rec.Release()
	for j, t := range from.m.Caches {
		src, dst := from.ex.Buffer(t), to.ex.Buffer(to.m.Caches[j])
		row := uint64(t.Len()/from.m.Batch) * uint64(t.DType.Size())
		for i := 0; i < len(keep); {
			n := 1
			for i+n < len(keep) && keep[i+n] == keep[i]+n {
				n++
			}
			if err := rec.CopyRegion(src, uint64(keep[i])*row, dst, uint64(i)*row, uint64(n)*row); err != nil {
				return fmt.Errorf("ocr: moving the decoding lines' caches: %w", err)
			}
			i += n
		}
	}
	return rec.Submit()
}

// LoadConfig reads a model directory's config.json and checks it describes an OCR model.
func LoadConfig(dir string) (*config.ModelConfig, error) {
	path := filepath.Join(dir, ConfigFile)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("ocr: %s is not a model directory (no %s): %w", dir, ConfigFile, err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if !cfg.HasImage() {
		return nil, fmt.Errorf("ocr: %s is a text-only model (no image_height in its config); OCR needs a model trained with --task ocr", dir)
	}
	if cfg.VocabSize < VocabSize {
		return nil, fmt.Errorf("ocr: %s has vocab_size %d, fewer than the OCR vocabulary's %d tokens", dir, cfg.VocabSize, VocabSize)
	}
	return cfg, nil
}

// Close releases the executors (the step graphs first: they borrow the prefill's buffers).
func (d *Decoder) Close() {
	if d.stripsExec != nil {
		d.stripsExec.Close()
	}
	for _, s := range d.steps {
		if s.ex != nil {
			s.ex.Close()
		}
	}
	if d.preExec != nil {
		d.preExec.Close()
	}
	if d.ownWS {
		d.ws.Close()
	}
}

// Read decodes up to Batch prepared lines (each (image_height, max_image_width) row-major,
// 1 = ink, as Line.Pixels) and returns their texts, after the repeat and leader checks when
// the decoder runs them (NewDecoder), and the time the batch took.
func (d *Decoder) Read(images [][]float32) ([]string, time.Duration, error) {
	texts, _, el, err := d.ReadConfidence(images)
	return texts, el, err
}

// ReadConfidence is Read that also gives each line's confidence: the geometric mean of the
// probabilities the model gave the tokens it chose (its characters and the EOS that ended it;
// softmax of the logits), in (0, 1]. Text that is not there (noise, a picture) reads with a low
// one; it is computed before the repeat and leader checks, which only remove or replace text.
func (d *Decoder) ReadConfidence(images [][]float32) ([]string, []float64, time.Duration, error) {
	start := time.Now()
	texts, strips, conf, err := d.read(images)
	if err != nil {
		return nil, nil, 0, err
	}
	if err := d.check(images, texts, strips); err != nil {
		return nil, nil, 0, err
	}
	return texts, conf, time.Since(start), nil
}

// check runs the repeat and leader checks (when the decoder runs them) on texts, the readings
// of images, in place: against strips, the prefill's strip predictions when it had every
// position's output, or when strips is nil against those lazyStrips runs for the lines that
// need them.
func (d *Decoder) check(images [][]float32, texts []string, strips [][]int) error {
	if !d.repeats {
		return nil
	}
	if strips == nil {
		var err error
		if strips, err = d.lazyStrips(images, texts); err != nil {
			return err
		}
	}
	for i := range texts {
		if strips[i] != nil {
			texts[i] = checkStrips(texts[i], stripText(strips[i]))
		}
	}
	return nil
}

// read is ReadConfidence without the repeat check: the greedy texts, when the prefill has
// every position's output (d.every) and d.repeats each line's prefill outputs at the image
// positions (the strip predictions, token ids; else nil), and each line's confidence.
func (d *Decoder) read(images [][]float32) ([]string, [][]int, []float64, error) {
	B := d.Batch
	if len(images) == 0 || len(images) > B {
		return nil, nil, nil, fmt.Errorf("ocr: a batch holds 1 to %d lines, got %d", B, len(images))
	}
	if d.pix == nil {
		d.pix = make([]float32, B*d.Config.ImageHeight*d.Config.MaxImageWidth)
	}
	next, prob, strips, err := d.prefillRun(d.prefill, d.preExec, d.pix, images, d.every, d.every && d.repeats, true)
	if err != nil {
		return nil, nil, nil, err
	}
	texts := make([][]int, B)
	logp := make([]float64, B) // Σ log p of each line's chosen tokens
	done := make([]bool, B)
	for b := len(images); b < B; b++ {
		done[b] = true // rows past the lines hold no image
	}
	pos := len(d.prompt)
	// slots[i] is the line in row i of the current step graph; rows past len(slots), and rows
	// of lines that ended, compute what nobody reads.
	slots := make([]int, B)
	for i := range slots {
		slots[i] = i
	}
	cur := 0
	for step := 0; ; step++ {
		var live []int // rows of the lines still decoding
		for i, b := range slots {
			id := next[i]
			if done[b] {
				continue
			}
			if len(texts[b]) == maxNew {
				done[b] = true
				continue
			}
			logp[b] += math.Log(max(prob[i], math.SmallestNonzeroFloat64))
			if id == EOS {
				done[b] = true
				continue
			}
			texts[b] = append(texts[b], id)
			live = append(live, i)
		}
		if len(live) == 0 || step >= maxNew {
			break
		}
		// The smallest step graph that holds the live lines.
		k := cur
		for k+1 < len(d.steps) && len(live) <= d.Batch>>(k+1) {
			k++
		}
		if k != cur {
			to, err := d.step(k, nil)
			if err != nil {
				return nil, nil, nil, err
			}
			if err := d.compact(d.steps[cur], to, live); err != nil {
				return nil, nil, nil, err
			}
			moved, ids, ps := make([]int, len(live)), make([]int, len(live)), make([]float64, len(live))
			for j, i := range live {
				moved[j], ids[j], ps[j] = slots[i], next[i], prob[i]
			}
			slots, next, prob, cur = moved, ids, ps, k
		}
		s := d.steps[cur]
		tokens := make([]int, s.m.Batch) // PAD in the rows past the lines
		copy(tokens, next)
		out, p, err := d.run(s.m, s.ex, tokens, pos, true)
		if err != nil {
			return nil, nil, nil, err
		}
		if err := d.countRouting(s.m, s.ex, pos, func(i, _ int) bool { return i < len(slots) && !done[slots[i]] }); err != nil {
			return nil, nil, nil, err
		}
		next, prob, pos = out, p, pos+1
	}
	res := make([]string, len(images))
	conf := make([]float64, len(images))
	for i := range res {
		res[i] = Decode(texts[i])
		// the EOS's probability too, when the line ended with one
		n := len(texts[i]) + 1
		if len(texts[i]) == maxNew {
			n--
		}
		conf[i] = math.Exp(logp[i] / float64(max(n, 1)))
	}
	return res, strips, conf, nil
}

// prefillRun feeds images (at most m.Batch; the rows past them blank) through prefill graph
// m, run by ex, whose pixel values are staged in pix (m.Batch planes), and returns each row's
// greedy token after the BOS and its probability. every says m has every position's output
// (else one a row, the BOS's); with strips (every only), it also returns each image's outputs
// at the image positions, the strip predictions. count says the routers' choices are counted
// (Routing).
func (d *Decoder) prefillRun(m *model.Model, ex *graph.GPU, pix []float32, images [][]float32, every, strips, count bool) ([]int, []float64, [][]int, error) {
	c := d.Config
	B := m.Batch
	plane := c.ImageHeight * c.MaxImageWidth
	for i, img := range images {
		if len(img) != plane {
			return nil, nil, nil, fmt.Errorf("ocr: line %d has %d pixels, want %d (%d×%d)", i, len(img), plane, c.ImageHeight, c.MaxImageWidth)
		}
		copy(pix[i*plane:], img)
	}
	clear(pix[len(images)*plane:]) // rows past the lines: blank
	// Only the prefill reads strips: the one-token steps feed text positions and have no
	// patch embedding (model.DecodeOptions.TextOnly). The pixels go to the GPU as they are
	// (f32), not through Executor.Set's f64.
	if err := ex.Buffer(m.PixelValues).Write(pix); err != nil {
		return nil, nil, nil, err
	}
	var next []int
	var prob []float64 // the probability of each row's next token
	img := c.ImageTokens()
	var rows [][]int // each row's outputs at the image positions
	if strips {
		rows = make([][]int, len(images))
		for b := range rows {
			rows[b] = make([]int, img)
		}
	}
	for pos := 0; pos < len(d.prompt); pos += d.chunk {
		tokens := make([]int, B*d.chunk) // PAD past the prompt
		for b := 0; b < B; b++ {
			copy(tokens[b*d.chunk:(b+1)*d.chunk], d.prompt[pos:])
		}
		last := pos+d.chunk >= len(d.prompt)
		out, p, err := d.run(m, ex, tokens, pos, last || strips)
		if err != nil {
			return nil, nil, nil, err
		}
		for b := range rows {
			for p := pos; p < min(pos+d.chunk, img); p++ {
				rows[b][p] = out[b*d.chunk+p-pos]
			}
		}
		if count {
			if err := d.countRouting(m, ex, pos, func(b, p int) bool { return b < len(images) && p < len(d.prompt) }); err != nil {
				return nil, nil, nil, err
			}
		}
		switch {
		case last && !every: // one output per line: the BOS's
			next, prob = out, p
		case last:
			row := len(d.prompt) - 1 - pos // the BOS
			next, prob = make([]int, B), make([]float64, B)
			for b := range next {
				next[b], prob[b] = out[b*d.chunk+row], p[b*d.chunk+row]
			}
		}
	}
	return next, prob, rows, nil
}

// stripRows is the rows of the prefill that lazyStrips runs (at most Batch; a variable, so
// tests can make a few lines take several submissions). A batch of 256 held-out lines has 5 or
// so that need strip predictions; on lavapipe 5 lines took 50 ms in a prefill of 8 rows, 90–100
// in one of 16, 54–70 in one of 4; 30 lines 172, 145 and 212 ms.
var stripRows = 8

// lazyStrips returns the strip predictions (the prefill's outputs at the image positions) of
// the lines among images whose texts the repeat or leader check could change
// (checksMayChange), and nil for the others. They come from a prefill with every position's
// output, stripRows lines a submission, built on first use over the decoder's parameters: few
// lines need them (about 2 % of the held-out lines), and a prefill that runs the last layer's
// FFN and the head at every position, not only at the BOS, costs about a fifth more.
func (d *Decoder) lazyStrips(images [][]float32, texts []string) ([][]int, error) {
	strips := make([][]int, len(texts))
	var need []int
	for i, t := range texts {
		if checksMayChange(t) {
			need = append(need, i)
		}
	}
	if len(need) == 0 {
		return strips, nil
	}
	if d.stripsExec == nil {
		_, _, _, preOpt, err := decodeSetup(d.dir, d.Config, d.f16, true)
		if err != nil {
			return nil, err
		}
		if d.stripsPre, err = model.BuildDecode(d.Config, min(stripRows, d.Batch), d.chunk, preOpt); err != nil {
			return nil, err
		}
		shared := graph.Buffers{}
		for name, b := range d.params {
			shared[name] = b
		}
		if d.stripsExec, err = newExec(d.stripsPre, d.dev, shared, d.ws); err != nil {
			return nil, err
		}
		d.stripsPix = make([]float32, d.stripsPre.Batch*d.Config.ImageHeight*d.Config.MaxImageWidth)
	}
	for k := 0; k < len(need); k += d.stripsPre.Batch {
		part := need[k:min(k+d.stripsPre.Batch, len(need))]
		imgs := make([][]float32, len(part))
		for j, i := range part {
			imgs[j] = images[i]
		}
		_, _, got, err := d.prefillRun(d.stripsPre, d.stripsExec, d.stripsPix, imgs, true, true, false)
		if err != nil {
			return nil, err
		}
		for j, i := range part {
			strips[i] = got[j]
		}
	}
	return strips, nil
}

// run feeds tokens (B rows of m.Seq) at positions pos… and, when read is set, returns the
// greedy next token after every fed position and its probability (m.NextProb).
func (d *Decoder) run(m *model.Model, ex graph.Executor, tokens []int, pos int, read bool) ([]int, []float64, error) {
	q, img := m.Seq, d.Config.ImageTokens()
	toks, poss, cols := make([]float64, len(tokens)), make([]float64, len(tokens)), make([]float64, len(tokens))
	for i, t := range tokens {
		p := pos + i%q
		toks[i], poss[i], cols[i] = float64(t), float64(p), float64(graph.NoPatch)
		if p < img {
			cols[i] = float64(p)
		}
	}
	for _, in := range []struct {
		t *graph.Tensor
		v []float64
	}{{m.Tokens, toks}, {m.Positions, poss}, {m.PatchCols, cols}, {m.CachePos, []float64{float64(pos)}}, {m.QueryPos, []float64{float64(pos + m.OutputPos)}}} {
		if in.t == nil {
			continue // a TextOnly step has no patch_cols, only a OneOutput prefill a query_pos
		}
		if err := ex.Set(in.t, in.v); err != nil {
			return nil, nil, err
		}
	}
	if err := ex.Run(); err != nil {
		return nil, nil, err
	}
	if !read {
		return nil, nil, nil
	}
	out, err := ex.Get(m.Next, m.NextProb)
	if err != nil {
		return nil, nil, err
	}
	ids := make([]int, len(out[0]))
	for i, v := range out[0] {
		ids[i] = int(v)
	}
	return ids, out[1], nil
}

// countRouting reads the routers' choices of the last submission when counting.
func (d *Decoder) countRouting(m *model.Model, ex graph.Executor, pos int, counted func(b, p int) bool) error {
	if d.Routing == nil {
		return nil
	}
	idx := make([]*graph.Tensor, len(m.MoE))
	for i, l := range m.MoE {
		idx[i] = l.Idx
	}
	out, err := ex.Get(idx...)
	if err != nil {
		return err
	}
	d.Routing.count(out, m.Batch, m.Seq, pos, d.Config.ImageTokens(), counted)
	return nil
}
