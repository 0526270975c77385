package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const minimalJSON = `{
  "vocab_size": 100,
  "hidden_size": 64,
  "num_hidden_layers": 2,
  "num_attention_heads": 4,
  "intermediate_size": 128
}`

func TestParseFillsDocumentedDefaultsForOmittedKeys(t *testing.T) {
	c, err := Parse([]byte(minimalJSON))
	require.NoError(t, err)
	assert.Equal(t, &ModelConfig{
		ModelType: "moegpu", VocabSize: 100, HiddenSize: 64, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 4, HeadDim: 16, IntermediateSize: 128,
		HiddenAct: "silu", RMSNormEps: 1e-6, RopeTheta: 10000, PartialRotaryFactor: 1,
		MaxPositionEmbeddings: 2048, SlidingWindow: 0,
		LayerTypes:       []string{"full_attention", "full_attention"},
		InitializerRange: 0.02,
	}, c)
}

func TestParseFillsTrainingDefaultsButKeepsExplicitZeros(t *testing.T) {
	c, err := Parse([]byte(`{"vocab_size": 100, "hidden_size": 64, "num_hidden_layers": 2,
		"num_attention_heads": 4, "intermediate_size": 128,
		"training": {"warmup_steps": 0, "weight_decay": 0, "seed": 7}}`))
	require.NoError(t, err)
	require.NotNil(t, c.Training)
	assert.Equal(t, TrainingConfig{
		LearningRate: 3e-4, MinLRRatio: 0.1, WarmupSteps: 0, WeightDecay: 0,
		AdamBeta1: 0.9, AdamBeta2: 0.95, AdamEpsilon: 1e-8, MaxGradNorm: 1,
		BatchSize: 8, SeqLen: 128, Seed: 7,
	}, *c.Training)
}

func TestParseKeepsEveryExplicitField(t *testing.T) {
	src := `{
	  "model_type": "moegpu", "vocab_size": 50, "hidden_size": 96, "num_hidden_layers": 3,
	  "num_attention_heads": 6, "num_key_value_heads": 2, "head_dim": 24, "intermediate_size": 200,
	  "hidden_act": "relu2", "rms_norm_eps": 1e-5, "rope_theta": 500000, "partial_rotary_factor": 0.5,
	  "max_position_embeddings": 512, "sliding_window": 64,
	  "layer_types": ["sliding_attention", "sliding_attention", "full_attention"],
	  "attention_sink": true, "tie_word_embeddings": true, "initializer_range": 0.01
	}`
	c, err := Parse([]byte(src))
	require.NoError(t, err)
	assert.Equal(t, 2, c.NumKeyValueHeads)
	assert.Equal(t, 24, c.HeadDim)
	assert.Equal(t, "relu2", c.HiddenAct)
	assert.Equal(t, 12, c.RotaryDim())
	assert.True(t, c.IsSliding(0))
	assert.False(t, c.IsSliding(2))
	assert.False(t, c.IsSliding(3))
	assert.True(t, c.AttentionSink)
	assert.True(t, c.TieWordEmbeddings)
	assert.Equal(t, 0.01, c.InitializerRange)
	assert.Nil(t, c.Training)
}

