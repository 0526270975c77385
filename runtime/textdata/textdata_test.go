package textdata

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/runtime/tasks"
)

func TestTheTokenizerKeepsTheSyntheticTasksIDs(t *testing.T) {
	for id, s := range tasks.Vocab() {
		if id <= tasks.SEP {
			continue
		}
		got, err := Encode(s)
		require.NoError(t, err)
		assert.Equal(t, []int{id}, got, "character %q", s)
	}
	all := "\n"
	for c := ' '; c <= '~'; c++ {
		all += string(c)
	}
	ids, err := Encode(all)
	require.NoError(t, err)
	seen := map[int]bool{}
	for _, id := range ids {
		assert.False(t, seen[id], "id %d used twice", id)
		assert.Greater(t, id, SEP)
		assert.Less(t, id, VocabSize)
		seen[id] = true
	}
	assert.Len(t, seen, VocabSize-4, "every id but the four special ones is a character")
	assert.Equal(t, all, Decode(ids))
	assert.Equal(t, "<bos>ab<eos><unk:100>", Decode([]int{BOS, 14, 15, EOS, 100}))
	assert.Equal(t, "ab", DecodeAnswer([]int{14, 15, EOS, 16}))
}

func TestEncodeNamesTheCharacterOutsideTheVocabulary(t *testing.T) {
	_, err := Encode("ok\tno")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `'\t' at byte 2`)
	_, err = Encode("é")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "'é' at byte 0")
}

func TestClassesCoverEveryID(t *testing.T) {
	want := map[byte]string{'a': ClassLower, 'Q': ClassUpper, '7': ClassDigit, ' ': ClassSpace, '\n': ClassNewline, ';': ClassPunct, '+': ClassPunct}
	for c, class := range want {
		ids, err := Encode(string(c))
		require.NoError(t, err)
		assert.Equal(t, class, Class(ids[0]), "%q", c)
	}
	assert.Equal(t, ClassSpecial, Class(BOS))
	assert.Equal(t, ClassSpecial, Class(VocabSize))
}

func TestBitsPerCharOnKnownCases(t *testing.T) {
	// A uniform distribution over V tokens costs log2(V) bits on any target.
	uniform := make([]float32, VocabSize)
	assert.InDelta(t, math.Log2(VocabSize), BitsPerChar(TokenNats(uniform, 7), 1), 1e-12)
	// Two tokens with logit ln 3 and every other at −inf-ish: p = 1/2 each, one bit.
	half := make([]float32, 4)
	half[0], half[1], half[2], half[3] = float32(math.Log(3)), float32(math.Log(3)), -1e30, -1e30
	assert.InDelta(t, 1.0, BitsPerChar(TokenNats(half, 1), 1), 1e-6)
	// p(target) = 1/4 and 1/2 over two characters: (2 + 1) / 2 bits.
	q := []float32{0, 0, float32(math.Log(2))} // p = 1/4, 1/4, 1/2
	nats := TokenNats(q, 0) + TokenNats(q, 2)
	assert.InDelta(t, 1.5, BitsPerChar(nats, 2), 1e-6)
	// Large logits do not overflow.
	assert.InDelta(t, 1.0, BitsPerChar(TokenNats([]float32{1000, 1000}, 0), 1), 1e-9)
	assert.True(t, math.IsNaN(BitsPerChar(1, 0)))
}

func writeFortunes(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for n, s := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), []byte(s), 0o644))
	}
	return dir
}

func TestSplitFortunesFoldsAndTrims(t *testing.T) {
	got := SplitFortunes("\nFirst  “one”\n\tindented\n\n%\n%\n_\bb_\bo_\bl_\bd caf\u00e9\n%\n")
	assert.Equal(t, []string{"First \"one\"\nindented", "bold cafe"}, got)
}

