package ablate

import (
	"bytes"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/metrics"
)

const goodSpec = `{
  "name": "demo",
  "question": "Which balancing?",
  "base": {
    "config": "tiny-moe-fine",
    "task": "lm",
    "steps": 20,
    "seeds": [1, 2],
    "overrides": {"vocab_size": 100, "training": {"seq_len": 32, "batch_size": 4}},
    "eval": {"n": 8, "ffn_ms": 10}
  },
  "runs": [
    {"name": "none", "overrides": {"moe_balance": "none"}},
    {"name": "lbl", "steps": 30, "seeds": [3], "overrides": {"moe_balance": "lbl", "aux_loss_alpha": 0.001, "training": {"batch_size": 2}}, "eval": {"n": 4}},
    {"name": "reset", "overrides": {"sliding_window": null, "layer_types": null}}
  ]
}`

func TestParseSpecRefusesUnknownKeysNamingThem(t *testing.T) {
	_, err := ParseSpec([]byte(goodSpec))
	require.NoError(t, err)
	for spec, want := range map[string]string{
		`{"name": "x", "runs": [{"name": "a"}], "bogus": 1}`:                            `unknown key "bogus"`,
		`{"name": "x", "base": {"confg": "tiny-dense"}, "runs": [{"name": "a"}]}`:       `unknown key "base.confg"`,
		`{"name": "x", "runs": [{"name": "a"}, {"name": "b", "overides": {}}]}`:         `unknown key "runs[1].overides"`,
		`{"name": "x", "runs": [{"name": "a", "eval": {"nn": 3}}]}`:                     `unknown key "runs[0].eval.nn"`,
		`{"name": "x", "estimate": {"minutes": 3, "mins": 4}, "runs": [{"name": "a"}]}`: `unknown key "estimate.mins"`,
		`{"name": "x", "runs": []}`:                                                     "no runs",
		`{"name": "x", "runs": [{"name": "a"}, {"name": "a"}]}`:                         "used twice",
		`{"name": "x", "runs": [{"name": "a/b"}]}`:                                      "names a directory",
		`{"name": "", "runs": [{"name": "a"}]}`:                                         "name",
		`{"name": "x", "runs": [{"name": "a", "seeds": [1, 1]}]}`:                       "distinct seeds",
		`{"name": "x", "runs": [{"name": "a", "overrides": [1]}]}`:                      "want a JSON object",
		`{"name": "x", "base": {"name": "b"}, "runs": [{"name": "a"}]}`:                 "base is not a run",
		`{"name": "x", "runs": [{"name": "a", "steps": "ten"}]}`:                        "invalid spec",
		`{"name": "x", "runs": [{"name": "a"}]} {}`:                                     "trailing data",
		`[1, 2]`: "want a JSON object",
	} {
		_, err := ParseSpec([]byte(spec))
		require.Error(t, err, spec)
		assert.Contains(t, err.Error(), want, spec)
	}
}

