package ocr

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEncodeDecodeRoundTripsEveryPrintableCharacter(t *testing.T) {
	var b strings.Builder
	for r := ' '; r <= '~'; r++ {
		b.WriteRune(r)
	}
	ids, err := Encode(b.String())
	require.NoError(t, err)
	require.Len(t, ids, 95)
	require.Equal(t, firstChar, ids[0])
	require.Equal(t, VocabSize-1, ids[94])
	require.Equal(t, b.String(), Decode(ids))
	require.Equal(t, "ab", Decode([]int{IMG, BOS, ids[65], ids[66], EOS, ids[67]}))
	require.Equal(t, "\uFFFD", Decode([]int{VocabSize}))
	v := Vocab()
	require.Equal(t, "A", v[firstChar+'A'-' '])
}

func TestEncodeRefusesWhatTheVocabularyCannotHold(t *testing.T) {
	for _, s := range []string{"tab\there", "line\n", "caf\u00e9", "\x7f"} {
		_, err := Encode(s)
		require.Error(t, err, "%q", s)
		require.Contains(t, err.Error(), "not printable ASCII")
	}
}

func TestLevenshteinAndCER(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"abc", "", 3}, {"", "ab", 2}, {"kitten", "sitting", 3}, {"flaw", "lawn", 2}, {"same", "same", 0}} {
		require.Equal(t, c.d, Levenshtein(c.a, c.b), "%q → %q", c.a, c.b)
		require.Equal(t, c.d, Levenshtein(c.b, c.a), "%q → %q", c.b, c.a)
	}
	var s Score
	s.Add("hello", "hello")
	s.Add("world!", "word!")
	s.Add("abcd", "abxd")
	require.Equal(t, 3, s.Lines)
	require.Equal(t, 1, s.Exact)
	require.InDelta(t, 2.0/15, s.CER(), 1e-12) // summed over lines: 2 edits / 15 characters
	require.InDelta(t, 1.0/3, s.ExactRate(), 1e-12)
	require.Equal(t, 0.0, Score{}.CER())
}
