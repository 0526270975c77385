package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/moegpu/moegpu/bench"
	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/internal/atomicfile"
	"github.com/moegpu/moegpu/runtime/generate"
	"github.com/moegpu/moegpu/runtime/tasks"
	"github.com/moegpu/moegpu/runtime/train"
)

// SpecReport is what `generate --speculative` and `eval --speculative`
// print and write as JSON: the speculative decoder against plain greedy
// decoding on the same prompts.
type SpecReport struct {
	Checkpoint string `json:"checkpoint"`
	Prompts    int    `json:"prompts"`
	Identical  bool   `json:"identical"` // greedy: every output equals plain greedy decoding's
	// Sampled: temperature/top-p sampling with the rejection rule; outputs
	// then follow the model's distribution rather than equal plain
	// decoding's draws.
	Sampled   bool    `json:"sampled"`
	Outputs   [][]int `json:"outputs"` // the speculative decoder's tokens per prompt
	NewTokens int     `json:"new_tokens"`
	// Rounds is the main forwards after the prefill (one verify each);
	// MainPerToken = Rounds / tokens generated after the first.
	Rounds       int     `json:"rounds"`
	MainPerToken float64 `json:"main_forwards_per_token"`
	MeanAccepted float64 `json:"mean_accepted_drafts"` // per round
	// Heads: per MTP module k (1-based), its conditional acceptance (given
	// drafts 1…k−1 accepted), the cumulative acceptance P_k (the share of
	// rounds whose draft k was used), its measured cost as a fraction of a
	// main forward, and the break-even figures.
	Heads []SpecHead `json:"heads"`
	// Decode-phase speed: new tokens after the first over the time after
	// the prefill (what speculation changes), and its ratio; then the same
	// end to end, prefill included.
	PlainTokensPerS float64 `json:"plain_decode_tokens_per_s"`
	SpecTokensPerS  float64 `json:"speculative_decode_tokens_per_s"`
	Speedup         float64 `json:"decode_speedup"`
	PlainEndToEnd   float64 `json:"plain_end_to_end_tokens_per_s"`
	SpecEndToEnd    float64 `json:"speculative_end_to_end_tokens_per_s"`
	EndToEndSpeedup float64 `json:"end_to_end_speedup"`
	// MainStepMs is the mean wall time of a plain one-token step, DraftMs
	// of a drafting submission (all D modules), VerifyMs of a verify
	// submission (D+1 positions).
	MainStepMs float64 `json:"main_step_ms"`
	DraftMs    float64 `json:"draft_ms"`
	VerifyMs   float64 `json:"verify_ms"`
	// Dispatches is the kernel launches of a plain step, a verify and a
	// drafting submission.
	Dispatches map[string]int `json:"dispatches"`
}

// SpecHead is one MTP module's line of the break-even table.
type SpecHead struct {
	Head        int     `json:"head"`
	Acceptance  float64 `json:"conditional_acceptance"`
	Cumulative  float64 `json:"cumulative_acceptance"`
	Cost        float64 `json:"cost_of_main_forward"` // this module's share of a drafting submission, in main one-token steps
	BreakEven   float64 `json:"break_even_cumulative"`
	SeedFigure  float64 `json:"seed_break_even"` // the design card's rule of thumb: cost / k
	NetPerRound float64 `json:"net_tokens_per_round"`
}

