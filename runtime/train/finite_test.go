package train

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/graph"
)

func TestCheckFiniteNamesTheStepAndWhatWentWrong(t *testing.T) {
	require.NoError(t, checkFinite(3, 2.5, 0.7))
	for _, tc := range []struct {
		loss, norm float64
		want       string
	}{
		{math.NaN(), 1, "step 7: the loss is NaN"},
		{math.Inf(1), 1, "step 7: the loss is +Inf"},
		{math.NaN(), math.NaN(), "step 7: the loss is NaN"},
		{2.5, math.NaN(), "step 7: the gradient norm is NaN while the loss is 2.5"},
		{2.5, math.Inf(1), "step 7: the gradient norm is +Inf while the loss is 2.5"},
	} {
		err := checkFinite(7, tc.loss, tc.norm)
		require.Error(t, err)
		assert.Contains(t, err.Error(), tc.want)
	}
}

func TestCheckBatchRefusesIdsOutsideTheVocabulary(t *testing.T) {
	ok := func() ([]uint32, []uint32, []float32) {
		return []uint32{1, 2, 3, 0}, []uint32{graph.IgnoreTarget, 3, 4, graph.IgnoreTarget}, []float32{0, 0.5, 0.5, 0}
	}
	tok, tg, w := ok()
	require.NoError(t, checkBatch(tok, tg, w, 4, 5))
	for _, tc := range []struct {
		name   string
		mutate func(tok, tg []uint32, w []float32)
		want   string
	}{
		{"target = vocab", func(_, tg []uint32, _ []float32) { tg[2] = 5 }, "target 5 at position 2 is out of range for 5 classes"},
		{"target far out", func(_, tg []uint32, _ []float32) { tg[1] = 1 << 30 }, "at position 1 is out of range"},
		{"token = vocab", func(tok, _ []uint32, _ []float32) { tok[3] = 5 }, "token id 5 at position 3 is outside the vocabulary (vocab_size 5)"},
		{"ignore index as token", func(tok, _ []uint32, _ []float32) { tok[0] = graph.IgnoreTarget }, "token id 4294967295 at position 0"},
		{"negative weight", func(_, _ []uint32, w []float32) { w[1] = -0.5 }, "loss weight -0.5 at position 1"},
		{"NaN weight", func(_, _ []uint32, w []float32) { w[2] = float32(math.NaN()) }, "loss weight NaN at position 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, tg, w := ok()
			tc.mutate(tok, tg, w)
			err := checkBatch(tok, tg, w, 4, 5)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	tok, tg, w = ok()
	require.ErrorContains(t, checkBatch(tok[:3], tg, w, 4, 5), "batch has 3 tokens, 4 targets and 4 weights, want 4")
}