func TestCorpusSplitIsByFortuneAndDisjoint(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 300; i++ {
		b.WriteString("Fortune number " + strings.Repeat("x", i%7) + string(rune('A'+i%26)) + " " + string(rune('a'+i/26)) + "\n%\n")
	}
	dir := writeFortunes(t, map[string]string{"one": b.String(), "one.dat": "binary", "ascii-art": "  /\\_/\\\n%\n"})
	c, err := LoadCorpus(dir)
	require.NoError(t, err)
	assert.Equal(t, []string{"one"}, c.Files)
	assert.Greater(t, c.HeldOutFortunes, 5)
	assert.Greater(t, c.TrainFortunes, 200)
	train := map[string]bool{}
	for _, f := range splitStream(c.Train) {
		train[f] = true
		assert.False(t, HeldOut(f), "training fortune %q hashes to the held-out split", f)
	}
	for _, f := range splitStream(c.HeldOut) {
		assert.True(t, HeldOut(f))
		assert.False(t, train[f], "held-out fortune %q is also a training one", f)
	}
	again, err := LoadCorpus(dir)
	require.NoError(t, err)
	assert.Equal(t, c.HeldOut, again.HeldOut, "loading is deterministic")

	_, err = LoadCorpus(writeFortunes(t, nil))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "apt-get install fortunes")
}

func splitStream(s []byte) []string {
	ids := make([]int, len(s))
	for i, b := range s {
		ids[i] = int(b)
	}
	return strings.Split(Decode(ids), "\n\n")
}

func TestTheInstalledFortunesGiveAHeldOutSplit(t *testing.T) {
	c, err := LoadCorpus(DefaultFortuneDir)
	require.NoError(t, err, "setup installs Debian's fortunes")
	assert.Greater(t, len(c.Files), 20)
	assert.Greater(t, len(c.Train), 1_000_000)
	share := float64(len(c.HeldOut)) / float64(len(c.Train)+len(c.HeldOut))
	assert.InDelta(t, 0.1, share, 0.03, "about 1 in %d fortunes is held out", HeldOutShare)
}

func TestLMBatchesAreDeterministicAndShifted(t *testing.T) {
	c := &Corpus{Train: []byte(strings.Repeat("\x0e\x0f\x10\x11\x2a", 40)), HeldOut: []byte(strings.Repeat("\x0e\x0f", 50))}
	lm := NewLM(c)
	tok, tgt, w, err := lm.Batch(rand.New(rand.NewPCG(3, 4)), 4, 16)
	require.NoError(t, err)
	tok2, tgt2, _, err := lm.Batch(rand.New(rand.NewPCG(3, 4)), 4, 16)
	require.NoError(t, err)
	assert.Equal(t, tok, tok2)
	assert.Equal(t, tgt, tgt2)
	for b := 0; b < 4; b++ {
		for i := 0; i+1 < 16; i++ {
			assert.Equal(t, tgt[b*16+i], tok[b*16+i+1], "targets are the next character")
		}
	}
	sum := float32(0)
	for _, x := range w {
		sum += x
	}
	assert.InDelta(t, 1, sum, 1e-5)

	ws, err := lm.HeldOutWindows(4, 9)
	require.NoError(t, err)
	assert.Len(t, ws, 4)
	for _, x := range ws {
		assert.Len(t, x, 10)
	}
	_, err = lm.HeldOutWindows(11, 9)
	require.Error(t, err, "100 characters hold 10 windows of 10")
	_, _, _, err = lm.Batch(rand.New(rand.NewPCG(1, 1)), 1, 500)
	require.Error(t, err)
}

