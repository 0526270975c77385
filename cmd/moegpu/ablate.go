package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moegpu/moegpu/bench"
	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/runtime/ablate"
	"github.com/moegpu/moegpu/runtime/generate"
	"github.com/moegpu/moegpu/runtime/ocr"
	"github.com/moegpu/moegpu/runtime/score"
	"github.com/moegpu/moegpu/runtime/tasks"
	"github.com/moegpu/moegpu/runtime/textdata"
	"github.com/moegpu/moegpu/runtime/train"
)

// runAblate is moegpu ablate: run a spec's runs one after another (resumably), then write
// the report; "ablate report DIR" rewrites the report of what has finished.
func runAblate(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "report" {
		return runAblateReport(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "plot" {
		return runAblatePlot(args[1:], stdout, stderr)
	}
	fs := newFlags("ablate", "ablate --spec FILE [--out DIR] [--resume] [--estimate] [flags]\n       moegpu ablate report DIR\n       moegpu ablate plot --out FILE [PANEL/]NAME=DIR[,DIR…]…", stderr)
	specPath := fs.String("spec", "", "ablation spec (JSON; see assets/ablations and README)")
	out := fs.String("out", "", "output directory: plan.json, runs/RUN/seed-S/ (checkpoint, metrics, result.json), report.md, plots/ (default out/ablate/NAME)")
	resume := fs.Bool("resume", false, "continue the ablation in --out: finished runs are skipped, an interrupted one resumes from its checkpoint")
	estimate := fs.Bool("estimate", false, "instead of running: train each run's first seed for --estimate-steps steps (in --out/estimate), score it, and print how long the spec takes, with the estimate object to put in the spec")
	estSteps := fs.Int("estimate-steps", 12, "with --estimate: trial steps per run, ≥ 2")
	var rf runFlags
	rf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	defer rf.prof.start()()
	if *specPath == "" {
		return fmt.Errorf("--spec is required (the shipped specs are in assets/ablations)")
	}
	spec, err := ablate.LoadSpec(*specPath)
	if err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join("out", "ablate", spec.Name)
	}
	h := ablateHooks(rf, stderr)
	if *estimate {
		if *resume {
			return fmt.Errorf("--estimate and --resume do not go together")
		}
		runs, est, err := ablate.EstimateSpec(spec, *out, *estSteps, h, stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "| run | step ms | fixed s | scoring s | seeds × steps | minutes |\n|---|---:|---:|---:|---:|---:|\n")
		for _, r := range runs {
			fmt.Fprintf(stdout, "| %s | %.1f | %.0f | %.1f | %d × %d | %.1f |\n", r.Run, r.StepMs, r.FixedSeconds, r.EvalSeconds, r.Seeds, r.Steps, r.Minutes)
		}
		b, _ := json.MarshalIndent(map[string]any{"estimate": est}, "", "  ")
		fmt.Fprintf(stdout, "\nabout %.0f minutes in all; for the spec:\n%s\n", est.Minutes, b)
		return nil
	}
	start := time.Now()
	if _, err := ablate.Run(spec, *out, ablate.Options{Resume: *resume, Log: stderr, Hooks: h}); err != nil {
		return err
	}
	path, err := ablate.Report(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ablation %s done in %s; report: %s\n", spec.Name, time.Since(start).Round(time.Second), path)
	return nil
}

func runAblateReport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ablate report", "ablate report DIR", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("give the ablation's output directory: moegpu ablate report DIR")
	}
	path, err := ablate.Report(fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "report: %s\n", path)
	return nil
}

// runAblatePlot is moegpu ablate plot: overlay the training loss of runs made outside a spec
// (moegpu train directories), seeds averaged, one panel per PANEL prefix.
func runAblatePlot(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ablate plot", "ablate plot --out FILE [--title T] [PANEL/]NAME=DIR[,DIR…]…\n\n"+
		"Overlays the training loss (metrics.jsonl) of moegpu train run directories: each argument is\n"+
		"one line, NAME its legend, the directories its seeds (averaged step by step). Arguments\n"+
		"whose NAME starts with PANEL/ go into a panel titled PANEL, panels side by side; e.g.\n"+
		"  moegpu ablate plot --out parity.png sort/dense=runs/d1,runs/d2 sort/moe=runs/m1,runs/m2 add/dense=runs/da add/moe=runs/ma", stderr)
	out := fs.String("out", "", "PNG to write (required)")
	title := fs.String("title", "training loss", "title of the panel for arguments without a PANEL/ prefix")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("--out is required: the PNG to write")
	}
	panels, err := parsePlotSeries(fs.Args(), *title)
	if err != nil {
		return err
	}
	warnMixedSeries(panels, stderr)
	if err := ablate.PlotLoss(*out, panels); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return nil
}

