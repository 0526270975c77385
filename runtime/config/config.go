// Package config holds the model and training configuration of a moegpu model: the JSON file that
// travels next to a safetensors checkpoint. Field names follow Hugging Face's config.json where HF
// has a name for the thing, so a checkpoint and its config can move between this runtime and other
// tools; the parser is strict (an unknown key is an error naming it) so a typo never silently
// falls back to a default.
//
// Defaults for keys omitted from the JSON (and for zero-valued fields of a Go-built config, see
// ApplyDefaults):
//
//	model_type               "moegpu"
//	num_key_value_heads      num_attention_heads (plain multi-head attention)
//	head_dim                 hidden_size / num_attention_heads
//	hidden_act               "silu" (SwiGLU FFN)
//	rms_norm_eps             1e-6
//	rope_theta               10000
//	partial_rotary_factor    1 (RoPE on the whole head)
//	max_position_embeddings  2048
//	sliding_window           0 (none; required > 0 when a layer is "sliding_attention")
//	layer_types              every layer "full_attention"
//	attention_sink           false
//	tie_word_embeddings      false
//	initializer_range        0.02
//
// and inside the optional "training" object:
//
//	learning_rate  3e-4      min_lr_ratio   0.1      warmup_steps  100
//	weight_decay   0.1       adam_beta1     0.9      adam_beta2    0.95
//	adam_epsilon   1e-8      max_grad_norm  1 (0 = no clipping)
//	decay_embeddings  false (weight decay skips embeddings unless true)
//	batch_size     8         seq_len        128      seed          0
//
// vocab_size, hidden_size, num_hidden_layers, num_attention_heads and intermediate_size have no
// default: a config without them fails Validate.
//
// A JSON null in any key, nested sections included, means the key's default, exactly as if the
// key were omitted (Hugging Face configs carry nulls); a null in a key without a default, or an
// element of a list that is null, is refused with the key's name.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/moegpu/moegpu/internal/atomicfile"
)

// ModelType is the only model_type this runtime builds; HF tools use the field to pick a model class.
const ModelType = "moegpu"

// Activation names accepted in hidden_act; each selects an FFN form.
const (
	// ActSiLU selects the SwiGLU FFN: down(silu(gate(x)) * up(x)), three D×I matrices.
	ActSiLU = "silu"
	// ActReLU2 selects the ReLU² FFN: down(relu(up(x))²), two D×I matrices.
	ActReLU2 = "relu2"
)

// Layer types accepted in layer_types, spelled as HF spells them.
const (
	// FullAttention is causal attention over the whole prefix.
	FullAttention = "full_attention"
	// SlidingAttention is causal attention over the last sliding_window positions.
	SlidingAttention = "sliding_attention"
)

// ModelConfig describes the dense decoder-only transformer the runtime builds: sizes, attention
// layout (GQA, RoPE, sliding-window / full per layer, optional sink) and FFN form, plus the
// optional training hyperparameters that belong with it.
type ModelConfig struct {
	ModelType             string   `json:"model_type"`
	VocabSize             int      `json:"vocab_size"`
	HiddenSize            int      `json:"hidden_size"`
	NumHiddenLayers       int      `json:"num_hidden_layers"`
	NumAttentionHeads     int      `json:"num_attention_heads"`
	NumKeyValueHeads      int      `json:"num_key_value_heads"`
	HeadDim               int      `json:"head_dim"`
	IntermediateSize      int      `json:"intermediate_size"`
	HiddenAct             string   `json:"hidden_act"`
	RMSNormEps            float64  `json:"rms_norm_eps"`
	RopeTheta             float64  `json:"rope_theta"`
	PartialRotaryFactor   float64  `json:"partial_rotary_factor"`
	MaxPositionEmbeddings int      `json:"max_position_embeddings"`
	SlidingWindow         int      `json:"sliding_window"`
	LayerTypes            []string `json:"layer_types"`
	AttentionSink         bool     `json:"attention_sink"`
	TieWordEmbeddings     bool     `json:"tie_word_embeddings"`
	InitializerRange      float64  `json:"initializer_range"`
	// MoEConfig's fields (n_routed_experts …) sit at the top level of the JSON, as in Hugging Face
	// MoE configs; see MoEConfig.
	MoEConfig
	// MTPConfig's fields (num_nextn_predict_layers …) sit at the top level too; see MTPConfig.
	MTPConfig
	// ImageConfig's fields (image_height …) sit at the top level too; see ImageConfig.
	ImageConfig
	Training *TrainingConfig `json:"training,omitempty"`
}