func TestParseLongNamesAndErrors(t *testing.T) {
	for name, want := range map[string]Long{
		"needle":               {Kind: NeedleName, MinLen: 256, MaxLen: 1024},
		"needle:128-512":       {Kind: NeedleName, MinLen: 128, MaxLen: 512},
		"needle:200-256:8":     {Kind: NeedleName, MinLen: 200, MaxLen: 256, Queries: 8},
		"vartrack":             {Kind: VarTrackName, MinLen: 256, MaxLen: 1024, Hops: 2},
		"vartrack:256-4096:3":  {Kind: VarTrackName, MinLen: 256, MaxLen: 4096, Hops: 3},
		"vartrack:1024-1024:1": {Kind: VarTrackName, MinLen: 1024, MaxLen: 1024, Hops: 1},
		"passkey":              {Kind: PasskeyName, MinLen: 256, MaxLen: 1024},
		"passkey:64-256":       {Kind: PasskeyName, MinLen: 64, MaxLen: 256},
		"passkey:64-256:1":     {Kind: PasskeyName, MinLen: 64, MaxLen: 256, Digits: 1},
		"longcopy:40-128":      {Kind: CopyName, MinLen: 40, MaxLen: 128},
	} {
		got, ok, err := ParseLong(name)
		require.NoError(t, err, name)
		require.True(t, ok)
		want.name = name
		assert.Equal(t, want, *got, name)
		assert.Equal(t, name, got.Name())
	}
	_, ok, err := ParseLong("reverse")
	assert.False(t, ok)
	assert.NoError(t, err)
	for name, msg := range map[string]string{
		"needle:abc":          "not a length range",
		"needle:512-256":      "must satisfy",
		"needle:8-16":         "must satisfy",
		"needle:64-128:2:3":   "too many fields",
		"needle:64-128:x":     "not a number of queries",
		"needle:64-128:0":     "queries 0",
		"needle:64-128:33":    "queries 33",
		"needle:64-128:8":     "8 queries need contexts of at least 162",
		"vartrack:64-128:x":   "not a number of hops",
		"vartrack:64-128:0":   "hops 0",
		"vartrack:40-128:4":   "at least",
		"needle:256-99999999": "must satisfy",
		"passkey:64-256:2:1":  "too many fields",
		"passkey:64-256:x":    "not a number of digits",
		"passkey:64-256:0":    "digits 0",
		"passkey:64-256:6":    "digits 6",
		"passkey:30-256":      "must satisfy",
		"longcopy:64-256:3":   "too many fields",
	} {
		_, ok, err := ParseLong(name)
		assert.True(t, ok, name)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), msg, name)
	}
}

func TestLongExamplesFitTheirLengthAndPutTheAnswerAtDepth(t *testing.T) {
	for _, name := range []string{"needle", "vartrack:256-1024:3"} {
		task, _, err := ParseLong(name)
		require.NoError(t, err)
		rng := rand.New(rand.NewPCG(1, 2))
		for _, L := range []int{64, 256, 1000, 4096} {
			for _, d := range EvalDepths {
				ex, err := task.Generate(rng, L, d, false)
				require.NoError(t, err)
				row, sep, err := Row(ex)
				require.NoError(t, err)
				assert.LessOrEqual(t, len(row), L, "%s at %d", name, L)
				assert.GreaterOrEqual(t, len(row), L-10, "%s at %d", name, L)
				assert.Equal(t, SEP, row[sep])
				assert.Equal(t, ex.Answer, solve(t, task.Kind, ex.Prompt), "%s: the prompt determines the answer", name)
				assertDepth(t, task.Kind, ex, d)
			}
		}
	}
}

// solve answers a prompt by reading it: the last "?" names a key or variable.
func solve(t *testing.T, kind, prompt string) string {
	body, q, ok := strings.Cut(prompt, "?")
	require.True(t, ok)
	vals := map[string]string{}
	for _, st := range strings.Split(strings.TrimSuffix(body, ";"), ";") {
		k, v, ok := strings.Cut(st, "=")
		require.True(t, ok, st)
		_, dup := vals[k]
		require.False(t, dup, "%q is assigned twice", k)
		if w, isVar := vals[v]; isVar && kind == VarTrackName {
			v = w
		}
		vals[k] = v
	}
	return vals[q]
}

func assertDepth(t *testing.T, kind string, ex LongExample, depth float64) {
	body, q, _ := strings.Cut(ex.Prompt, "?")
	st := strings.Split(strings.TrimSuffix(body, ";"), ";")
	at := -1
	for i, s := range st {
		k, v, _ := strings.Cut(s, "=")
		if kind == NeedleName && k == q {
			at = i
		}
		if kind == VarTrackName && v == ex.Answer && at < 0 && chainReaches(st, k, q) {
			at = i
		}
	}
	require.GreaterOrEqual(t, at, 0)
	span := len(st) - 1
	if kind == VarTrackName {
		span -= ex.Hops
	}
	assert.InDelta(t, depth, float64(at)/float64(span), 0.5/float64(span)+1e-9, "%s: the asked item sits at its depth", kind)
}

