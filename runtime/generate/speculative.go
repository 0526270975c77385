package generate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/model"
	"github.com/moegpu/moegpu/runtime/weights"
)

// Speculative decodes greedily with the model's MTP modules as drafters
// (DeepSeek-V3 §5.4.3; MiMo-V2-Flash §5). Each round is two submissions:
//
//  1. verify: the main model reads the last committed token and the D
//     drafts (D+1 positions) against its KV cache and returns, on the GPU,
//     its greedy token at each; drafts are accepted while they equal it,
//     and the main model's token after the last accepted draft is
//     committed too (the correction, or the bonus when all are accepted).
//     Cache entries past the first rejection are rolled back by moving the
//     write position back: the next round overwrites them.
//  2. draft: the MTP chain runs over a window of 2D positions that starts
//     at the first position whose module caches held a rejected draft, so
//     the modules' caches roll back too, and drafts D new tokens from the
//     last position the main model has processed.
//
// The output is identical to plain greedy decoding, token for token: every
// committed token is the main model's argmax given the committed prefix.
type Speculative struct {
	verify   *model.Model
	verifyEx graph.Executor
	mtp      *model.MTPDecoder // drafting window of 2D positions
	mtpEx    graph.Executor
	mtpPre   *model.MTPDecoder // chunk positions: the modules' caches over a prompt
	mtpPreEx graph.Executor
	prefill  *model.Model // the generator's prefill graph, with history and argmax
	preEx    graph.Executor
	step     *model.Model // one token, with history and argmax (prompts shorter than a chunk)
	stepEx   graph.Executor
	D, Q     int
	maxSeq   int

	// Sampling: a verify step whose drafts are checked by the rejection
	// rule (graph.SpecSample), compiled on first use for one setting.
	cfg       *config.ModelConfig
	dev       *gpu.Device
	dopt      model.DecodeOptions
	shared    graph.Buffers
	sampleFor Sampling
	pixels    []float32 // the image of an image model (SetImage), for steps compiled later
	sampleEx  graph.Executor
	sampleM   *model.Model
	sampleIn  [2]*graph.Tensor // drafts (D) u32, uniforms (1, 2(D+1)) f32
	sampleOut *graph.Tensor    // (1, 2) u32: accepted drafts, final token

	promptNext []int // the greedy token after each prompt position of the last Generate
}

// PromptNext is the main model's greedy (argmax) next token after each position of the last
// Generate's prompt, len(prompt) of them: the prefill's outputs, which an image model trained
// with an alignment loss spends on its image tokens (ocr's strip predictions). Nil before the
// first Generate.
func (s *Speculative) PromptNext() []int { return s.promptNext }

// SpecStats reports a speculative generation.
type SpecStats struct {
	Stats
	Rounds int // verify submissions (main forwards) after the prefill
	// Attempts[k] and Accepts[k] count head k+1's drafts that were checked
	// (every earlier draft of the round accepted) and accepted.
	Attempts, Accepts []int
	// VerifyTime and DraftTime are the wall time spent in the verify and
	// drafting submissions of the rounds (including their readbacks);
	// PrefillTime the prompt's main and MTP prefill.
	VerifyTime, DraftTime, PrefillTime time.Duration
}

// Acceptance is head k's (0-based) conditional acceptance rate.
func (s SpecStats) Acceptance(k int) float64 {
	if s.Attempts[k] == 0 {
		return 0
	}
	return float64(s.Accepts[k]) / float64(s.Attempts[k])
}

// MeanAccepted is the mean number of drafts accepted per round.
func (s SpecStats) MeanAccepted() float64 {
	n := 0
	for _, a := range s.Accepts {
		n += a
	}
	if s.Rounds == 0 {
		return 0
	}
	return float64(n) / float64(s.Rounds)
}

