package tasks

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestVocabIsFixed(t *testing.T) {
	v := Vocab()
	require.Len(t, v, VocabSize)
	assert.Equal(t, []string{"<pad>", "<bos>", "<eos>", "<sep>", "0"}, v[:5])
	assert.Equal(t, "9", v[13])
	assert.Equal(t, "a", v[14])
	assert.Equal(t, "z", v[39])
	assert.Equal(t, []string{"+", "=", " "}, v[40:])
	v[0] = "changed"
	assert.Equal(t, "<pad>", Vocab()[0], "Vocab returns a copy")
}

func TestEncodeDecodeRoundTripsEveryCharacter(t *testing.T) {
	all := "0123456789abcdefghijklmnopqrstuvwxyz+= "
	ids, err := Encode(all)
	require.NoError(t, err)
	for i, id := range ids {
		assert.Equal(t, 4+i, id)
	}
	assert.Equal(t, all, Decode(ids))
	assert.Equal(t, "<bos>ab<sep>ba<eos><pad><unk:99><unk:-1>", Decode([]int{BOS, 14, 15, SEP, 15, 14, EOS, PAD, 99, -1}))
}

func TestEncodeRejectsCharactersOutsideTheVocabulary(t *testing.T) {
	for _, s := range []string{"A", "ab-c", "é", "\n"} {
		t.Run(strconv.Quote(s), func(t *testing.T) {
			_, err := Encode(s)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "not in the vocabulary")
		})
	}
}

func TestDecodeAnswerStopsAtTheFirstEOS(t *testing.T) {
	for _, tc := range []struct {
		name string
		ids  []int
		want string
	}{
		{"stops at eos", []int{5, 6, EOS, 7}, "12"},
		{"no eos", []int{5, 6}, "12"},
		{"empty answer", []int{EOS}, ""},
		{"nothing", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) { assert.Equal(t, tc.want, DecodeAnswer(tc.ids)) })
	}
}

func TestPromptTokensWrapsThePromptInBOSAndSEP(t *testing.T) {
	ids, err := PromptTokens("1+2")
	require.NoError(t, err)
	assert.Equal(t, []int{BOS, 5, 40, 6, SEP}, ids)
	_, err = PromptTokens("1-2")
	require.Error(t, err)
}

func TestEachTaskAnswersItsPromptCorrectly(t *testing.T) {
	check := map[string]func(t *testing.T, p, a string){
		"copy": func(t *testing.T, p, a string) { assert.Equal(t, p, a) },
		"reverse": func(t *testing.T, p, a string) {
			r := []byte(p)
			slices.Reverse(r)
			assert.Equal(t, string(r), a)
		},
		"sort": func(t *testing.T, p, a string) {
			assert.True(t, slices.IsSorted([]byte(a)), a)
			s := []byte(p)
			slices.Sort(s)
			assert.Equal(t, string(s), a, "answer is a permutation of the prompt")
		},
		"add": func(t *testing.T, p, a string) {
			x, y, ok := strings.Cut(p, "+")
			require.True(t, ok, p)
			xi, err := strconv.Atoi(x)
			require.NoError(t, err)
			yi, err := strconv.Atoi(y)
			require.NoError(t, err)
			assert.Equal(t, strconv.Itoa(xi+yi), a)
			for _, n := range []string{x, y} {
				assert.True(t, len(n) >= 1 && len(n) <= 4, p)
				assert.False(t, len(n) > 1 && n[0] == '0', "leading zero in %q", p)
			}
		},
	}
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			task, err := ByName(name)
			require.NoError(t, err)
			assert.Equal(t, name, task.Name())
			rng := rand.New(rand.NewPCG(1, 2))
			lo, hi := task.LengthRange()
			seenLens := map[int]bool{}
			for i := 0; i < 500; i++ {
				p, a := task.Sample(rng)
				check[name](t, p, a)
				seq := len(p) + len(a) + 3
				assert.LessOrEqual(t, seq, task.MaxSeqLen())
				if name != "add" {
					assert.True(t, len(p) >= lo && len(p) <= hi, "length %d outside [%d, %d]", len(p), lo, hi)
					assert.Regexp(t, "^[a-z]+$", p)
					seenLens[len(p)] = true
				} else {
					x, _, _ := strings.Cut(p, "+")
					seenLens[len(x)] = true
				}
			}
			assert.Len(t, seenLens, hi-lo+1, "every length in the range is drawn")
		})
	}
}

