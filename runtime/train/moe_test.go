package train_test

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/safetensors"
	"github.com/moegpu/moegpu/runtime/tasks"
	"github.com/moegpu/moegpu/runtime/train"
)

var moeConfigs = []string{"tiny-moe-fine", "tiny-moe-relu2"}

func moeConfig(t *testing.T, name string) *config.ModelConfig {
	t.Helper()
	c, err := config.Load("../../assets/configs/" + name + ".json")
	require.NoError(t, err)
	c.Training.BatchSize = 4
	return c
}

// Both shipped MoE designs: the GPU and the float64 reference executor give
// the same first five losses (1e-4 relative, as for the dense model) and the
// same router statistics, controllers included.
func TestMoEConfigsGPUAndReferenceAgreeOnTheFirstFiveLosses(t *testing.T) {
	dev := gputest.Device(t)
	task, err := tasks.ByName("sort")
	require.NoError(t, err)
	for _, name := range moeConfigs {
		t.Run(name, func(t *testing.T) {
			c := moeConfig(t, name)
			var stats [2][]train.Stats
			for i, ex := range []string{train.GPU, train.Reference} {
				tr, err := train.New(c, task, ex, dev, 100)
				require.NoError(t, err)
				require.NoError(t, tr.Init())
				for s := 0; s < 5; s++ {
					st, err := tr.StepOnce()
					require.NoError(t, err)
					stats[i] = append(stats[i], st)
				}
				tr.Close()
			}
			for s := range stats[0] {
				g, r := stats[0][s], stats[1][s]
				require.Less(t, math.Abs(g.Loss-r.Loss)/r.Loss, 1e-4, "step %d: gpu %.7f reference %.7f", s+1, g.Loss, r.Loss)
				require.Len(t, g.MoE, 2)
				for l := range g.MoE {
					require.InDelta(t, r.MoE[l].SkipRate, g.MoE[l].SkipRate, 1e-6, "step %d layer %d skip rate (f32 of a count ratio)", s+1, l)
					require.InDelta(t, r.MoE[l].MaxVio, g.MoE[l].MaxVio, 1e-5, "step %d layer %d MaxVio", s+1, l)
					require.InDelta(t, r.MoE[l].Entropy, g.MoE[l].Entropy, 1e-4, "step %d layer %d entropy", s+1, l)
				}
			}
		})
	}
}

// An MoE checkpoint holds the Hugging Face MoE layout (router, stacked
// experts, shared experts, the correction bias), restores bit for bit, and
// resuming continues the same loss curve (the controllers' state included).
func TestMoECheckpointRoundTripsAndResumes(t *testing.T) {
	dev := gputest.Device(t)
	task, err := tasks.ByName("sort")
	require.NoError(t, err)
	c := moeConfig(t, "tiny-moe-fine")
	mk := func() *train.Trainer {
		tr, err := train.New(c, task, train.GPU, dev, 20)
		require.NoError(t, err)
		t.Cleanup(tr.Close)
		return tr
	}
	full := mk()
	require.NoError(t, full.Init())
	want := steps(t, full, 6)

	first := mk()
	require.NoError(t, first.Init())
	got := steps(t, first, 3)
	dir := t.TempDir()
	require.NoError(t, first.Save(dir, train.GPU))

	f, err := safetensors.Read(filepath.Join(dir, train.WeightsFile))
	require.NoError(t, err)
	shapes := map[string][]int{}
	for _, tn := range f.Tensors {
		shapes[tn.Name] = tn.Shape
	}
	p := "model.layers.1.mlp."
	require.Equal(t, []int{17, 64}, shapes[p+"gate.weight"])
	require.Equal(t, []int{17}, shapes[p+"gate.e_score_correction_bias"])
	require.Equal(t, []int{16, 24, 64}, shapes[p+"experts.gate_proj.weight"])
	require.Equal(t, []int{16, 24, 64}, shapes[p+"experts.up_proj.weight"])
	require.Equal(t, []int{16, 64, 24}, shapes[p+"experts.down_proj.weight"])
	require.Equal(t, []int{24, 64}, shapes[p+"shared_experts.up_proj.weight"])
	require.Equal(t, []int{64, 24}, shapes[p+"shared_experts.down_proj.weight"])

	second := mk()
	require.NoError(t, second.Restore(dir))
	pick := func(tr *train.Trainer) []*graph.Tensor {
		out := append(tr.Model.Params(), tr.Model.State()...)
		return append(out, tr.Model.ControllerState()...)
	}
	a, err := first.Exec.Get(pick(first)...)
	require.NoError(t, err)
	b, err := second.Exec.Get(pick(second)...)
	require.NoError(t, err)
	require.Equal(t, a, b, "restored weights, biases or controller state differ")
	bias, err := first.Exec.Get(first.Model.State()[0])
	require.NoError(t, err)
	require.NotEqual(t, make([]float64, 17), bias[0], "the controller never moved the bias")
	got = append(got, steps(t, second, 3)...)
	require.Equal(t, want, got)
}

// A non-finite router affinity is an error that names the layer, not a
// silent route to some expert.
func TestNonFiniteAffinityIsAnErrorNamingTheLayer(t *testing.T) {
	dev := gputest.Device(t)
	task, err := tasks.ByName("sort")
	require.NoError(t, err)
	tr, err := train.New(moeConfig(t, "tiny-moe-relu2"), task, train.GPU, dev, 20)
	require.NoError(t, err)
	defer tr.Close()
	require.NoError(t, tr.Init())
	router := tr.Model.MoE[1].Router
	v := make([]float64, router.Len())
	v[3] = math.NaN()
	require.NoError(t, tr.Exec.Set(router, v))
	_, err = tr.StepOnce()
	require.ErrorContains(t, err, "model.layers.1.mlp")
	require.ErrorContains(t, err, "non-finite affinities")
}