// TrainingConfig holds the optimiser (AdamW), schedule (linear warmup then cosine decay to
// min_lr_ratio·learning_rate) and batch settings that a training run of the model uses, so a run
// can be reproduced from its config alone.
type TrainingConfig struct {
	LearningRate float64 `json:"learning_rate"`
	MinLRRatio   float64 `json:"min_lr_ratio"`
	WarmupSteps  int     `json:"warmup_steps"`
	WeightDecay  float64 `json:"weight_decay"`
	AdamBeta1    float64 `json:"adam_beta1"`
	AdamBeta2    float64 `json:"adam_beta2"`
	AdamEpsilon  float64 `json:"adam_epsilon"`
	MaxGradNorm  float64 `json:"max_grad_norm"`
	// DecayEmbeddings applies weight decay to embedding tables too (norm
	// gains and attention sinks are never decayed).
	DecayEmbeddings bool  `json:"decay_embeddings"`
	BatchSize       int   `json:"batch_size"`
	SeqLen          int   `json:"seq_len"`
	Seed            int64 `json:"seed"`
}

// Load reads, parses, defaults and validates the config at path. Errors name the file.
func Load(path string) (*ModelConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a JSON config strictly (unknown keys, wrong types and trailing data are errors),
// fills defaults for omitted keys (see the package comment) and validates the result.
func Parse(b []byte) (*ModelConfig, error) {
	c, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

func parse(b []byte) (*ModelConfig, error) {
	c := &ModelConfig{}
	if err := decodeStrict(b, c, ""); err != nil {
		return nil, err
	}
	// Which keys were present decides which defaults apply, so an explicit 0 stays 0 (and fails
	// validation where 0 is invalid) instead of silently becoming the default.
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, err
	}
	if err := checkExactKeys(top, ModelConfig{}, ""); err != nil {
		return nil, err
	}
	// A null means the key's default (or is refused where there is none): from here on a null
	// key is an absent key, in nested sections too (see dropNulls).
	top, err := dropNulls(top, reflect.TypeOf(ModelConfig{}), "")
	if err != nil {
		return nil, err
	}
	c.applyDefaults(func(k string) bool { _, ok := top[k]; return ok })
	if c.Training != nil {
		var tr map[string]json.RawMessage
		if err := json.Unmarshal(top["training"], &tr); err != nil {
			return nil, fmt.Errorf("training: %w", err)
		}
		if err := checkExactKeys(tr, TrainingConfig{}, "training."); err != nil {
			return nil, err
		}
		c.Training.applyDefaults(func(k string) bool { _, ok := tr[k]; return ok })
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// checkExactKeys refuses keys that match a field only case-insensitively: encoding/json accepts
// "Hidden_Size" for hidden_size, which would also hide the key from the defaults logic.
func checkExactKeys(m map[string]json.RawMessage, v any, prefix string) error {
	known := map[string]bool{}
	var walk func(rt reflect.Type)
	walk = func(rt reflect.Type) {
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct && f.Tag.Get("json") == "" {
				walk(f.Type) // embedded struct: its fields are top-level keys
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			known[name] = true
		}
	}
	walk(reflect.TypeOf(v))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !known[k] {
			return fmt.Errorf("unknown key %q (keys are case-sensitive; did you mean %q?)", prefix+k, prefix+strings.ToLower(k))
		}
	}
	return nil
}

// UnmarshalJSON decodes the training object strictly, so an unknown key inside it is reported
// as "training.<key>".
func (t *TrainingConfig) UnmarshalJSON(b []byte) error {
	type plain TrainingConfig
	return decodeStrict(b, (*plain)(t), "training.")
}

// decodeStrict decodes one JSON value into v, refusing unknown fields and trailing data, and
// rewrites encoding/json's errors into messages that name the offending key.
func decodeStrict(b []byte, v any, prefix string) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return clarifyJSONError(err, prefix)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

func clarifyJSONError(err error, prefix string) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			return fmt.Errorf("%swant a JSON object, got %s", prefix, te.Value)
		}
		return fmt.Errorf("key %q: want %s, got %s", prefix+field, jsonTypeName(te.Type.Kind().String()), te.Value)
	}
	msg := err.Error()
	if k, ok := strings.CutPrefix(msg, `json: unknown field "`); ok {
		k = strings.TrimSuffix(k, `"`)
		return fmt.Errorf("unknown key %q", prefix+k)
	}
	if strings.HasPrefix(msg, "unknown key ") || strings.HasPrefix(msg, "key ") {
		return err // already clarified by a nested decoder
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d: %v", se.Offset, se)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("invalid JSON: unexpected end of input")
	}
	return err
}