func chainReaches(st []string, from, to string) bool {
	for cur := from; ; {
		if cur == to {
			return true
		}
		next := ""
		for _, s := range st {
			if k, v, _ := strings.Cut(s, "="); v == cur {
				next = k
			}
		}
		if next == "" {
			return false
		}
		cur = next
	}
}

// A passkey example is exactly its length, holds its key (of the task's digits) once after
// the only "#", at the sentence boundary nearest its depth, and asks held-out keys only in
// evaluation when keys have 3 or more digits; keys of 1 or 2 digits are asked in both.
func TestPasskeyExamplesHideOneKeyAtDepth(t *testing.T) {
	for _, tc := range []struct {
		name   string
		digits int
	}{{"passkey:64-256", 5}, {"passkey:64-256:3", 3}, {"passkey:64-256:2", 2}, {"passkey:64-256:1", 1}} {
		t.Run(tc.name, func(t *testing.T) { testPasskey(t, tc.name, tc.digits) })
	}
}

func testPasskey(t *testing.T, name string, digits int) {
	task, _, err := ParseLong(name)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	keys := map[bool]map[string]bool{false: {}, true: {}}
	for _, L := range []int{40, 64, 256, 1000, 4096} {
		for _, d := range EvalDepths {
			for _, heldOut := range []bool{false, true} {
				ex, err := task.Generate(rng, L, d, heldOut)
				require.NoError(t, err)
				row, sep, err := Row(ex)
				require.NoError(t, err)
				require.Len(t, row, L)
				assert.Equal(t, SEP, row[sep])
				require.Equal(t, 1, strings.Count(ex.Prompt, "#"), ex.Prompt)
				at := strings.Index(ex.Prompt, "#")
				require.Len(t, ex.Answer, digits)
				assert.Equal(t, ex.Answer, ex.Prompt[at+1:at+1+digits])
				assert.Equal(t, digits, countDigits(ex.Prompt), "the key is the prompt's only digits")
				if digits >= 3 {
					assert.Equal(t, heldOut, HeldOutName(ex.Answer))
				}
				keys[heldOut][ex.Answer] = true
				assert.True(t, strings.HasSuffix(ex.Prompt, "?"))
				filler := len(ex.Prompt) - len("#. ?") - digits
				// Sentences are at most 22 characters: the boundary nearest depth is within 11.
				assert.InDelta(t, d*float64(filler), float64(at), 11, "length %d depth %v", L, d)
				assert.Equal(t, ". ", ex.Prompt[at+1+digits:at+3+digits])
				if at > 0 && at < filler {
					assert.True(t, strings.HasSuffix(ex.Prompt[:at], ". "), "the key starts a sentence: %q", ex.Prompt[:at])
				}
				if heldOut && digits >= 3 {
					assert.False(t, seen[ex.Answer], "a held-out key was also asked in training")
				} else if !heldOut {
					seen[ex.Answer] = true
				}
			}
		}
	}
	if digits <= 2 {
		// 50 examples a side: with ten or a hundred keys, both sides draw several.
		assert.Greater(t, len(keys[true]), 5, "held-out keys of %d digits", digits)
		assert.Greater(t, len(keys[false]), 5, "training keys of %d digits", digits)
	}
	assertSameBatches(t, task, task, 5, 4, 256)
}

func countDigits(s string) int {
	n := 0
	for _, c := range s {
		if c >= '0' && c <= '9' {
			n++
		}
	}
	return n
}

