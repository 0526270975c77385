package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
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

// Save writes the checkpoint into dir (config, weights, optimizer moments, trainer state) so that
// dir holds a complete checkpoint at every instant, even when the process is killed mid-save:
//
//  1. every file is written into a fresh temporary directory dir/.checkpoint.tmp-*, and synced;
//  2. that directory is renamed to dir/.checkpoint.commit (one atomic rename commits the save);
//  3. its files are renamed one by one over the old ones in dir, the trainer state last, and the
//     empty commit directory is removed.
//
// A kill before step 2 leaves the old checkpoint untouched (the next Save removes the stale
// temporary directory); a kill after it leaves a commit directory that LoadState and Restore
// finish moving into place before they read (recoverSave). Both safetensors files also carry the
// step, which Restore checks against the trainer state.
func (t *Trainer) Save(dir string, executor string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := recoverSave(dir); err != nil {
		return err
	}
	stale, _ := filepath.Glob(filepath.Join(dir, tmpPrefix+"*"))
	for _, d := range stale {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("save: removing the leftover of an interrupted save: %w", err)
		}
	}
	params := t.weightTensors()
	var wfile, moments []safetensors.Tensor
	var all []*graph.Tensor
	all = append(all, params...)
	all = append(all, t.optimizerTensors()...)
	vals, err := t.Exec.Get(all...)
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if wfile, err = weights.Tensors(params, vals[:len(params)]); err != nil {
		return err
	}
	if moments, err = weights.Tensors(all[len(params):], vals[len(params):]); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir, tmpPrefix)
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once it has been renamed
	meta := map[string]string{"format": "pt", "step": strconv.Itoa(t.Step)}
	if err := t.Config.Save(filepath.Join(tmp, ConfigFile)); err != nil {
		return err
	}
	if err := safetensors.Write(filepath.Join(tmp, WeightsFile), wfile, meta); err != nil {
		return err
	}
	if err := safetensors.Write(filepath.Join(tmp, OptimizerFile), moments, meta); err != nil {
		return err
	}
	st, _ := json.MarshalIndent(State{Step: t.Step, Task: t.Task.Name(), Executor: executor, TotalSteps: t.totalSteps}, "", "  ")
	if err := atomicfile.Write(filepath.Join(tmp, StateFile), append(st, '\n')); err != nil {
		return err
	}
	syncDir(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, commitDir)); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	syncDir(dir)
	return recoverSave(dir)
}

// Names inside a checkpoint directory used while saving.
const (
	tmpPrefix = ".checkpoint.tmp-"
	commitDir = ".checkpoint.commit"
)

// recoverSave finishes a committed save: it renames the files of dir/.checkpoint.commit over
// those of dir, the trainer state last, and removes the empty commit directory. It is a no-op
// when there is no commit directory. A file already moved (by this or another process) is skipped,
// so recovery may be repeated or interrupted at any point.
func recoverSave(dir string) error {
	cd := filepath.Join(dir, commitDir)
	ents, err := os.ReadDir(cd)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checkpoint %s: finishing an interrupted save: %w", dir, err)
	}
	var names []string
	for _, e := range ents {
		if e.Name() != StateFile {
			names = append(names, e.Name())
		}
	}
	names = append(names, StateFile)
	for _, n := range names {
		err := os.Rename(filepath.Join(cd, n), filepath.Join(dir, n))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("checkpoint %s: finishing an interrupted save: %w", dir, err)
		}
	}
	syncDir(dir)
	if err := os.Remove(cd); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("checkpoint %s: finishing an interrupted save: %w", dir, err)
	}
	return nil
}

// syncDir makes renames inside dir durable where the OS allows; best effort.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// LoadState reads a checkpoint's trainer state and config, first finishing a save that was
// interrupted after it committed (see Save).
func LoadState(dir string) (*State, *config.ModelConfig, error) {
	if err := recoverSave(dir); err != nil {
		return nil, nil, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, derr := os.Stat(dir); errors.Is(derr, os.ErrNotExist) {
				return nil, nil, fmt.Errorf("checkpoint %s does not exist", dir)
			}
			return nil, nil, fmt.Errorf("%s is not a complete checkpoint (no %s)", dir, StateFile)
		}
		return nil, nil, err
	}
	s, err := ParseState(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint %s: %s: %w", dir, StateFile, err)
	}
	cfg, err := config.Load(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, nil, err
	}
	return s, cfg, nil
}

// ParseState decodes a trainer_state.json strictly: an unknown key, a null, a wrong type or
// trailing data is an error naming it, and so is a negative step or total_steps.
func ParseState(b []byte) (*State, error) {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, errors.New("want a JSON object")
	}
	// The state has no defaults, so a null cannot stand for one (it would decode as step 0).
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err == nil {
		keys := make([]string, 0, len(raw))
		for k := range raw {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if string(bytes.TrimSpace(raw[k])) == "null" {
				return nil, fmt.Errorf("key %q is null", k)
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s State
	if err := dec.Decode(&s); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, fmt.Errorf("key %q: want %s, got %s", te.Field, te.Type, te.Value)
		}
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON object")
	}
	if s.Step < 0 {
		return nil, fmt.Errorf("step must not be negative, got %d", s.Step)
	}
	if s.TotalSteps < 0 {
		return nil, fmt.Errorf("total_steps must not be negative, got %d", s.TotalSteps)
	}
	return &s, nil
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
	if err := weights.Load(t.Exec, filepath.Join(dir, WeightsFile), t.weightTensors()); err != nil {
		return err
	}
	if err := weights.Load(t.Exec, filepath.Join(dir, OptimizerFile), t.optimizerTensors()); err != nil {
		return err
	}
	t.Step = s.Step
	return nil
}

// weightTensors are what model.safetensors holds: the parameters, then
// the MoE layers' e_score_correction_bias (Hugging Face DeepSeek-V3 names).
func (t *Trainer) weightTensors() []*graph.Tensor {
	return append(t.Model.Params(), t.Model.State()...)
}

// optimizerTensors are what optimizer.safetensors holds: each parameter's
// AdamW moments, then the balancing controllers' state.
func (t *Trainer) optimizerTensors() []*graph.Tensor {
	var out []*graph.Tensor
	for _, p := range t.Model.Params() {
		mv := t.moments[p]
		out = append(out, mv[0], mv[1])
	}
	return append(out, t.Model.ControllerState()...)
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
