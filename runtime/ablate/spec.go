// Package ablate runs ablations: a spec (JSON) names runs as overrides of a base model
// config (any config key, the task, the step count, the seeds), the runner trains and scores
// them one after another, each seed in its own directory with its own checkpoint and
// metrics, resumably, and the report turns the finished runs into Markdown tables and PNG
// plots with the spread over seeds. Training, scoring and timing are the caller's (moegpu
// ablate passes moegpu train's code in), so this package stays testable without a GPU.
package ablate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/moegpu/moegpu/assets"
	"github.com/moegpu/moegpu/runtime/config"
)

// Spec is an ablation: a question, a base run and the runs that differ from it.
//
//	{
//	  "name": "balancing",
//	  "question": "Does aux-loss-free balancing beat the balance loss here?",
//	  "estimate": {"minutes": 50, "how": "moegpu ablate --estimate: 10 steps of each run"},
//	  "base": {"config": "tiny-moe-fine", "task": "lm", "steps": 300, "seeds": [1, 2],
//	           "overrides": {"vocab_size": 100, "training": {"seq_len": 128}},
//	           "eval": {"n": 64}},
//	  "runs": [{"name": "none", "overrides": {"moe_balance": "none"}},
//	           {"name": "lbl", "overrides": {"moe_balance": "lbl", "aux_loss_alpha": 0.01}}]
//	}
//
// A run's fields replace the base's; its overrides are merged over the base's (objects
// such as "training" key by key, anything else replaced; a null resets a key to the config
// default); its eval options replace the base's field by field. Unknown keys anywhere are
// refused, naming them.
type Spec struct {
	Name        string    `json:"name"`
	Question    string    `json:"question,omitempty"`
	Description string    `json:"description,omitempty"`
	Estimate    *Estimate `json:"estimate,omitempty"`
	Base        RunSpec   `json:"base"`
	Runs        []RunSpec `json:"runs"`
	// Dir is the spec file's directory: config paths are relative to it.
	Dir string `json:"-"`
}

// Estimate is how long the spec takes on the machine it was sized on, and how that was
// found (moegpu ablate --estimate prints one).
type Estimate struct {
	Minutes float64 `json:"minutes"`
	How     string  `json:"how,omitempty"`
	// StepMs is the measured median step time of each run, in milliseconds.
	StepMs map[string]float64 `json:"step_ms,omitempty"`
	// EvalSeconds is the measured scoring time of each run (one seed).
	EvalSeconds map[string]float64 `json:"eval_seconds,omitempty"`
}

// RunSpec is one arm of an ablation (or the base all arms start from).
type RunSpec struct {
	Name string `json:"name,omitempty"`
	Note string `json:"note,omitempty"`
	// Config is a shipped config name (moegpu train --config) or a JSON file, relative to
	// the spec's directory.
	Config string `json:"config,omitempty"`
	// Task is a moegpu train --task name.
	Task      string          `json:"task,omitempty"`
	Steps     int             `json:"steps,omitempty"`
	Seeds     []int64         `json:"seeds,omitempty"`
	Overrides json.RawMessage `json:"overrides,omitempty"`
	Eval      *EvalOptions    `json:"eval,omitempty"`
}

// EvalOptions say how a run is scored; zero fields keep the default.
type EvalOptions struct {
	// N is the held-out size: lm windows, long-context examples over the whole grid,
	// synthetic-task examples, OCR lines (default 64).
	N int `json:"n,omitempty"`
	// Seed picks the held-out set of the tasks that draw one (default 0, as moegpu eval).
	Seed uint64 `json:"seed,omitempty"`
	// Lengths and Depths are the long-context grid (default textdata.EvalLengths up to
	// max_position_embeddings, and textdata.EvalDepths).
	Lengths []int     `json:"lengths,omitempty"`
	Depths  []float64 `json:"depths,omitempty"`
	// SeqLen is the lm window (default the training seq_len).
	SeqLen int `json:"seq_len,omitempty"`
	// MTPPrompts and MTPTokens size the speculative-decoding measurement of MTP models
	// (held-out prompts decoded greedily, MTPTokens new tokens each; defaults 16 and 32;
	// MTPPrompts −1 skips it).
	MTPPrompts int `json:"mtp_prompts,omitempty"`
	MTPTokens  int `json:"mtp_tokens,omitempty"`
	// MTPPromptLen is the length of an lm prompt, in characters (default 32).
	MTPPromptLen int `json:"mtp_prompt_len,omitempty"`
	// FFNMs is how long the isolated FFN timing runs each block, in milliseconds (default
	// 300; −1 skips it).
	FFNMs int `json:"ffn_ms,omitempty"`
}

