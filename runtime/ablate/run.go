package ablate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moegpu/moegpu/internal/atomicfile"
	"github.com/moegpu/moegpu/runtime/metrics"
)

// Files of an ablation's output directory.
const (
	PlanFile   = "plan.json"   // the resolved spec (Plan)
	ResultFile = "result.json" // in each job's directory: its Result
	jobFile    = "ablate-job.json"
)

// Result is one finished job: a summary of its training metrics and its held-out score,
// written to its directory as result.json.
type Result struct {
	Run   string `json:"run"`
	Seed  int64  `json:"seed"`
	Key   string `json:"key"`
	Task  string `json:"task"`
	Steps int    `json:"steps"`
	// Metric names the held-out score ("bits_per_char", "exact_match", "cer"); Value is it,
	// LowerIsBetter its direction, MetricNote what it was measured on.
	Metric        string  `json:"metric"`
	Value         float64 `json:"value"`
	LowerIsBetter bool    `json:"lower_is_better"`
	MetricNote    string  `json:"metric_note,omitempty"`
	// Cells is long-context exact match per (context length, depth).
	Cells []Cell `json:"cells,omitempty"`
	// ClassSkip is the copy-expert (FFN skipped) rate by token class, averaged over the MoE
	// layers: character classes on text tasks, "image" and "text" on ocr.
	ClassSkip map[string]float64 `json:"class_skip,omitempty"`
	// ClassBPC is lm's bits per character by the class of the predicted character.
	ClassBPC map[string]float64 `json:"class_bpc,omitempty"`
	MTP      *MTPResult         `json:"mtp,omitempty"`
	FFN      *FFNResult         `json:"ffn,omitempty"`
	Train    TrainSummary       `json:"train"`
	// EvalSeconds is the scoring time; WallSeconds the job's training and scoring wall
	// time in the session that finished it (a resumed job's earlier sessions are not in it).
	EvalSeconds float64 `json:"eval_seconds"`
	WallSeconds float64 `json:"wall_seconds"`
}

// Cell is exact match at one context length and depth.
type Cell struct {
	Length  int     `json:"length"`
	Depth   float64 `json:"depth"`
	Correct int     `json:"correct"`
	Total   int     `json:"total"`
}

// MTPResult is speculative decoding with the MTP modules on held-out prompts, against
// plain greedy decoding (moegpu eval --speculative's report).
type MTPResult struct {
	Prompts       int       `json:"prompts"`
	NewTokens     int       `json:"new_tokens"`
	Identical     bool      `json:"identical"`
	MeanAccepted  float64   `json:"mean_accepted_drafts"`
	MainPerToken  float64   `json:"main_forwards_per_token"`
	DecodeSpeedup float64   `json:"decode_speedup"`
	Heads         []MTPHead `json:"heads"`
}

// MTPHead is one MTP module's acceptance and cost.
type MTPHead struct {
	Head        int     `json:"head"`
	Acceptance  float64 `json:"conditional_acceptance"`
	Cumulative  float64 `json:"cumulative_acceptance"`
	Cost        float64 `json:"cost_of_main_forward"`
	BreakEven   float64 `json:"break_even_cumulative"`
	SeedFigure  float64 `json:"seed_break_even"`
	NetPerRound float64 `json:"net_tokens_per_round"`
}

// FFNResult is the step's FFN blocks timed alone at the skip rate the run reached.
type FFNResult struct {
	Ms      float64 `json:"ms"`
	CPUMs   float64 `json:"cpu_ms"`
	MoEMs   float64 `json:"moe_layer_ms,omitempty"`
	DenseMs float64 `json:"dense_layer_ms,omitempty"`
	Skip    float64 `json:"skip"`
	Tokens  int     `json:"tokens"`
}

// TrainSummary is what a run's metrics.jsonl says: the end of training (the last tenth of
// the steps, at least one) and its speed (medians over the second half, past compilation).
type TrainSummary struct {
	FinalLoss    float64 `json:"final_loss"`
	StepMs       float64 `json:"step_ms"`
	TokensPerS   float64 `json:"tokens_per_s"`
	TrainSeconds float64 `json:"train_seconds"` // the sum of every step's time
	Params       int64   `json:"params"`
	ActiveParams int64   `json:"active_params"`
	// MoE statistics, means over the MoE layers and the last tenth of the steps.
	MoE      bool    `json:"moe"`
	MaxVio   float64 `json:"max_vio,omitempty"`
	MinLoad  float64 `json:"min_load,omitempty"` // the least-loaded expert's share × experts (1 = even)
	SkipRate float64 `json:"skip_rate,omitempty"`
	Dropped  float64 `json:"dropped,omitempty"` // dropped slots per step
	AuxLoss  float64 `json:"aux_loss,omitempty"`
	ActZero  float64 `json:"act_zero,omitempty"`
	ActSmall float64 `json:"act_small,omitempty"`
	// MTPLoss is each MTP module's cross-entropy.
	MTPLoss []float64 `json:"mtp_loss,omitempty"`
}

