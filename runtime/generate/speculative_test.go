package generate_test

import (
	"fmt"
	"math"
	"math/rand"
	randv2 "math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/generate"
	"github.com/moegpu/moegpu/runtime/model"
	"github.com/moegpu/moegpu/runtime/safetensors"
	"github.com/moegpu/moegpu/runtime/weights"
)

// echoMTPCheckpoint writes weights under which the model repeats its last
// token: every projection is zero (attention and FFNs add nothing), so the
// main model's logits are norm(e_t)·Eᵀ, largest at t itself; MTP module k
// < D passes its embedding half through eh_proj = [I 0] and so predicts the
// token it reads, which in a repeating sequence is the right draft; module
// D has eh_proj = 0 and drafts token 0, always wrong. Every round then
// accepts D−1 drafts and rejects the last.
func echoMTPCheckpoint(t *testing.T, c *config.ModelConfig) string {
	t.Helper()
	m, err := model.BuildTrain(c, 1, 8)
	require.NoError(t, err)
	rng := rand.New(rand.NewSource(2))
	d := c.HiddenSize
	last := fmt.Sprintf("model.layers.%d.eh_proj.weight", c.NumHiddenLayers+c.NumNextNPredictLayers-1)
	var ts []safetensors.Tensor
	for _, p := range append(m.Params(), m.State()...) {
		v := make([]float32, p.Len())
		switch {
		case p.Name == "model.embed_tokens.weight" || p.Name == "lm_head.weight":
			for i := range v {
				v[i] = float32(rng.NormFloat64())
			}
		case p.Init.Dist == "ones":
			for i := range v {
				v[i] = 1
			}
		case strings.HasSuffix(p.Name, "eh_proj.weight") && p.Name != last:
			for i := 0; i < d; i++ {
				v[i*2*d+i] = 1
			}
		}
		// A fused projection is written part by part, as checkpoints hold it.
		st, err := weights.Tensors([]*graph.Tensor{p}, [][]float64{f64s(v)})
		require.NoError(t, err)
		ts = append(ts, st...)
	}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	require.NoError(t, safetensors.Write(path, ts, nil))
	return path
}

// randomMTPCheckpoint writes a model.safetensors of random weights for c
// (main model and MTP modules), scaled so that greedy choices repeat often
// enough for drafts to be accepted sometimes and rejected sometimes.
func randomMTPCheckpoint(t *testing.T, c *config.ModelConfig, seed int64) string {
	t.Helper()
	m, err := model.BuildTrain(c, 1, 8)
	require.NoError(t, err)
	rng := rand.New(rand.NewSource(seed))
	var ts []safetensors.Tensor
	for _, p := range append(m.Params(), m.State()...) {
		v := make([]float32, p.Len())
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 0.2)
			switch {
			case p.Init.Dist == "ones":
				v[i] = 1
			case p.Kind == graph.State: // MoE correction biases
				v[i] = 0
			}
		}
		// A fused projection is written part by part, as checkpoints hold it.
		st, err := weights.Tensors([]*graph.Tensor{p}, [][]float64{f64s(v)})
		require.NoError(t, err)
		ts = append(ts, st...)
	}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	require.NoError(t, safetensors.Write(path, ts, nil))
	return path
}

// Greedy speculative decoding gives exactly plain greedy decoding's output,
// token for token, over many prompts, with sliding-window and global
// layers, dense and MoE FFNs, D = 1…4 (rejections, partial and full
// acceptance all happen).
func TestSpeculativeGreedyEqualsPlainGreedy(t *testing.T) {
	dev := gputest.Device(t)
	for _, c := range []struct {
		name   string
		config string
		d      int
		window int
		echo   bool
	}{{"dense, sliding + global, D=4", "tiny-dense", 4, 5, false}, {"dense, D=1", "tiny-dense", 1, 16, false},
		{"MoE, D=2", "tiny-moe-fine", 2, 6, false}, {"echo weights, D=4", "tiny-dense", 4, 5, true},
		{"echo weights, MoE, D=3", "tiny-moe-relu2", 3, 7, true}} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := config.Load("../../assets/configs/" + c.config + ".json")
			require.NoError(t, err)
			cfg.SlidingWindow = c.window
			cfg.NumNextNPredictLayers = c.d
			cfg.MTPConfig = config.MTPConfig{NumNextNPredictLayers: c.d, MTPLossWeight: 0.3, MTPLossWeightLate: 0.3, MTPLossWeightSwitch: 1,
				MTPIntermediateSize: 32, MTPSlidingWindow: 4}
			require.NoError(t, cfg.Validate())
			path := randomMTPCheckpoint(t, cfg, int64(c.d))
			if c.echo {
				path = echoMTPCheckpoint(t, cfg)
			}
			plain, err := generate.New(cfg, "gpu", dev, generate.Options{MaxSeq: 64})
			require.NoError(t, err)
			defer plain.Close()
			require.NoError(t, plain.LoadWeights(path))
			spec, err := generate.NewSpeculative(cfg, dev, generate.Options{MaxSeq: 64})
			require.NoError(t, err)
			defer spec.Close()
			require.NoError(t, spec.LoadWeights(path))
			rng := rand.New(rand.NewSource(1))
			total := generate.SpecStats{Attempts: make([]int, c.d), Accepts: make([]int, c.d)}
			for p := 0; p < 12; p++ {
				prompt := make([]int, 1+rng.Intn(20))
				for i := range prompt {
					prompt[i] = 4 + rng.Intn(30)
				}
				want, _, err := plain.Generate(prompt, 30, -1, generate.Sampling{}, nil)
				require.NoError(t, err)
				got, st, err := spec.Generate(prompt, 30, -1, generate.Sampling{}, nil)
				require.NoError(t, err)
				require.Equal(t, want, got, fmt.Sprintf("prompt %v", prompt))
				// PromptNext: the greedy token after each prompt position (prefill chunks,
				// the padded rest and single steps alike), as generating from that prefix.
				next := spec.PromptNext()
				require.Len(t, next, len(prompt))
				if p < 4 {
					for i := range prompt {
						one, _, err := plain.Generate(prompt[:i+1], 1, -1, generate.Sampling{}, nil)
						require.NoError(t, err)
						require.Equal(t, one[0], next[i], "prompt %v, position %d", prompt, i)
					}
				}
				for k := range total.Attempts {
					total.Attempts[k] += st.Attempts[k]
					total.Accepts[k] += st.Accepts[k]
				}
			}
			t.Logf("attempts %v accepts %v", total.Attempts, total.Accepts)
			if c.echo { // heads 1…D−1 always right, head D always wrong
				for k := 0; k < c.d-1; k++ {
					require.Equal(t, total.Attempts[k], total.Accepts[k], "head %d", k+1)
				}
				require.Zero(t, total.Accepts[c.d-1])
				require.Positive(t, total.Attempts[c.d-1])
				return
			}
			require.Positive(t, total.Accepts[0], "no draft was ever accepted: the acceptance paths went untested")
			require.Less(t, total.Accepts[0], total.Attempts[0], "no draft was ever rejected: the rollback went untested")
		})
	}
}