func TestOverridesMergeOverTheBaseRunBySeed(t *testing.T) {
	s, err := ParseSpec([]byte(goodSpec))
	require.NoError(t, err)
	plan, jobs, err := s.Resolve("/out")
	require.NoError(t, err)
	require.Len(t, plan.Runs, 3)
	require.Len(t, jobs, 2+1+2)
	byName := map[string][]Job{}
	for _, j := range jobs {
		byName[j.Run] = append(byName[j.Run], j)
	}
	none := byName["none"]
	require.Len(t, none, 2)
	for i, j := range none {
		c := j.Config
		assert.Equal(t, config.BalanceNone, c.MoEBalance)
		assert.Equal(t, 100, c.VocabSize, "base override")
		assert.Equal(t, 32, c.Training.SeqLen)
		assert.Equal(t, 4, c.Training.BatchSize)
		assert.Equal(t, 0.003, c.Training.LearningRate, "kept from the config file")
		assert.Equal(t, int64(i+1), c.Training.Seed, "each job trains its seed")
		assert.Equal(t, int64(i+1), j.Seed)
		assert.Equal(t, filepath.Join("/out", "runs", "none", fmt.Sprintf("seed-%d", i+1)), j.Dir)
		assert.Equal(t, 20, j.Steps)
		assert.Equal(t, "lm", j.Task)
		assert.Equal(t, 8, j.Eval.N)
		assert.Equal(t, 10, j.Eval.FFNMs)
		assert.Equal(t, DefaultMTPTokens, j.Eval.MTPTokens, "defaults fill what neither sets")
		reparsed, err := config.Parse(j.ConfigJSON)
		require.NoError(t, err, "the written config is what the job trains")
		assert.Equal(t, c, reparsed)
	}
	assert.NotEqual(t, none[0].Key, none[1].Key)

	lbl := byName["lbl"]
	require.Len(t, lbl, 1)
	c := lbl[0].Config
	assert.Equal(t, config.BalanceLBL, c.MoEBalance)
	assert.Equal(t, 0.001, c.AuxLossAlpha)
	assert.Equal(t, 2, c.Training.BatchSize, "the run's training object merges key by key")
	assert.Equal(t, 32, c.Training.SeqLen, "and keeps the base's other keys")
	assert.Equal(t, int64(3), c.Training.Seed)
	assert.Equal(t, 30, lbl[0].Steps)
	assert.Equal(t, 4, lbl[0].Eval.N, "eval options replace field by field")
	assert.Equal(t, 10, lbl[0].Eval.FFNMs)

	reset := byName["reset"][0].Config
	assert.Equal(t, 0, reset.SlidingWindow, "null resets to the default")
	assert.Equal(t, []string{config.FullAttention, config.FullAttention}, reset.LayerTypes)

	// The key follows what the job computes.
	s.Runs[0].Steps = 21
	_, again, err := s.Resolve("/out")
	require.NoError(t, err)
	assert.NotEqual(t, none[0].Key, again[0].Key)
}

func TestResolveNamesTheRunAndTheBadKey(t *testing.T) {
	for spec, want := range map[string][]string{
		`{"name": "x", "base": {"config": "tiny-dense", "task": "lm", "steps": 2, "seeds": [1]}, "runs": [{"name": "a", "overrides": {"hiden_size": 3}}]}`:       {"run a", `"hiden_size"`},
		`{"name": "x", "base": {"config": "tiny-dense", "task": "lm", "steps": 2, "seeds": [1]}, "runs": [{"name": "b", "overrides": {"training": {"lr": 1}}}]}`: {"run b", `"training.lr"`},
		`{"name": "x", "base": {"config": "tiny-dense", "task": "lm", "steps": 2, "seeds": [1]}, "runs": [{"name": "c", "overrides": {"hidden_size": -1}}]}`:     {"run c", "hidden_size"},
		`{"name": "x", "base": {"config": "no-such", "task": "lm", "steps": 2, "seeds": [1]}, "runs": [{"name": "d"}]}`:                                          {"run d", "neither a file", "tiny-dense"},
		`{"name": "x", "base": {"task": "lm", "steps": 2, "seeds": [1]}, "runs": [{"name": "e"}]}`:                                                               {"run e", "no config"},
		`{"name": "x", "base": {"config": "tiny-dense", "steps": 2, "seeds": [1]}, "runs": [{"name": "f"}]}`:                                                     {"run f", "no task"},
		`{"name": "x", "base": {"config": "tiny-dense", "task": "lm", "seeds": [1]}, "runs": [{"name": "g"}]}`:                                                   {"run g", "no steps"},
		`{"name": "x", "base": {"config": "tiny-dense", "task": "lm", "steps": 2}, "runs": [{"name": "h"}]}`:                                                     {"run h", "no seeds"},
	} {
		s, err := ParseSpec([]byte(spec))
		require.NoError(t, err, spec)
		_, _, err = s.Resolve(t.TempDir())
		require.Error(t, err, spec)
		for _, w := range want {
			assert.Contains(t, err.Error(), w, spec)
		}
	}
}