// Hooks do the work the runner orders: Train trains a job into j.Dir to j.Steps (resuming
// from the checkpoint there, if any); Score fills the held-out score, MTP and FFN fields
// of r (r.Train is already filled).
type Hooks struct {
	Train func(j Job) error
	Score func(j Job, r *Result) error
}

// Options of Run.
type Options struct {
	// Resume continues an ablation already in the output directory: finished jobs are
	// skipped, interrupted ones resume from their checkpoint. Without it an output directory
	// that holds an ablation is refused.
	Resume bool
	Log    io.Writer
	Hooks  Hooks
}

// Run trains and scores every job of the spec in order into out, then writes the report.
// A job whose result.json carries its key is done and skipped; a job directory made from a
// different spec is refused rather than overwritten.
func Run(s *Spec, out string, o Options) (*Plan, error) {
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	if o.Hooks.Train == nil || o.Hooks.Score == nil {
		return nil, fmt.Errorf("ablate: the runner needs both a Train and a Score hook")
	}
	plan, jobs, err := s.Resolve(out)
	if err != nil {
		return nil, err
	}
	planPath := filepath.Join(out, PlanFile)
	if _, err := os.Stat(planPath); err == nil && !o.Resume {
		return nil, fmt.Errorf("ablate: %s already holds an ablation (%s): pass --resume to continue it, or choose another --out", out, PlanFile)
	}
	b, err := json.MarshalIndent(plan, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("ablate: %w", err)
	}
	if err := atomicfile.Write(planPath, append(b, '\n')); err != nil {
		return nil, fmt.Errorf("ablate: %w", err)
	}
	for i, j := range jobs {
		tag := fmt.Sprintf("[%d/%d] %s seed %d", i+1, len(jobs), j.Run, j.Seed)
		if r, err := ReadResult(j.Dir); err == nil {
			if r.Key != j.Key {
				return nil, staleJob(j, r.Key)
			}
			fmt.Fprintf(log, "%s: done (%s = %.4g), skipped\n", tag, r.Metric, r.Value)
			continue
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if err := claim(j); err != nil {
			return nil, err
		}
		fmt.Fprintf(log, "%s: %s, %d steps, in %s\n", tag, j.Task, j.Steps, j.Dir)
		start := time.Now()
		if err := o.Hooks.Train(j); err != nil {
			return nil, fmt.Errorf("ablate: run %s seed %d: %w", j.Run, j.Seed, err)
		}
		r := &Result{Run: j.Run, Seed: j.Seed, Key: j.Key, Task: j.Task, Steps: j.Steps}
		if r.Train, err = Summarize(filepath.Join(j.Dir, metrics.FileName)); err != nil {
			return nil, fmt.Errorf("ablate: run %s seed %d: %w", j.Run, j.Seed, err)
		}
		r.Train.Params, r.Train.ActiveParams = ParamCounts(j.Config)
		evalStart := time.Now()
		if err := o.Hooks.Score(j, r); err != nil {
			return nil, fmt.Errorf("ablate: run %s seed %d: scoring: %w", j.Run, j.Seed, err)
		}
		r.EvalSeconds = time.Since(evalStart).Seconds()
		r.WallSeconds = time.Since(start).Seconds()
		if err := WriteResult(j.Dir, r); err != nil {
			return nil, err
		}
		fmt.Fprintf(log, "%s: %s = %.4g, final loss %.4f, %.1f ms/step, %s\n", tag, r.Metric, r.Value, r.Train.FinalLoss, r.Train.StepMs,
			time.Duration(r.WallSeconds*float64(time.Second)).Round(time.Second))
	}
	return plan, nil
}

func staleJob(j Job, had string) error {
	return fmt.Errorf("ablate: %s holds run %s seed %d of a different spec (key %s, this spec's %s: the config, task, steps or eval options changed); remove that directory to run it anew, or use another --out", j.Dir, j.Run, j.Seed, had, j.Key)
}

// claim marks a job directory with the job's key (refusing one claimed by another spec) and
// writes the config it trains.
func claim(j Job) error {
	if err := os.MkdirAll(j.Dir, 0o755); err != nil {
		return fmt.Errorf("ablate: %w", err)
	}
	path := filepath.Join(j.Dir, jobFile)
	if b, err := os.ReadFile(path); err == nil {
		var had struct{ Key string }
		if json.Unmarshal(b, &had) == nil && had.Key != j.Key {
			return staleJob(j, had.Key)
		}
	}
	b, _ := json.Marshal(map[string]any{"key": j.Key, "run": j.Run, "seed": j.Seed, "task": j.Task, "steps": j.Steps})
	if err := atomicfile.Write(path, append(b, '\n')); err != nil {
		return fmt.Errorf("ablate: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(j.Dir, ConfigFile), j.ConfigJSON); err != nil {
		return fmt.Errorf("ablate: %w", err)
	}
	return nil
}

// ReadResult reads a job directory's result.json (an error wrapping os.ErrNotExist when the
// job has not finished).
func ReadResult(dir string) (*Result, error) {
	b, err := os.ReadFile(filepath.Join(dir, ResultFile))
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("ablate: %s: %w", filepath.Join(dir, ResultFile), err)
	}
	return &r, nil
}

// WriteResult writes a job's result.json atomically.
func WriteResult(dir string, r *Result) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil { // a non-finite number: Summarize and the scorers never give one
		return fmt.Errorf("ablate: result of %s: %w", dir, err)
	}
	return atomicfile.Write(filepath.Join(dir, ResultFile), append(b, '\n'))
}

