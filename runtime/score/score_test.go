package score_test

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/generate"
	"github.com/moegpu/moegpu/runtime/score"
	"github.com/moegpu/moegpu/runtime/textdata"
	"github.com/moegpu/moegpu/runtime/train"
)

// TestMain runs the tests with Go's asynchronous preemption off (see gputest.Main).
func TestMain(m *testing.M) { gputest.Main(m) }

// checkpoint saves a freshly initialised tiny model with the 100-token vocabulary, MoE with
// a copy expert when moe is set.
func checkpoint(t *testing.T, moe bool) string {
	t.Helper()
	name := "tiny-dense.json"
	if moe {
		name = "tiny-moe-fine.json"
	}
	c, err := config.Load(filepath.Join("../../assets/configs", name))
	require.NoError(t, err)
	c.VocabSize, c.Training.BatchSize, c.Training.SeqLen = textdata.VocabSize, 2, 40
	task, _, err := textdata.ParseLong("needle:40-40")
	require.NoError(t, err)
	dev := gputest.Device(t)
	tr, err := train.New(c, task, train.GPU, dev, 10)
	require.NoError(t, err)
	defer tr.Close()
	require.NoError(t, tr.Init())
	for i := 0; i < 3; i++ { // a few steps, so the routers are not at their initial state
		_, err := tr.StepOnce()
		require.NoError(t, err)
	}
	dir := t.TempDir()
	require.NoError(t, tr.Save(dir, train.GPU))
	return dir
}

// The training graph's logits at every position are the KV-cache decoder's, so scoring by
// one forward pass is scoring what decoding would see.
func TestForwardLogitsAreTheDecodersLogits(t *testing.T) {
	dir := checkpoint(t, false)
	dev := gputest.Device(t)
	row, err := textdata.Encode("abc=1234;xyz=98")
	require.NoError(t, err)
	row = append([]int{textdata.BOS}, row...)
	f, err := score.Open(dir, train.GPU, dev, 2, len(row))
	require.NoError(t, err)
	defer f.Close()
	out, err := f.Run([][]int{row})
	require.NoError(t, err)

	_, cfg, err := train.LoadState(dir)
	require.NoError(t, err)
	gen, err := generate.New(cfg, "gpu", dev, generate.Options{MaxSeq: len(row)})
	require.NoError(t, err)
	defer gen.Close()
	require.NoError(t, gen.LoadWeights(filepath.Join(dir, train.WeightsFile)))
	for i, tok := range row {
		want, err := gen.Step(tok, i)
		require.NoError(t, err)
		got := out.At(0, i, f.Seq)
		for v := range want {
			require.InDelta(t, want[v], float64(got[v]), 1e-4+1e-4*math.Abs(want[v]), "position %d token %d", i, v)
		}
	}
}

// LM's bits per character is the mean of −log2 p(next character) over every scored
// position, computed here from the raw logits.
func TestLMBitsPerCharacterIsTheMeanLogLoss(t *testing.T) {
	dir := checkpoint(t, true)
	dev := gputest.Device(t)
	text := "The quick brown fox\njumps over the lazy dog. 1234 ABC!"
	ids, err := textdata.Encode(text)
	require.NoError(t, err)
	windows := [][]int{ids[:20], ids[20:40], ids[30:50]}
	f, err := score.Open(dir, train.GPU, dev, 2, 20)
	require.NoError(t, err)
	defer f.Close()
	res, err := score.LM(f, windows)
	require.NoError(t, err)
	bits, n := 0.0, 0
	for _, w := range windows {
		out, err := f.Run([][]int{w})
		require.NoError(t, err)
		for i := 0; i+1 < len(w); i++ {
			lg := out.At(0, i, 20)
			m, s := math.Inf(-1), 0.0
			for _, x := range lg {
				m = math.Max(m, float64(x))
			}
			for _, x := range lg {
				s += math.Exp(float64(x) - m)
			}
			p := math.Exp(float64(lg[w[i+1]])-m) / s
			bits -= math.Log2(p)
			n++
		}
	}
	assert.Equal(t, n, res.Chars)
	assert.InDelta(t, bits/float64(n), res.BitsPerChar, 1e-4)
	require.NotNil(t, res.Routing, "a model with a copy expert counts skips")
	assert.Len(t, res.Routing.Layers, 2)
	total := 0
	for _, c := range textdata.Classes() {
		total += res.Routing.Tokens[c]
	}
	assert.Equal(t, 60, total, "every input token of the three windows is counted once")
}

// Exact match by teacher forcing: an example whose answer is the model's own greedy decode
// scores 1, any other answer 0.
func TestLongExactMatchIsGreedyDecodingsExactMatch(t *testing.T) {
	dir := checkpoint(t, false)
	dev := gputest.Device(t)
	_, cfg, err := train.LoadState(dir)
	require.NoError(t, err)
	gen, err := generate.New(cfg, "gpu", dev, generate.Options{MaxSeq: 64})
	require.NoError(t, err)
	defer gen.Close()
	require.NoError(t, gen.LoadWeights(filepath.Join(dir, train.WeightsFile)))
	// Find prompts whose greedy continuation is printable text then EOS within a few
	// tokens, forcing EOS by choosing the answer as the decoded text before the first
	// special token; then the answer is right exactly up to that token.
	ex := textdata.LongExample{Prompt: "ab=12;cd=34;?cd", Length: 64}
	p, err := textdata.PromptTokens(ex.Prompt)
	require.NoError(t, err)
	out, _, err := gen.Generate(p, 6, -1, generate.Sampling{}, nil)
	require.NoError(t, err)
	// The teacher-forced argmax after SEP is the first greedy token: an answer that starts
	// with any other character is wrong.
	first := textdata.Decode(out[:1])
	wrong := "Z"
	if first == "Z" {
		wrong = "Y"
	}
	ex.Answer = wrong
	res, err := score.Long(dir, train.GPU, dev, 2, []textdata.LongExample{ex})
	require.NoError(t, err)
	assert.Equal(t, 0, res.Correct)
	assert.Equal(t, 1, res.Total)
	require.Len(t, res.Cells, 1)
	assert.Equal(t, 64, res.Cells[0].Length)

	// Force a model whose greedy answer is known: an answer of the first greedy token alone
	// is right only if the model then says EOS; score.Long must agree with decoding either way.
	if out[0] > textdata.SEP {
		ex.Answer = first
		res, err = score.Long(dir, train.GPU, dev, 2, []textdata.LongExample{ex})
		require.NoError(t, err)
		assert.Equal(t, out[1] == textdata.EOS, res.Correct == 1, "greedy decoded %v", out)
	}
}

func TestOpenRefusesWhatItCannotScore(t *testing.T) {
	dir := checkpoint(t, false)
	dev := gputest.Device(t)
	_, err := score.Open(dir, train.GPU, dev, 1, 100000)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "max_position_embeddings")
	_, err = score.Open(t.TempDir(), train.GPU, dev, 1, 8)
	require.Error(t, err)
	f, err := score.Open(dir, train.GPU, dev, 1, 8)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Run([][]int{{1, 2, 300}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "outside the vocabulary")
	_, err = f.Run([][]int{{1}, {2}})
	require.Error(t, err)
}
