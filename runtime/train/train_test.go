package train_test

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/safetensors"
	"github.com/moegpu/moegpu/runtime/tasks"
	"github.com/moegpu/moegpu/runtime/train"
)

func tinyConfig(t *testing.T) *config.ModelConfig {
	t.Helper()
	c, err := config.Load("../../assets/configs/tiny-dense.json")
	require.NoError(t, err)
	c.Training.BatchSize = 4
	return c
}

// The GPU and the float64 reference executor run the same plan: the first
// five training steps must give the same losses to 1e-4 relative (f32
// arithmetic, AdamW amplifying tiny differences over the steps).
func TestGPUAndReferenceAgreeOnTheFirstFiveLosses(t *testing.T) {
	dev := gputest.Device(t)
	c := tinyConfig(t)
	task, err := tasks.ByName("reverse")
	require.NoError(t, err)
	var losses [2][]float64
	for i, ex := range []string{train.GPU, train.Reference} {
		tr, err := train.New(c, task, ex, dev, 100)
		require.NoError(t, err)
		require.NoError(t, tr.Init())
		for s := 0; s < 5; s++ {
			st, err := tr.StepOnce()
			require.NoError(t, err)
			losses[i] = append(losses[i], st.Loss)
		}
		tr.Close()
	}
	for s := range losses[0] {
		rel := math.Abs(losses[0][s]-losses[1][s]) / math.Abs(losses[1][s])
		require.Less(t, rel, 1e-4, "step %d: gpu %.7f reference %.7f", s+1, losses[0][s], losses[1][s])
	}
	t.Logf("gpu %v\nref %v", losses[0], losses[1])
	require.Less(t, losses[0][4], losses[0][0], "loss did not go down")
}

func newTrainer(t *testing.T, c *config.ModelConfig) *train.Trainer {
	t.Helper()
	dev := gputest.Device(t)
	task, err := tasks.ByName("reverse")
	require.NoError(t, err)
	tr, err := train.New(c, task, train.GPU, dev, 20)
	require.NoError(t, err)
	t.Cleanup(tr.Close)
	return tr
}

func steps(t *testing.T, tr *train.Trainer, n int) []float64 {
	var out []float64
	for i := 0; i < n; i++ {
		st, err := tr.StepOnce()
		require.NoError(t, err)
		out = append(out, st.Loss)
	}
	return out
}

// Save, restore into a fresh trainer, and continue: the losses are exactly
// those of the uninterrupted run, and the restored state is bit for bit the
// saved one.
func TestResumingContinuesTheSameLossCurveAndRoundTripsBitForBit(t *testing.T) {
	c := tinyConfig(t)
	full := newTrainer(t, c)
	require.NoError(t, full.Init())
	want := steps(t, full, 6)

	first := newTrainer(t, c)
	require.NoError(t, first.Init())
	got := steps(t, first, 3)
	dir := t.TempDir()
	require.NoError(t, first.Save(dir, train.GPU))

	second := newTrainer(t, c)
	require.NoError(t, second.Restore(dir))
	require.Equal(t, 3, second.Step)
	params := first.Model.Params()
	a, err := first.Exec.Get(params...)
	require.NoError(t, err)
	b, err := second.Exec.Get(second.Model.Params()...)
	require.NoError(t, err)
	require.Equal(t, a, b, "restored weights differ")
	got = append(got, steps(t, second, 3)...)
	require.Equal(t, want, got)
}

func TestCorruptOrTruncatedCheckpointsAreRefused(t *testing.T) {
	c := tinyConfig(t)
	tr := newTrainer(t, c)
	require.NoError(t, tr.Init())
	dir := t.TempDir()
	require.NoError(t, tr.Save(dir, train.GPU))
	weights := filepath.Join(dir, train.WeightsFile)
	raw, err := os.ReadFile(weights)
	require.NoError(t, err)

	require.NoError(t, os.WriteFile(weights, raw[:len(raw)-7], 0o644))
	err = newTrainer(t, c).Restore(dir)
	require.Error(t, err)
	require.Contains(t, err.Error(), "model.safetensors")

	garbled := append([]byte(nil), raw...)
	copy(garbled[8:], []byte("{nonsense"))
	require.NoError(t, os.WriteFile(weights, garbled, 0o644))
	require.Error(t, newTrainer(t, c).Restore(dir))

	require.NoError(t, os.WriteFile(weights, raw, 0o644))
	require.NoError(t, os.Remove(filepath.Join(dir, train.StateFile)))
	require.ErrorContains(t, newTrainer(t, c).Restore(dir), "not a complete checkpoint")

	other := tinyConfig(t)
	other.IntermediateSize = 96
	require.NoError(t, tr.Save(dir, train.GPU))
	require.ErrorContains(t, newTrainer(t, other).Restore(dir), "shape")
}

