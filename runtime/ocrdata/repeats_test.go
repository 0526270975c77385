package ocrdata

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// hasRun reports whether x holds one character twice or more in a row.
func hasRun(x string) bool {
	for i := 1; i < len(x); i++ {
		if x[i] == x[i-1] && x[i] != ' ' {
			return true
		}
	}
	return false
}

func TestRepeatTextKeepsTextsRulesAndHoldsRuns(t *testing.T) {
	s := DefaultTextSource()
	const n = 20000
	rng, ref, textRng := newRand(3), newRand(3), newRand(4)
	runs, textRuns := 0, 0
	for i := range n {
		x := s.RepeatText(rng)
		require.Equal(t, s.RepeatText(ref), x, "draw %d: the same seed gave a different line", i)
		require.GreaterOrEqual(t, len(x), 1)
		require.LessOrEqual(t, len(x), MaxTextLen, "%q", x)
		require.True(t, isPrintableASCII(x), "%q", x)
		require.Equal(t, trimmed(x), x, "%q", x)
		require.NotContains(t, x, "  ", "%q", x)
		if hasRun(x) {
			runs++
		}
		if hasRun(s.Text(textRng)) {
			textRuns++
		}
		if i < 30 {
			t.Logf("%q", x)
		}
	}
	// Every item but a one-word doubled-letter draw that found none in 50 tries, a short Roman
	// numeral ("X", "IV") or a one-digit decimal holds a run; lines of several items almost always
	// do. Text holds runs in about a third of its lines (doubled letters in English).
	t.Logf("lines with a run: RepeatText %.1f %%, Text %.1f %%", 100*float64(runs)/n, 100*float64(textRuns)/n)
	require.Greater(t, float64(runs)/n, 0.85)
	require.Greater(t, float64(runs)/n, 1.5*float64(textRuns)/n)
}

func trimmed(x string) string {
	for len(x) > 0 && x[0] == ' ' {
		x = x[1:]
	}
	for len(x) > 0 && x[len(x)-1] == ' ' {
		x = x[:len(x)-1]
	}
	return x
}

func TestRepeatsMixesRepeatTextIntoTheLinesOnlyWhenAsked(t *testing.T) {
	for _, r := range []float64{-0.1, 1.5} {
		_, err := New(Options{Split: Train, Repeats: r})
		require.ErrorContains(t, err, "Repeats")
	}
	plain := trainGenerator(t)
	all, err := New(Options{Split: Train, Repeats: 1})
	require.NoError(t, err)
	half, err := New(Options{Split: Train, Repeats: 0.5})
	require.NoError(t, err)
	fromRepeat := 0
	for seed := range uint64(40) {
		// Without Repeats a line's text is the first thing drawn, as before the option existed:
		// the evaluation sets WriteEvalSet writes do not change.
		l, err := plain.SampleCondition(newRand(seed), Clean)
		require.NoError(t, err)
		require.Equal(t, plain.TextSource().Text(newRand(seed)), l.Text)

		l, err = all.SampleCondition(newRand(seed), Clean)
		require.NoError(t, err)
		rng := newRand(seed)
		rng.Float64()
		require.Equal(t, all.TextSource().RepeatText(rng), l.Text)

		l, err = half.SampleCondition(newRand(seed), Clean)
		require.NoError(t, err)
		rng = newRand(seed)
		if rng.Float64() < 0.5 {
			require.Equal(t, half.TextSource().RepeatText(rng), l.Text)
			fromRepeat++
		} else {
			require.Equal(t, half.TextSource().Text(rng), l.Text)
		}
	}
	require.Greater(t, fromRepeat, 5)
	require.Less(t, fromRepeat, 35)
}