// specCompare decodes every prompt plainly and speculatively, checks the
// outputs are identical, and fills the report.
func specCompare(dir string, d *gpu.Device, prompts [][]int, maxNew []int, sp generate.Sampling, seed uint64) (*SpecReport, error) {
	_, cfg, err := train.LoadState(dir)
	if err != nil {
		return nil, err
	}
	longest := 0
	for i, p := range prompts {
		longest = max(longest, len(p)+maxNew[i])
	}
	D := cfg.NumNextNPredictLayers
	maxSeq := min(cfg.MaxPositionEmbeddings, longest+2*D+1)
	weightsPath := filepath.Join(dir, train.WeightsFile)
	plain, err := openGenerator(dir, "gpu", d, generate.PositionsNeeded(longest, 1), "the prompts", false)
	if err != nil {
		return nil, err
	}
	defer plain.Close()
	spec, err := generate.NewSpeculative(cfg, d, generate.Options{MaxSeq: maxSeq})
	if err != nil {
		return nil, err
	}
	defer spec.Close()
	if err := spec.LoadWeights(weightsPath); err != nil {
		return nil, err
	}
	r := &SpecReport{Checkpoint: dir, Prompts: len(prompts), Identical: sp.Greedy(), Sampled: !sp.Greedy(), Dispatches: spec.DispatchCounts()}
	rngPlain, rngSpec := rand.New(rand.NewPCG(seed, 1)), rand.New(rand.NewPCG(seed, 2))
	total := generate.SpecStats{Attempts: make([]int, D), Accepts: make([]int, D)}
	var plainTime, specTime, plainDecode, specDecode time.Duration
	var plainSteps int
	for i, p := range prompts {
		want, pst, err := plain.Generate(p, maxNew[i], tasks.EOS, sp, rngPlain)
		if err != nil {
			return nil, err
		}
		got, sst, err := spec.Generate(p, maxNew[i], tasks.EOS, sp, rngSpec)
		if err != nil {
			return nil, err
		}
		if sp.Greedy() && fmt.Sprint(want) != fmt.Sprint(got) {
			r.Identical = false
		}
		r.Outputs = append(r.Outputs, got)
		plainTime += pst.Elapsed
		specTime += sst.Elapsed
		plainDecode += pst.Elapsed - pst.Prefill
		specDecode += sst.Elapsed - sst.Prefill
		plainSteps += len(want) - 1
		r.NewTokens += len(got)
		total.Rounds += sst.Rounds
		total.VerifyTime += sst.VerifyTime
		total.DraftTime += sst.DraftTime
		for k := range total.Attempts {
			total.Attempts[k] += sst.Attempts[k]
			total.Accepts[k] += sst.Accepts[k]
		}
	}
	r.Rounds = total.Rounds
	if after := r.NewTokens - len(prompts); after > 0 {
		r.MainPerToken = float64(total.Rounds) / float64(after)
	}
	r.MeanAccepted = total.MeanAccepted()
	r.PlainEndToEnd = float64(r.NewTokens) / plainTime.Seconds()
	r.SpecEndToEnd = float64(r.NewTokens) / specTime.Seconds()
	r.EndToEndSpeedup = r.SpecEndToEnd / r.PlainEndToEnd
	if decoded := r.NewTokens - len(prompts); decoded > 0 {
		r.PlainTokensPerS = float64(decoded) / plainDecode.Seconds()
		r.SpecTokensPerS = float64(decoded) / specDecode.Seconds()
		r.Speedup = r.SpecTokensPerS / r.PlainTokensPerS
	}
	// A plain one-token step's time, measured on its own.
	step, err := timeSteps(plain, 20)
	if err != nil {
		return nil, err
	}
	r.MainStepMs = step * 1e3
	if total.Rounds > 0 {
		r.VerifyMs = total.VerifyTime.Seconds() * 1e3 / float64(total.Rounds)
		r.DraftMs = total.DraftTime.Seconds() * 1e3 / float64(total.Rounds)
	}
	cum := 1.0
	for k := 0; k < D; k++ {
		h := SpecHead{Head: k + 1, Acceptance: total.Acceptance(k)}
		cum *= h.Acceptance
		h.Cumulative = cum
		if r.MainStepMs > 0 {
			h.Cost = r.DraftMs / float64(D) / r.MainStepMs
		}
		h.BreakEven = h.Cost
		h.SeedFigure = h.Cost / float64(k+1)
		h.NetPerRound = h.Cumulative - h.Cost
		r.Heads = append(r.Heads, h)
	}
	return r, nil
}

// timeSteps times n plain one-token decode steps and returns seconds per step.
func timeSteps(g *generate.Generator, n int) (float64, error) {
	if _, err := g.Step(tasks.BOS, 0); err != nil { // warm-up
		return 0, err
	}
	t0 := time.Now()
	for i := 0; i < n; i++ {
		if _, err := g.Step(tasks.BOS, i%max(1, g.MaxSeq)); err != nil {
			return 0, err
		}
	}
	return time.Since(t0).Seconds() / float64(n), nil
}