func TestConfigFilesAreRelativeToTheSpec(t *testing.T) {
	dir := t.TempDir()
	cfg, err := os.ReadFile("../../assets/configs/tiny-dense.json")
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "cfg"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cfg", "mine.json"), cfg, 0o644))
	spec := `{"name": "x", "base": {"config": "cfg/mine.json", "task": "copy", "steps": 2, "seeds": [0]}, "runs": [{"name": "a"}]}`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "s.json"), []byte(spec), 0o644))
	s, err := LoadSpec(filepath.Join(dir, "s.json"))
	require.NoError(t, err)
	_, jobs, err := s.Resolve(t.TempDir())
	require.NoError(t, err)
	assert.Equal(t, 64, jobs[0].Config.HiddenSize)
}

// fakeHooks trains by writing a metrics file of an MoE run with MTP heads (loss falling,
// per-layer router statistics) and scores with a number that depends on the run.
type fakeHooks struct {
	trained []string
	failAt  string
}

func (f *fakeHooks) hooks() Hooks {
	return Hooks{
		Train: func(j Job) error {
			name := fmt.Sprintf("%s/%d", j.Run, j.Seed)
			f.trained = append(f.trained, name)
			if name == f.failAt {
				return fmt.Errorf("interrupted (resume with --resume)")
			}
			return fakeMetrics(j.Dir, j.Steps, float64(j.Seed), j.Run != "plain")
		},
		Score: func(j Job, r *Result) error {
			r.Metric, r.LowerIsBetter = "bits_per_char", true
			r.Value = 2 + 0.1*float64(len(j.Run)) + 0.01*float64(j.Seed)
			r.ClassSkip = map[string]float64{"lower": 0.1, "space": 0.4}
			r.FFN = &FFNResult{Ms: 3 + float64(j.Seed), Tokens: 64}
			if j.Run != "plain" {
				r.MTP = &MTPResult{Prompts: 2, DecodeSpeedup: 1.3, MeanAccepted: 0.8,
					Heads: []MTPHead{{Head: 1, Acceptance: 0.6, Cumulative: 0.6, Cost: 0.1}, {Head: 2, Acceptance: 0.4, Cumulative: 0.24, Cost: 0.1}}}
			}
			r.Cells = []Cell{{Length: 256, Depth: 0, Correct: 1, Total: 2}, {Length: 512, Depth: 0.5, Correct: 0, Total: 2}}
			return nil
		},
	}
}

func fakeMetrics(dir string, steps int, seed float64, moe bool) error {
	if err := metrics.Reset(dir); err != nil {
		return err
	}
	w, err := metrics.NewWriter(dir)
	if err != nil {
		return err
	}
	defer w.Close()
	for s := 1; s <= steps; s++ {
		ex := map[string]float64{"step_ms": 10 + seed}
		if moe {
			for l := 0; l < 2; l++ {
				p := fmt.Sprintf("moe.%d.", l)
				ex[p+"max_vio"], ex[p+"skip_rate"], ex[p+"entropy"], ex[p+"dropped"] = 1/float64(s), 0.1, 1, 0
				for e := 0; e < 4; e++ {
					ex[fmt.Sprintf("%sload.%d", p, e)] = []float64{0.1, 0.2, 0.3, 0.4}[e]
				}
			}
			ex["mtp.1.loss"], ex["mtp.2.loss"] = 3, 3.5
		}
		if err := w.Write(metrics.Record{Step: s, Loss: 4 / float64(s) * (1 + seed/100), LR: 1e-3, TokensPerS: 1000, Extras: ex}); err != nil {
			return err
		}
	}
	return nil
}

