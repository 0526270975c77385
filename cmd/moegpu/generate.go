package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/runtime/generate"
	"github.com/moegpu/moegpu/runtime/tasks"
	"github.com/moegpu/moegpu/runtime/train"
)

// openGenerator loads a checkpoint's config and weights into a generator.
func openGenerator(dir, executor string, d *gpu.Device, maxSeq int, f16 bool) (*generate.Generator, error) {
	_, cfg, err := train.LoadState(dir)
	if err != nil {
		return nil, err
	}
	if maxSeq <= 0 || maxSeq > cfg.MaxPositionEmbeddings {
		maxSeq = cfg.MaxPositionEmbeddings
	}
	gen, err := generate.New(cfg, executor, d, generate.Options{MaxSeq: maxSeq, F16: f16})
	if err != nil {
		return nil, err
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
	maxNew := fs.Int("max-tokens", 32, "most tokens to generate (stops earlier at end-of-sequence)")
	temp := fs.Float64("temperature", 0, "sampling temperature; 0 is greedy")
	topP := fs.Float64("top-p", 1, "nucleus sampling: keep the smallest set of tokens with this much probability")
	seed := fs.Uint64("seed", 1, "sampling seed")
	f16 := fs.Bool("f16", false, "store the linear layers' weights in half precision (half the memory; f32 arithmetic)")
	var rf runFlags
	rf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	defer rf.prof.start()()
	if *prompt == "" {
		return fmt.Errorf("--prompt is required")
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
	gen, err := openGenerator(*dir, rf.executor, d, 0, *f16)
	if err != nil {
		return err
	}
	defer gen.Close()
	out, st, err := gen.Generate(toks, *maxNew, tasks.EOS, generate.Sampling{Temperature: *temp, TopP: *topP}, rand.New(rand.NewPCG(*seed, 0)))
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tasks.DecodeAnswer(out))
	fmt.Fprintf(stderr, "%d prompt + %d new tokens in %s: %.1f tokens/s\n", st.PromptTokens, st.NewTokens, st.Elapsed.Round(1e6), st.TokensPerSecond())
	return nil
}

func runEval(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval", "eval --checkpoint DIR --task NAME [flags]", stderr)
	dir := fs.String("checkpoint", "out/run", "checkpoint directory written by moegpu train")
	taskName := fs.String("task", "reverse", "synthetic task: "+strings.Join(tasks.Names(), ", "))
	n := fs.Int("n", 200, "held-out examples")
	seed := fs.Uint64("seed", 0, "evaluation seed (held-out stream, disjoint from training batches)")
	f16 := fs.Bool("f16", false, "evaluate with the linear layers' weights in half precision")
	var rf runFlags
	rf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	defer rf.prof.start()()
	task, err := tasks.ByName(*taskName)
	if err != nil {
		return err
	}
	d, err := rf.open()
	if err != nil {
		return err
	}
	defer d.Close()
	return evaluate(*dir, task, *n, *seed, rf.executor, d, *f16, stdout)
}

func evaluate(dir string, task *tasks.Task, n int, seed uint64, executor string, d *gpu.Device, f16 bool, stdout io.Writer) error {
	gen, err := openGenerator(dir, executor, d, task.MaxSeqLen(), f16)
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
	fmt.Fprintf(stdout, "exact match on %s: %d/%d = %.3f  (%.0f tokens/s decoding)\n", task.Name(), res.Correct, res.Total, res.Accuracy(), res.Stats.TokensPerSecond())
	return nil
}
