package main

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/runtime/ablate"
)

// Two tiny runs (an MoE with a copy expert, and the same with one MTP module) of a few steps
// on lm: the ablation trains both, scores them (bits per character, skips by character
// class, MTP acceptance, FFN time), resumes without retraining, and reports.
func TestAblateTrainsScoresResumesAndReports(t *testing.T) {
	gputest.Device(t)
	dir := t.TempDir()
	spec := `{
  "name": "tiny",
  "question": "Does the pipeline hold together?",
  "base": {
    "config": "tiny-moe-fine", "task": "lm", "steps": 3, "seeds": [1],
    "overrides": {"vocab_size": 100, "training": {"seq_len": 32, "batch_size": 4, "warmup_steps": 1}},
    "eval": {"n": 4, "ffn_ms": 5, "mtp_prompts": 2, "mtp_tokens": 6, "mtp_prompt_len": 8}
  },
  "runs": [
    {"name": "moe"},
    {"name": "moe-mtp1", "overrides": {"num_nextn_predict_layers": 1, "mtp_sliding_window": 16}}
  ]
}`
	specPath := filepath.Join(dir, "tiny.json")
	require.NoError(t, os.WriteFile(specPath, []byte(spec), 0o644))
	out := filepath.Join(dir, "out")
	code, stdout, errs := runCLI("ablate", "--spec", specPath, "--out", out)
	require.Equal(t, 0, code, errs)
	require.Contains(t, stdout, "report: "+filepath.Join(out, "report.md"))
	require.Contains(t, errs, "[2/2] moe-mtp1 seed 1: bits_per_char = ")

	for _, run := range []string{"moe", "moe-mtp1"} {
		r, err := ablate.ReadResult(filepath.Join(out, "runs", run, "seed-1"))
		require.NoError(t, err, run)
		assert.Equal(t, "bits_per_char", r.Metric)
		assert.Greater(t, r.Value, 1.0)
		assert.Less(t, r.Value, 8.0)
		assert.Contains(t, r.ClassSkip, "lower", "a copy expert: skips by character class")
		require.NotNil(t, r.FFN)
		assert.Greater(t, r.FFN.Ms, 0.0)
		assert.True(t, r.Train.MoE)
		assert.Equal(t, 3, r.Steps)
		for _, f := range []string{"model.safetensors", "metrics.jsonl", "loss.png", "moe.png", ablate.ConfigFile} {
			_, err := os.Stat(filepath.Join(out, "runs", run, "seed-1", f))
			assert.NoError(t, err, "%s: %s", run, f)
		}
	}
	r, err := ablate.ReadResult(filepath.Join(out, "runs", "moe-mtp1", "seed-1"))
	require.NoError(t, err)
	require.NotNil(t, r.MTP, "an MTP model's acceptance is measured")
	require.Len(t, r.MTP.Heads, 1)
	assert.True(t, r.MTP.Identical)

	// Resuming a finished ablation trains nothing.
	code, _, errs = runCLI("ablate", "--spec", specPath, "--out", out, "--resume")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, errs, "moe seed 1: done")
	assert.NotContains(t, errs, "training ablate-config.json")
	// A run whose scoring was cut short resumes at its checkpoint: nothing left to train, and
	// it is scored again.
	require.NoError(t, os.Remove(filepath.Join(out, "runs", "moe", "seed-1", "result.json")))
	code, _, errs = runCLI("ablate", "--spec", specPath, "--out", out, "--resume")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, errs, "already at step 3")
	_, err = ablate.ReadResult(filepath.Join(out, "runs", "moe", "seed-1"))
	require.NoError(t, err)
	// Without --resume the directory is refused.
	code, _, errs = runCLI("ablate", "--spec", specPath, "--out", out)
	require.Equal(t, 1, code)
	assert.Contains(t, errs, "--resume")

	require.NoError(t, os.RemoveAll(filepath.Join(out, "plots")))
	code, stdout, errs = runCLI("ablate", "report", out)
	require.Equal(t, 0, code, errs)
	require.Contains(t, stdout, "report.md")
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	require.NoError(t, err)
	for _, want := range []string{"# Ablation: tiny", "2 of 2 runs × seeds finished", "| moe | ", "## Routing", "## Copy expert", "## Multi-token prediction", "## Time"} {
		assert.Contains(t, string(md), want)
	}
	for _, name := range []string{"loss.png", "metric.png", "maxvio.png", "load.png", "skip.png", "mtp.png", "time.png"} {
		f, err := os.Open(filepath.Join(out, "plots", name))
		require.NoError(t, err, name)
		_, err = png.Decode(f)
		f.Close()
		require.NoError(t, err, name)
	}
}