// NewSpeculative compiles the verify and drafting steps next to a GPU
// generator (sharing its weights and caches). The generator's MaxSeq must
// leave room for the drafts: prompt + new tokens + 2·D positions.
func NewSpeculative(cfg *config.ModelConfig, dev *gpu.Device, opt Options) (*Speculative, error) {
	if !cfg.HasMTP() {
		return nil, fmt.Errorf("generate: --speculative needs a model with MTP modules (num_nextn_predict_layers > 0)")
	}
	if dev == nil {
		return nil, fmt.Errorf("generate: speculative decoding runs on the gpu executor")
	}
	D := cfg.NumNextNPredictLayers
	Q := 2 * D
	chunk := PrefillChunkFor(cfg)
	if opt.MaxSeq < chunk {
		opt.MaxSeq = min(chunk, cfg.MaxPositionEmbeddings)
	}
	if opt.MaxSeq > cfg.MaxPositionEmbeddings || opt.MaxSeq < Q+1 {
		return nil, fmt.Errorf("generate: speculative decoding needs %d to %d positions, asked for %d", Q+1, cfg.MaxPositionEmbeddings, opt.MaxSeq)
	}
	dopt := model.DecodeOptions{MaxSeq: opt.MaxSeq, MaxChunk: chunk, F16Weights: opt.F16, HiddenHistory: true, Argmax: true}
	align := uint64(dev.Limits.MinStorageBufferOffsetAlignment)
	shared := graph.Buffers{}
	s := &Speculative{D: D, Q: Q, maxSeq: opt.MaxSeq, cfg: cfg, dev: dev, dopt: dopt, shared: shared}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	build := func(qlen int) (*model.Model, graph.Executor, error) {
		m, err := model.BuildDecode(cfg, 1, qlen, dopt)
		if err != nil {
			return nil, nil, err
		}
		plan, err := m.Graph.Plan([]*graph.Tensor{m.Next, m.NextLogit, m.Logits}, align)
		if err != nil {
			return nil, nil, err
		}
		ex, err := graph.NewGPU(dev, plan, shared)
		return m, ex, err
	}
	var err error
	if s.step, s.stepEx, err = build(1); err != nil {
		return nil, err
	}
	if s.prefill, s.preEx, err = build(chunk); err != nil {
		return nil, err
	}
	if s.verify, s.verifyEx, err = build(D + 1); err != nil {
		return nil, err
	}
	if s.mtp, err = model.BuildMTPDecode(cfg, Q, dopt); err != nil {
		return nil, err
	}
	plan, err := s.mtp.Graph.Plan(s.mtp.Drafts, align)
	if err != nil {
		return nil, err
	}
	if s.mtpEx, err = graph.NewGPU(dev, plan, shared); err != nil {
		return nil, err
	}
	if s.mtpPre, err = model.BuildMTPDecode(cfg, chunk, dopt); err != nil {
		return nil, err
	}
	if plan, err = s.mtpPre.Graph.Plan(s.mtpPre.Drafts, align); err != nil {
		return nil, err
	}
	if s.mtpPreEx, err = graph.NewGPU(dev, plan, shared); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// Close releases the executors (the one that created shared buffers last).
func (s *Speculative) Close() {
	for _, ex := range []graph.Executor{s.sampleEx, s.mtpPreEx, s.mtpEx, s.verifyEx, s.preEx, s.stepEx} {
		if ex != nil {
			ex.Close()
		}
	}
}

// LoadWeights reads the main model's and the MTP modules' weights from a
// checkpoint's model.safetensors.
func (s *Speculative) LoadWeights(path string) error {
	main := append(s.step.Params(), s.step.State()...)
	inMain := map[string]bool{}
	for _, t := range main {
		inMain[t.Name] = true
	}
	isMTP := func(name string) bool { return !inMain[name] }
	if err := weights.LoadIgnoring(s.stepEx, path, main, isMTP); err != nil {
		return err
	}
	mtp := s.mtp.Graph.Params()
	inMTP := map[string]bool{}
	for _, t := range mtp {
		inMTP[t.Name] = true
	}
	return weights.LoadIgnoring(s.mtpEx, path, mtp, func(name string) bool { return !inMTP[name] })
}

// verifySampled runs the sampling verify step on chunk (the last committed
// token and the drafts) at pos and returns the accepted drafts and the
// final token.
func (s *Speculative) verifySampled(chunk []int, pos int, rng *rand.Rand) (int, int, error) {
	m := s.sampleM
	toks, poss := make([]float64, len(chunk)), make([]float64, len(chunk))
	for i, t := range chunk {
		toks[i], poss[i] = float64(t), float64(pos+i)
	}
	uni := make([]float64, 2*(s.D+1))
	for i := range uni {
		uni[i] = float64(float32(rng.Float64()))
		if uni[i] >= 1 {
			uni[i] = math.Nextafter(1, 0)
		}
	}
	set := map[*graph.Tensor][]float64{m.Tokens: toks, m.Positions: poss, m.CachePos: {float64(pos)},
		s.sampleIn[0]: toks[1:], s.sampleIn[1]: uni}
	if m.PatchCols != nil {
		set[m.PatchCols] = patchCols(m, pos)
	}
	out, err := run(s.sampleEx, set, s.sampleOut)
	if err != nil {
		return 0, 0, err
	}
	return int(out[0][0]), int(out[0][1]), nil
}

// run sets inputs, runs ex and reads outs.
func run(ex graph.Executor, set map[*graph.Tensor][]float64, outs ...*graph.Tensor) ([][]float64, error) {
	for t, v := range set {
		if err := ex.Set(t, v); err != nil {
			return nil, err
		}
	}
	if err := ex.Run(); err != nil {
		return nil, err
	}
	return ex.Get(outs...)
}

// feedMain runs a main step (1, PrefillChunk or D+1 tokens) at pos and
// returns the greedy token after each fed position.
func (s *Speculative) feedMain(m *model.Model, ex graph.Executor, tokens []int, pos int) ([]int, error) {
	n := m.Seq
	if pos+n > s.maxSeq {
		return nil, fmt.Errorf("generate: position %d is past the %d positions this generator holds", pos+n-1, s.maxSeq)
	}
	toks, poss := make([]float64, n), make([]float64, n)
	for i := range toks {
		if i < len(tokens) {
			toks[i] = float64(tokens[i])
		}
		poss[i] = float64(pos + i)
	}
	set := map[*graph.Tensor][]float64{m.Tokens: toks, m.Positions: poss, m.CachePos: {float64(pos)}}
	if m.PatchCols != nil {
		set[m.PatchCols] = patchCols(m, pos)
	}
	out, err := run(ex, set, m.Next, m.NextLogit)
	if err != nil {
		return nil, err
	}
	next := make([]int, len(tokens))
	for i := range next {
		if v := out[1][i]; math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("generate: the logits after position %d are not finite: the forward pass overflowed or a weight is not finite", pos+i)
		}
		next[i] = int(out[0][i])
	}
	return next, nil
}