// Summarize reads a run's metrics.jsonl into a TrainSummary (parameter counts are the
// caller's).
func Summarize(path string) (TrainSummary, error) {
	recs, err := metrics.ReadJSONL(path)
	if err != nil {
		return TrainSummary{}, err
	}
	if len(recs) == 0 {
		return TrainSummary{}, fmt.Errorf("%s holds no steps", path)
	}
	var s TrainSummary
	tail := recs[len(recs)-max(1, len(recs)/10):]
	half := recs[len(recs)/2:]
	s.FinalLoss = meanOf(tail, func(r metrics.Record) float64 { return r.Loss })
	s.StepMs = medianOf(half, func(r metrics.Record) float64 { return r.Extras["step_ms"] })
	s.TokensPerS = medianOf(half, func(r metrics.Record) float64 { return r.TokensPerS })
	for _, r := range recs {
		s.TrainSeconds += r.Extras["step_ms"] / 1000
	}
	layers := moeLayers(recs[len(recs)-1])
	if len(layers) > 0 {
		s.MoE = true
		for _, l := range layers {
			p := "moe." + l + "."
			n := float64(len(layers))
			s.MaxVio += meanOf(tail, func(r metrics.Record) float64 { return r.Extras[p+"max_vio"] }) / n
			s.SkipRate += meanOf(tail, func(r metrics.Record) float64 { return r.Extras[p+"skip_rate"] }) / n
			s.Dropped += meanOf(tail, func(r metrics.Record) float64 { return r.Extras[p+"dropped"] }) / n
			s.ActZero += meanOf(tail, func(r metrics.Record) float64 { return r.Extras[p+"act_zero"] }) / n
			s.ActSmall += meanOf(tail, func(r metrics.Record) float64 { return r.Extras[p+"act_small"] }) / n
			s.MinLoad += meanOf(tail, func(r metrics.Record) float64 { return minLoad(r, p) }) / n
		}
	}
	s.AuxLoss = meanOf(tail, func(r metrics.Record) float64 { return r.Extras["aux_loss"] })
	for k := 1; ; k++ {
		key := fmt.Sprintf("mtp.%d.loss", k)
		if _, ok := recs[len(recs)-1].Extras[key]; !ok {
			break
		}
		s.MTPLoss = append(s.MTPLoss, meanOf(tail, func(r metrics.Record) float64 { return r.Extras[key] }))
	}
	return s, nil
}

// moeLayers lists the MoE layer indices a record has statistics for, in order.
func moeLayers(r metrics.Record) []string {
	seen := map[int]bool{}
	for k := range r.Extras {
		if rest, ok := strings.CutPrefix(k, "moe."); ok {
			l, _, _ := strings.Cut(rest, ".")
			if n, err := strconv.Atoi(l); err == nil {
				seen[n] = true
			}
		}
	}
	var ls []int
	for l := range seen {
		ls = append(ls, l)
	}
	sort.Ints(ls)
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = strconv.Itoa(l)
	}
	return out
}

// loads returns a record's expert load shares of the layer with prefix p ("moe.L."), in
// expert order.
func loads(r metrics.Record, p string) []float64 {
	var out []float64
	for e := 0; ; e++ {
		v, ok := r.Extras[fmt.Sprintf("%sload.%d", p, e)]
		if !ok {
			return out
		}
		out = append(out, v)
	}
}

// minLoad is the least-loaded expert's share times the number of experts: 1 when the
// load is even, 0 when an expert gets nothing.
func minLoad(r metrics.Record, p string) float64 {
	l := loads(r, p)
	if len(l) == 0 {
		return 0
	}
	m := l[0]
	for _, v := range l {
		m = math.Min(m, v)
	}
	return m * float64(len(l))
}

func meanOf(recs []metrics.Record, f func(metrics.Record) float64) float64 {
	s, n := 0.0, 0
	for _, r := range recs {
		if v := f(r); !math.IsNaN(v) && !math.IsInf(v, 0) {
			s += v
			n++
		}
	}
	if n == 0 {
		return 0 // no finite value: reported as 0 rather than breaking the JSON
	}
	return s / float64(n)
}

func medianOf(recs []metrics.Record, f func(metrics.Record) float64) float64 {
	var v []float64
	for _, r := range recs {
		if x := f(r); !math.IsNaN(x) && !math.IsInf(x, 0) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
