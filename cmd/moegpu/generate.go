package main

import (
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/runtime/generate"
	"github.com/moegpu/moegpu/runtime/ocr"
	"github.com/moegpu/moegpu/runtime/tasks"
	"github.com/moegpu/moegpu/runtime/textdata"
	"github.com/moegpu/moegpu/runtime/train"
)

// openGenerator loads a checkpoint's config and weights into a generator
// whose KV caches hold maxSeq positions: what the request needs (need
// says what that is, for the error when it is more than the model's
// max_position_embeddings), not what the config allows.
func openGenerator(dir, executor string, d *gpu.Device, maxSeq int, need string, f16 bool) (*generate.Generator, error) {
	_, cfg, err := train.LoadState(dir)
	if err != nil {
		return nil, err
	}
	if maxSeq > cfg.MaxPositionEmbeddings {
		return nil, fmt.Errorf("%s need %d positions, more than the checkpoint's max_position_embeddings (%d)", need, maxSeq, cfg.MaxPositionEmbeddings)
	}
	gen, err := generate.New(cfg, executor, d, generate.Options{MaxSeq: maxSeq, F16: f16})
	if err != nil {
		return nil, fmt.Errorf("building a generator whose KV caches hold %d positions (for %s): %w", maxSeq, need, err)
	}
	if err := gen.LoadWeights(filepath.Join(dir, train.WeightsFile)); err != nil {
		gen.Close()
		return nil, err
	}
	return gen, nil
}

func runGenerate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("generate", "generate --checkpoint DIR --prompt TEXT [flags]", stderr)
	dir := fs.String("checkpoint", "out/run", "checkpoint directory written by moegpu train")
	prompt := fs.String("prompt", "", "prompt text (the task alphabet: a-z, 0-9, '+', '=', ' ')")
	maxNew := fs.Int("max-tokens", 32, "most tokens to generate, ≥ 1 (stops earlier at end-of-sequence); the KV caches hold the prompt plus this many")
	temp := fs.Float64("temperature", 0, "sampling temperature, ≥ 0: 0 is greedy (argmax, ties to the lower token id); higher flattens the distribution")
	topP := fs.Float64("top-p", 1, "nucleus sampling, in [0, 1]: sample from the smallest set of top tokens with this much probability; 1 keeps every token, 0 is greedy")
	seed := fs.Uint64("seed", 1, "sampling seed (any value; unused when decoding is greedy)")
	f16 := fs.Bool("f16", false, "store the linear layers' weights in half precision (half the memory; f32 arithmetic)")
	speculative := fs.Bool("speculative", false, "decode with the model's MTP modules drafting tokens that one main forward verifies (greedy: exactly plain greedy's output; sampling: the rejection rule, distributed as plain sampling); also runs plain decoding on the prompt and reports acceptance per head, cost and speed-up")
	jsonPath := fs.String("json", "", "with --speculative: also write the report as JSON to this file")
	var rf runFlags
	rf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	defer rf.prof.start()()
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *speculative && (rf.executor != "gpu" || *f16) {
		return fmt.Errorf("--speculative runs on the gpu executor with f32 weights")
	}
	if *prompt == "" {
		return fmt.Errorf("--prompt is required")
	}
	if *maxNew < 1 {
		return fmt.Errorf("--max-tokens %d must be at least 1", *maxNew)
	}
	sampling := generate.Sampling{Temperature: *temp, TopP: *topP}
	if err := sampling.Validate(); err != nil {
		return fmt.Errorf("--%w", err)
	}
	toks, err := tasks.PromptTokens(*prompt)
	if err != nil {
		return err
	}
	d, err := rf.open()
	if err != nil {
		return err
	}
	defer d.Close()
	if *speculative {
		r, err := specCompare(*dir, d, [][]int{toks}, []int{*maxNew}, sampling, *seed)
		if err != nil {
			return err
		}
		r.print(stderr)
		if *jsonPath != "" {
			if err := r.writeJSON(*jsonPath); err != nil {
				return err
			}
		}
	}
	need := fmt.Sprintf("a prompt of %d tokens (with BOS and SEP) and --max-tokens %d", len(toks), *maxNew)
	gen, err := openGenerator(*dir, rf.executor, d, generate.PositionsNeeded(len(toks), *maxNew), need, *f16)
	if err != nil {
		return err
	}
	defer gen.Close()
	out, st, err := gen.Generate(toks, *maxNew, tasks.EOS, sampling, rand.New(rand.NewPCG(*seed, 0)))
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tasks.DecodeAnswer(out))
	fmt.Fprintf(stderr, "%d prompt + %d new tokens in %s: %.1f tokens/s\n", st.PromptTokens, st.NewTokens, st.Elapsed.Round(1e6), st.TokensPerSecond())
	return nil
}

