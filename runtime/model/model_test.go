package model_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/model"
)

func load(t *testing.T) *config.ModelConfig {
	c, err := config.Load("../../assets/configs/tiny-dense.json")
	require.NoError(t, err)
	return c
}

// The graph's parameters are exactly those the config's formula counts,
// with Hugging Face names, for every FFN and tying choice.
func TestParametersMatchTheConfigCountAndNames(t *testing.T) {
	for _, act := range []string{config.ActSiLU, config.ActReLU2} {
		for _, tied := range []bool{true, false} {
			c := load(t)
			c.HiddenAct, c.TieWordEmbeddings = act, tied
			m, err := model.BuildTrain(c, 2, 8)
			require.NoError(t, err)
			n := 0
			names := map[string]bool{}
			for _, p := range m.Params() {
				n += p.Len()
				names[p.Name] = true
			}
			require.Equal(t, c.ParamCount(), int64(n), "act=%s tied=%v", act, tied)
			require.True(t, names["model.embed_tokens.weight"])
			require.True(t, names["model.layers.1.self_attn.o_proj.weight"])
			require.True(t, names["model.norm.weight"])
			require.Equal(t, !tied, names["lm_head.weight"])
			d, err := model.BuildDecode(c, 1, 1, 16, 4)
			require.NoError(t, err)
			require.Len(t, d.Params(), len(m.Params()), "decode graph needs the same weights")
		}
	}
}

func TestBuildRejectsEmptyShapes(t *testing.T) {
	_, err := model.BuildTrain(load(t), 0, 8)
	require.Error(t, err)
}

// head_dim need not be hidden_size/heads (as in Hugging Face configs): the
// projections map between D and heads·head_dim.
func TestExplicitHeadDimIndependentOfHiddenSize(t *testing.T) {
	c := load(t)
	c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim = 6, 2, 16 // 96 ≠ 64
	require.NoError(t, c.Validate())
	m, err := model.BuildTrain(c, 1, 8)
	require.NoError(t, err)
	n := 0
	for _, p := range m.Params() {
		n += p.Len()
	}
	require.Equal(t, c.ParamCount(), int64(n))
}