func TestParseRejectsMalformedJSONNamingTheProblem(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"unknown top-level key", `{"vocab_size": 1, "hiden_size": 64}`, `unknown key "hiden_size"`},
		{"unknown training key", `{"training": {"lr": 1}}`, `unknown key "training.lr"`},
		{"key in wrong case", `{"Num_Key_Value_Heads": 2}`, `unknown key "Num_Key_Value_Heads" (keys are case-sensitive; did you mean "num_key_value_heads"?)`},
		{"training key in wrong case", `{"training": {"SEED": 2}}`, `unknown key "training.SEED"`},
		{"wrong type", `{"hidden_size": "64"}`, `key "hidden_size": want an integer, got string`},
		{"wrong type in training", `{"training": {"seed": "x"}}`, `key "training.seed": want an integer, got string`},
		{"fraction for an integer", `{"hidden_size": 64.5}`, `key "hidden_size"`},
		{"not an object", `[1, 2]`, `want a JSON object, got array`},
		{"syntax error", `{"hidden_size": 64,}`, `invalid JSON`},
		{"truncated", `{"hidden_size": 64`, `unexpected end of input`},
		{"trailing data", minimalJSON + `{}`, `trailing data`},
		{"empty", ``, `unexpected end of input`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestValidateRejectsInconsistentConfigsWithClearErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*ModelConfig)
		want   string
	}{
		{"wrong model type", func(c *ModelConfig) { c.ModelType = "llama" }, `model_type "llama" is not supported`},
		{"zero vocab", func(c *ModelConfig) { c.VocabSize = 0 }, "vocab_size must be positive, got 0"},
		{"negative hidden", func(c *ModelConfig) { c.HiddenSize = -64 }, "hidden_size must be positive"},
		{"zero layers", func(c *ModelConfig) { c.NumHiddenLayers = 0; c.LayerTypes = nil }, "num_hidden_layers must be positive"},
		{"too many layers", func(c *ModelConfig) { c.NumHiddenLayers = 1 << 20 }, "more than the supported"},
		{"zero heads", func(c *ModelConfig) { c.NumAttentionHeads = 0 }, "num_attention_heads must be positive"},
		{"zero kv heads", func(c *ModelConfig) { c.NumKeyValueHeads = 0 }, "num_key_value_heads must be positive"},
		{"zero head dim", func(c *ModelConfig) { c.HeadDim = 0 }, "head_dim must be positive"},
		{"zero intermediate", func(c *ModelConfig) { c.IntermediateSize = 0 }, "intermediate_size must be positive"},
		{"zero max positions", func(c *ModelConfig) { c.MaxPositionEmbeddings = 0 }, "max_position_embeddings must be positive"},
		{"heads do not divide hidden and no head_dim", func(c *ModelConfig) { c.NumAttentionHeads = 5; c.NumKeyValueHeads = 5; c.HeadDim = 0 },
			"hidden_size 64 is not divisible by num_attention_heads 5: set head_dim explicitly"},
		{"kv heads do not divide heads", func(c *ModelConfig) { c.NumKeyValueHeads = 3 },
			"num_attention_heads 4 is not divisible by num_key_value_heads 3"},
		{"unknown activation", func(c *ModelConfig) { c.HiddenAct = "gelu" }, `hidden_act "gelu" is not supported`},
		{"zero eps", func(c *ModelConfig) { c.RMSNormEps = 0 }, "rms_norm_eps must be a positive finite number"},
		{"negative rope theta", func(c *ModelConfig) { c.RopeTheta = -1 }, "rope_theta must be a positive finite number"},
		{"zero init range", func(c *ModelConfig) { c.InitializerRange = 0 }, "initializer_range must be a positive finite number"},
		{"rotary factor above one", func(c *ModelConfig) { c.PartialRotaryFactor = 1.5 }, "partial_rotary_factor must be in (0, 1]"},
		{"odd rotary dims", func(c *ModelConfig) { c.PartialRotaryFactor = 0.3125 }, "gives 5 rotary dims"},
		{"negative window", func(c *ModelConfig) { c.SlidingWindow = -1 }, "sliding_window must not be negative"},
		{"layer types too short", func(c *ModelConfig) { c.LayerTypes = c.LayerTypes[:1] },
			"layer_types has 1 entries, want one per layer (num_hidden_layers = 2)"},
		{"unknown layer type", func(c *ModelConfig) { c.LayerTypes[1] = "global" }, `layer_types[1] is "global"`},
		{"sliding layer without window", func(c *ModelConfig) { c.LayerTypes[0] = SlidingAttention },
			`"sliding_attention" layers but sliding_window is 0`},
		{"zero learning rate", func(c *ModelConfig) { c.Training.LearningRate = 0 }, "training.learning_rate must be a positive"},
		{"min lr ratio above one", func(c *ModelConfig) { c.Training.MinLRRatio = 2 }, "training.min_lr_ratio must be in [0, 1]"},
		{"negative warmup", func(c *ModelConfig) { c.Training.WarmupSteps = -1 }, "training.warmup_steps must not be negative"},
		{"negative weight decay", func(c *ModelConfig) { c.Training.WeightDecay = -0.1 }, "training.weight_decay"},
		{"beta1 of one", func(c *ModelConfig) { c.Training.AdamBeta1 = 1 }, "training.adam_beta1 must be in [0, 1)"},
		{"beta2 negative", func(c *ModelConfig) { c.Training.AdamBeta2 = -0.5 }, "training.adam_beta2 must be in [0, 1)"},
		{"zero epsilon", func(c *ModelConfig) { c.Training.AdamEpsilon = 0 }, "training.adam_epsilon must be a positive"},
		{"negative clip", func(c *ModelConfig) { c.Training.MaxGradNorm = -1 }, "training.max_grad_norm"},
		{"zero batch", func(c *ModelConfig) { c.Training.BatchSize = 0 }, "training.batch_size must be positive"},
		{"zero seq len", func(c *ModelConfig) { c.Training.SeqLen = 0 }, "training.seq_len must be positive"},
		{"seq len beyond positions", func(c *ModelConfig) { c.Training.SeqLen = 4096 },
			"training.seq_len 4096 is longer than max_position_embeddings 2048"},
		{"prefix_lm without an image", func(c *ModelConfig) { c.PrefixLM = true },
			"prefix_lm is set but the model reads no image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig(t)
			require.NoError(t, c.Validate())
			tc.mutate(c)
			err := c.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestValidateReportsAllProblemsAtOnce(t *testing.T) {
	c := validConfig(t)
	c.VocabSize = 0
	c.HiddenAct = "tanh"
	err := c.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "vocab_size")
	assert.Contains(t, err.Error(), "hidden_act")
}

func TestLoadNamesTheFileInErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"vocab_size": 10, "typo": 1}`), 0o644))
	_, err := Load(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)
	assert.Contains(t, err.Error(), `unknown key "typo"`)

	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"vocab_size": 0, "hidden_size": 64, "num_hidden_layers": 1,
		"num_attention_heads": 4, "intermediate_size": 8}`), 0o644))
	_, err = Load(bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), bad)
	assert.Contains(t, err.Error(), "vocab_size must be positive")

	_, err = Load(filepath.Join(dir, "missing.json"))
	require.Error(t, err)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestSaveThenLoadRoundTripsAndLeavesNoTempFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	c := validConfig(t)
	c.LayerTypes = []string{SlidingAttention, FullAttention}
	c.SlidingWindow = 16
	c.AttentionSink = true
	require.NoError(t, c.Save(path))
	// Overwrite an existing file too.
	c.Training.Seed = 42
	require.NoError(t, c.Save(path))

	got, err := Load(path)
	require.NoError(t, err)
	assert.Equal(t, c, got)

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, "config.json", entries[0].Name())

	// The file uses HF's names, so other tools can read it.
	var raw map[string]any
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &raw))
	for _, k := range []string{"model_type", "vocab_size", "hidden_size", "num_hidden_layers",
		"num_attention_heads", "num_key_value_heads", "head_dim", "intermediate_size", "hidden_act",
		"rms_norm_eps", "rope_theta", "partial_rotary_factor", "max_position_embeddings",
		"sliding_window", "layer_types", "attention_sink", "tie_word_embeddings", "initializer_range"} {
		assert.Contains(t, raw, k)
	}
}