func TestWeightDecaySkipsNormsSinksAndEmbeddingsUnlessAsked(t *testing.T) {
	for _, ask := range []bool{false, true} {
		c := tinyConfig(t)
		c.Training.DecayEmbeddings = ask
		tr := newTrainer(t, c)
		for _, p := range tr.Model.Params() {
			want := p.Role == "" || (ask && p.Role == "embedding")
			require.Equal(t, want, tr.Decayed(p), "%s (role %q, decay_embeddings=%v)", p.Name, p.Role, ask)
		}
	}
}

func TestRestoreRefusesAnotherTaskAndMixedSteps(t *testing.T) {
	c := tinyConfig(t)
	a := newTrainer(t, c)
	require.NoError(t, a.Init())
	steps(t, a, 2)
	dir, other := t.TempDir(), t.TempDir()
	require.NoError(t, a.Save(dir, train.GPU))
	steps(t, a, 1)
	require.NoError(t, a.Save(other, train.GPU))
	// New weights from step 3 next to a state and moments of step 2.
	raw, err := os.ReadFile(filepath.Join(other, train.WeightsFile))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, train.WeightsFile), raw, 0o644))
	require.ErrorContains(t, newTrainer(t, c).Restore(dir), "interrupted save")

	task, err := tasks.ByName("copy")
	require.NoError(t, err)
	tr, err := train.New(c, task, train.GPU, gputest.Device(t), 20)
	require.NoError(t, err)
	defer tr.Close()
	require.ErrorContains(t, tr.Restore(other), "trained on task reverse")
}

// Fused q/k/v and gate/up projections (the default) against the unfused
// graph: the same initial weights, losses within f32 summation-order
// rounding over 8 steps (1e-5 relative; the input gradient of the fused
// projection sums q, k and v's products in one matmul), checkpoints with the
// same tensor names and shapes, and a fused checkpoint resumed by the
// unfused graph continues with the same weights.
func TestFusedProjectionsTrainLikeTheUnfusedGraph(t *testing.T) {
	dev := gputest.Device(t)
	for _, name := range []string{"tiny-dense", "tiny-moe-mtp"} {
		t.Run(name, func(t *testing.T) {
			c, err := config.Load("../../assets/configs/" + name + ".json")
			require.NoError(t, err)
			c.Training.BatchSize = 4
			task, err := tasks.ByName("reverse")
			require.NoError(t, err)
			var losses [2][]float64
			var dirs [2]string
			for i, opt := range []train.Options{{}, {UnfusedProjections: true}} {
				tr, err := train.NewWith(c, task, train.GPU, dev, 100, opt)
				require.NoError(t, err)
				require.NoError(t, tr.Init())
				losses[i] = steps(t, tr, 8)
				dirs[i] = t.TempDir()
				require.NoError(t, tr.Save(dirs[i], train.GPU))
				tr.Close()
			}
			for s := range losses[0] {
				rel := math.Abs(losses[0][s]-losses[1][s]) / math.Abs(losses[1][s])
				require.Less(t, rel, 1e-5, "step %d: fused %.8f unfused %.8f", s+1, losses[0][s], losses[1][s])
			}
			require.Equal(t, losses[0][0], losses[1][0], "the first loss (same weights, same forward sums) differs")
			for _, f := range []string{train.WeightsFile, train.OptimizerFile} {
				a, err := safetensors.Read(filepath.Join(dirs[0], f))
				require.NoError(t, err)
				b, err := safetensors.Read(filepath.Join(dirs[1], f))
				require.NoError(t, err)
				require.Equal(t, len(b.Tensors), len(a.Tensors), f)
				for i := range a.Tensors {
					require.Equal(t, b.Tensors[i].Name, a.Tensors[i].Name, f)
					require.Equal(t, b.Tensors[i].Shape, a.Tensors[i].Shape, f)
				}
			}
			un, err := train.NewWith(c, task, train.GPU, dev, 100, train.Options{UnfusedProjections: true})
			require.NoError(t, err)
			defer un.Close()
			require.NoError(t, un.Restore(dirs[0]))
			require.Equal(t, 8, un.Step)
			require.NoError(t, un.Save(dirs[1], train.GPU))
			a, err := os.ReadFile(filepath.Join(dirs[0], train.WeightsFile))
			require.NoError(t, err)
			b, err := os.ReadFile(filepath.Join(dirs[1], train.WeightsFile))
			require.NoError(t, err)
			require.Equal(t, a, b, "a fused checkpoint read and written by the unfused graph changed")
		})
	}
}