func jsonTypeName(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"):
		return "an integer"
	case strings.HasPrefix(kind, "float"):
		return "a number"
	case kind == "string":
		return "a string"
	case kind == "bool":
		return "true or false"
	case kind == "slice":
		return "a list"
	case kind == "ptr", kind == "struct":
		return "an object"
	}
	return kind
}

// ApplyDefaults fills the fields of a config built in Go that were left at their zero value
// (see the package comment for the values). The derived defaults (num_key_value_heads, head_dim,
// layer_types) need the sizes they derive from to be set first. A Go caller who wants an explicit
// zero where the default is not zero (warmup_steps 0, weight_decay 0) must set it after this call.
func (c *ModelConfig) ApplyDefaults() {
	c.applyDefaults(func(k string) bool {
		switch k {
		case "model_type":
			return c.ModelType != ""
		case "num_key_value_heads":
			return c.NumKeyValueHeads != 0
		case "head_dim":
			return c.HeadDim != 0
		case "hidden_act":
			return c.HiddenAct != ""
		case "rms_norm_eps":
			return c.RMSNormEps != 0
		case "rope_theta":
			return c.RopeTheta != 0
		case "partial_rotary_factor":
			return c.PartialRotaryFactor != 0
		case "max_position_embeddings":
			return c.MaxPositionEmbeddings != 0
		case "layer_types":
			return c.LayerTypes != nil
		case "initializer_range":
			return c.InitializerRange != 0
		case "routed_scaling_factor":
			return c.RoutedScalingFactor != 0
		case "scoring_func":
			return c.ScoringFunc != ""
		case "norm_topk_prob":
			return c.NormTopKProb || c.NumExpertsPerTok == 1
		case "moe_hidden_act":
			return c.MoEHiddenAct != ""
		case "moe_balance":
			return c.MoEBalance != ""
		case "moe_skip_controller":
			return c.MoESkipController != ""
		case "aux_loss_alpha":
			return c.AuxLossAlpha != 0
		case "bias_update_speed":
			return c.BiasUpdateSpeed != 0
		case "bias_pid_kp":
			return c.BiasPIDKp != 0
		case "bias_pid_ki":
			return c.BiasPIDKi != 0
		case "moe_skip_update_speed":
			return c.MoESkipUpdateSpeed != 0
		case "moe_skip_pid_kp":
			return c.MoESkipPIDKp != 0
		case "moe_skip_pid_ki":
			return c.MoESkipPIDKi != 0
		}
		return true
	})
	if t := c.Training; t != nil {
		t.applyDefaults(func(k string) bool {
			switch k {
			case "learning_rate":
				return t.LearningRate != 0
			case "min_lr_ratio":
				return t.MinLRRatio != 0
			case "warmup_steps":
				return t.WarmupSteps != 0
			case "weight_decay":
				return t.WeightDecay != 0
			case "adam_beta1":
				return t.AdamBeta1 != 0
			case "adam_beta2":
				return t.AdamBeta2 != 0
			case "adam_epsilon":
				return t.AdamEpsilon != 0
			case "max_grad_norm":
				return t.MaxGradNorm != 0
			case "batch_size":
				return t.BatchSize != 0
			case "seq_len":
				return t.SeqLen != 0
			}
			return true
		})
	}
}

