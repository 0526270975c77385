package main

import (
	"github.com/moegpu/moegpu/internal/procenv"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/assets"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/ocr"
	"github.com/moegpu/moegpu/runtime/safetensors"
	"github.com/moegpu/moegpu/runtime/tasks"
	"github.com/moegpu/moegpu/runtime/train"
)

// cliArgsEnv makes the test binary run the CLI with these arguments (separated by \x1f) and exit
// with its status instead of running tests (see TestMain and runCLIProcess).
const cliArgsEnv = "MOEGPU_TEST_CLI_ARGS"

// TestMain runs the CLI instead of the tests when cliArgsEnv is set.
func TestMain(m *testing.M) {
	procenv.Restart()
	if a, ok := os.LookupEnv(cliArgsEnv); ok {
		os.Exit(run(strings.Split(a, "\x1f"), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// runCLIProcess is runCLI in a child process, for commands whose aftermath must not reach the
// tests that follow.
func runCLIProcess(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), cliArgsEnv+"="+strings.Join(args, "\x1f"))
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return code, out.String(), errb.String()
}

// checkpoint writes an untrained tiny-dense checkpoint at step 5 (reference executor, no GPU),
// after letting edit change its config.
func checkpoint(t *testing.T, edit func(*config.ModelConfig)) string {
	t.Helper()
	c, err := loadConfig("tiny-dense")
	require.NoError(t, err)
	c.Training.BatchSize = 1
	if edit != nil {
		edit(c)
	}
	task, err := tasks.ByName("copy")
	require.NoError(t, err)
	tr, err := train.New(c, task, train.Reference, nil, 10)
	require.NoError(t, err)
	defer tr.Close()
	require.NoError(t, tr.Init())
	tr.Step = 5
	dir := filepath.Join(t.TempDir(), "ckpt")
	require.NoError(t, tr.Save(dir, train.Reference))
	return dir
}

func TestCountAndSamplingFlagsRejectNonsenseNamingTheFlag(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"generate", "--prompt", "abc", "--temperature", "-1"}, "--temperature -1 must be a finite number ≥ 0 (0 is greedy)"},
		{[]string{"generate", "--prompt", "abc", "--temperature", "NaN"}, "--temperature NaN must be"},
		{[]string{"generate", "--prompt", "abc", "--temperature", "+Inf"}, "--temperature +Inf must be"},
		{[]string{"generate", "--prompt", "abc", "--temperature", "1", "--top-p", "-0.5"}, "--top-p -0.5 must be in [0, 1]"},
		{[]string{"generate", "--prompt", "abc", "--temperature", "1", "--top-p", "1.5"}, "--top-p 1.5 must be in [0, 1]"},
		{[]string{"generate", "--prompt", "abc", "--top-p", "NaN"}, "--top-p NaN must be in [0, 1]"},
		{[]string{"generate", "--prompt", "abc", "--max-tokens", "0"}, "--max-tokens 0 must be at least 1"},
		{[]string{"generate", "--prompt", "abc", "--max-tokens", "-3"}, "--max-tokens -3 must be at least 1"},
		{[]string{"eval", "--n", "0"}, "--n 0 must be at least 1"},
		{[]string{"eval", "--n", "-2"}, "--n -2 must be at least 1"},
		{[]string{"train", "--steps", "0"}, "--steps 0 must be at least 1"},
		{[]string{"train", "--steps", "-5"}, "--steps -5 must be at least 1"},
		{[]string{"train", "--checkpoint-every", "-1"}, "--checkpoint-every -1 must be ≥ 0"},
		{[]string{"train", "--log-every", "-1"}, "--log-every -1 must be ≥ 0"},
		{[]string{"train", "--eval", "-1"}, "--eval -1 must be ≥ 0"},
		{[]string{"train", "--seed", "-2"}, "--seed -2 must be ≥ 0 (or -1"},
		{[]string{"bench", "kernels", "--time", "0s"}, "--time 0s must be positive"},
		{[]string{"bench", "kernels", "--time", "-1ms"}, "--time -1ms must be positive"},
	} {
		t.Run(tc.args[0]+" "+tc.want, func(t *testing.T) {
			out := filepath.Join(dir, "never")
			var args []string
			switch tc.args[0] {
			case "train":
				args = append(tc.args, "--executor", "reference", "--out", out)
			case "bench":
				args = append(tc.args, "--json", out)
			default:
				args = append(tc.args, "--executor", "reference", "--checkpoint", out)
			}
			code, _, errs := runCLI(args...)
			require.Equal(t, 1, code)
			assert.Contains(t, errs, tc.want)
			assert.NoDirExists(t, out)
		})
	}
}