// A longcopy example repeats a random string as long as its context allows, held-out
// strings only in evaluation, and its training rows score the whole copy and EOS.
func TestLongCopyRepeatsItsString(t *testing.T) {
	task, _, err := ParseLong("longcopy:40-128")
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, L := range []int{40, 41, 256, 4096} {
		for _, heldOut := range []bool{false, true} {
			ex, err := task.Generate(rng, L, 0.5, heldOut)
			require.NoError(t, err)
			row, _, err := Row(ex)
			require.NoError(t, err)
			assert.Equal(t, L-(L+1)%2, len(row), "BOS x SEP x EOS fills an odd length exactly")
			assert.Equal(t, ex.Prompt, ex.Answer)
			assert.Len(t, ex.Answer, (L-3)/2)
			assert.Equal(t, heldOut, HeldOutName(ex.Answer))
			assert.Zero(t, ex.Depth)
		}
	}
	tokens, targets, _, err := task.Batch(tasks.TrainRNG(1), 4, 128)
	require.NoError(t, err)
	for b := 0; b < 4; b++ {
		row := tokens[b*128 : (b+1)*128]
		sep := slices.Index(row, uint32(SEP))
		require.Greater(t, sep, 0)
		n, scored := sep-1, 0
		assert.Equal(t, row[1:sep], row[sep+1:sep+1+n], "row %d: the answer repeats the string", b)
		assert.Equal(t, uint32(EOS), row[sep+1+n])
		for i := 0; i < 128; i++ {
			if targets[b*128+i] != IgnoreIndex {
				scored++
			}
		}
		assert.Equal(t, n+1, scored, "row %d: the copy and EOS are scored", b)
	}
	assertSameBatches(t, task, task, 3, 4, 128)
	assert.Equal(t, []float64{0}, task.Depths(EvalDepths), "one cell per length")
	needle, _, err := ParseLong("needle")
	require.NoError(t, err)
	assert.Equal(t, EvalDepths, needle.Depths(EvalDepths))
}

// A multi-query needle row asks about several of its pairs, training keys only, and scores
// exactly each answer's digits and the final EOS.
func TestMultiQueryNeedleRowsScoreEveryAnswer(t *testing.T) {
	task, _, err := ParseLong("needle:162-300:8")
	require.NoError(t, err)
	const B, T = 16, 300
	tokens, targets, weights, err := task.Batch(tasks.TrainRNG(3), B, T)
	require.NoError(t, err)
	for b := 0; b < B; b++ {
		row := tokens[b*T : (b+1)*T]
		end := 0
		for end < T && row[end] != EOS {
			end++
		}
		require.Less(t, end, T, "row %d ends with EOS", b)
		require.GreaterOrEqual(t, end+1, 162-10, "row %d fills its length", b)
		ids := make([]int, end)
		for i := range ids {
			ids[i] = int(row[i])
		}
		text := Decode(ids[1:]) // past BOS
		body, _, _ := strings.Cut(text, "?")
		vals := map[string]string{}
		for _, st := range strings.Split(strings.TrimSuffix(body, ";"), ";") {
			k, v, _ := strings.Cut(st, "=")
			vals[k] = v
		}
		qs := strings.Split(text[len(body)+1:], "?")
		require.Len(t, qs, 8, "row %d: %q", b, text)
		var want []uint32
		for j, q := range qs {
			key, ans, ok := strings.Cut(q, "<sep>")
			require.True(t, ok, q)
			assert.False(t, HeldOutName(key), "training asks about training keys only")
			assert.Equal(t, vals[key], ans, "row %d asks %q", b, key)
			for _, c := range ans {
				want = append(want, uint32(idOf[byte(c)]))
			}
			if j == len(qs)-1 {
				want = append(want, EOS)
			}
		}
		var got []uint32
		for i := 0; i < T; i++ {
			if tg := targets[b*T+i]; tg != IgnoreIndex {
				got = append(got, tg)
				assert.InDelta(t, 1.0/float64(B*(8*4+1)), weights[b*T+i], 1e-9)
			} else {
				assert.Zero(t, weights[b*T+i])
			}
		}
		assert.Equal(t, want, got, "row %d: the scored targets are the answers and the last EOS", b)
	}
	// One query is the single-question layout, as before.
	one, _, err := ParseLong("needle:64-128:1")
	require.NoError(t, err)
	base, _, _ := ParseLong("needle:64-128")
	assertSameBatches(t, one, base, 4, 4, 128)
}

