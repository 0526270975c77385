package config

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fullJSON is a valid config with every key present (the embedded MoE section enabled, so its
// fields are in play), as a JSON object.
func fullJSON(t *testing.T) map[string]any {
	t.Helper()
	c := moeConfig(t)
	c.Training.Seed = 3
	b, err := json.Marshal(c)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

// moeConfig is validConfig with routed experts, so that every key is in play.
func moeConfig(t *testing.T) *ModelConfig {
	t.Helper()
	c, err := Parse([]byte(`{"vocab_size": 100, "hidden_size": 64, "num_hidden_layers": 2,
		"num_attention_heads": 4, "intermediate_size": 128, "training": {},
		"n_routed_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
		"num_nextn_predict_layers": 2, "image_height": 32, "patch_width": 4, "max_image_width": 64}`))
	require.NoError(t, err)
	return c
}

func parseMap(t *testing.T, m map[string]any) (*ModelConfig, error) {
	t.Helper()
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return Parse(b)
}

// TestNullMeansTheDefaultForEveryKey sets each key of a full config (nested training keys
// included, and keys added to the config later, found by reflection) to null, and checks the
// result is exactly that of omitting the key, or, where the key has no default, an error that
// names it.
func TestNullMeansTheDefaultForEveryKey(t *testing.T) {
	base := fullJSON(t)
	require.Contains(t, base, "training")
	var paths [][]string
	for k, v := range base {
		paths = append(paths, []string{k})
		if sub, ok := v.(map[string]any); ok {
			for k2 := range sub {
				paths = append(paths, []string{k, k2})
			}
		}
	}
	// Every field the Go types declare is covered.
	for k := range jsonFields(reflect.TypeOf(ModelConfig{})) {
		require.Contains(t, base, k)
	}
	for k := range jsonFields(reflect.TypeOf(TrainingConfig{})) {
		require.Contains(t, base["training"], k)
	}
	for _, p := range paths {
		key := strings.Join(p, ".")
		t.Run(key, func(t *testing.T) {
			withNull, omitted := clone(t, base), clone(t, base)
			parentN, parentO := withNull, omitted
			for _, k := range p[:len(p)-1] {
				parentN, parentO = parentN[k].(map[string]any), parentO[k].(map[string]any)
			}
			last := p[len(p)-1]
			parentN[last] = nil
			delete(parentO, last)
			got, err := parseMap(t, withNull)
			if len(p) == 1 && noDefault[last] {
				require.Error(t, err)
				assert.Contains(t, err.Error(), fmt.Sprintf(`key %q is null, but it has no default`, key))
				return
			}
			want, werr := parseMap(t, omitted)
			if werr != nil {
				require.Error(t, err)
				assert.Equal(t, werr.Error(), err.Error())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, want, got)
		})
	}
}

func clone(t *testing.T, m map[string]any) map[string]any {
	b, err := json.Marshal(m)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

func TestNullTrainingHyperparametersGetTheirDefaults(t *testing.T) {
	// The report: these trained with β1 = 0, no decay and no clipping.
	c, err := Parse([]byte(`{"vocab_size": 43, "hidden_size": 64, "num_hidden_layers": 2,
		"num_attention_heads": 4, "intermediate_size": 128, "rms_norm_eps": null, "layer_types": null,
		"training": {"adam_beta1": null, "weight_decay": null, "max_grad_norm": null, "warmup_steps": null}}`))
	require.NoError(t, err)
	assert.Equal(t, 0.9, c.Training.AdamBeta1)
	assert.Equal(t, 0.1, c.Training.WeightDecay)
	assert.Equal(t, 1.0, c.Training.MaxGradNorm)
	assert.Equal(t, 100, c.Training.WarmupSteps)
	assert.Equal(t, 1e-6, c.RMSNormEps)
	assert.Equal(t, []string{FullAttention, FullAttention}, c.LayerTypes)

	c, err = Parse([]byte(`{"vocab_size": 43, "hidden_size": 64, "num_hidden_layers": 2,
		"num_attention_heads": 4, "intermediate_size": 128, "training": null}`))
	require.NoError(t, err)
	assert.Nil(t, c.Training)
}

func TestNullIsRefusedWhereItCannotMeanADefault(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"required size", `{"vocab_size": null}`, `key "vocab_size" is null, but it has no default`},
		{"list element", `{"vocab_size": 43, "hidden_size": 64, "num_hidden_layers": 2,
			"num_attention_heads": 4, "intermediate_size": 128, "layer_types": ["full_attention", null]}`,
			`key "layer_types": element 1 is null`},
		{"null under a mis-cased key", `{"training": {"SEED": null}}`, `unknown key "training.SEED"`},
		{"null under an unknown key", `{"hiden_size": null}`, `unknown key "hiden_size"`},
		{"null under an unknown training key", `{"training": {"lr": null}}`, `unknown key "training.lr"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestValidateRangeChecksEveryNumericField sets each numeric field (found by reflection, nested
// and embedded structs included) to values outside any sensible range and checks Validate refuses
// it naming the key. The only field where every integer is valid is training.seed.
func TestValidateRangeChecksEveryNumericField(t *testing.T) {
	anyValue := map[string]bool{"training.seed": true}
	base := func(t *testing.T) *ModelConfig {
		c := moeConfig(t) // MoE and MTP on, so their fields are validated too
		require.NoError(t, c.Validate())
		return c
	}
	type field struct {
		key  string
		kind reflect.Kind
		get  func(*ModelConfig) reflect.Value
	}
	var fields []field
	var walk func(t reflect.Type, prefix string, get func(*ModelConfig) reflect.Value)
	walk = func(rt reflect.Type, prefix string, get func(*ModelConfig) reflect.Value) {
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			i := i
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			sub := func(c *ModelConfig) reflect.Value { return get(c).Field(i) }
			switch {
			case f.Anonymous && name == "":
				walk(f.Type, prefix, sub)
			case f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct:
				walk(f.Type.Elem(), prefix+name+".", func(c *ModelConfig) reflect.Value { return get(c).Field(i).Elem() })
			default:
				switch f.Type.Kind() {
				case reflect.Int, reflect.Int64, reflect.Float64:
					fields = append(fields, field{prefix + name, f.Type.Kind(), sub})
				}
			}
		}
	}
	walk(reflect.TypeOf(ModelConfig{}), "", func(c *ModelConfig) reflect.Value { return reflect.ValueOf(c).Elem() })
	require.Greater(t, len(fields), 20)
	for _, f := range fields {
		if anyValue[f.key] {
			continue
		}
		var bads []string
		switch f.kind {
		case reflect.Float64:
			bads = []string{"-1", "NaN", "+Inf", "-Inf"}
		default:
			bads = []string{"-1", "-9223372036854775808"}
		}
		for _, bad := range bads {
			t.Run(f.key+"="+bad, func(t *testing.T) {
				c := base(t)
				v := f.get(c)
				if f.kind == reflect.Float64 {
					x := map[string]float64{"-1": -1, "NaN": math.NaN(), "+Inf": math.Inf(1), "-Inf": math.Inf(-1)}[bad]
					v.SetFloat(x)
				} else {
					x := map[string]int64{"-1": -1, "-9223372036854775808": math.MinInt64}[bad]
					v.SetInt(x)
				}
				err := c.Validate()
				require.Error(t, err, "%s = %s was accepted", f.key, bad)
				assert.Contains(t, err.Error(), f.key)
			})
		}
	}
}
