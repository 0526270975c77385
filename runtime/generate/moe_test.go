package generate_test

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/generate"
	"github.com/moegpu/moegpu/runtime/model"
)

// MoE models decode through the KV cache (one token per step: the router
// sees one token, and the copy expert may skip it) to the logits of the
// full forward at every position, with a non-zero correction bias shared
// by name between the two graphs.
func TestMoEIncrementalDecodingMatchesTheFullForward(t *testing.T) {
	dev := gputest.Device(t)
	for _, name := range []string{"tiny-moe-fine", "tiny-moe-relu2"} {
		t.Run(name, func(t *testing.T) {
			c, err := config.Load("../../assets/configs/" + name + ".json")
			require.NoError(t, err)
			c.SlidingWindow = 5
			decodingMatchesFullForward(t, dev, c, 19, 4)
		})
	}
}

// decodingMatchesFullForward sets random weights (and MoE correction
// biases) on a full causal forward of L tokens and on a generator, feeds
// the tokens one at a time through the generator's KV cache, and checks
// every position's logits against the full forward's; one more step past
// the generator's positions is an error.
func decodingMatchesFullForward(t *testing.T, dev *gpu.Device, c *config.ModelConfig, L int, seed int64) {
	t.Helper()
	full, err := model.BuildTrain(c, 1, L)
	require.NoError(t, err)
	plan, err := full.Graph.Plan([]*graph.Tensor{full.Logits}, 256)
	require.NoError(t, err)
	fx, err := graph.NewGPU(dev, plan, nil)
	require.NoError(t, err)
	defer fx.Close()
	gen, err := generate.New(c, "gpu", dev, generate.Options{MaxSeq: L})
	require.NoError(t, err)
	defer gen.Close()
	rng := rand.New(rand.NewSource(seed))
	byName := map[string][]float64{}
	for _, p := range append(full.Params(), full.State()...) {
		byName[p.Name] = optest.Random(rng, p.Spec, -0.3, 0.3).Data
		require.NoError(t, fx.Set(p, byName[p.Name]))
	}
	for _, p := range append(gen.Params(), gen.Model.State()...) {
		require.NoError(t, gen.Exec.Set(p, byName[p.Name]))
	}
	tokens, pos := make([]float64, L), make([]float64, L)
	for i := range tokens {
		tokens[i] = float64(rng.Intn(c.VocabSize))
		pos[i] = float64(i)
	}
	require.NoError(t, fx.Set(full.Tokens, tokens))
	require.NoError(t, fx.Set(full.Positions, pos))
	require.NoError(t, fx.Run())
	want, err := fx.Get(full.Logits)
	require.NoError(t, err)
	V := c.VocabSize
	for i := 0; i < L; i++ {
		got, err := gen.Step(int(tokens[i]), i)
		require.NoError(t, err)
		// Same f32 math in another order (cached vs full attention).
		optest.Close(t, fmt.Sprintf("logits at position %d", i), got, want[0][i*V:(i+1)*V], optest.Tol{Atol: 2e-5, Rtol: 1e-4})
	}
	_, err = gen.Step(1, L)
	require.ErrorContains(t, err, "past the")
}
