package train_test

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/runtime/generate"
	"github.com/moegpu/moegpu/runtime/tasks"
	"github.com/moegpu/moegpu/runtime/train"
)

// A model with MTP modules: GPU and reference agree on the first five
// losses and each module's cross-entropy; λ follows its schedule; the
// checkpoint holds the modules, and a generator (which does not use them)
// loads it.
func TestMTPTrainsOnBothExecutorsAndItsCheckpointGenerates(t *testing.T) {
	dev := gputest.Device(t)
	task, err := tasks.ByName("reverse")
	require.NoError(t, err)
	c := tinyConfig(t)
	c.NumNextNPredictLayers = 2
	c.MTPLossWeight, c.MTPLossWeightLate, c.MTPLossWeightSwitch = 0.3, 0.1, 0.5
	c.MTPIntermediateSize, c.MTPSlidingWindow = 64, 8
	require.NoError(t, c.Validate())
	var stats [2][]train.Stats
	var gpuTrainer *train.Trainer
	for i, ex := range []string{train.GPU, train.Reference} {
		tr, err := train.New(c, task, ex, dev, 8)
		require.NoError(t, err)
		require.NoError(t, tr.Init())
		for s := 0; s < 5; s++ {
			st, err := tr.StepOnce()
			require.NoError(t, err)
			stats[i] = append(stats[i], st)
		}
		if i == 0 {
			gpuTrainer = tr
			defer tr.Close()
		} else {
			tr.Close()
		}
	}
	for s := range stats[0] {
		g, r := stats[0][s], stats[1][s]
		require.Less(t, math.Abs(g.Loss-r.Loss)/r.Loss, 1e-4, "step %d", s+1)
		require.Len(t, g.MTP, 2)
		for k := range g.MTP {
			require.Less(t, math.Abs(g.MTP[k]-r.MTP[k])/r.MTP[k], 1e-4, "step %d module %d", s+1, k+1)
		}
		want := 0.3
		if s+1 > 4 { // switch after half of the 8 planned steps
			want = 0.1
		}
		require.Equal(t, want, g.MTPLambda, "step %d", s+1)
	}
	dir := t.TempDir()
	require.NoError(t, gpuTrainer.Save(dir, train.GPU))
	gen, err := generate.New(c, train.GPU, dev, generate.Options{MaxSeq: 16})
	require.NoError(t, err)
	defer gen.Close()
	require.NoError(t, gen.LoadWeights(filepath.Join(dir, train.WeightsFile)))
}
