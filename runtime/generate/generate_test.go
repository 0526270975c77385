package generate_test

import (
	"fmt"
	"math/rand"
	randv2 "math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/generate"
)

func tiny(t *testing.T) *config.ModelConfig {
	c, err := config.Load("../../assets/configs/tiny-dense.json")
	require.NoError(t, err)
	return c
}

// Decoding one token at a time through the KV cache (ring buffers on the
// sliding-window layer, which wrap here since the sequence is longer than
// the window) gives the logits of the full causal forward at every position.
func TestIncrementalDecodingMatchesTheFullForward(t *testing.T) {
	dev := gputest.Device(t)
	for _, sink := range []bool{true, false} {
		t.Run(fmt.Sprintf("sink=%v", sink), func(t *testing.T) {
			c := tiny(t)
			c.AttentionSink = sink
			c.SlidingWindow = 5
			decodingMatchesFullForward(t, dev, c, 23, 3)
		})
	}
}

func TestPickIsGreedyAtZeroTemperatureAndRespectsTopP(t *testing.T) {
	logits := []float64{0.1, 3, 2.9, -1}
	require.Equal(t, 1, generate.Pick(logits, generate.Sampling{}, nil))
	rng := newRand()
	seen := map[int]int{}
	for i := 0; i < 2000; i++ {
		seen[generate.Pick(logits, generate.Sampling{Temperature: 1, TopP: 0.5}, rng)]++
	}
	// p ≈ (0.04, 0.50, 0.45, 0.01): top-p 0.5 keeps the first token, or the
	// first two when rounding puts the first just under 0.5; never 0 or 3.
	require.Zero(t, seen[0])
	require.Zero(t, seen[3])
	require.Greater(t, seen[1], 0)
}

func newRand() *randv2.Rand { return randv2.New(randv2.NewPCG(1, 2)) }

// Prefill in 16-token submissions (two chunks and a tail here, with the
// sliding-window ring wrapping) leaves the same KV caches and logits as
// feeding the prompt one token at a time.
func TestChunkedPrefillMatchesTokenByTokenDecoding(t *testing.T) {
	dev := gputest.Device(t)
	c := tiny(t)
	c.SlidingWindow = 5
	L := 48
	a, err := generate.New(c, "gpu", dev, generate.Options{MaxSeq: L})
	require.NoError(t, err)
	defer a.Close()
	b, err := generate.New(c, "gpu", dev, generate.Options{MaxSeq: L})
	require.NoError(t, err)
	defer b.Close()
	rng := rand.New(rand.NewSource(5))
	for i, p := range a.Params() {
		v := optest.Random(rng, p.Spec, -0.3, 0.3).Data
		require.NoError(t, a.Exec.Set(p, v))
		require.NoError(t, b.Exec.Set(b.Params()[i], v))
	}
	prompt := make([]int, 37)
	for i := range prompt {
		prompt[i] = rng.Intn(c.VocabSize)
	}
	got, err := a.Prefill(prompt)
	require.NoError(t, err)
	var want []float64
	for i, tok := range prompt {
		want, err = b.Step(tok, i)
		require.NoError(t, err)
	}
	optest.Close(t, "logits after the prompt", got, want, optest.Tol{Atol: 2e-5, Rtol: 1e-4})
	// Decoding continues identically from both caches.
	for i := 0; i < 5; i++ {
		x, err := a.Step(i+4, len(prompt)+i)
		require.NoError(t, err)
		y, err := b.Step(i+4, len(prompt)+i)
		require.NoError(t, err)
		optest.Close(t, fmt.Sprintf("logits at generated position %d", i), x, y, optest.Tol{Atol: 2e-5, Rtol: 1e-4})
	}
}

// Half-precision weights: the GPU and the reference (which rounds f16
// tensors as the GPU stores them) agree to f32 accuracy, and both stay
// within f16 rounding of the f32 model.
func TestF16WeightsDecodeLikeTheReferenceAndCloseToF32(t *testing.T) {
	dev := gputest.Device(t)
	c := tiny(t)
	c.TieWordEmbeddings = false
	c.VocabSize = 44 // a multiple of 4, so the LM head is f16 too
	L := 20
	half, err := generate.New(c, "gpu", dev, generate.Options{MaxSeq: L, F16: true})
	require.NoError(t, err)
	defer half.Close()
	ref, err := generate.New(c, "reference", nil, generate.Options{MaxSeq: L, F16: true})
	require.NoError(t, err)
	defer ref.Close()
	full, err := generate.New(c, "gpu", dev, generate.Options{MaxSeq: L})
	require.NoError(t, err)
	defer full.Close()
	halfParams := 0
	rng := rand.New(rand.NewSource(6))
	for i, p := range half.Params() {
		if p.DType == gpu.F16 {
			halfParams++
		}
		v := optest.Random(rng, p.Spec, -0.3, 0.3).Data
		require.NoError(t, half.Exec.Set(p, v))
		require.NoError(t, ref.Exec.Set(ref.Params()[i], v))
		require.NoError(t, full.Exec.Set(full.Params()[i], v))
	}
	// Per layer qkv_proj, o_proj, gate_up_proj, down_proj (q/k/v and
	// gate/up fused), and the LM head.
	require.Equal(t, 2*4+1, halfParams, "every projection and the LM head in f16")
	for i := 0; i < L; i++ {
		tok := rng.Intn(c.VocabSize)
		h, err := half.Step(tok, i)
		require.NoError(t, err)
		r, err := ref.Step(tok, i)
		require.NoError(t, err)
		f, err := full.Step(tok, i)
		require.NoError(t, err)
		optest.Close(t, fmt.Sprintf("f16 gpu vs reference at %d", i), h, r, optest.Tol{Atol: 2e-5, Rtol: 1e-4})
		// weights rounded to 11 significant bits: relative error 2^-11 per
		// weight, accumulated over two layers.
		optest.Close(t, fmt.Sprintf("f16 vs f32 at %d", i), h, f, optest.Tol{Atol: 2e-2, Rtol: 2e-2})
	}
}