func TestSaveRefusesInvalidConfigAndKeepsTheOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	c := validConfig(t)
	require.NoError(t, c.Save(path))
	before, err := os.ReadFile(path)
	require.NoError(t, err)

	c.VocabSize = -1
	require.Error(t, c.Save(path))
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, before, after)

	c = validConfig(t)
	err = c.Save(filepath.Join(dir, "no-such-dir", "config.json"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no-such-dir")
}

func TestApplyDefaultsFillsZeroFieldsOfAGoBuiltConfig(t *testing.T) {
	c := &ModelConfig{VocabSize: 10, HiddenSize: 32, NumHiddenLayers: 3, NumAttentionHeads: 2,
		IntermediateSize: 64, Training: &TrainingConfig{LearningRate: 1e-3}}
	c.ApplyDefaults()
	require.NoError(t, c.Validate())
	assert.Equal(t, 2, c.NumKeyValueHeads)
	assert.Equal(t, 16, c.HeadDim)
	assert.Len(t, c.LayerTypes, 3)
	assert.Equal(t, 1e-3, c.Training.LearningRate)
	assert.Equal(t, 0.95, c.Training.AdamBeta2)
}

func TestParamCountMatchesTheFormula(t *testing.T) {
	const V, D, L, H, KV, dh, I = 100, 64, 2, 4, 2, 16, 128
	attn := int64(D*(H*dh) + 2*D*(KV*dh) + (H*dh)*D)
	for _, tc := range []struct {
		name   string
		act    string
		tied   bool
		sink   bool
		expect int64
	}{
		{"swiglu untied", ActSiLU, false, false, V*D + L*(attn+2*D+3*D*I) + D + V*D},
		{"relu2 untied", ActReLU2, false, false, V*D + L*(attn+2*D+2*D*I) + D + V*D},
		{"swiglu tied", ActSiLU, true, false, V*D + L*(attn+2*D+3*D*I) + D},
		{"swiglu with sinks", ActSiLU, false, true, V*D + L*(attn+2*D+3*D*I+H) + D + V*D},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &ModelConfig{VocabSize: V, HiddenSize: D, NumHiddenLayers: L, NumAttentionHeads: H,
				NumKeyValueHeads: KV, HeadDim: dh, IntermediateSize: I, HiddenAct: tc.act,
				TieWordEmbeddings: tc.tied, AttentionSink: tc.sink}
			c.ApplyDefaults()
			require.NoError(t, c.Validate())
			assert.Equal(t, tc.expect, c.ParamCount())
		})
	}
}

func TestParamCountOfALlamaSizedConfigDoesNotOverflow(t *testing.T) {
	// Llama-2-7B's shapes: 6,738,415,616 parameters with an untied head.
	c := &ModelConfig{VocabSize: 32000, HiddenSize: 4096, NumHiddenLayers: 32, NumAttentionHeads: 32,
		IntermediateSize: 11008}
	c.ApplyDefaults()
	require.NoError(t, c.Validate())
	assert.Equal(t, int64(6738415616), c.ParamCount())
}

func TestErrorsDoNotLeakEncodingJSONPrefix(t *testing.T) {
	_, err := Parse([]byte(`{"nope": 1}`))
	require.Error(t, err)
	assert.False(t, strings.Contains(err.Error(), "json: unknown field"), err.Error())
}

func validConfig(t *testing.T) *ModelConfig {
	t.Helper()
	c, err := Parse([]byte(`{"vocab_size": 100, "hidden_size": 64, "num_hidden_layers": 2,
		"num_attention_heads": 4, "intermediate_size": 128, "training": {}}`))
	require.NoError(t, err)
	return c
}