func TestAblateRefusesBadSpecsAndArguments(t *testing.T) {
	dir := t.TempDir()
	code, _, errs := runCLI("ablate")
	require.Equal(t, 1, code)
	assert.Contains(t, errs, "--spec is required")
	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"name": "b", "runs": [{"name": "a", "overides": {}}]}`), 0o644))
	code, _, errs = runCLI("ablate", "--spec", bad, "--out", filepath.Join(dir, "o"))
	require.Equal(t, 1, code)
	assert.Contains(t, errs, `unknown key "runs[0].overides"`)
	require.NoError(t, os.WriteFile(bad, []byte(`{"name": "b", "base": {"config": "tiny-dense", "task": "lm", "steps": 2, "seeds": [1]}, "runs": [{"name": "a", "overrides": {"hiden_size": 3}}]}`), 0o644))
	code, _, errs = runCLI("ablate", "--spec", bad, "--out", filepath.Join(dir, "o"))
	require.Equal(t, 1, code)
	assert.Contains(t, errs, "run a")
	assert.Contains(t, errs, "hiden_size")
	code, _, errs = runCLI("ablate", "report")
	require.Equal(t, 1, code)
	assert.Contains(t, errs, "moegpu ablate report DIR")
	code, _, errs = runCLI("ablate", "report", dir)
	require.Equal(t, 1, code)
	assert.Contains(t, errs, "no plan.json")
	code, _, errs = runCLI("ablate", "plot", "a=b")
	require.Equal(t, 1, code)
	assert.Contains(t, errs, "--out is required")
	code, _, errs = runCLI("ablate", "plot", "--out", filepath.Join(dir, "p.png"), "nodirs")
	require.Equal(t, 1, code)
	assert.Contains(t, errs, "want [PANEL/]NAME=DIR")
	code, _, errs = runCLI("ablate", "plot", "--out", filepath.Join(dir, "p.png"), "sort/dense="+filepath.Join(dir, "missing"))
	require.Equal(t, 1, code)
	assert.Contains(t, errs, `series "dense"`)
}

// ablate plot groups PANEL/NAME arguments into panels in order of first appearance.
func TestAblatePlotGroupsSeriesIntoPanels(t *testing.T) {
	panels, err := parsePlotSeries([]string{"sort/dense=a,b", "add/dense=c", "sort/moe=d", "plain=e"}, "loss")
	require.NoError(t, err)
	require.Len(t, panels, 3)
	assert.Equal(t, "sort", panels[0].Title)
	assert.Equal(t, []string{"a", "b"}, panels[0].Series[0].Dirs)
	assert.Equal(t, "moe", panels[0].Series[1].Name)
	assert.Equal(t, "add", panels[1].Title)
	assert.Equal(t, "loss", panels[2].Title)
	assert.Equal(t, "plain", panels[2].Series[0].Name)
	_, err = parsePlotSeries([]string{"x=a,,b"}, "loss")
	assert.ErrorContains(t, err, "empty directory")
}

// The text tasks train and score through train and eval.
func TestTrainAndEvalTakeTheTextTasks(t *testing.T) {
	gputest.Device(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.json")
	b, err := os.ReadFile("../../assets/configs/tiny-dense.json")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cfg, []byte(strings.NewReplacer(`"vocab_size": 43`, `"vocab_size": 100`, `"seq_len": 24`, `"seq_len": 64`, `"batch_size": 32`, `"batch_size": 4`).Replace(string(b))), 0o644))
	out := filepath.Join(dir, "needle")
	code, stdout, errs := runCLI("train", "--config", cfg, "--task", "needle:40-64", "--steps", "2", "--out", out, "--eval", "10")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, stdout, "needle:40-64: exact match")
	assert.Contains(t, stdout, "| length |", "the table by length and depth")
	code, stdout, errs = runCLI("eval", "--checkpoint", out, "--task", "vartrack:40-64:1", "--n", "5")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, stdout, "exact match")
	code, stdout, errs = runCLI("eval", "--checkpoint", out, "--task", "lm", "--n", "3")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, stdout, "bits per character")
	code, _, errs = runCLI("train", "--config", "tiny-dense", "--task", "lm", "--steps", "1", "--out", filepath.Join(dir, "x"))
	require.Equal(t, 1, code)
	assert.Contains(t, errs, "vocab_size 43 is smaller than task lm's 100 tokens")
	code, _, errs = runCLI("train", "--task", "needle:9-5", "--out", filepath.Join(dir, "y"))
	require.Equal(t, 1, code)
	assert.Contains(t, errs, "needle:9-5")
}