// draft runs the MTP chain (window mtp, executor ex) over the window
// starting at start (clamped to 0) with ctx the committed tokens, drafting
// from position at, and returns the D drafts.
func (s *Speculative) draft(mtp *model.MTPDecoder, ex graph.Executor, ctx []int, start, at int) ([]int, error) {
	q := mtp.Q
	start = max(0, start)
	if start+q > s.maxSeq {
		start = max(0, s.maxSeq-q)
	}
	set := map[*graph.Tensor][]float64{mtp.Start: {float64(start)}, mtp.At: {float64(at - start)}}
	pos := make([]float64, q)
	for j := range pos {
		pos[j] = float64(start + j)
	}
	set[mtp.Positions] = pos
	for k := 1; k <= s.D; k++ {
		t := make([]float64, q)
		for j := range t {
			if i := start + j + k; i < len(ctx) {
				t[j] = float64(ctx[i])
			}
		}
		set[mtp.Tokens[k-1]] = t
	}
	out, err := run(ex, set, mtp.Drafts...)
	if err != nil {
		return nil, err
	}
	d := make([]int, s.D)
	for k := range d {
		d[k] = int(out[k][0])
	}
	return d, nil
}

// sampler compiles the sampling verify step for sp (once per setting).
func (s *Speculative) sampler(sp Sampling) error {
	if s.sampleEx != nil && s.sampleFor == sp {
		return nil
	}
	if s.sampleEx != nil {
		s.sampleEx.Close()
		s.sampleEx = nil
	}
	m, err := model.BuildDecode(s.cfg, 1, s.D+1, model.DecodeOptions{MaxSeq: s.dopt.MaxSeq, MaxChunk: s.dopt.MaxChunk,
		F16Weights: s.dopt.F16Weights, HiddenHistory: true})
	if err != nil {
		return err
	}
	g := m.Graph
	drafts := g.Input("spec.drafts", graph.U32(s.D))
	uni := g.Input("spec.uniforms", graph.F32(1, 2*(s.D+1)))
	out := g.Apply1(graph.SpecSample{Temperature: float32(sp.Temperature), TopP: float32(min(sp.TopP, 1))}, m.Logits, drafts, uni)
	if err := g.Err(); err != nil {
		return err
	}
	plan, err := g.Plan([]*graph.Tensor{out}, uint64(s.dev.Limits.MinStorageBufferOffsetAlignment))
	if err != nil {
		return err
	}
	ex, err := graph.NewGPU(s.dev, plan, s.shared)
	if err != nil {
		return err
	}
	s.sampleEx, s.sampleM, s.sampleFor, s.sampleIn, s.sampleOut = ex, m, sp, [2]*graph.Tensor{drafts, uni}, out
	if s.pixels != nil {
		return setImage(m, s.pixels, map[*model.Model]graph.Executor{m: ex})
	}
	return nil
}

