package config

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/assets"
)

// FuzzParse: Parse never panics, and a config it accepts validates, re-encodes as Save writes it,
// and parses back to the same config.
func FuzzParse(f *testing.F) {
	for _, name := range assets.Configs() {
		b, ok := assets.Config(name)
		require.True(f, ok)
		f.Add(b)
	}
	f.Add([]byte(minimalJSON))
	f.Add([]byte(`{"vocab_size": 43, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
		"intermediate_size": 128, "rms_norm_eps": null, "layer_types": null,
		"training": {"adam_beta1": null, "weight_decay": null, "max_grad_norm": null}}`))
	f.Add([]byte(`{"vocab_size": 100, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
		"intermediate_size": 128, "n_routed_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
		"mlp_only_layers": [1], "training": null}`))
	f.Add([]byte(`{"vocab_size": null}`))
	f.Add([]byte(`{"layer_types": [null]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate refuses: %v", err)
		}
		out, err := json.MarshalIndent(c, "", "  ")
		if err != nil {
			t.Fatalf("accepted config does not encode: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("re-encoded config does not parse: %v\n%s", err, out)
		}
		require.Equal(t, c, again)
	})
}
