package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/internal/gputest"
)

// Train a tiny model with MTP modules for a few steps, then decode it with
// --speculative: the report says the output equals plain decoding's and
// the JSON carries one row per head.
func TestSpeculativeGenerateAndEvalEndToEnd(t *testing.T) {
	gputest.Device(t)
	dir := t.TempDir()
	raw, err := os.ReadFile("../../assets/configs/tiny-dense.json")
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(raw, &cfg))
	cfg["num_nextn_predict_layers"] = 2
	cfg["mtp_intermediate_size"] = 32
	b, err := json.Marshal(cfg)
	require.NoError(t, err)
	cfgPath := filepath.Join(dir, "mtp.json")
	require.NoError(t, os.WriteFile(cfgPath, b, 0o644))
	out := filepath.Join(dir, "run")
	code, _, errs := runCLI("train", "--config", cfgPath, "--task", "copy", "--steps", "3", "--out", out, "--eval", "0", "--log-every", "1")
	require.Equal(t, 0, code, errs)
	require.Contains(t, errs, "mtp ")
	code, _, errs = runCLI("generate", "--checkpoint", out, "--prompt", "abc", "--max-tokens", "6", "--speculative")
	require.Equal(t, 0, code, errs)
	require.Contains(t, errs, "identical to plain greedy decoding")
	report := filepath.Join(dir, "spec.json")
	code, stdout, errs := runCLI("eval", "--checkpoint", out, "--task", "copy", "--n", "3", "--speculative", "--json", report)
	require.Equal(t, 0, code, errs)
	require.Contains(t, stdout, "| head | conditional acceptance")
	var r SpecReport
	raw, err = os.ReadFile(report)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &r))
	require.True(t, r.Identical)
	require.Len(t, r.Heads, 2)
	require.Equal(t, 3, r.Prompts)
	// The benchmark row.
	benchJSON := filepath.Join(dir, "bench.json")
	code, _, errs = runCLI("bench", "speculative", "--checkpoint", out, "--task", "copy", "--n", "2", "--json", benchJSON)
	require.Equal(t, 0, code, errs)
	raw, err = os.ReadFile(benchJSON)
	require.NoError(t, err)
	require.Contains(t, string(raw), "decode_speculative")
	// Sampling: the rejection rule.
	code, _, errs = runCLI("generate", "--checkpoint", out, "--prompt", "abc", "--speculative", "--temperature", "1", "--max-tokens", "6")
	require.Equal(t, 0, code, errs)
	require.Contains(t, errs, "sampled with the rejection rule")
	// A model without MTP modules cannot draft.
	code, _, errs = runCLI("train", "--config", "../../assets/configs/tiny-dense.json", "--task", "copy", "--steps", "1", "--out", filepath.Join(dir, "plain"), "--eval", "0")
	require.Equal(t, 0, code, errs)
	code, _, errs = runCLI("generate", "--checkpoint", filepath.Join(dir, "plain"), "--prompt", "abc", "--speculative")
	require.Equal(t, 1, code)
	require.Contains(t, errs, "num_nextn_predict_layers")
}
