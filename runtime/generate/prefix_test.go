package generate_test

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
	"github.com/moegpu/moegpu/runtime/generate"
	"github.com/moegpu/moegpu/runtime/model"
)

// A prefix_lm image model (20 image tokens, more than PrefillChunk and than
// the sliding window of 5): prefilling the image tokens and BOS, then
// decoding token by token, gives the logits of the full forward, where the
// image tokens attend each other in both directions; the flag changes the
// full forward's logits at the first image token (so the test would see a
// decoder that ignored it); and the reference executor, which prefills one
// token at a time, refuses such a prompt.
func TestPrefixLMImageDecodingMatchesTheFullForward(t *testing.T) {
	dev := gputest.Device(t)
	c := tiny(t)
	c.SlidingWindow = 5
	c.ImageHeight, c.PatchWidth, c.MaxImageWidth = 4, 2, 40
	c.PrefixLM = true
	require.NoError(t, c.Validate())
	P := c.ImageTokens()
	require.Equal(t, 20, P)
	require.Greater(t, P, generate.PrefillChunk)
	L := P + 8
	rng := rand.New(rand.NewSource(11))
	pixels := make([]float32, c.ImageHeight*c.MaxImageWidth)
	for i := range pixels {
		pixels[i] = rng.Float32()
	}
	tokens, pos, cols := make([]float64, L), make([]float64, L), make([]float64, L)
	for i := range tokens {
		tokens[i] = float64(rng.Intn(c.VocabSize))
		pos[i] = float64(i)
		cols[i] = graph.NoPatch
		if i < P {
			cols[i] = float64(i)
		}
	}
	byName := map[string][]float64{}
	forward := func(prefixLM bool) []float64 {
		cc := *c
		cc.PrefixLM = prefixLM
		full, err := model.BuildTrain(&cc, 1, L)
		require.NoError(t, err)
		plan, err := full.Graph.Plan([]*graph.Tensor{full.Logits}, 256)
		require.NoError(t, err)
		fx, err := graph.NewGPU(dev, plan, nil)
		require.NoError(t, err)
		defer fx.Close()
		for _, p := range append(full.Params(), full.State()...) {
			if byName[p.Name] == nil {
				byName[p.Name] = optest.Random(rng, p.Spec, -0.3, 0.3).Data
			}
			require.NoError(t, fx.Set(p, byName[p.Name]))
		}
		px := make([]float64, len(pixels))
		for i, v := range pixels {
			px[i] = float64(v)
		}
		for _, s := range []struct {
			t *graph.Tensor
			v []float64
		}{{full.Tokens, tokens}, {full.Positions, pos}, {full.PatchCols, cols}, {full.PixelValues, px}} {
			require.NoError(t, fx.Set(s.t, s.v))
		}
		require.NoError(t, fx.Run())
		out, err := fx.Get(full.Logits)
		require.NoError(t, err)
		return out[0]
	}
	want := forward(true)
	causal := forward(false)
	V := c.VocabSize
	moved := 0.0
	for v := 0; v < V; v++ {
		moved = math.Max(moved, math.Abs(want[v]-causal[v]))
	}
	require.Greater(t, moved, 1e-3, "prefix_lm changes what the first image token sees")

	gen, err := generate.New(c, "gpu", dev, generate.Options{MaxSeq: L})
	require.NoError(t, err)
	defer gen.Close()
	for _, p := range append(gen.Params(), gen.Model.State()...) {
		require.NoError(t, gen.Exec.Set(p, byName[p.Name]))
	}
	require.NoError(t, gen.SetImage(pixels))
	prompt := make([]int, P+1)
	for i := range prompt {
		prompt[i] = int(tokens[i])
	}
	got, err := gen.Prefill(prompt)
	require.NoError(t, err)
	// Same f32 math in another order (cached vs full attention), as the text model's check.
	tol := optest.Tol{Atol: 2e-5, Rtol: 1e-4}
	optest.Close(t, "logits after the prompt", got, want[P*V:(P+1)*V], tol)
	for i := P + 1; i < L; i++ {
		got, err := gen.Step(int(tokens[i]), i)
		require.NoError(t, err)
		optest.Close(t, fmt.Sprintf("logits at position %d", i), got, want[i*V:(i+1)*V], tol)
	}

	ref, err := generate.New(c, "reference", nil, generate.Options{MaxSeq: L})
	require.NoError(t, err)
	defer ref.Close()
	_, err = ref.Prefill(prompt)
	require.ErrorContains(t, err, "prefix_lm")
}