// Defaults of EvalOptions.
const (
	DefaultEvalN        = 64
	DefaultMTPPrompts   = 16
	DefaultMTPTokens    = 32
	DefaultMTPPromptLen = 32
	DefaultFFNMs        = 300
)

// withDefaults fills the zero fields.
func (o EvalOptions) withDefaults() EvalOptions {
	if o.N == 0 {
		o.N = DefaultEvalN
	}
	if o.MTPPrompts == 0 {
		o.MTPPrompts = DefaultMTPPrompts
	}
	if o.MTPTokens == 0 {
		o.MTPTokens = DefaultMTPTokens
	}
	if o.MTPPromptLen == 0 {
		o.MTPPromptLen = DefaultMTPPromptLen
	}
	if o.FFNMs == 0 {
		o.FFNMs = DefaultFFNMs
	}
	return o
}

// merge lays run's non-zero fields over o's.
func (o EvalOptions) merge(run *EvalOptions) EvalOptions {
	if run == nil {
		return o
	}
	ov, rv := reflect.ValueOf(&o).Elem(), reflect.ValueOf(run).Elem()
	for i := 0; i < rv.NumField(); i++ {
		if !rv.Field(i).IsZero() {
			ov.Field(i).Set(rv.Field(i))
		}
	}
	return o
}

// LoadSpec reads and parses a spec file; config paths in it are relative to its directory.
func LoadSpec(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ablate: %w", err)
	}
	s, err := ParseSpec(b)
	if err != nil {
		return nil, fmt.Errorf("ablate: spec %s: %w", path, err)
	}
	s.Dir = filepath.Dir(path)
	return s, nil
}