// applyDefaults sets every field whose JSON key is not present.
func (c *ModelConfig) applyDefaults(present func(key string) bool) {
	if !present("model_type") {
		c.ModelType = ModelType
	}
	if !present("num_key_value_heads") {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	// head_dim defaults to hidden_size/heads only where that divides;
	// otherwise it stays 0 and Validate asks for it explicitly.
	if !present("head_dim") && c.NumAttentionHeads > 0 && c.HiddenSize%c.NumAttentionHeads == 0 {
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	if !present("hidden_act") {
		c.HiddenAct = ActSiLU
	}
	if !present("rms_norm_eps") {
		c.RMSNormEps = 1e-6
	}
	if !present("rope_theta") {
		c.RopeTheta = 10000
	}
	if !present("partial_rotary_factor") {
		c.PartialRotaryFactor = 1
	}
	if !present("max_position_embeddings") {
		c.MaxPositionEmbeddings = 2048
	}
	if !present("layer_types") && c.NumHiddenLayers > 0 && c.NumHiddenLayers <= maxLayers {
		c.LayerTypes = make([]string, c.NumHiddenLayers)
		for i := range c.LayerTypes {
			c.LayerTypes[i] = FullAttention
		}
	}
	if !present("initializer_range") {
		c.InitializerRange = 0.02
	}
	if c.IsMoE() {
		c.applyMoEDefaults(present, c.HiddenAct)
	}
	if c.HasMTP() {
		c.applyMTPDefaults(present, c.IntermediateSize, c.SlidingWindow)
	}
}

func (t *TrainingConfig) applyDefaults(present func(key string) bool) {
	set := func(key string, dst *float64, v float64) {
		if !present(key) {
			*dst = v
		}
	}
	set("learning_rate", &t.LearningRate, 3e-4)
	set("min_lr_ratio", &t.MinLRRatio, 0.1)
	set("weight_decay", &t.WeightDecay, 0.1)
	set("adam_beta1", &t.AdamBeta1, 0.9)
	set("adam_beta2", &t.AdamBeta2, 0.95)
	set("adam_epsilon", &t.AdamEpsilon, 1e-8)
	set("max_grad_norm", &t.MaxGradNorm, 1)
	if !present("warmup_steps") {
		t.WarmupSteps = 100
	}
	if !present("batch_size") {
		t.BatchSize = 8
	}
	if !present("seq_len") {
		t.SeqLen = 128
	}
}

// maxLayers bounds num_hidden_layers so a corrupt config cannot make the default layer_types
// allocate without limit; no model this runtime targets comes near it.
const maxLayers = 1 << 16

// Validate reports every problem with the config at once (joined), each naming the key, so a
// user fixes a config in one pass.
func (c *ModelConfig) Validate() error {
	if err := c.validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

func (c *ModelConfig) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	positive := func(key string, v int) bool {
		if v <= 0 {
			bad("%s must be positive, got %d", key, v)
			return false
		}
		return true
	}
	finitePositive := func(key string, v float64) {
		if !(v > 0) || math.IsInf(v, 0) {
			bad("%s must be a positive finite number, got %g", key, v)
		}
	}

	if c.ModelType != ModelType {
		bad("model_type %q is not supported, want %q", c.ModelType, ModelType)
	}
	positive("vocab_size", c.VocabSize)
	hiddenOK := positive("hidden_size", c.HiddenSize)
	layersOK := positive("num_hidden_layers", c.NumHiddenLayers)
	headsOK := positive("num_attention_heads", c.NumAttentionHeads)
	kvOK := positive("num_key_value_heads", c.NumKeyValueHeads)
	headDimOK := positive("head_dim", c.HeadDim)
	positive("intermediate_size", c.IntermediateSize)
	positive("max_position_embeddings", c.MaxPositionEmbeddings)
	// An explicit head_dim may differ from hidden_size/heads: the q/k/v
	// and output projections map between the two sizes.
	if hiddenOK && headsOK && c.HeadDim == 0 && c.HiddenSize%c.NumAttentionHeads != 0 {
		bad("hidden_size %d is not divisible by num_attention_heads %d: set head_dim explicitly", c.HiddenSize, c.NumAttentionHeads)
	}
	if headsOK && kvOK && c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
		bad("num_attention_heads %d is not divisible by num_key_value_heads %d (GQA shares each KV head among a whole number of query heads)",
			c.NumAttentionHeads, c.NumKeyValueHeads)
	}
	if layersOK && c.NumHiddenLayers > maxLayers {
		bad("num_hidden_layers %d is more than the supported %d", c.NumHiddenLayers, maxLayers)
	}
	if c.HiddenAct != ActSiLU && c.HiddenAct != ActReLU2 {
		bad("hidden_act %q is not supported, want %q (SwiGLU FFN) or %q (ReLU² FFN)", c.HiddenAct, ActSiLU, ActReLU2)
	}
	finitePositive("rms_norm_eps", c.RMSNormEps)
	finitePositive("rope_theta", c.RopeTheta)
	finitePositive("initializer_range", c.InitializerRange)
	if !(c.PartialRotaryFactor > 0 && c.PartialRotaryFactor <= 1) {
		bad("partial_rotary_factor must be in (0, 1], got %g", c.PartialRotaryFactor)
	} else if headDimOK {
		if rd := c.RotaryDim(); rd < 2 || rd%2 != 0 {
			bad("head_dim %d × partial_rotary_factor %g gives %d rotary dims; RoPE needs an even number ≥ 2",
				c.HeadDim, c.PartialRotaryFactor, rd)
		}
	}
	if c.SlidingWindow < 0 {
		bad("sliding_window must not be negative, got %d", c.SlidingWindow)
	}
	if layersOK && len(c.LayerTypes) != c.NumHiddenLayers {
		bad("layer_types has %d entries, want one per layer (num_hidden_layers = %d)", len(c.LayerTypes), c.NumHiddenLayers)
	}
	sliding := false
	for i, lt := range c.LayerTypes {
		switch lt {
		case FullAttention:
		case SlidingAttention:
			sliding = true
		default:
			bad("layer_types[%d] is %q, want %q or %q", i, lt, FullAttention, SlidingAttention)
		}
	}
	if sliding && c.SlidingWindow <= 0 {
		bad("layer_types has %q layers but sliding_window is %d; it must be positive", SlidingAttention, c.SlidingWindow)
	}
	errs = append(errs, c.validateMoE(c.NumHiddenLayers)...)
	errs = append(errs, c.validateMTP()...)
	errs = append(errs, c.validateImage(c.MaxPositionEmbeddings)...)
	if t := c.Training; t != nil {
		if err := t.validate(c.MaxPositionEmbeddings); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (t *TrainingConfig) validate(maxPos int) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("training."+format, a...)) }
	if !(t.LearningRate > 0) || math.IsInf(t.LearningRate, 0) {
		bad("learning_rate must be a positive finite number, got %g", t.LearningRate)
	}
	if !(t.MinLRRatio >= 0 && t.MinLRRatio <= 1) {
		bad("min_lr_ratio must be in [0, 1], got %g", t.MinLRRatio)
	}
	if t.WarmupSteps < 0 {
		bad("warmup_steps must not be negative, got %d", t.WarmupSteps)
	}
	if !(t.WeightDecay >= 0) || math.IsInf(t.WeightDecay, 0) {
		bad("weight_decay must be a finite number ≥ 0, got %g", t.WeightDecay)
	}
	if !(t.AdamBeta1 >= 0 && t.AdamBeta1 < 1) {
		bad("adam_beta1 must be in [0, 1), got %g", t.AdamBeta1)
	}
	if !(t.AdamBeta2 >= 0 && t.AdamBeta2 < 1) {
		bad("adam_beta2 must be in [0, 1), got %g", t.AdamBeta2)
	}
	if !(t.AdamEpsilon > 0) || math.IsInf(t.AdamEpsilon, 0) {
		bad("adam_epsilon must be a positive finite number, got %g", t.AdamEpsilon)
	}
	if !(t.MaxGradNorm >= 0) || math.IsInf(t.MaxGradNorm, 0) {
		bad("max_grad_norm must be a finite number ≥ 0 (0 disables clipping), got %g", t.MaxGradNorm)
	}
	if t.BatchSize <= 0 {
		bad("batch_size must be positive, got %d", t.BatchSize)
	}
	if t.SeqLen <= 0 {
		bad("seq_len must be positive, got %d", t.SeqLen)
	} else if maxPos > 0 && t.SeqLen > maxPos {
		bad("seq_len %d is longer than max_position_embeddings %d", t.SeqLen, maxPos)
	}
	return errors.Join(errs...)
}

