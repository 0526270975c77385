package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/moegpu/moegpu/internal/atomicfile"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/safetensors"
	"github.com/moegpu/moegpu/runtime/weights"
)

// Checkpoint files inside a checkpoint directory. The weights use the
// Hugging Face file name and tensor names, so other tools can read them.
const (
	ConfigFile    = "config.json"
	WeightsFile   = "model.safetensors"
	OptimizerFile = "optimizer.safetensors"
	StateFile     = "trainer_state.json"
)

// State is the trainer's own progress, written last so that a directory
// with a state file holds a complete checkpoint.
type State struct {
	Step     int    `json:"step"`
	Task     string `json:"task"`
	Executor string `json:"executor"`
	// TotalSteps is the run's planned length, which sets the learning-rate
	// schedule.
	TotalSteps int `json:"total_steps"`
}

// Save writes the checkpoint into dir: config, weights, optimizer
// moments, then the trainer state. Each file is written to a temporary
// name and renamed, so no file is ever half-written; and the old state file
// is removed first, so a save interrupted between files leaves a directory
// that Restore refuses ("not a complete checkpoint") rather than new
// weights with old moments. Both safetensors files also carry the step,
// which Restore checks.
func (t *Trainer) Save(dir string, executor string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, StateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	params := t.Model.Params()
	var weights, moments []safetensors.Tensor
	var all []*graph.Tensor
	all = append(all, params...)
	for _, p := range params {
		mv := t.moments[p]
		all = append(all, mv[0], mv[1])
	}
	vals, err := t.Exec.Get(all...)
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	for i, tn := range all {
		st, err := safetensors.FromFloat32(tn.Name, tn.Shape, toF32(vals[i]))
		if err != nil {
			return err
		}
		if i < len(params) {
			weights = append(weights, st)
		} else {
			moments = append(moments, st)
		}
	}
	meta := map[string]string{"format": "pt", "step": strconv.Itoa(t.Step)}
	if err := t.Config.Save(filepath.Join(dir, ConfigFile)); err != nil {
		return err
	}
	if err := safetensors.Write(filepath.Join(dir, WeightsFile), weights, meta); err != nil {
		return err
	}
	if err := safetensors.Write(filepath.Join(dir, OptimizerFile), moments, meta); err != nil {
		return err
	}
	st, _ := json.MarshalIndent(State{Step: t.Step, Task: t.Task.Name(), Executor: executor, TotalSteps: t.totalSteps}, "", "  ")
	return atomicfile.Write(filepath.Join(dir, StateFile), append(st, '\n'))
}

// LoadState reads a checkpoint's trainer state and config.
func LoadState(dir string) (*State, *config.ModelConfig, error) {
	raw, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("%s is not a complete checkpoint (no %s)", dir, StateFile)
		}
		return nil, nil, err
	}
	var s State
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, nil, fmt.Errorf("checkpoint %s: %s: %w", dir, StateFile, err)
	}
	cfg, err := config.Load(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, nil, err
	}
	return &s, cfg, nil
}

// Restore loads weights and optimizer moments from a checkpoint directory
// into the trainer and sets its step. Every tensor must be present with
// the right shape; extra tensors are an error too (a different model).
func (t *Trainer) Restore(dir string) error {
	s, _, err := LoadState(dir)
	if err != nil {
		return err
	}
	if s.Task != "" && s.Task != t.Task.Name() {
		return fmt.Errorf("checkpoint %s was trained on task %s, not %s", dir, s.Task, t.Task.Name())
	}
	for _, f := range []string{WeightsFile, OptimizerFile} {
		if err := checkStep(filepath.Join(dir, f), s.Step); err != nil {
			return err
		}
	}
	params := t.Model.Params()
	if err := weights.Load(t.Exec, filepath.Join(dir, WeightsFile), params); err != nil {
		return err
	}
	var ms []*graph.Tensor
	for _, p := range params {
		mv := t.moments[p]
		ms = append(ms, mv[0], mv[1])
	}
	if err := weights.Load(t.Exec, filepath.Join(dir, OptimizerFile), ms); err != nil {
		return err
	}
	t.Step = s.Step
	return nil
}

func toF32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// checkStep refuses a checkpoint file written at another step than the
// trainer state says (a save interrupted between files).
func checkStep(path string, step int) error {
	f, err := safetensors.Read(path)
	if err != nil {
		return err
	}
	if got := f.Metadata["step"]; got != strconv.Itoa(step) {
		return fmt.Errorf("%s was written at step %q, but the trainer state says step %d (an interrupted save?)", path, got, step)
	}
	return nil
}
