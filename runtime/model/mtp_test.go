package model_test

import (
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
	"github.com/moegpu/moegpu/runtime/model"
)

// The tiny model with two MTP modules: loss and every parameter's gradient
// (the modules' enorm/hnorm/eh_proj/block/shared_head.norm, and the trunk
// and shared embedding through h^0 and the shared head) agree between the
// GPU and the reference, and with finite differences.
func TestMTPGradientsMatchReferenceAndFiniteDifferences(t *testing.T) {
	dev := gputest.Device(t)
	c := load(t)
	c.NumNextNPredictLayers = 2
	c.MTPLossWeight, c.MTPLossWeightLate, c.MTPLossWeightSwitch = 0.3, 0.3, 1
	c.MTPIntermediateSize, c.MTPSlidingWindow = 32, 4
	require.NoError(t, c.Validate())
	B, T := 2, 8
	m, err := model.BuildTrain(c, B, T)
	require.NoError(t, err)
	require.Len(t, m.MTP, 2)
	require.NoError(t, m.Graph.Backward(m.Loss))
	rng := rand.New(rand.NewSource(9))
	n := B * T
	tokens, targets := make([]uint32, n), make([]uint32, n)
	for i := range tokens {
		tokens[i], targets[i] = uint32(rng.Intn(c.VocabSize)), uint32(rng.Intn(c.VocabSize))
	}
	fixed := map[*graph.Tensor][]float64{m.Tokens: u32s(tokens), m.Positions: make([]float64, n),
		m.Targets: u32s(targets), m.Weights: make([]float64, n), m.MTPLambda: {0.15}}
	for i := 0; i < n; i++ {
		fixed[m.Positions][i] = float64(i % T)
		fixed[m.Weights][i] = 1 / float64(n)
	}
	for k := range m.MTP {
		tok, tgt, w := model.ShiftForMTP(tokens, targets, B, T, k+1, 0, graph.IgnoreTarget)
		fixed[m.MTPTokens[k]], fixed[m.MTPTargets[k]] = u32s(tok), u32s(tgt)
		fixed[m.MTPWeights[k]] = make([]float64, n)
		for i, v := range w {
			fixed[m.MTPWeights[k]][i] = float64(v)
		}
	}
	optest.CheckGraph(t, dev, optest.GraphCheck{Graph: m.Graph, Loss: m.Loss, Fixed: fixed, Scale: 0.5,
		Tol: optest.Tol{Atol: 3e-5, Rtol: 3e-4}, Seed: 8, FDSamples: 3})
	names := map[string][]int{}
	for _, p := range m.Params() {
		for _, part := range p.Split() { // fused projections as checkpoints name them
			names[part.Name] = part.Shape
		}
	}
	require.Equal(t, []int{64, 128}, names["model.layers.2.eh_proj.weight"])
	require.Equal(t, []int{64}, names["model.layers.3.enorm.weight"])
	require.Equal(t, []int{64}, names["model.layers.3.hnorm.weight"])
	require.Equal(t, []int{64}, names["model.layers.3.shared_head.norm.weight"])
	require.Equal(t, []int{32, 64}, names["model.layers.3.mlp.up_proj.weight"])
}

// Module k's inputs are the row's tokens and targets k ahead, never
// crossing into the next row, with 1/count weights over what remains.
func TestShiftForMTPStaysInsideEachRow(t *testing.T) {
	const ig = 99
	tokens := []uint32{1, 2, 3, 4, 5, 6, 7, 8}
	targets := []uint32{2, 3, ig, 4, 6, 7, 8, ig}
	tok, tgt, w := model.ShiftForMTP(tokens, targets, 2, 4, 1, 0, ig)
	require.Equal(t, []uint32{2, 3, 4, 0, 6, 7, 8, 0}, tok)
	require.Equal(t, []uint32{3, ig, 4, ig, 7, 8, ig, ig}, tgt)
	require.Equal(t, []float32{0.25, 0, 0.25, 0, 0.25, 0.25, 0, 0}, w)
	tok, tgt, _ = model.ShiftForMTP(tokens, targets, 2, 4, 3, 0, ig)
	require.Equal(t, []uint32{4, 0, 0, 0, 8, 0, 0, 0}, tok)
	require.Equal(t, []uint32{4, ig, ig, ig, ig, ig, ig, ig}, tgt)
}

func u32s(v []uint32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}