// RotaryDim is the number of leading dimensions of each head that RoPE rotates, computed as HF
// does: int(head_dim · partial_rotary_factor).
func (c *ModelConfig) RotaryDim() int {
	return int(float64(c.HeadDim) * c.PartialRotaryFactor)
}

// ParamCount is the number of parameters of the model the config describes: embedding, per layer
// the q/k/v/o projections, two RMSNorm weights, the FFN (SwiGLU: 3·D·I, ReLU²: 2·D·I; an MoE layer
// counts its router, every routed expert and the shared experts) and the optional per-head sinks,
// then the final norm and the LM head unless it is tied to the embedding. Projections have no
// biases. It is the planner's and the report's reference number.
func (c *ModelConfig) ParamCount() int64 { total, _ := c.paramCounts(); return total }

// ActiveParamCount is ParamCount with each MoE layer counted as one token that is not skipped
// uses it: the router, num_experts_per_tok routed experts and the shared experts. For a dense
// config it equals ParamCount.
func (c *ModelConfig) ActiveParamCount() int64 { _, active := c.paramCounts(); return active }

func (c *ModelConfig) paramCounts() (total, active int64) {
	V, D := int64(c.VocabSize), int64(c.HiddenSize)
	H, KV, dh := int64(c.NumAttentionHeads), int64(c.NumKeyValueHeads), int64(c.HeadDim)
	I, L := int64(c.IntermediateSize), int64(c.NumHiddenLayers)

	attn := D*(H*dh) + 2*D*(KV*dh) + (H*dh)*D
	ffn := 3 * D * I
	if c.HiddenAct == ActReLU2 {
		ffn = 2 * D * I
	}
	layer := attn + 2*D
	if c.AttentionSink {
		layer += H
	}
	n := V*D + L*layer + D
	if c.HasImage() {
		n += int64(c.ImageHeight) * int64(c.PatchWidth) * D // model.patch_embed.proj
	}
	if !c.TieWordEmbeddings {
		n += V * D
	}
	total, active = n, n
	for i := 0; i < int(L); i++ {
		if c.IsMoELayer(i) {
			t, a := c.moeParamCount(D)
			total, active = total+t, active+a
		} else {
			total, active = total+ffn, active+ffn
		}
	}
	return total, active
}

// IsSliding reports whether layer i uses sliding-window attention.
func (c *ModelConfig) IsSliding(i int) bool {
	return i >= 0 && i < len(c.LayerTypes) && c.LayerTypes[i] == SlidingAttention
}

// Save validates the config and writes it as indented JSON to path atomically: a temp file in the
// same directory, synced, then renamed over path, so a crash never leaves a half-written config.
func (c *ModelConfig) Save(path string) error {
	if err := c.Validate(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("config: encode: %w", err)
	}
	b = append(b, '\n')
	if err := atomicfile.Write(path, b); err != nil {
		return fmt.Errorf("config: save %s: %w", path, err)
	}
	return nil
}