// assertSameBatches checks that a and b draw the same training batch from the same seed.
func assertSameBatches(t *testing.T, a, b *Long, seed uint64, batch, seqLen int) {
	t.Helper()
	t1, g1, w1, err := a.Batch(tasks.TrainRNG(seed), batch, seqLen)
	require.NoError(t, err)
	t2, g2, w2, err := b.Batch(tasks.TrainRNG(seed), batch, seqLen)
	require.NoError(t, err)
	assert.Equal(t, t1, t2)
	assert.Equal(t, g1, g2)
	assert.Equal(t, w1, w2)
}

func TestLongTasksAreDeterministicAndHeldOutIsDisjoint(t *testing.T) {
	for _, name := range []string{"needle:64-256", "vartrack:64-256:2"} {
		task, _, err := ParseLong(name)
		require.NoError(t, err)
		assertSameBatches(t, task, task, 5, 8, 256)

		set1, err := task.EvalSet([]int{64, 128}, EvalDepths, 3, 7)
		require.NoError(t, err)
		set2, err := task.EvalSet([]int{64, 128}, EvalDepths, 3, 7)
		require.NoError(t, err)
		assert.Equal(t, set1, set2)
		assert.Len(t, set1, 2*len(EvalDepths)*3)

		asked := map[string]bool{}
		rng := tasks.TrainRNG(9)
		for i := 0; i < 2000; i++ {
			ex, err := task.Generate(rng, 64+rng.IntN(192), rng.Float64(), false)
			require.NoError(t, err)
			_, q, _ := strings.Cut(ex.Prompt, "?")
			assert.False(t, HeldOutName(q))
			asked[q] = true
		}
		for _, ex := range set1 {
			_, q, _ := strings.Cut(ex.Prompt, "?")
			assert.True(t, HeldOutName(q), "%s: evaluation asks about held-out names only", name)
			assert.False(t, asked[q], "%s: %q is asked in training too", name, q)
		}
	}
}

func TestLayoutScoresTheAnswerAndEOS(t *testing.T) {
	ex := LongExample{Prompt: "ab=1234;?ab", Answer: "1234", Length: 64}
	tok, tgt, w, err := Layout([]LongExample{ex, ex}, 20)
	require.NoError(t, err)
	row, sep, err := Row(ex)
	require.NoError(t, err)
	require.Len(t, row, 1+11+1+4+1)
	scored := 0
	for i := 0; i < 20; i++ {
		if i < len(row) {
			assert.Equal(t, uint32(row[i]), tok[i])
		} else {
			assert.Equal(t, uint32(PAD), tok[i])
		}
		if i >= sep && i+1 < len(row) {
			assert.Equal(t, uint32(row[i+1]), tgt[i])
			assert.InDelta(t, 0.1, w[i], 1e-7, "1/count over both rows")
			scored++
		} else {
			assert.Equal(t, uint32(IgnoreIndex), tgt[i])
			assert.Zero(t, w[i])
		}
	}
	assert.Equal(t, 5, scored, "the four answer digits and EOS")
	_, _, _, err = Layout([]LongExample{ex}, 10)
	require.Error(t, err)
}

func TestOpenKnowsItsNames(t *testing.T) {
	assert.True(t, IsName("lm"))
	assert.True(t, IsName("needle:1-2"))
	assert.False(t, IsName("reverse"))
	_, ok, err := Open("reverse", "")
	assert.False(t, ok)
	assert.NoError(t, err)
	_, ok, err = Open("lm", t.TempDir())
	assert.True(t, ok)
	require.Error(t, err)
	task, ok, err := Open("vartrack:64-128", "")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, 128, task.MaxSeqLen())
	assert.Equal(t, VocabSize, task.VocabSize())
}

// Guessing scores 10^−digits on passkey, 10^−4 on the 4-digit values of needle and vartrack
// and nothing on longcopy.
func TestLongChance(t *testing.T) {
	for name, want := range map[string]float64{"passkey:40-64:1": 0.1, "passkey:40-64:2": 0.01, "passkey": 1e-5, "needle": 1e-4, "vartrack:64-256:3": 1e-4, "longcopy": 0} {
		task, _, err := ParseLong(name)
		require.NoError(t, err, name)
		assert.InDelta(t, want, task.Chance(), want*1e-12, name)
	}
}