var runName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+=-]*$`)

// ParseSpec decodes a spec strictly: unknown keys (named with their place, e.g.
// runs[2].overides), wrong types and trailing data are errors, and so are a missing name,
// no runs, duplicate or unusable run names, and seeds that repeat. Whether each run's config
// is valid is checked when it is resolved (Jobs).
func ParseSpec(b []byte) (*Spec, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("trailing data after the spec object")
	}
	if err := checkKeys(raw, reflect.TypeOf(Spec{}), ""); err != nil {
		return nil, err
	}
	var s Spec
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("invalid spec: %w", err)
	}
	if s.Name == "" || !runName.MatchString(s.Name) {
		return nil, fmt.Errorf("name %q: want letters, digits and _ . + = - (it names the report)", s.Name)
	}
	if len(s.Runs) == 0 {
		return nil, errors.New("runs: the spec has no runs")
	}
	if s.Base.Name != "" {
		return nil, errors.New("base.name: the base is not a run; give names to runs only")
	}
	seen := map[string]bool{}
	for i, r := range s.Runs {
		if !runName.MatchString(r.Name) {
			return nil, fmt.Errorf("runs[%d].name %q: want letters, digits and _ . + = - (it names a directory)", i, r.Name)
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("runs[%d].name: %q is used twice", i, r.Name)
		}
		seen[r.Name] = true
	}
	for _, r := range append([]RunSpec{s.Base}, s.Runs...) {
		for _, o := range []json.RawMessage{r.Overrides} {
			if len(o) > 0 && !isObject(o) {
				return nil, fmt.Errorf("%s.overrides: want a JSON object of config keys", where(r))
			}
		}
		dup := map[int64]bool{}
		for _, sd := range r.Seeds {
			if sd < 0 || dup[sd] {
				return nil, fmt.Errorf("%s.seeds %v: want distinct seeds ≥ 0", where(r), r.Seeds)
			}
			dup[sd] = true
		}
		if r.Steps < 0 {
			return nil, fmt.Errorf("%s.steps %d must be positive", where(r), r.Steps)
		}
	}
	return &s, nil
}

func where(r RunSpec) string {
	if r.Name == "" {
		return "base"
	}
	return "run " + r.Name
}

func isObject(b json.RawMessage) bool {
	t := bytes.TrimSpace(b)
	return len(t) > 0 && t[0] == '{'
}

// checkKeys walks a JSON value against the struct type it decodes into and refuses keys
// the type does not have, naming their path. json.RawMessage fields (config overrides) are
// left to the config parser.
func checkKeys(b []byte, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			if len(bytes.TrimSpace(b)) > 0 && bytes.TrimSpace(b)[0] != '{' {
				return fmt.Errorf("%s: want a JSON object", strings.TrimPrefix(path, "."))
			}
			return fmt.Errorf("invalid JSON: %w", err)
		}
		fields := map[string]reflect.StructField{}
		var known []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			fields[name] = f
			known = append(known, name)
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			f, ok := fields[k]
			p := strings.TrimPrefix(path+"."+k, ".")
			if !ok {
				return fmt.Errorf("unknown key %q (known keys here: %s)", p, strings.Join(known, ", "))
			}
			if f.Type == reflect.TypeOf(json.RawMessage{}) || f.Type.Kind() == reflect.Map {
				continue
			}
			if err := checkKeys(m[k], f.Type, path+"."+k); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if t.Elem().Kind() != reflect.Struct {
			return nil
		}
		var items []json.RawMessage
		if err := json.Unmarshal(b, &items); err != nil {
			return fmt.Errorf("%s: want a list", strings.TrimPrefix(path, "."))
		}
		for i, it := range items {
			if err := checkKeys(it, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Job is one seed of one run, resolved: the config it trains (base config, base overrides,
// run overrides, training.seed), the task, the steps, the eval options, and the directory
// it lives in.
type Job struct {
	Run   string
	Seed  int64
	Dir   string // OUT/runs/RUN/seed-SEED: moegpu train's --out
	Task  string
	Steps int
	// ConfigJSON is the resolved config as moegpu train reads it (written to ConfigFile in
	// Dir); Config is it parsed.
	ConfigJSON []byte
	Config     *config.ModelConfig
	Eval       EvalOptions
	// Key identifies what the job computes (config, task, steps, eval options): a finished
	// result with another key belongs to another spec.
	Key string
}

// ConfigFile is the resolved config a job trains, inside its directory (moegpu train then
// writes its own config.json beside it with the checkpoint).
const ConfigFile = "ablate-config.json"

// RunPlan is a run as resolved, for the report: its fields after merging with the base.
type RunPlan struct {
	Name      string          `json:"name"`
	Note      string          `json:"note,omitempty"`
	Config    string          `json:"config"`
	Task      string          `json:"task"`
	Steps     int             `json:"steps"`
	Seeds     []int64         `json:"seeds"`
	Overrides json.RawMessage `json:"overrides,omitempty"` // the run's own, over the base's
	Eval      EvalOptions     `json:"eval"`
	Params    int64           `json:"params"`
	Active    int64           `json:"active_params"`
}

// Plan is the resolved spec: what the report is about.
type Plan struct {
	Name          string          `json:"name"`
	Question      string          `json:"question,omitempty"`
	Description   string          `json:"description,omitempty"`
	Estimate      *Estimate       `json:"estimate,omitempty"`
	BaseOverrides json.RawMessage `json:"base_overrides,omitempty"`
	Runs          []RunPlan       `json:"runs"`
}

// Resolve merges every run with the base and resolves its configs (one per seed), under the
// output directory out. Errors name the run (and the config key, from the config parser).
func (s *Spec) Resolve(out string) (*Plan, []Job, error) {
	p := &Plan{Name: s.Name, Question: s.Question, Description: s.Description, Estimate: s.Estimate, BaseOverrides: s.Base.Overrides}
	var jobs []Job
	for _, r := range s.Runs {
		rp := RunPlan{Name: r.Name, Note: r.Note, Config: first(r.Config, s.Base.Config), Task: first(r.Task, s.Base.Task),
			Steps: r.Steps, Seeds: r.Seeds, Overrides: r.Overrides}
		if rp.Steps == 0 {
			rp.Steps = s.Base.Steps
		}
		if rp.Seeds == nil {
			rp.Seeds = s.Base.Seeds
		}
		rp.Eval = EvalOptions{}.merge(s.Base.Eval).merge(r.Eval).withDefaults()
		switch {
		case rp.Config == "":
			return nil, nil, fmt.Errorf("run %s: no config (set base.config or the run's config)", r.Name)
		case rp.Task == "":
			return nil, nil, fmt.Errorf("run %s: no task (set base.task or the run's task)", r.Name)
		case rp.Steps < 1:
			return nil, nil, fmt.Errorf("run %s: no steps (set base.steps or the run's steps)", r.Name)
		case len(rp.Seeds) == 0:
			return nil, nil, fmt.Errorf("run %s: no seeds (set base.seeds or the run's seeds)", r.Name)
		}
		raw, err := s.configJSON(rp.Config)
		if err != nil {
			return nil, nil, fmt.Errorf("run %s: %w", r.Name, err)
		}
		var cfg map[string]any
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, nil, fmt.Errorf("run %s: config %s: %w", r.Name, rp.Config, err)
		}
		for _, o := range []json.RawMessage{s.Base.Overrides, r.Overrides} {
			if len(o) == 0 {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal(o, &m); err != nil {
				return nil, nil, fmt.Errorf("run %s: overrides: %w", r.Name, err)
			}
			cfg = mergeJSON(cfg, m)
		}
		for _, seed := range rp.Seeds {
			c := mergeJSON(cfg, map[string]any{"training": map[string]any{"seed": seed}})
			b, err := json.MarshalIndent(c, "", "  ")
			if err != nil {
				return nil, nil, fmt.Errorf("run %s: %w", r.Name, err)
			}
			parsed, err := config.Parse(b)
			if err != nil {
				return nil, nil, fmt.Errorf("run %s (config %s with the overrides): %w", r.Name, rp.Config, err)
			}
			j := Job{Run: r.Name, Seed: seed, Dir: filepath.Join(out, "runs", r.Name, fmt.Sprintf("seed-%d", seed)),
				Task: rp.Task, Steps: rp.Steps, ConfigJSON: append(b, '\n'), Config: parsed, Eval: rp.Eval}
			ev, _ := json.Marshal(j.Eval)
			h := sha256.New()
			fmt.Fprintf(h, "%s\x00%s\x00%d\x00%s", b, j.Task, j.Steps, ev)
			j.Key = hex.EncodeToString(h.Sum(nil))[:16]
			jobs = append(jobs, j)
			rp.Params, rp.Active = ParamCounts(parsed)
		}
		p.Runs = append(p.Runs, rp)
	}
	return p, jobs, nil
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// configJSON reads a config file (relative to the spec) or a shipped config by name.
func (s *Spec) configJSON(name string) ([]byte, error) {
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(s.Dir, name)
	}
	if b, err := os.ReadFile(path); err == nil {
		return b, nil
	}
	if b, ok := assets.Config(name); ok {
		return b, nil
	}
	return nil, fmt.Errorf("config %q is neither a file (relative to the spec's directory %s) nor a shipped config (%s)", name, s.Dir, strings.Join(assets.Configs(), ", "))
}

// mergeJSON lays over on base: objects merge key by key (recursively), anything else
// (numbers, strings, lists, null) replaces. Neither argument is modified.
func mergeJSON(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if vm, ok := v.(map[string]any); ok {
			if bm, ok := out[k].(map[string]any); ok {
				out[k] = mergeJSON(bm, vm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// ParamCounts is a config's total parameters and those one token uses (config.ModelConfig's
// ParamCount and ActiveParamCount).
func ParamCounts(c *config.ModelConfig) (total, active int64) {
	return c.ParamCount(), c.ActiveParamCount()
}