const runSpec = `{
  "name": "fake",
  "base": {"config": "tiny-dense", "task": "copy", "steps": 6, "seeds": [1, 2]},
  "runs": [{"name": "plain"}, {"name": "moe-ish", "overrides": {"hidden_act": "relu2"}}]
}`

func TestRunSkipsFinishedJobsOnResume(t *testing.T) {
	out := filepath.Join(t.TempDir(), "abl")
	s, err := ParseSpec([]byte(runSpec))
	require.NoError(t, err)
	f := &fakeHooks{failAt: "moe-ish/1"}
	_, err = Run(s, out, Options{Hooks: f.hooks()})
	require.Error(t, err, "an interrupted training stops the ablation")
	assert.Contains(t, err.Error(), "run moe-ish seed 1")
	assert.Equal(t, []string{"plain/1", "plain/2", "moe-ish/1"}, f.trained)

	// Without --resume the directory is refused.
	_, err = Run(s, out, Options{Hooks: f.hooks()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--resume")

	f = &fakeHooks{}
	var log bytes.Buffer
	_, err = Run(s, out, Options{Resume: true, Hooks: f.hooks(), Log: &log})
	require.NoError(t, err)
	assert.Equal(t, []string{"moe-ish/1", "moe-ish/2"}, f.trained, "finished jobs are skipped")
	assert.Contains(t, log.String(), "plain seed 1: done")

	f = &fakeHooks{}
	_, err = Run(s, out, Options{Resume: true, Hooks: f.hooks()})
	require.NoError(t, err)
	assert.Empty(t, f.trained, "everything was finished")

	require.NoError(t, os.Remove(filepath.Join(out, "runs", "plain", "seed-2", ResultFile)))
	_, err = Run(s, out, Options{Resume: true, Hooks: f.hooks()})
	require.NoError(t, err)
	assert.Equal(t, []string{"plain/2"}, f.trained, "only the job without a result runs again")

	r, err := ReadResult(filepath.Join(out, "runs", "moe-ish", "seed-2"))
	require.NoError(t, err)
	assert.Equal(t, "moe-ish", r.Run)
	assert.True(t, r.Train.MoE)
	assert.InDelta(t, 0.4, r.Train.MinLoad, 1e-9, "the least-loaded expert has 0.1 of the slots, against an even 0.25")
	assert.InDelta(t, 0.1, r.Train.SkipRate, 1e-9)
	assert.InDelta(t, 12, r.Train.StepMs, 1e-9)
	assert.Equal(t, []float64{3, 3.5}, r.Train.MTPLoss)

	// A changed spec does not silently reuse (or overwrite) the old runs.
	s.Base.Steps = 7
	_, err = Run(s, out, Options{Resume: true, Hooks: f.hooks()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "different spec")
}

func TestReportWritesTablesAndPlotsFromFinishedRuns(t *testing.T) {
	out := filepath.Join(t.TempDir(), "abl")
	s, err := ParseSpec([]byte(runSpec))
	require.NoError(t, err)
	s.Estimate = &Estimate{Minutes: 12, How: "a guess"}
	f := &fakeHooks{}
	_, err = Run(s, out, Options{Hooks: f.hooks()})
	require.NoError(t, err)
	path, err := Report(out)
	require.NoError(t, err)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	md := string(b)
	for _, want := range []string{
		"# Ablation: fake", "4 of 4 runs × seeds finished", "| plain | tiny-dense | copy | 6 | 1, 2 |",
		"| run | bits_per_char | vs best |", "| plain | 2.5150 ± 0.0071 (2.5100–2.5200) | best |", "outside the spread",
		"## Long context", "## Routing", "## Copy expert", "## Multi-token prediction", "training overhead", "## Time",
		"Estimated beforehand: 12 min (a guess)", "[seed 1](runs/plain/seed-1/)",
	} {
		assert.Contains(t, md, want)
	}
	for _, name := range []string{"loss.png", "metric.png", "long_context.png", "maxvio.png", "load.png", "skip.png", "mtp.png", "time.png"} {
		p := filepath.Join(out, PlotDir, name)
		assert.Contains(t, md, "("+PlotDir+"/"+name+")")
		fh, err := os.Open(p)
		require.NoError(t, err, name)
		img, err := png.Decode(fh)
		fh.Close()
		require.NoError(t, err, name)
		assert.Greater(t, img.Bounds().Dx(), 500, name)
	}

	// A report of a partly finished ablation lists what is missing.
	require.NoError(t, os.Remove(filepath.Join(out, "runs", "moe-ish", "seed-2", ResultFile)))
	path, err = Report(out)
	require.NoError(t, err)
	b, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, string(b), "Not yet: moe-ish seed 2")
	assert.Contains(t, string(b), "(n=1)")

	_, err = Report(t.TempDir())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no plan.json")
}

func TestSpreadIsMeanSampleSDAndRange(t *testing.T) {
	s := spreadOf([]float64{1, 2, 3, 4})
	assert.InDelta(t, 2.5, s.Mean, 1e-12)
	assert.InDelta(t, 1.2909944, s.SD, 1e-6)
	assert.Equal(t, 1.0, s.Min)
	assert.Equal(t, 4.0, s.Max)
	assert.Equal(t, 4, s.N)
	one := spreadOf([]float64{7})
	assert.Equal(t, 0.0, one.SD)
	assert.Equal(t, "7.00 (n=1)", one.cell(2))
	assert.Equal(t, "–", spreadOf(nil).cell(2))
}

func TestEstimateTimesATrialOfEachRunAndScalesIt(t *testing.T) {
	s, err := ParseSpec([]byte(runSpec))
	require.NoError(t, err)
	s.Base.Steps = 1000
	f := &fakeHooks{}
	runs, est, err := EstimateSpec(s, t.TempDir(), 4, f.hooks(), nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"plain/1", "moe-ish/1"}, f.trained, "one trial of each run's first seed")
	require.Len(t, runs, 2)
	for _, r := range runs {
		assert.InDelta(t, 11, r.StepMs, 1e-9, "the fake steps take 10 + seed ms")
		assert.Equal(t, 2, r.Seeds)
		assert.Equal(t, 1000, r.Steps)
		assert.InDelta(t, 2*(r.FixedSeconds+11+r.EvalSeconds)/60, r.Minutes, 1e-9)
	}
	assert.Equal(t, 11.0, est.StepMs["plain"])
	assert.GreaterOrEqual(t, est.Minutes, runs[0].Minutes+runs[1].Minutes)
	assert.Contains(t, est.How, "4 trial steps")
	_, _, err = EstimateSpec(s, t.TempDir(), 1, f.hooks(), nil)
	require.Error(t, err)
}

// A report on a long-context task that guessing can score on states the chance level (a
// one-digit passkey: 0.1); one on a task where guessing scores nothing does not.
func TestReportStatesLongContextChance(t *testing.T) {
	for task, want := range map[string]string{"passkey:40-64:1": "(guessing scores 0.1)", "copy": ""} {
		spec := strings.Replace(runSpec, `"task": "copy"`, fmt.Sprintf(`"task": %q, "overrides": {"vocab_size": 100}`, task), 1)
		s, err := ParseSpec([]byte(spec))
		require.NoError(t, err, task)
		s.Estimate = &Estimate{Minutes: 1, How: "a guess"}
		out := filepath.Join(t.TempDir(), "abl")
		_, err = Run(s, out, Options{Hooks: (&fakeHooks{}).hooks()})
		require.NoError(t, err, task)
		path, err := Report(out)
		require.NoError(t, err, task)
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		if want == "" {
			assert.NotContains(t, string(b), "guessing scores", task)
		} else {
			assert.Contains(t, string(b), want, task)
		}
	}
}