// warnMixedSeries says so when one line averages runs that trained different tasks or for
// different step counts (as their checkpoints record): seeds of one setting are what a line
// is meant to average.
func warnMixedSeries(panels []ablate.Panel, stderr io.Writer) {
	for _, p := range panels {
		for _, s := range p.Series {
			seen := map[string]bool{}
			var kinds []string
			for _, d := range s.Dirs {
				st, _, err := train.LoadState(d)
				if err != nil {
					continue
				}
				k := fmt.Sprintf("%s, %d steps", st.Task, st.Step)
				if !seen[k] {
					seen[k] = true
					kinds = append(kinds, k)
				}
			}
			if len(kinds) > 1 {
				fmt.Fprintf(stderr, "note: line %s averages runs of different tasks or lengths (%s)\n", s.Name, strings.Join(kinds, "; "))
			}
		}
	}
}

// parsePlotSeries turns [PANEL/]NAME=DIR[,DIR…] arguments into panels, in the order their
// panels first appear.
func parsePlotSeries(args []string, title string) ([]ablate.Panel, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("give at least one NAME=DIR[,DIR…] (see moegpu ablate plot --help)")
	}
	var panels []ablate.Panel
	at := map[string]int{}
	for _, a := range args {
		name, dirs, ok := strings.Cut(a, "=")
		if !ok || name == "" || dirs == "" {
			return nil, fmt.Errorf("argument %q: want [PANEL/]NAME=DIR[,DIR…]", a)
		}
		panel := title
		if p, n, ok := strings.Cut(name, "/"); ok && p != "" && n != "" {
			panel, name = p, n
		}
		var ds []string
		for _, d := range strings.Split(dirs, ",") {
			if d == "" {
				return nil, fmt.Errorf("argument %q: an empty directory in the list", a)
			}
			ds = append(ds, d)
		}
		i, ok := at[panel]
		if !ok {
			i = len(panels)
			at[panel] = i
			panels = append(panels, ablate.Panel{Title: panel})
		}
		panels[i].Series = append(panels[i].Series, ablate.Series{Name: name, Dirs: ds})
	}
	return panels, nil
}

// ablateHooks trains with moegpu train's own code (checkpoints, resume, metrics, plots) and
// scores with the task's held-out metric, MTP speculative decoding and the FFN timing.
func ablateHooks(rf runFlags, log io.Writer) ablate.Hooks {
	return ablate.Hooks{
		Train: func(j ablate.Job) error {
			args := []string{"--config", filepath.Join(j.Dir, ablate.ConfigFile), "--task", j.Task, "--steps", strconv.Itoa(j.Steps),
				"--out", j.Dir, "--eval", "0", "--checkpoint-every", strconv.Itoa(max(10, j.Steps/10)), "--log-every", strconv.Itoa(max(1, j.Steps/10)),
				"--executor", rf.executor, "--backend", rf.dev.backend, "--adapter", rf.dev.adapter}
			if _, _, err := train.LoadState(j.Dir); err == nil {
				args = append(args, "--resume")
			}
			return runTrain(args, log, log)
		},
		Score: func(j ablate.Job, r *ablate.Result) error { return scoreJob(j, r, rf) },
	}
}