// print writes the report for people.
func (r *SpecReport) print(w io.Writer) {
	same := "identical to plain greedy decoding"
	switch {
	case r.Sampled:
		same = "sampled with the rejection rule (distributed as plain sampling)"
	case !r.Identical:
		same = "DIFFERENT from plain greedy decoding (a defect)"
	}
	fmt.Fprintf(w, "speculative decoding on %d prompts: %d new tokens, output %s\n", r.Prompts, r.NewTokens, same)
	fmt.Fprintf(w, "decode tokens/s (after the prefill): %.1f speculative vs %.1f plain (%.2f×); end to end %.1f vs %.1f (%.2f×)\n",
		r.SpecTokensPerS, r.PlainTokensPerS, r.Speedup, r.SpecEndToEnd, r.PlainEndToEnd, r.EndToEndSpeedup)
	fmt.Fprintf(w, "main forwards per token %.2f; mean accepted drafts per round %.2f\n", r.MainPerToken, r.MeanAccepted)
	fmt.Fprintf(w, "times: plain step %.2f ms (%d kernels), verify %.2f ms (%d), drafting, all heads, %.2f ms (%d)\n",
		r.MainStepMs, r.Dispatches["step"], r.VerifyMs, r.Dispatches["verify"], r.DraftMs, r.Dispatches["draft"])
	fmt.Fprintln(w, "| head | conditional acceptance | cumulative P_k | cost (main forwards) | break-even P_k | seed's rule (cost/k) | net tokens/round |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|")
	for _, h := range r.Heads {
		fmt.Fprintf(w, "| %d | %.3f | %.3f | %.3f | %.3f | %.3f | %+.3f |\n", h.Head, h.Acceptance, h.Cumulative, h.Cost, h.BreakEven, h.SeedFigure, h.NetPerRound)
	}
}

// writeJSON writes the report atomically.
func (r *SpecReport) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'))
}

// runBenchSpeculative is `moegpu bench speculative`: MTP speculative
// decoding against plain decoding on a trained checkpoint's held-out
// prompts, as rows in the kernel bench's JSON report (tokens/s of each, the
// speed-up in the note).
func runBenchSpeculative(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench speculative", "bench speculative --checkpoint DIR --task NAME [--n 50] [--json FILE]", stderr)
	dir := fs.String("checkpoint", "", "checkpoint directory of a model with MTP modules")
	taskName := fs.String("task", "reverse", "task whose held-out prompts are decoded: "+fmt.Sprint(tasks.Names()))
	n := fs.Int("n", 50, "held-out prompts, ≥ 1")
	jsonPath := fs.String("json", "", "also write the rows as JSON (the bench kernels report format) to this file")
	var dev deviceFlags
	addDeviceFlags(fs, &dev)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *n < 1 {
		return fmt.Errorf("--checkpoint is required and --n must be at least 1")
	}
	task, err := tasks.ByName(*taskName)
	if err != nil {
		return err
	}
	d, err := dev.open()
	if err != nil {
		return err
	}
	defer d.Close()
	var prompts [][]int
	var maxNew []int
	for _, ex := range task.EvalSet(*n, 0) {
		p, err := tasks.PromptTokens(ex.Prompt)
		if err != nil {
			return err
		}
		prompts, maxNew = append(prompts, p), append(maxNew, len(ex.Answer)+2)
	}
	fmt.Fprintf(stderr, "decoding %d held-out %s prompts plainly and speculatively on %s …\n", *n, task.Name(), d.Info.Label())
	r, err := specCompare(*dir, d, prompts, maxNew, generate.Sampling{}, 0)
	if err != nil {
		return err
	}
	r.print(stdout)
	rep := &bench.Report{Adapter: bench.Adapter{Name: d.Info.Name, Backend: string(d.Info.Backend), DeviceType: d.Info.DeviceType, Driver: d.Info.Driver},
		Date: time.Now().UTC()}
	shape := fmt.Sprintf("%s, %d prompts, D=%d", task.Name(), *n, len(r.Heads))
	rep.Kernels = []bench.Kernel{
		{Name: "decode_plain", Shape: shape, Variant: "greedy, one token per submission (ms per token after the prefill)", Ms: 1e3 / r.PlainTokensPerS},
		{Name: "decode_speculative", Shape: shape, Variant: fmt.Sprintf("greedy MTP drafts, mean %.2f accepted (ms per token after the prefill)", r.MeanAccepted),
			Ms: 1e3 / r.SpecTokensPerS, Note: fmt.Sprintf("%.2f× plain decoding's tokens/s (end to end %.2f×)", r.Speedup, r.EndToEndSpeedup)},
	}
	if *jsonPath != "" {
		return rep.WriteJSON(*jsonPath)
	}
	return nil
}