func TestHelpDocumentsTheEdgeValuesOfEverySamplingAndCountFlag(t *testing.T) {
	_, _, errs := runCLI("generate", "--help")
	for _, want := range []string{"0 is greedy (argmax", "1 keeps every token, 0 is greedy", "≥ 1", "[0, 1]"} {
		assert.Contains(t, errs, want)
	}
	_, _, errs = runCLI("train", "--help")
	for _, want := range []string{"to, ≥ 1", "-1: the config's training.seed", "(0: skip)", "eval-seed"} {
		assert.Contains(t, errs, want)
	}
}

func TestResumeAtOrPastTheStepCountLeavesTheCheckpointAlone(t *testing.T) {
	dir := checkpoint(t, nil)
	before := snapshot(t, dir)
	for _, steps := range []string{"5", "3"} {
		code, stdout, errs := runCLI("train", "--out", dir, "--resume", "--steps", steps, "--executor", "reference")
		require.Equal(t, 0, code, errs)
		assert.Contains(t, stdout, "is already at step 5 (--steps "+steps+"): nothing to train; the checkpoint is left as it is")
		assert.NotContains(t, stdout, "final loss")
		assert.Equal(t, before, snapshot(t, dir))
	}
}

// snapshot is every file in dir with its content and modification time.
func snapshot(t *testing.T, dir string) map[string]string {
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		info, err := e.Info()
		require.NoError(t, err)
		out[e.Name()] = info.ModTime().String() + " " + string(b)
	}
	return out
}

func TestANonFiniteWeightIsRefusedAtLoadNamingTheTensor(t *testing.T) {
	dir := checkpoint(t, nil)
	path := filepath.Join(dir, train.WeightsFile)
	f, err := safetensors.Read(path)
	require.NoError(t, err)
	var out []safetensors.Tensor
	for _, st := range f.Tensors {
		v, err := st.Float32()
		require.NoError(t, err)
		if st.Name == "model.embed_tokens.weight" {
			v[7] = float32(math.NaN())
		}
		nt, err := safetensors.FromFloat32(st.Name, st.Shape, v)
		require.NoError(t, err)
		out = append(out, nt)
	}
	require.NoError(t, safetensors.Write(path, out, f.Metadata))
	for _, args := range [][]string{
		{"generate", "--checkpoint", dir, "--prompt", "abc"},
		{"eval", "--checkpoint", dir, "--task", "copy", "--n", "2"},
		{"train", "--out", dir, "--resume", "--steps", "6"},
	} {
		code, _, errs := runCLI(append(args, "--executor", "reference")...)
		require.Equal(t, 1, code, args[0])
		assert.Contains(t, errs, "tensor model.embed_tokens.weight holds NaN at element 7", args[0])
	}
}

// KV caches are sized to the request: a config allowing 4M positions generates from a short
// prompt (its caches would exceed the binding limit at full size), and a request longer than
// max_position_embeddings is refused naming the flag.
func TestGenerateSizesTheKVCacheToTheRequest(t *testing.T) {
	gputest.Device(t)
	huge := checkpoint(t, func(c *config.ModelConfig) { c.MaxPositionEmbeddings = 4 << 20 })
	code, stdout, errs := runCLI("generate", "--checkpoint", huge, "--prompt", "hello", "--max-tokens", "4")
	require.Equal(t, 0, code, errs)
	assert.NotEmpty(t, stdout)
	// In a process of its own: after a generator fails to build on a device and that device
	// is closed, the next device's first submission aborts inside wgpu-native ("a resource
	// with a different device"), which would take the rest of this test binary down with it.
	code, _, errs = runCLIProcess(t, "generate", "--checkpoint", huge, "--prompt", "hello", "--max-tokens", "4000000")
	require.Equal(t, 1, code)
	assert.Contains(t, errs, "building a generator whose KV caches hold 4000006 positions (for a prompt of 7 tokens (with BOS and SEP) and --max-tokens 4000000)")
	assert.Contains(t, errs, "binding limit")

	small := checkpoint(t, nil) // max_position_embeddings 64
	code, _, errs = runCLI("generate", "--checkpoint", small, "--prompt", "hello", "--max-tokens", "59", "--executor", "reference")
	require.Equal(t, 1, code)
	assert.Contains(t, errs, "a prompt of 7 tokens (with BOS and SEP) and --max-tokens 59 need 65 positions, more than the checkpoint's max_position_embeddings (64)")
	code, _, errs = runCLI("generate", "--checkpoint", small, "--prompt", "hello", "--max-tokens", "58", "--executor", "reference")
	require.Equal(t, 0, code, errs)
}

