package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/runtime/score"
	"github.com/moegpu/moegpu/runtime/textdata"
	"github.com/moegpu/moegpu/runtime/train"
)

// textEvalOptions say what a text task is scored on: n held-out windows (lm) or n examples
// spread over the (length, depth) grid (long-context tasks, at least one per cell), the
// lengths and depths of that grid (nil: textdata.EvalLengths up to the model's
// max_position_embeddings, or the task's MinLen and MaxLen when none fits, and
// textdata.EvalDepths) and the seed of the long-context set.
type textEvalOptions struct {
	N       int
	Seed    uint64
	Lengths []int
	Depths  []float64
	// SeqLen is the lm window (0: the checkpoint's training seq_len).
	SeqLen int
}

// textScore is a text task's held-out score: LM for lm, Long for the long-context tasks.
type textScore struct {
	Task    string
	LM      *score.LMResult
	Long    *score.LongResult
	Windows int // lm: windows of SeqLen characters scored
	SeqLen  int
	Elapsed time.Duration
}

// scoreText scores a checkpoint on a runtime/textdata task.
func scoreText(dir string, task textdata.Task, o textEvalOptions, executor string, d *gpu.Device) (*textScore, error) {
	start := time.Now()
	_, cfg, err := train.LoadState(dir)
	if err != nil {
		return nil, err
	}
	if cfg.VocabSize < textdata.VocabSize {
		return nil, fmt.Errorf("task %s needs a model with vocab_size ≥ %d (the text tokenizer's); %s's model has %d", task.Name(), textdata.VocabSize, dir, cfg.VocabSize)
	}
	batch := 8
	if cfg.Training != nil && cfg.Training.BatchSize > 0 {
		batch = cfg.Training.BatchSize
	}
	res := &textScore{Task: task.Name()}
	switch t := task.(type) {
	case *textdata.LM:
		seq := o.SeqLen
		if seq <= 0 && cfg.Training != nil {
			seq = cfg.Training.SeqLen
		}
		seq = min(max(seq, 2), cfg.MaxPositionEmbeddings-1)
		windows, err := t.HeldOutWindows(o.N, seq)
		if err != nil {
			return nil, err
		}
		f, err := score.Open(dir, executor, d, min(batch, len(windows)), seq+1)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r, err := score.LM(f, windows)
		if err != nil {
			return nil, err
		}
		res.LM, res.Windows, res.SeqLen = &r, len(windows), seq
	case *textdata.Long:
		lengths, depths := o.Lengths, o.Depths
		if lengths == nil {
			for _, l := range textdata.EvalLengths {
				if l <= cfg.MaxPositionEmbeddings {
					lengths = append(lengths, l)
				}
			}
		}
		if depths == nil {
			depths = textdata.EvalDepths
		}
		depths = t.Depths(depths)
		for _, l := range lengths {
			if l > cfg.MaxPositionEmbeddings {
				return nil, fmt.Errorf("context length %d is more than the checkpoint's max_position_embeddings (%d)", l, cfg.MaxPositionEmbeddings)
			}
		}
		if len(lengths) == 0 && t.MaxLen <= cfg.MaxPositionEmbeddings {
			// A model too short for the standard grid is scored on the task's own range.
			lengths = []int{t.MinLen}
			if t.MaxLen != t.MinLen {
				lengths = append(lengths, t.MaxLen)
			}
		}
		if len(lengths) == 0 {
			return nil, fmt.Errorf("the checkpoint's max_position_embeddings (%d) reaches none of the evaluation lengths %v nor task %s's range", cfg.MaxPositionEmbeddings, textdata.EvalLengths, t.Name())
		}
		per := max(1, o.N/(len(lengths)*len(depths)))
		exs, err := t.EvalSet(lengths, depths, per, o.Seed)
		if err != nil {
			return nil, err
		}
		r, err := score.Long(dir, executor, d, batch, exs)
		if err != nil {
			return nil, err
		}
		res.Long = &r
	default:
		return nil, fmt.Errorf("task %s has no held-out score", task.Name())
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// evaluateText prints a checkpoint's held-out score on a text task.
func evaluateText(dir string, task textdata.Task, o textEvalOptions, executor string, d *gpu.Device, stdout io.Writer) error {
	r, err := scoreText(dir, task, o, executor, d)
	if err != nil {
		return err
	}
	r.print(stdout, o)
	return nil
}

func (r *textScore) print(w io.Writer, o textEvalOptions) {
	if r.LM != nil {
		fmt.Fprintf(w, "lm: %.4f bits per character on %d held-out characters (%d windows of %d, spread over the held-out fortunes) in %s\n",
			r.LM.BitsPerChar, r.LM.Chars, r.Windows, r.SeqLen, r.Elapsed.Round(time.Millisecond))
		var parts []string
		for _, c := range textdata.Classes() {
			if v, ok := r.LM.ClassBPC[c]; ok {
				parts = append(parts, fmt.Sprintf("%s %.3f", c, v))
			}
		}
		fmt.Fprintf(w, "  by class of the predicted character: %s\n", strings.Join(parts, ", "))
		printClassSkips(w, r.LM.Routing)
		return
	}
	l := r.Long
	fmt.Fprintf(w, "%s: exact match %d/%d = %.3f on held-out examples (seed %d) in %s\n", r.Task, l.Correct, l.Total, l.Accuracy(), o.Seed, r.Elapsed.Round(time.Millisecond))
	var depths []float64
	seen := map[float64]bool{}
	for _, c := range l.Cells {
		if !seen[c.Depth] {
			seen[c.Depth] = true
			depths = append(depths, c.Depth)
		}
	}
	fmt.Fprint(w, "| length |")
	for _, d := range depths {
		fmt.Fprintf(w, " depth %.2f |", d)
	}
	fmt.Fprint(w, "\n|---:|")
	for range depths {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	for i := 0; i < len(l.Cells); {
		L := l.Cells[i].Length
		fmt.Fprintf(w, "| %d |", L)
		for ; i < len(l.Cells) && l.Cells[i].Length == L; i++ {
			fmt.Fprintf(w, " %d/%d |", l.Cells[i].Correct, l.Cells[i].Total)
		}
		fmt.Fprintln(w)
	}
	printClassSkips(w, l.Routing)
}

// printClassSkips reports each MoE layer's copy-expert (FFN skipped) rate by character class.
func printClassSkips(w io.Writer, r *score.Routing) {
	if r == nil {
		return
	}
	for i, name := range r.Layers {
		var parts []string
		for _, c := range textdata.Classes() {
			if r.Tokens[c] > 0 {
				parts = append(parts, fmt.Sprintf("%s %.1f%%", c, 100*r.Rate(i, c)))
			}
		}
		fmt.Fprintf(w, "  %s skips the FFN on: %s\n", name, strings.Join(parts, ", "))
	}
}

// evalText is moegpu eval on a text task: the held-out score, by forward passes (so neither
// --f16 nor --speculative applies).
func evalText(dir, name string, n int, seed uint64, rf runFlags, decodingFlags bool, stdout io.Writer) error {
	if decodingFlags {
		return fmt.Errorf("--f16 and --speculative apply to the synthetic tasks' decoding; task %s is scored by forward passes", name)
	}
	t, _, err := textdata.Open(name, "")
	if err != nil {
		return err
	}
	d, err := rf.open()
	if err != nil {
		return err
	}
	defer d.Close()
	return evaluateText(dir, t, textEvalOptions{N: n, Seed: seed}, rf.executor, d, stdout)
}