// scoreJob fills a result's held-out metric, MTP acceptance and FFN timing.
func scoreJob(j ablate.Job, r *ablate.Result, rf runFlags) error {
	d, err := rf.open()
	if err != nil {
		return err
	}
	defer d.Close()
	o := j.Eval
	var prompts [][]int
	var maxNew []int
	switch {
	case j.Task == ocr.TaskName:
		score, routing, _, err := scoreOCR(j.Dir, o.N, o.Seed, d, false)
		if err != nil {
			return err
		}
		r.Metric, r.Value, r.LowerIsBetter = "cer", score.CER(), true
		r.MetricNote = fmt.Sprintf("%d held-out lines (validation fonts, seed %d)", score.Lines, o.Seed)
		if routing != nil {
			r.ClassSkip = map[string]float64{"image": 0, "text": 0}
			for i := range routing.Layers {
				r.ClassSkip["image"] += routing.ImageSkipRate(i) / float64(len(routing.Layers))
				r.ClassSkip["text"] += routing.TextSkipRate(i) / float64(len(routing.Layers))
			}
		}
	case textdata.IsName(j.Task):
		t, _, err := textdata.Open(j.Task, "")
		if err != nil {
			return err
		}
		s, err := scoreText(j.Dir, t, textEvalOptions{N: o.N, Seed: o.Seed, Lengths: o.Lengths, Depths: o.Depths, SeqLen: o.SeqLen}, rf.executor, d)
		if err != nil {
			return err
		}
		if s.LM != nil {
			r.Metric, r.Value, r.LowerIsBetter = "bits_per_char", s.LM.BitsPerChar, true
			r.MetricNote = fmt.Sprintf("%d held-out windows of %d characters", s.Windows, s.SeqLen)
			r.ClassBPC = s.LM.ClassBPC
			r.ClassSkip = classSkips(s.LM.Routing)
			windows, err := t.(*textdata.LM).HeldOutWindows(max(o.MTPPrompts, 1), o.MTPPromptLen)
			if err != nil {
				return err
			}
			for _, w := range windows {
				prompts, maxNew = append(prompts, w[:o.MTPPromptLen]), append(maxNew, o.MTPTokens)
			}
		} else {
			r.Metric, r.Value = "exact_match", s.Long.Accuracy()
			r.MetricNote = fmt.Sprintf("%d held-out examples over %d (length, depth) cells", s.Long.Total, len(s.Long.Cells))
			for _, c := range s.Long.Cells {
				r.Cells = append(r.Cells, ablate.Cell{Length: c.Length, Depth: c.Depth, Correct: c.Correct, Total: c.Total})
			}
			r.ClassSkip = classSkips(s.Long.Routing)
			long := t.(*textdata.Long)
			exs, err := long.EvalSet([]int{long.MinLen}, []float64{0.5}, max(o.MTPPrompts, 1), o.Seed)
			if err != nil {
				return err
			}
			for _, ex := range exs {
				row, sep, err := textdata.Row(ex)
				if err != nil {
					return err
				}
				prompts, maxNew = append(prompts, row[:sep+1]), append(maxNew, len(row)-sep)
			}
		}
	default:
		task, err := tasks.ByName(j.Task)
		if err != nil {
			return err
		}
		gen, err := openGenerator(j.Dir, rf.executor, d, task.MaxSeqLen(), fmt.Sprintf("task %s's longest examples", task.Name()), false)
		if err != nil {
			return err
		}
		exs := task.EvalSet(o.N, o.Seed)
		res, err := gen.Evaluate(exs, 0)
		gen.Close()
		if err != nil {
			return err
		}
		r.Metric, r.Value = "exact_match", res.Accuracy()
		r.MetricNote = fmt.Sprintf("%d held-out examples (seed %d)", res.Total, o.Seed)
		for _, ex := range exs[:min(len(exs), max(o.MTPPrompts, 1))] {
			p, err := tasks.PromptTokens(ex.Prompt)
			if err != nil {
				return err
			}
			prompts, maxNew = append(prompts, p), append(maxNew, len(ex.Answer)+2)
		}
	}
	if j.Config.HasMTP() && o.MTPPrompts > 0 && len(prompts) > 0 && d != nil {
		if r.MTP, err = measureMTP(j.Dir, d, prompts, maxNew); err != nil {
			return fmt.Errorf("MTP speculative decoding: %w", err)
		}
	}
	if o.FFNMs > 0 && d != nil && j.Config.Training != nil {
		tokens := j.Config.Training.BatchSize * j.Config.Training.SeqLen
		ft, err := bench.FFNTime(d, j.Config, tokens, r.Train.SkipRate, time.Duration(o.FFNMs)*time.Millisecond)
		if err != nil {
			return err
		}
		r.FFN = &ablate.FFNResult{Ms: ft.Ms, CPUMs: ft.CPUMs, MoEMs: ft.MoEMs, DenseMs: ft.DenseMs, Skip: ft.Skip, Tokens: ft.Tokens}
	}
	return nil
}

// classSkips averages a routing count's per-class skip rates over the MoE layers.
func classSkips(rt *score.Routing) map[string]float64 {
	if rt == nil {
		return nil
	}
	out := map[string]float64{}
	for _, c := range textdata.Classes() {
		out[c] = rt.MeanRate(c)
	}
	return out
}

// measureMTP decodes the prompts plainly and speculatively (greedy) and keeps the
// acceptance per head.
func measureMTP(dir string, d *gpu.Device, prompts [][]int, maxNew []int) (*ablate.MTPResult, error) {
	rep, err := specCompare(dir, d, prompts, maxNew, generate.Sampling{}, 0)
	if err != nil {
		return nil, err
	}
	m := &ablate.MTPResult{Prompts: rep.Prompts, NewTokens: rep.NewTokens, Identical: rep.Identical, MeanAccepted: rep.MeanAccepted,
		MainPerToken: rep.MainPerToken, DecodeSpeedup: rep.Speedup}
	for _, h := range rep.Heads {
		m.Heads = append(m.Heads, ablate.MTPHead{Head: h.Head, Acceptance: h.Acceptance, Cumulative: h.Cumulative, Cost: h.Cost,
			BreakEven: h.BreakEven, SeedFigure: h.SeedFigure, NetPerRound: h.NetPerRound})
	}
	return m, nil
}
