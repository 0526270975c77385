package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/moegpu/moegpu/assets"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/metrics"
	"github.com/moegpu/moegpu/runtime/ocr"
	"github.com/moegpu/moegpu/runtime/ocrdata"
	"github.com/moegpu/moegpu/runtime/tasks"
	"github.com/moegpu/moegpu/runtime/textdata"
	"github.com/moegpu/moegpu/runtime/train"
)

func addDeviceFlags(fs *flag.FlagSet, d *deviceFlags) {
	fs.StringVar(&d.backend, "backend", "auto", "vulkan, metal, dx12, gl or auto")
	fs.StringVar(&d.adapter, "adapter", "", "adapter index or name substring (see moegpu info)")
}

func runTrain(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("train", "train --config FILE --task NAME --steps N --out DIR [flags]", stderr)
	cfgPath := fs.String("config", "tiny-dense", "model config: a JSON file (Hugging Face config.json field names; see README) or a shipped config name: "+strings.Join(assets.Configs(), ", "))
	taskName := fs.String("task", "reverse", "task: a synthetic one ("+strings.Join(tasks.Names(), ", ")+"), ocr (printed text lines rendered on the fly; needs an image model such as ocr-small), or a text task with a 100-token vocabulary ("+strings.Join(textdata.Names(), ", ")+": see README)")
	steps := fs.Int("steps", 2000, "optimizer steps to train to, ≥ 1 (a resumed run continues up to this step; one already there is left alone)")
	out := fs.String("out", "out/run", "output directory: metrics.jsonl, loss.png and the checkpoint")
	seed := fs.Int64("seed", -1, "random seed for initialisation and batches, ≥ 0 (-1: the config's training.seed)")
	resume := fs.Bool("resume", false, "continue from the checkpoint in --out, with its saved config and task")
	overwrite := fs.Bool("overwrite", false, "train anew into an --out that already holds a checkpoint, replacing it (without this, such an --out is refused)")
	every := fs.Int("checkpoint-every", 0, "also save a checkpoint every N ≥ 1 steps (0: only at the end)")
	logEvery := fs.Int("log-every", 0, "print a progress line every N ≥ 1 steps (0: about 40 lines per run)")
	profileStep := fs.Bool("profile", false, "after saving, time every kernel of one more step (GPU timestamps where the adapter has them) and print the slowest")
	evalN := fs.Int("eval", 200, "exact-match evaluation on this many held-out examples at the end (0: skip)")
	evalSeed := fs.Uint64("eval-seed", 0, "seed of the held-out set --eval scores on (the same default as moegpu eval --seed)")
	var rf runFlags
	rf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, c := range []struct {
		flag string
		v    int
		min  int
		what string
	}{
		{"steps", *steps, 1, "at least 1"},
		{"checkpoint-every", *every, 0, "≥ 0 (0: only at the end)"},
		{"log-every", *logEvery, 0, "≥ 0 (0: about 40 lines per run)"},
		{"eval", *evalN, 0, "≥ 0 (0: skip)"},
	} {
		if c.v < c.min {
			return fmt.Errorf("--%s %d must be %s", c.flag, c.v, c.what)
		}
	}
	if *seed < -1 {
		return fmt.Errorf("--seed %d must be ≥ 0 (or -1 for the config's training.seed)", *seed)
	}
	defer rf.prof.start()()
	if err := checkTaskName(*taskName); err != nil {
		return err
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if st, err := os.Stat(*out); err == nil && !st.IsDir() {
		return fmt.Errorf("--out %s is a file; it names the directory a run writes its checkpoint, metrics and plots to", *out)
	}
	if *resume && *overwrite {
		return errors.New("--resume continues the checkpoint in --out and --overwrite replaces it: give one of them")
	}
	if !*resume && !*overwrite {
		if _, err := os.Stat(filepath.Join(*out, train.StateFile)); err == nil {
			what := "a checkpoint"
			if st, _, err := train.LoadState(*out); err == nil {
				what = fmt.Sprintf("a checkpoint at step %d", st.Step)
				if st.Task != "" {
					what += " of a run on " + st.Task
				}
			}
			return fmt.Errorf("%s already holds %s: continue it with --resume, replace it with --overwrite, or choose another --out", *out, what)
		}
	}
	if *resume {
		state, saved, err := train.LoadState(*out)
		if err != nil {
			return err
		}
		if explicit["config"] && !sameModel(cfg, saved) {
			return fmt.Errorf("%s holds a run of another model than --config %s: --resume continues the saved run with its own config (%s); drop --config, or train the new config into another --out",
				*out, *cfgPath, filepath.Join(*out, train.ConfigFile))
		}
		if state.Step >= *steps {
			fmt.Fprintf(stdout, "%s is already at step %d (--steps %d): nothing to train; the checkpoint is left as it is\n", *out, state.Step, *steps)
			return nil
		}
		// A resumed run is the saved run: its config and task.
		cfg = saved
		*cfgPath = filepath.Join(*out, train.ConfigFile)
		if state.Task != "" && state.Task != *taskName {
			if explicit["task"] {
				return fmt.Errorf("%s holds a run on task %s; --task %s would train another task on it", *out, state.Task, *taskName)
			}
			*taskName = state.Task
		}
		if state.TotalSteps > 0 && state.TotalSteps != *steps {
			fmt.Fprintf(stderr, "note: the saved run planned %d steps, this one %d: the learning-rate schedule changes from step %d on\n",
				state.TotalSteps, *steps, state.Step+1)
		}
	}
	if cfg.Training == nil {
		cfg.Training = &config.TrainingConfig{}
		cfg.ApplyDefaults()
	}
	if *seed >= 0 {
		cfg.Training.Seed = *seed
	}
	task, err := trainSource(*taskName, cfg)
	if err != nil {
		return err
	}
	if _, isText := task.(*tasks.Task); isText {
		note, err := tasks.CheckVocabSize(cfg.VocabSize)
		if err != nil {
			return err
		}
		if note != "" {
			fmt.Fprintf(stderr, "note: %s\n", note)
		}
	}
	d, err := rf.open()
	if err != nil {
		return err
	}
	defer d.Close()
	tr, err := train.New(cfg, task, rf.executor, d, *steps)
	if err != nil {
		return err
	}
	defer tr.Close()
	if *resume {
		if err := tr.Restore(*out); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "resumed from %s at step %d\n", *out, tr.Step)
	} else if err := tr.Init(); err != nil {
		return err
	}
	cfgName := filepath.Base(*cfgPath)
	if *resume {
		cfgName = *cfgPath // the checkpoint's own config.json
	}
	where := "reference executor (pure Go)"
	if d != nil {
		where = d.Info.Label()
	}
	fmt.Fprintf(stderr, "training %s on %s: %.2fM parameters, batch %d × %d tokens, %d steps, on %s\n",
		cfgName, task.Name(), float64(cfg.ParamCount())/1e6, tr.Train.BatchSize, tr.Train.SeqLen, *steps, where)
	scratch := ""
	if ex, ok := tr.Exec.(*graph.GPU); ok && ex.ScratchBytes() > 0 {
		scratch = fmt.Sprintf("; kernel scratch %.2f MiB", mib64(ex.ScratchBytes()))
	}
	fmt.Fprintf(stderr, "plan: %d ops; activations %.1f MiB planned vs %.1f MiB without reuse (%.0f%% saved); gradients %.2f MiB outside the arena%s\n",
		len(tr.Plan.Nodes), mib64(tr.Plan.ArenaBytes), mib64(tr.Plan.NaiveBytes), 100*(1-float64(tr.Plan.ArenaBytes)/float64(max(tr.Plan.NaiveBytes, 1))), mib64(tr.Plan.OwnBytes), scratch)
	// The metrics file holds exactly this run's steps: a fresh run starts
	// it anew, a resumed one drops steps past the checkpoint.
	if *resume {
		err = metrics.KeepUpTo(*out, tr.Step)
	} else {
		err = metrics.Reset(*out)
	}
	if err != nil {
		return err
	}
	mw, err := metrics.NewWriter(*out)
	if err != nil {
		return err
	}
	defer mw.Close()

	interrupt := make(chan os.Signal, 1)
	signal.Notify(interrupt, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(interrupt)

	if *logEvery <= 0 {
		*logEvery = max(1, (*steps-tr.Step+39)/40)
	}
	start := time.Now()
	first := tr.Step
	var last train.Stats
	for tr.Step < *steps {
		select {
		case <-interrupt:
			fmt.Fprintf(stderr, "\ninterrupted at step %d: saving checkpoint to %s\n", tr.Step, *out)
			if err := tr.Save(*out, rf.executor); err != nil {
				return err
			}
			return errors.New("interrupted (resume with --resume)")
		default:
		}
		st, err := tr.StepOnce()
		if err != nil {
			return err
		}
		last = st
		if err := mw.Write(metrics.Record{Step: st.Step, Loss: st.Loss, LR: st.LR, GradNorm: st.GradNorm, TokensPerS: st.TokensPerS,
			Extras: stepExtras(st)}); err != nil {
			return err
		}
		if st.Step%*logEvery == 0 || st.Step == *steps {
			el := time.Since(start)
			done := st.Step - first
			eta := time.Duration(float64(el) / float64(done) * float64(*steps-st.Step))
			fmt.Fprintf(stderr, "step %6d/%d  loss %.4f  lr %.2e  |g| %.3f%s  %7.0f tok/s  %6.1f ms/step  elapsed %s  eta %s\n",
				st.Step, *steps, st.Loss, st.LR, st.GradNorm, moeProgress(st)+mtpProgress(st), st.TokensPerS, st.StepMs, el.Round(time.Second), eta.Round(time.Second))
		}
		if *every > 0 && st.Step%*every == 0 {
			if err := tr.Save(*out, rf.executor); err != nil {
				return err
			}
		}
	}
	if err := tr.Save(*out, rf.executor); err != nil {
		return err
	}
	plot := filepath.Join(*out, "loss.png")
	if err := metrics.PlotLoss(mw.Path(), plot); err != nil {
		return err
	}
	written := "metrics and " + filepath.Base(plot)
	if cfg.IsMoE() {
		if err := metrics.PlotMoE(mw.Path(), filepath.Join(*out, "moe.png")); err != nil {
			return err
		}
		written = "metrics, " + filepath.Base(plot) + " and moe.png"
	}
	total := time.Since(start)
	fmt.Fprintf(stdout, "trained %d steps in %s; final loss %.4f; checkpoint, %s in %s\n",
		tr.Step-first, total.Round(time.Second), last.Loss, written, *out)
	if *profileStep {
		if err := printProfile(tr, stdout); err != nil {
			return err
		}
	}
	if *evalN > 0 {
		if _, ok := task.(*ocr.Task); ok {
			return evaluateOCR(*out, *evalN, *evalSeed, d, false, stdout)
		}
		if t, ok := task.(*tasks.Task); ok {
			return evaluate(*out, t, *evalN, *evalSeed, rf.executor, d, false, stdout)
		}
		if t, ok := task.(textdata.Task); ok && textdata.IsName(t.Name()) {
			return evaluateText(*out, t, textEvalOptions{N: *evalN, Seed: *evalSeed}, rf.executor, d, stdout)
		}
		return fmt.Errorf("task %s has no held-out evaluation", task.Name())
	}
	return nil
}

// checkTaskName refuses an unknown --task before anything is loaded.
func checkTaskName(name string) error {
	if name == ocr.TaskName {
		return nil
	}
	if textdata.IsName(name) {
		_, _, err := textdata.ParseLong(name)
		return err
	}
	_, err := tasks.ByName(name)
	if err != nil {
		return fmt.Errorf("%w, %s, or %s", err, strings.Join(textdata.Names(), ", "), ocr.TaskName)
	}
	return nil
}

// trainSource is the batch source a task name stands for: a synthetic task, or the OCR
// renderer on the training fonts for the model's image geometry.
func trainSource(name string, cfg *config.ModelConfig) (train.Source, error) {
	if name == ocr.TaskName {
		return ocr.NewTask(cfg, ocrdata.Train)
	}
	if textdata.IsName(name) {
		t, _, err := textdata.Open(name, "")
		if err != nil {
			return nil, err
		}
		return t, nil
	}
	return tasks.ByName(name)
}

func mib64(b uint64) float64 { return float64(b) / (1 << 20) }

// printProfile times one training step kernel by kernel, summed by kernel
// name, slowest first.
func printProfile(tr *train.Trainer, w io.Writer) error {
	ex, ok := tr.Exec.(*graph.GPU)
	if !ok {
		return fmt.Errorf("--profile needs the gpu executor")
	}
	times, source, err := ex.Profile()
	if err != nil {
		return err
	}
	type agg struct {
		name  string
		n     int
		total float64
	}
	byName := map[string]*agg{}
	var order []*agg
	sum := 0.0
	for _, k := range times {
		a := byName[k.Name]
		if a == nil {
			a = &agg{name: k.Name}
			byName[k.Name] = a
			order = append(order, a)
		}
		a.n++
		a.total += k.Seconds
		sum += k.Seconds
	}
	sort.Slice(order, func(i, j int) bool { return order[i].total > order[j].total })
	fmt.Fprintf(w, "profile of one step (%d dispatches, %s): %.2f ms\n", len(times), source, sum*1e3)
	fmt.Fprintln(w, "| kernel | launches | ms | share |")
	fmt.Fprintln(w, "|---|---:|---:|---:|")
	for i, a := range order {
		if i == 15 {
			break
		}
		fmt.Fprintf(w, "| %s | %d | %.3f | %.1f%% |\n", a.name, a.n, a.total*1e3, 100*a.total/sum)
	}
	return nil
}

// loadConfig reads a config file, or a shipped config when no file of that
// name exists.
func loadConfig(p string) (*config.ModelConfig, error) {
	if _, err := os.Stat(p); err != nil {
		if b, ok := assets.Config(p); ok {
			return config.Parse(b)
		}
	}
	return config.Load(p)
}

// stepExtras is what metrics.jsonl records beside the standard fields: the
// step time and, per MoE layer L (its index in the model), moe.L.max_vio,
// moe.L.skip_rate, moe.L.entropy, moe.L.dropped, moe.L.load.E (expert E's
// share of the slots) and, for ReLU² experts, moe.L.act_zero and
// moe.L.act_small (activation sparsity); plus aux_loss when a balance loss
// is on, and mtp.K.loss (module K's cross-entropy) and mtp.lambda with MTP
// modules.
func stepExtras(st train.Stats) map[string]float64 {
	ex := map[string]float64{"step_ms": st.StepMs}
	if st.AuxLoss != 0 {
		ex["aux_loss"] = st.AuxLoss
	}
	for k, ce := range st.MTP {
		ex[fmt.Sprintf("mtp.%d.loss", k+1)] = ce
	}
	if len(st.MTP) > 0 {
		ex["mtp.lambda"] = st.MTPLambda
	}
	for _, m := range st.MoE {
		p := "moe." + layerIndex(m.Layer) + "."
		ex[p+"max_vio"], ex[p+"skip_rate"], ex[p+"entropy"], ex[p+"dropped"] = m.MaxVio, m.SkipRate, m.Entropy, m.Dropped
		if m.ActZero > 0 || m.ActSmall > 0 {
			ex[p+"act_zero"], ex[p+"act_small"] = m.ActZero, m.ActSmall
		}
		for e, v := range m.Load {
			ex[fmt.Sprintf("%sload.%d", p, e)] = v
		}
	}
	return ex
}

// layerIndex turns "model.layers.3.mlp" into "3".
func layerIndex(prefix string) string {
	s := strings.TrimPrefix(prefix, "model.layers.")
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return s[:i]
	}
	return s
}

