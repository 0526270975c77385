package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/internal/gputest"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelpListsCommands(t *testing.T) {
	code, out, _ := runCLI("--help")
	require.Equal(t, 0, code)
	for _, c := range commands {
		require.Contains(t, out, c.name)
	}
	code, _, errs := runCLI("frobnicate")
	require.Equal(t, 2, code)
	require.Contains(t, errs, "unknown command")
}

func TestInfoJSONListsAdaptersWithTheDocumentedFields(t *testing.T) {
	gputest.Device(t) // skip (or fail under MOEGPU_REQUIRE_GPU) without an adapter
	code, out, errs := runCLI("info", "--json")
	require.Equal(t, 0, code, errs)
	var doc struct {
		Adapters []map[string]any `json:"adapters"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &doc))
	require.NotEmpty(t, doc.Adapters)
	for _, a := range doc.Adapters {
		for _, key := range []string{"name", "backend", "device_type", "driver", "features", "limits"} {
			require.Contains(t, a, key)
		}
	}
	code, out, _ = runCLI("info")
	require.Equal(t, 0, code)
	require.Contains(t, out, "storage binding")
}

func TestInfoRejectsAnUnknownBackend(t *testing.T) {
	code, _, errs := runCLI("info", "--backend", "cuda")
	require.Equal(t, 1, code)
	require.Contains(t, errs, "unknown backend")
}

func TestBenchQuickWritesJSON(t *testing.T) {
	gputest.Device(t)
	path := filepath.Join(t.TempDir(), "b.json")
	code, out, errs := runCLI("bench", "kernels", "--quick", "--time", "1ms", "--filter", "softmax", "--json", path)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "| softmax |")
	_, err := os.Stat(path)
	require.NoError(t, err)
	code, _, errs = runCLI("bench", "nonsense")
	require.Equal(t, 1, code)
	require.Contains(t, errs, `unknown suite "nonsense": want kernels, model,`)
	code, _, errs = runCLI("bench", "kernels", "--quick", "--time", "1ms", "--filter", "no-such-kernel")
	require.Equal(t, 1, code)
	require.Contains(t, errs, `no kernel's name or variant contains --filter "no-such-kernel"`)
}

func TestTrainGenerateEvalEndToEnd(t *testing.T) {
	gputest.Device(t)
	out := filepath.Join(t.TempDir(), "run")
	code, stdout, errs := runCLI("train", "--config", "../../assets/configs/tiny-dense.json", "--task", "copy",
		"--steps", "4", "--out", out, "--eval", "3", "--log-every", "2", "--profile")
	require.Equal(t, 0, code, errs)
	require.Contains(t, errs, "step      4/4")
	require.Contains(t, errs, "gradients")
	require.Contains(t, stdout, "exact match on copy")
	require.Contains(t, stdout, "profile of one step")
	for _, f := range []string{"metrics.jsonl", "loss.png", "model.safetensors", "optimizer.safetensors", "config.json", "trainer_state.json"} {
		_, err := os.Stat(filepath.Join(out, f))
		require.NoError(t, err, f)
	}
	// Resuming continues to the new step count.
	code, _, errs = runCLI("train", "--config", "../../assets/configs/tiny-dense.json", "--task", "copy",
		"--steps", "6", "--out", out, "--eval", "0", "--resume")
	require.Equal(t, 0, code, errs)
	require.Contains(t, errs, "resumed from")
	code, stdout, errs = runCLI("generate", "--checkpoint", out, "--prompt", "abc", "--max-tokens", "4")
	require.Equal(t, 0, code, errs)
	require.Contains(t, errs, "tokens/s")
	require.NotEmpty(t, stdout)
	code, stdout, errs = runCLI("eval", "--checkpoint", out, "--task", "copy", "--n", "2")
	require.Equal(t, 0, code, errs)
	require.Contains(t, stdout, "/2 =")
}

func TestTrainRefusesBadConfigsAndArguments(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"vocab_size": 43, "hiden_size": 64}`), 0o644))
	code, _, errs := runCLI("train", "--config", bad, "--out", filepath.Join(dir, "o"))
	require.Equal(t, 1, code)
	require.Contains(t, errs, "hiden_size")
	code, _, errs = runCLI("train", "--task", "juggle", "--out", filepath.Join(dir, "o"))
	require.Equal(t, 1, code)
	require.Contains(t, errs, "juggle")
	code, _, errs = runCLI("generate", "--checkpoint", dir, "--prompt", "x")
	require.Equal(t, 1, code)
	require.Contains(t, errs, "not a complete checkpoint")
	code, _, errs = runCLI("generate", "--checkpoint", dir, "--prompt", "ABC")
	require.Equal(t, 1, code)
	require.NotEmpty(t, errs)
}

func TestResumeKeepsTheSavedTaskAndMetricsHoldEachStepOnce(t *testing.T) {
	gputest.Device(t)
	out := filepath.Join(t.TempDir(), "run")
	cfg := "../../assets/configs/tiny-dense.json"
	code, _, errs := runCLI("train", "--config", cfg, "--task", "copy", "--steps", "3", "--out", out, "--eval", "0")
	require.Equal(t, 0, code, errs)
	// A second fresh run into the same directory (--overwrite) starts the metrics anew.
	code, _, errs = runCLI("train", "--config", cfg, "--task", "copy", "--steps", "3", "--out", out, "--eval", "0", "--overwrite")
	require.Equal(t, 0, code, errs)
	// Resuming without --task continues the saved task; with another task it is refused.
	code, _, errs = runCLI("train", "--steps", "5", "--out", out, "--eval", "0", "--resume")
	require.Equal(t, 0, code, errs)
	require.Contains(t, errs, "on copy")
	require.Contains(t, errs, "learning-rate schedule changes")
	code, _, errs = runCLI("train", "--task", "add", "--steps", "6", "--out", out, "--eval", "0", "--resume")
	require.Equal(t, 1, code)
	require.Contains(t, errs, "task copy")
	raw, err := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	require.NoError(t, err)
	var steps []int
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var r struct{ Step int }
		require.NoError(t, json.Unmarshal([]byte(line), &r))
		steps = append(steps, r.Step)
	}
	require.Equal(t, []int{1, 2, 3, 4, 5}, steps)
}