func TestDefaultLengthRanges(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lo, hi   int
		maxSeqLn int
	}{
		{"copy", 4, 10, 23},
		{"reverse", 4, 10, 23},
		{"sort", 4, 10, 23},
		{"add", 1, 4, 9 + 5 + 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task, err := ByName(tc.name)
			require.NoError(t, err)
			lo, hi := task.LengthRange()
			assert.Equal(t, [2]int{tc.lo, tc.hi}, [2]int{lo, hi})
			assert.Equal(t, tc.maxSeqLn, task.MaxSeqLen())
		})
	}
}

func TestSamplingIsDeterministicPerSeed(t *testing.T) {
	task, err := ByName("add")
	require.NoError(t, err)
	a1, b1, c1, err := task.Batch(TrainRNG(7), 4, 20)
	require.NoError(t, err)
	a2, b2, c2, err := task.Batch(TrainRNG(7), 4, 20)
	require.NoError(t, err)
	assert.Equal(t, a1, a2)
	assert.Equal(t, b1, b2)
	assert.Equal(t, c1, c2)
	a3, _, _, err := task.Batch(TrainRNG(8), 4, 20)
	require.NoError(t, err)
	assert.NotEqual(t, a1, a3)
}

func TestBatchLaysOutTokensTargetsAndWeights(t *testing.T) {
	task, err := New("reverse", 2, 5)
	require.NoError(t, err)
	const B, T = 3, 16
	tokens, targets, weights, err := task.Batch(rand.New(rand.NewPCG(3, 4)), B, T)
	require.NoError(t, err)
	require.Len(t, tokens, B*T)
	require.Len(t, targets, B*T)
	require.Len(t, weights, B*T)

	// Replay the same draws to know what each row must hold.
	replay := rand.New(rand.NewPCG(3, 4))
	count := 0
	type row struct{ seq, tgt []uint32 }
	var rows []row
	for b := 0; b < B; b++ {
		p, a := task.Sample(replay)
		pi, _ := Encode(p)
		ai, _ := Encode(a)
		seq := []uint32{BOS}
		for _, id := range pi {
			seq = append(seq, uint32(id))
		}
		seq = append(seq, SEP)
		for _, id := range ai {
			seq = append(seq, uint32(id))
		}
		seq = append(seq, EOS)
		tgt := make([]uint32, T)
		for i := range tgt {
			tgt[i] = IgnoreIndex
		}
		sep := len(pi) + 1
		for i := sep; i < len(seq)-1; i++ {
			tgt[i] = seq[i+1]
		}
		count += len(ai) + 1
		for len(seq) < T {
			seq = append(seq, PAD)
		}
		rows = append(rows, row{seq, tgt})
	}
	var sum float64
	for b, r := range rows {
		assert.Equal(t, r.seq, tokens[b*T:(b+1)*T], "row %d tokens", b)
		assert.Equal(t, r.tgt, targets[b*T:(b+1)*T], "row %d targets", b)
		for i := 0; i < T; i++ {
			w := weights[b*T+i]
			if r.tgt[i] == IgnoreIndex {
				assert.Zero(t, w)
			} else {
				assert.Equal(t, float32(1/float64(count)), w)
			}
			sum += float64(w)
		}
	}
	assert.InDelta(t, 1, sum, 1e-6, "weights sum to one, so the weighted loss is the mean")

	// The last scored target of each row is EOS, and the EOS position itself is not scored.
	for b := 0; b < B; b++ {
		eos := slices.Index(tokens[b*T:(b+1)*T], EOS)
		require.Positive(t, eos)
		assert.Equal(t, uint32(EOS), targets[b*T+eos-1])
		assert.Equal(t, uint32(IgnoreIndex), targets[b*T+eos])
	}
}