// Generate continues prompt by up to maxNew tokens (stopping after stop).
// Greedy (the zero Sampling), the output is exactly Generator.Generate's
// greedy output. With sampling, drafts are verified by the rejection rule
// on the GPU (graph.SpecSample), so the output is distributed as plain
// sampling's (not the same draws); the first token after the prompt is
// sampled on the host from the prefill's logits, with Pick. rng supplies
// the uniforms.
func (s *Speculative) Generate(prompt []int, maxNew, stop int, sp Sampling, rng *rand.Rand) ([]int, SpecStats, error) {
	start := time.Now()
	st := SpecStats{Attempts: make([]int, s.D), Accepts: make([]int, s.D)}
	if len(prompt) == 0 || maxNew < 1 {
		return nil, st, fmt.Errorf("generate: want a prompt and at least one new token")
	}
	if need := len(prompt) + maxNew + s.Q; need > s.maxSeq {
		return nil, st, fmt.Errorf("generate: a prompt of %d tokens and %d new tokens need %d positions with speculative decoding; this generator holds %d",
			len(prompt), maxNew, need, s.maxSeq)
	}
	for _, t := range prompt {
		if t < 0 || t >= s.step.Config.VocabSize {
			return nil, st, fmt.Errorf("generate: token %d outside the vocabulary (%d)", t, s.step.Config.VocabSize)
		}
	}
	// Prefill: whole chunks, then single tokens; the last gives t_P.
	var next []int
	var err error
	pos := 0
	n := s.prefill.Seq // PrefillChunkFor the model
	s.promptNext = s.promptNext[:0]
	for ; pos+n <= len(prompt); pos += n {
		if next, err = s.feedMain(s.prefill, s.preEx, prompt[pos:pos+n], pos); err != nil {
			return nil, st, err
		}
		s.promptNext = append(s.promptNext, next...)
	}
	lastRow, lastM, lastEx := 0, s.prefill, s.preEx
	if rest := len(prompt) - pos; rest >= 2 && pos+n <= s.maxSeq {
		// The rest as one padded chunk (see Generator.Prefill).
		chunk := make([]int, n)
		copy(chunk, prompt[pos:])
		if next, err = s.feedMain(s.prefill, s.preEx, chunk, pos); err != nil {
			return nil, st, err
		}
		next, lastRow = next[:rest], rest-1
		s.promptNext = append(s.promptNext, next...)
		pos = len(prompt)
	} else if pos == len(prompt) {
		lastRow = n - 1
	}
	for ; pos < len(prompt); pos++ {
		if next, err = s.feedMain(s.step, s.stepEx, prompt[pos:pos+1], pos); err != nil {
			return nil, st, err
		}
		s.promptNext = append(s.promptNext, next...)
		lastRow, lastM, lastEx = 0, s.step, s.stepEx
	}
	first := next[len(next)-1]
	if !sp.Greedy() {
		if err := sp.Validate(); err != nil {
			return nil, st, fmt.Errorf("generate: %w", err)
		}
		if err := s.sampler(sp); err != nil {
			return nil, st, err
		}
		lg, err := lastEx.Get(lastM.Logits)
		if err != nil {
			return nil, st, err
		}
		V := s.cfg.VocabSize
		row := lg[0][lastRow*V : (lastRow+1)*V]
		if err := checkLogits(row, len(prompt)-1); err != nil {
			return nil, st, err
		}
		first = Pick(row, sp, rng)
	}
	ctx := append([]int(nil), prompt...)
	ctx = append(ctx, first)
	var t0 time.Time
	out := []int{ctx[len(ctx)-1]}
	done := func() bool { return len(out) >= maxNew || out[len(out)-1] == stop }
	if done() {
		st.Stats = Stats{PromptTokens: len(prompt), NewTokens: len(out), Elapsed: time.Since(start), Prefill: time.Since(start)}
		return out, st, nil
	}
	// The modules' caches over the prompt, in chunk-sized windows; the
	// last one ends at the drafting position, so it writes nothing past it
	// (a sliding layer's ring would lose keys the next window needs).
	at := len(ctx) - 2
	q := s.mtpPre.Q
	w := 0
	for ; w+q-1 < at; w += q {
		if _, err := s.draft(s.mtpPre, s.mtpPreEx, ctx, w, w); err != nil {
			return nil, st, err
		}
	}
	drafts, err := s.draft(s.mtpPre, s.mtpPreEx, ctx, max(0, at-q+1), at)
	if err != nil {
		return nil, st, err
	}
	st.PrefillTime = time.Since(start)
	st.Prefill = st.PrefillTime
	for !done() {
		n := len(ctx)
		chunk := append([]int{ctx[n-1]}, drafts...)
		t0 = time.Now()
		var m, final int
		if sp.Greedy() {
			a, err := s.feedMain(s.verify, s.verifyEx, chunk, n-1)
			if err != nil {
				return nil, st, err
			}
			for m < s.D && drafts[m] == a[m] {
				m++
			}
			final = a[m]
		} else if m, final, err = s.verifySampled(chunk, n-1, rng); err != nil {
			return nil, st, err
		}
		st.VerifyTime += time.Since(t0)
		st.Rounds++
		for k := 0; k <= min(m, s.D-1); k++ {
			st.Attempts[k]++
			if k < m {
				st.Accepts[k]++
			}
		}
		for _, t := range append(drafts[:m:m], final) {
			if done() {
				break
			}
			ctx = append(ctx, t)
			out = append(out, t)
		}
		if done() {
			break
		}
		// Window: from the first position a module cache may hold a
		// rejected draft (n−D) to the last position the main model has
		// processed (len(ctx)−2), which drafts.
		t0 = time.Now()
		if drafts, err = s.draft(s.mtp, s.mtpEx, ctx, n-s.D, len(ctx)-2); err != nil {
			return nil, st, err
		}
		st.DraftTime += time.Since(t0)
	}
	st.Stats = Stats{PromptTokens: len(prompt), NewTokens: len(out), Elapsed: time.Since(start), Prefill: st.PrefillTime}
	return out, st, nil
}

// DispatchCounts is the kernel launches of each submission kind: "step"
// (one plain token), "verify" (D+1 positions) and "draft" (the MTP chain).
func (s *Speculative) DispatchCounts() map[string]int {
	out := map[string]int{}
	for name, ex := range map[string]graph.Executor{"step": s.stepEx, "verify": s.verifyEx, "draft": s.mtpEx} {
		if g, ok := ex.(*graph.GPU); ok {
			out[name] = g.Dispatches()
		}
	}
	return out
}