// mtpProgress is the progress line's MTP part: each module's
// cross-entropy.
func mtpProgress(st train.Stats) string {
	if len(st.MTP) == 0 {
		return ""
	}
	parts := make([]string, len(st.MTP))
	for i, ce := range st.MTP {
		parts[i] = fmt.Sprintf("%.3f", ce)
	}
	return "  mtp " + strings.Join(parts, "/")
}

// moeProgress is the progress line's MoE part: the worst layer's MaxVio
// and the mean skip rate over MoE layers.
func moeProgress(st train.Stats) string {
	if len(st.MoE) == 0 {
		return ""
	}
	vio, skip := 0.0, 0.0
	for _, m := range st.MoE {
		vio = max(vio, m.MaxVio)
		skip += m.SkipRate / float64(len(st.MoE))
	}
	return fmt.Sprintf("  MaxVio %.2f  skip %4.1f%%", vio, 100*skip)
}

// sameModel reports whether two configs describe the same model: every field but the training
// hyperparameters, which a resumed run takes from its checkpoint.
func sameModel(a, b *config.ModelConfig) bool {
	ca, cb := *a, *b
	ca.Training, cb.Training = nil, nil
	ja, ea := json.Marshal(ca)
	jb, eb := json.Marshal(cb)
	return ea == nil && eb == nil && bytes.Equal(ja, jb)
}