func TestBatchAtExactlyMaxSeqLenFitsTheLongestExample(t *testing.T) {
	task, err := New("add", 3, 3) // always 3-digit operands
	require.NoError(t, err)
	tokens, _, _, err := task.Batch(rand.New(rand.NewPCG(1, 1)), 64, task.MaxSeqLen())
	require.NoError(t, err)
	longest := 0
	for b := 0; b < 64; b++ {
		row := tokens[b*task.MaxSeqLen() : (b+1)*task.MaxSeqLen()]
		longest = max(longest, slices.Index(row, EOS)+1)
	}
	assert.LessOrEqual(t, longest, task.MaxSeqLen())
	assert.GreaterOrEqual(t, longest, task.MaxSeqLen()-1, "3-digit sums reach 4 digits in 64 draws")
}

func TestBatchRejectsBadArguments(t *testing.T) {
	task, err := ByName("copy")
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 1))
	for _, tc := range []struct {
		name   string
		b, seq int
		want   string
	}{
		{"seq one short", 2, 22, "seqLen 22 is too short; the longest example (lengths up to 10) needs 23"},
		{"seq zero", 2, 0, "too short"},
		{"zero batch", 0, 32, "batch size 0 must be positive"},
		{"negative batch", -1, 32, "batch size -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := task.Batch(rng, tc.b, tc.seq)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestByNameAndNewRejectBadInput(t *testing.T) {
	_, err := ByName("multiply")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown task "multiply"; valid tasks are add, copy, reverse, sort`)

	for _, tc := range []struct {
		name     string
		task     string
		min, max int
		want     string
	}{
		{"unknown", "nope", 1, 2, "valid tasks are"},
		{"zero min", "copy", 0, 3, "length range [0, 3] characters is empty or below 1"},
		{"inverted", "sort", 5, 4, "length range [5, 4]"},
		{"too many digits", "add", 1, 19, "19 digits is more than the supported 18"},
		{"too long", "copy", 1, 1 << 21, "more than the supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.task, tc.min, tc.max)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestAddHandlesTheLargestOperands(t *testing.T) {
	task, err := New("add", 18, 18)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(9, 9))
	for i := 0; i < 100; i++ {
		p, a := task.Sample(rng)
		x, y, _ := strings.Cut(p, "+")
		require.Len(t, x, 18)
		xi, _ := strconv.ParseUint(x, 10, 64)
		yi, _ := strconv.ParseUint(y, 10, 64)
		require.Less(t, xi, uint64(math.MaxUint64/2))
		assert.Equal(t, strconv.FormatUint(xi+yi, 10), a)
	}
}

func TestEvalSetIsDeterministicAndDrawnFromADifferentStream(t *testing.T) {
	task, err := ByName("copy")
	require.NoError(t, err)
	e1 := task.EvalSet(50, 11)
	e2 := task.EvalSet(50, 11)
	require.Len(t, e1, 50)
	assert.Equal(t, e1, e2)
	assert.NotEqual(t, e1, task.EvalSet(50, 12))

	train := TrainRNG(11)
	same := 0
	for _, ex := range e1 {
		p, _ := task.Sample(train)
		if p == ex.Prompt {
			same++
		}
		assert.Equal(t, ex.Prompt, ex.Answer)
	}
	assert.Zero(t, same, "the eval stream is not the training stream")
	assert.Empty(t, task.EvalSet(0, 1))
	assert.Empty(t, task.EvalSet(-3, 1))
}

func TestExactMatch(t *testing.T) {
	for _, tc := range []struct {
		pred, answer string
		want         bool
	}{
		{"168", "168", true},
		{"168 ", "168", false},
		{"0168", "168", false},
		{"", "", true},
		{"16", "168", false},
	} {
		assert.Equal(t, tc.want, ExactMatch(tc.pred, tc.answer), "%q vs %q", tc.pred, tc.answer)
	}
}

func TestCheckVocabSizeRefusesTooSmallAndNotesPadding(t *testing.T) {
	note, err := CheckVocabSize(VocabSize)
	require.NoError(t, err)
	require.Empty(t, note)
	_, err = CheckVocabSize(VocabSize - 1)
	require.ErrorContains(t, err, "vocab_size 42 is smaller than the task tokenizer's 43 tokens")
	note, err = CheckVocabSize(VocabSize + 1)
	require.NoError(t, err)
	require.Equal(t, "vocab_size 44 is larger than the task tokenizer's 43 tokens: id 43 is padding, never trained on", note)
	note, err = CheckVocabSize(48)
	require.NoError(t, err)
	require.Contains(t, note, "ids 43–47 are padding")
}