func runEval(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval", "eval --checkpoint DIR --task NAME [flags]", stderr)
	dir := fs.String("checkpoint", "out/run", "checkpoint directory written by moegpu train, or a model directory such as the shipped assets/models/ocr-small")
	taskName := fs.String("task", "reverse", "task (default: the one the checkpoint was trained on): a synthetic one ("+strings.Join(tasks.Names(), ", ")+"), a text task ("+strings.Join(textdata.Names(), ", ")+": bits per character, or exact match by context length and depth), or "+ocr.TaskName+" (CER and exact lines on n lines rendered from the held-out validation fonts, every condition, as train's end-of-run check)")
	n := fs.Int("n", 200, "held-out examples, ≥ 1")
	seed := fs.Uint64("seed", 0, "held-out set seed (the evaluation stream, disjoint from training batches); train's end-of-run score uses the same default")
	f16 := fs.Bool("f16", false, "evaluate with the linear layers' weights in half precision")
	speculative := fs.Bool("speculative", false, "also decode the held-out prompts with MTP speculative decoding: check the outputs equal plain greedy decoding's and report acceptance per head, cost, break-even and speed-up")
	jsonPath := fs.String("json", "", "with --speculative: also write the report as JSON to this file")
	var rf runFlags
	rf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *n < 1 {
		return fmt.Errorf("--n %d must be at least 1", *n)
	}
	defer rf.prof.start()()
	// The checkpoint says what it was trained on: that is the default task, and a model without
	// MTP modules is refused --speculative before any work.
	if state, cfg, err := train.LoadState(*dir); err == nil {
		explicit := false
		fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "task" })
		switch {
		case state.Task == "" || state.Task == *taskName:
		case !explicit:
			*taskName = state.Task
		default:
			fmt.Fprintf(stderr, "note: %s was trained on task %s; scoring it on %s\n", *dir, state.Task, *taskName)
		}
		if *speculative && !cfg.HasMTP() {
			return fmt.Errorf("--speculative needs a model with MTP modules; %s has none (num_nextn_predict_layers 0)", *dir)
		}
	}
	if *taskName == ocr.TaskName {
		// The lines train's end-of-run check reads (n lines of the validation fonts, every
		// condition, from seed), so any OCR checkpoint or model directory can be scored on them.
		if *speculative {
			return fmt.Errorf("--speculative does not apply to --task ocr; compare decoders with moegpu ocr --speculative")
		}
		if rf.executor != "gpu" {
			return fmt.Errorf("--task ocr runs on the gpu executor")
		}
		d, err := rf.open()
		if err != nil {
			return err
		}
		defer d.Close()
		return evaluateOCR(*dir, *n, *seed, d, *f16, stdout)
	}
	if textdata.IsName(*taskName) {
		return evalText(*dir, *taskName, *n, *seed, rf, *f16 || *speculative, stdout)
	}
	task, err := tasks.ByName(*taskName)
	if err != nil {
		return fmt.Errorf("unknown task %q: eval scores a synthetic task (%s), a text task (%s) or %s", *taskName, strings.Join(tasks.Names(), ", "), strings.Join(textdata.Names(), ", "), ocr.TaskName)
	}
	d, err := rf.open()
	if err != nil {
		return err
	}
	defer d.Close()
	if err := evaluate(*dir, task, *n, *seed, rf.executor, d, *f16, stdout); err != nil || !*speculative {
		return err
	}
	if rf.executor != "gpu" {
		return fmt.Errorf("--speculative runs on the gpu executor")
	}
	var prompts [][]int
	var maxNew []int
	for _, ex := range task.EvalSet(*n, *seed) {
		p, err := tasks.PromptTokens(ex.Prompt)
		if err != nil {
			return err
		}
		prompts, maxNew = append(prompts, p), append(maxNew, len(ex.Answer)+2)
	}
	r, err := specCompare(*dir, d, prompts, maxNew, generate.Sampling{}, 0)
	if err != nil {
		return err
	}
	r.print(stdout)
	if *jsonPath != "" {
		return r.writeJSON(*jsonPath)
	}
	return nil
}

// evaluate prints a checkpoint's exact-match score on the held-out set
// (task, seed, n), naming that set so scores can be compared.
func evaluate(dir string, task *tasks.Task, n int, seed uint64, executor string, d *gpu.Device, f16 bool, stdout io.Writer) error {
	gen, err := openGenerator(dir, executor, d, task.MaxSeqLen(), fmt.Sprintf("task %s's longest examples", task.Name()), f16)
	if err != nil {
		return err
	}
	defer gen.Close()
	res, err := gen.Evaluate(task.EvalSet(n, seed), 5)
	if err != nil {
		return err
	}
	for _, ex := range res.Examples {
		mark := "✗"
		if ex.Predicted == ex.Answer {
			mark = "✓"
		}
		fmt.Fprintf(stdout, "  %s %-14q → %-14q (want %q)\n", mark, ex.Prompt, ex.Predicted, ex.Answer)
	}
	fmt.Fprintf(stdout, "exact match on %s (held-out set: seed %d, n %d): %d/%d = %.3f  (%.0f tokens/s decoding)\n",
		task.Name(), seed, n, res.Correct, res.Total, res.Accuracy(), res.Stats.TokensPerSecond())
	return nil
}