// train's end-of-run score and moegpu eval score the same held-out set by default and say which.
func TestTrainAndEvalScoreTheSameHeldOutSetByDefault(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	code, stdout, errs := runCLI("train", "--task", "copy", "--steps", "1", "--eval", "3", "--out", out, "--executor", "reference")
	require.Equal(t, 0, code, errs)
	const set = "exact match on copy (held-out set: seed 0, n 3):"
	trained := lastLine(stdout)
	require.Contains(t, trained, set)
	code, stdout, errs = runCLI("eval", "--checkpoint", out, "--task", "copy", "--n", "3", "--executor", "reference")
	require.Equal(t, 0, code, errs)
	evaluated := lastLine(stdout)
	require.Contains(t, evaluated, set)
	// The same examples and score; only the decoding speed after the score may differ.
	cut := func(s string) string { return s[:strings.LastIndex(s, "(")] }
	assert.Equal(t, cut(trained), cut(evaluated))
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func TestShippedConfigsMatchTheirTokenizer(t *testing.T) {
	for _, name := range assets.Configs() {
		c, err := loadConfig(name)
		require.NoError(t, err, name)
		if c.HasImage() { // an OCR model: the OCR vocabulary
			assert.Equal(t, ocr.VocabSize, c.VocabSize, name)
			continue
		}
		note, err := tasks.CheckVocabSize(c.VocabSize)
		require.NoError(t, err, name)
		assert.Empty(t, note, "%s: vocab_size %d, the tokenizer has %d tokens", name, c.VocabSize, tasks.VocabSize)
	}
}

// A checkpoint is never replaced by accident: a new run into its directory is refused unless
// --overwrite says so, and --resume refuses a config of another model (the saved one passes).
func TestTrainNeverReplacesACheckpointByAccident(t *testing.T) {
	dir := checkpoint(t, nil) // step 5 of a run on copy
	before := snapshot(t, dir)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--task", "copy", "--steps", "1"}, dir + " already holds a checkpoint at step 5 of a run on copy: continue it with --resume, replace it with --overwrite"},
		{[]string{"--config", "small-dense", "--resume", "--steps", "6"}, dir + " holds a run of another model than --config small-dense"},
		{[]string{"--resume", "--overwrite", "--steps", "6"}, "give one of them"},
	} {
		code, _, errs := runCLI(append([]string{"train", "--out", dir, "--eval", "0", "--executor", "reference"}, tc.args...)...)
		require.Equal(t, 1, code, tc.args)
		assert.Contains(t, errs, tc.want)
		assert.Equal(t, before, snapshot(t, dir))
	}
	code, stdout, errs := runCLI("train", "--config", "tiny-dense", "--out", dir, "--resume", "--steps", "5", "--executor", "reference")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, stdout, "is already at step 5")

	cfg := filepath.Join(t.TempDir(), "config.json")
	raw, err := os.ReadFile(filepath.Join(dir, train.ConfigFile))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cfg, raw, 0o644))
	code, _, errs = runCLI("train", "--config", cfg, "--task", "copy", "--steps", "1", "--eval", "0", "--out", dir, "--overwrite", "--executor", "reference")
	require.Equal(t, 0, code, errs)
	st, _, err := train.LoadState(dir)
	require.NoError(t, err)
	assert.Equal(t, 1, st.Step, "--overwrite trained anew")
}

// eval scores the checkpoint's own task by default, says so when --task names another, and
// refuses what cannot work before any work: --speculative without MTP modules, a text task on
// a model whose vocabulary is smaller than the text tokenizer's.
func TestEvalFollowsTheCheckpointAndRefusesEarly(t *testing.T) {
	dir := checkpoint(t, nil) // a run on copy
	code, stdout, errs := runCLI("eval", "--checkpoint", dir, "--n", "2", "--executor", "reference")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, lastLine(stdout), "exact match on copy")
	code, stdout, errs = runCLI("eval", "--checkpoint", dir, "--task", "reverse", "--n", "2", "--executor", "reference")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, errs, "was trained on task copy; scoring it on reverse")
	assert.Contains(t, lastLine(stdout), "exact match on reverse")
	code, stdout, errs = runCLI("eval", "--checkpoint", dir, "--speculative", "--n", "2", "--executor", "reference")
	require.Equal(t, 1, code)
	assert.Contains(t, errs, "--speculative needs a model with MTP modules")
	assert.Empty(t, stdout, "refused before evaluating")
	code, _, errs = runCLI("eval", "--checkpoint", dir, "--task", "lm", "--executor", "reference")
	require.Equal(t, 1, code)
	assert.Contains(t, errs, "task lm needs a model with vocab_size ≥ 100")
}