// Speculative sampling follows the model's distribution: over many runs
// from one prompt, the first three sampled tokens' joint frequencies match
// plain sampling's: the second and third tokens' frequencies (the ones the
// rejection rule decides) pass a two-sample chi-square at the 1e-4 level,
// rare categories lumped, while drafts are both accepted and rejected.
func TestSpeculativeSamplingMatchesPlainSamplingInDistribution(t *testing.T) {
	dev := gputest.Device(t)
	cfg, err := config.Load("../../assets/configs/tiny-dense.json")
	require.NoError(t, err)
	cfg.MTPConfig = config.MTPConfig{NumNextNPredictLayers: 2, MTPLossWeight: 0.3, MTPLossWeightLate: 0.3, MTPLossWeightSwitch: 1,
		MTPIntermediateSize: 32, MTPSlidingWindow: 4}
	path := echoMTPCheckpoint(t, cfg)
	plain, err := generate.New(cfg, "gpu", dev, generate.Options{MaxSeq: 32})
	require.NoError(t, err)
	defer plain.Close()
	require.NoError(t, plain.LoadWeights(path))
	spec, err := generate.NewSpeculative(cfg, dev, generate.Options{MaxSeq: 32})
	require.NoError(t, err)
	defer spec.Close()
	require.NoError(t, spec.LoadWeights(path))
	sp := generate.Sampling{Temperature: 20, TopP: 0.95} // echo logits differ by ~64: flatten them
	prompt := []int{5, 9, 9}
	counts := [2][2]map[int]int{{{}, {}}, {{}, {}}} // [plain|spec][token 2|3]
	accepted, attempts := 0, 0
	const runs = 300
	for r := 0; r < runs; r++ {
		a, _, err := plain.Generate(prompt, 3, -1, sp, randv2.New(randv2.NewPCG(uint64(r), 1)))
		require.NoError(t, err)
		b, st, err := spec.Generate(prompt, 3, -1, sp, randv2.New(randv2.NewPCG(uint64(r), 2)))
		require.NoError(t, err)
		require.Len(t, a, 3)
		require.Len(t, b, 3)
		for pos := 0; pos < 2; pos++ {
			counts[0][pos][a[pos+1]]++
			counts[1][pos][b[pos+1]]++
		}
		accepted += st.Accepts[0]
		attempts += st.Attempts[0]
	}
	t.Logf("head 1 acceptance %d/%d", accepted, attempts)
	require.Positive(t, accepted)
	require.Less(t, accepted, attempts)
	for pos := 0; pos < 2; pos++ {
		// Two-sample chi-square over tokens seen at least 10 times in all.
		stat, df, restA, restB := 0.0, -1, 0, 0
		for tok := 0; tok < cfg.VocabSize; tok++ {
			a, b := counts[0][pos][tok], counts[1][pos][tok]
			if a+b < 10 {
				restA, restB = restA+a, restB+b
				continue
			}
			stat += float64((a-b)*(a-b)) / float64(a+b)
			df++
		}
		if restA+restB > 0 {
			stat += float64((restA-restB)*(restA-restB)) / float64(restA+restB)
			df++
		}
		require.Positive(t, df, "token %d: no spread to test", pos+2)
		k := float64(df)
		crit := k * math.Pow(1-2/(9*k)+3.719*math.Sqrt(2/(9*k)), 3)
		t.Logf("token %d: chi-square %.1f over %d degrees of freedom (critical %.1f)", pos+2, stat, df, crit)
		require.Less(t, stat, crit, "token %d", pos+2)
	}
}

func f64s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}
