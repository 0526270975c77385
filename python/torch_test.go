// Package python holds the PyTorch implementation of moegpu's model family
// (python/moegpu_torch, a Python package) and this Go test, which runs its
// tests (python/tests) from `go test ./...` against a freshly built moegpu:
// logits, MTP logits, losses and gradients of every shipped config and of
// random small configs agree with moegpu; checkpoints go moegpu → PyTorch →
// moegpu byte for byte and generate the same text; moegpu's task batches are
// reproduced exactly; a two-process torchrun (DDP, gloo) run writes a
// checkpoint that moegpu generates from.
//
// It needs python3 with torch and numpy (Debian: python3-torch,
// python3-numpy, libopenblas0-openmp; scripts/setup.sh installs them).
// Without them the test skips, and fails under MOEGPU_REQUIRE_GPU=1 (CI).
package python

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/runtime/tasks"
)

// TestMain runs the tests with Go's asynchronous preemption off, as every GPU test binary does.
func TestMain(m *testing.M) { gputest.Main(m) }

// pythonModules are the test modules under python/tests, run one by one so a
// failure names its module.
var pythonModules = []string{"test_safetensors", "test_tasks", "test_logits", "test_roundtrip", "test_train"}

// TestPyTorchImplementationAgreesWithMoegpu runs python/tests with the
// moegpu binary built from this tree, on the adapter the suite runs on
// (MOEGPU_BACKEND, MOEGPU_ADAPTER), and logs their output (the table of
// logit differences per config among it).
func TestPyTorchImplementationAgreesWithMoegpu(t *testing.T) {
	gputest.Device(t) // skip (or fail under MOEGPU_REQUIRE_GPU) without an adapter
	py := torchPython(t)
	scratch := t.TempDir()
	bin := buildMoegpu(t, scratch)
	ref := writeTaskReference(t, scratch)
	env := append(os.Environ(), "MOEGPU_BIN="+bin, "MOEGPU_SCRATCH="+scratch, "MOEGPU_TASKS_REF="+ref,
		"OMP_NUM_THREADS=1", "PYTHONDONTWRITEBYTECODE=1")
	for _, mod := range pythonModules {
		t.Run(mod, func(t *testing.T) {
			start := time.Now()
			cmd := exec.Command(py, "-m", "unittest", "-v", "tests."+mod)
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s -m unittest tests.%s: %v\n%s", py, mod, err, out)
			}
			t.Logf("tests.%s (%s):\n%s", mod, time.Since(start).Round(time.Millisecond), out)
		})
	}
}

// torchPython finds a python3 that imports torch and numpy: $MOEGPU_PYTHON,
// python3 on PATH, or Debian's /usr/bin/python3 (a pyenv python3 on PATH
// does not see Debian's packages).
func torchPython(t *testing.T) string {
	t.Helper()
	var tried []string
	for _, py := range []string{os.Getenv("MOEGPU_PYTHON"), "python3", "/usr/bin/python3"} {
		if py == "" {
			continue
		}
		out, err := exec.Command(py, "-c", "import torch, numpy").CombinedOutput()
		if err == nil {
			return py
		}
		tried = append(tried, fmt.Sprintf("%s: %v %s", py, err, strings.TrimSpace(string(out))))
	}
	msg := "no python3 with torch and numpy (Debian: python3-torch python3-numpy libopenblas0-openmp; run scripts/setup.sh): " +
		strings.Join(tried, "; ")
	if os.Getenv("MOEGPU_REQUIRE_GPU") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// buildMoegpu builds cmd/moegpu into dir and returns the binary's path.
func buildMoegpu(t *testing.T, dir string) string {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	bin := filepath.Join(dir, "moegpu")
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/moegpu")
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/moegpu:\n%s", out)
	return bin
}

// taskBatch is one reference batch of runtime/tasks for tests/test_tasks.py.
type taskBatch struct {
	Task    string    `json:"task"`
	Seed    uint64    `json:"seed"`
	Step    uint64    `json:"step"`
	Batch   int       `json:"batch"`
	Seq     int       `json:"seq"`
	Tokens  []uint32  `json:"tokens"`
	Targets []int64   `json:"targets"` // −1 where no loss
	Weights []float32 `json:"weights"`
}

// writeTaskReference writes what runtime/tasks draws for a few seeds (the
// trainer's batches of steps 1 and 2, held-out sets, raw PCG outputs), for
// the Python reimplementation to reproduce exactly.
func writeTaskReference(t *testing.T, dir string) string {
	t.Helper()
	ref := struct {
		PCG     map[string][]string           `json:"pcg"` // "seed1,seed2" → first outputs, decimal
		Batches []taskBatch                   `json:"batches"`
		Eval    map[string]map[string][][]any `json:"eval"` // task → seed → [[prompt, answer]]
	}{PCG: map[string][]string{}, Eval: map[string]map[string][][]any{}}
	for _, s := range [][2]uint64{{1, 2}, {0, 0x7472_6169_6e00_0001}, {1<<63 + 5, 12345}} {
		var outs []string
		p := rand.NewPCG(s[0], s[1])
		for i := 0; i < 4; i++ {
			outs = append(outs, fmt.Sprint(p.Uint64()))
		}
		ref.PCG[fmt.Sprintf("%d,%d", s[0], s[1])] = outs
	}
	for _, name := range tasks.Names() {
		task, err := tasks.ByName(name)
		require.NoError(t, err)
		for _, seed := range []uint64{1, 7} {
			for step := uint64(1); step <= 2; step++ {
				B, T := 3, task.MaxSeqLen()+2
				tok, tgt, w, err := task.Batch(tasks.TrainRNG(seed*1_000_003+step), B, T)
				require.NoError(t, err)
				targets := make([]int64, len(tgt))
				for i, v := range tgt {
					targets[i] = int64(v)
					if v == tasks.IgnoreIndex {
						targets[i] = -1
					}
				}
				ref.Batches = append(ref.Batches, taskBatch{name, seed, step, B, T, tok, targets, w})
			}
		}
		ref.Eval[name] = map[string][][]any{}
		for _, seed := range []uint64{0, 3} {
			var ex [][]any
			for _, e := range task.EvalSet(5, seed) {
				ex = append(ex, []any{e.Prompt, e.Answer})
			}
			ref.Eval[name][fmt.Sprint(seed)] = ex
		}
	}
	b, err := json.Marshal(ref)
	require.NoError(t, err)
	path := filepath.Join(dir, "tasks_ref.json")
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return path
}
