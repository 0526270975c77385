package ocr

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStripTextSkipsPaddingAndSpecialTokens(t *testing.T) {
	ids, err := Encode("a b")
	require.NoError(t, err)
	in := []int{PAD, ids[0], PAD, PAD, ids[1], BOS, ids[2], EOS, IMG, SEP, VocabSize}
	require.Equal(t, "a b", stripText(in))
	require.Equal(t, "", stripText(nil))
}

// checkRepeats removes what the decoder read twice where the strip predictions hold it once,
// and nothing else. The cases are lines of the held-out evaluation sets.
func TestCheckRepeatsRemovesOnlyRepeatsTheStripsHoldOnce(t *testing.T) {
	for _, c := range []struct{ text, strips, want string }{
		// Repeats the strips hold once: removed, one or several.
		{"S FUN!! ANYWAY, IT, IT", "IS FFUN! ANYWAY, T", "S FUN!! ANYWAY, IT"},
		{"Table 16.6.7", "Table 16.7", "Table 16.7"},
		{"as the one who's givivi", "as the one whos givi", "as the one who's givi"},
		{"Tel. +10 8181 0756 8004", "Tel. +10 81 0756 8004", "Tel. +10 81 0756 8004"},
		{"nt. -- R. R. W.", "nt. -- R. W.", "nt. -- R. W."},
		{"things: Do yo you think", "things: Do you think", "things: Do you think"},
		// Each repeat alone leaves the text too far from the strips (2 edits of 7, 3 of 8).
		{"ab ab cdcd", "ab cd", "ab ab cdcd"},
		{"xyxy and zwzw here", "xy and zw here", "xy and zw here"},
		// Repeats the strips hold twice: kept.
		{"bonbon", "bonbon", "bonbon"},
		{"Walla Walla", "Walla Walla", "Walla Walla"},
		// Single doubled characters and punctuation-only repeats: never touched.
		{"Liinus", "Linus", "Liinus"},
		{"-- -- --", "--", "-- -- --"},
		{". . . .", ". .", ". . . ."},
		{"a -- -- b", "a -- b", "a -- -- b"},
		// No strip evidence: nothing removed, however repetitive.
		{"bonbon", "", "bonbon"},
		{"abab", "zzzz", "abab"},
		{"", "abc", ""},
		{"x", "", "x"},
	} {
		require.Equal(t, c.want, checkRepeats(c.text, c.strips), "%q with strips %q", c.text, c.strips)
	}
}

// The mended cases are pieces of held-out lines as the shipped model read them, with their
// strip predictions; the rest must come back as they are.
func TestCheckLeaderMendsARunThatLostItsNumber(t *testing.T) {
	for _, c := range []struct{ text, strips, want string }{
		{"Honduras ---------", "Honduras ----- 38", "Honduras ----- 38"},
		{"Kieth ------------", "Kieh --------- 9", "Kieth --------- 9"},
		{"_________________________________", "_______________________ 193", "_______________________ 193"},
		{"Tale . . . . . . . . . . .", "Tale . . . . . . . . 62", "Tale . . . . . . . . 62"},
		{"Fujl ...... . . . . . .", "Fujl ..... . . 59GG", "Fujl ..... . . 59"},
		{"TOTAL ........ ", "TOTAL ....... 12.50.", "TOTAL ....... 12.50"},
		// Left alone: no run at the end, a run of two, no number after the strips' run, a
		// glyph that is not a leader, or a number already read.
		{"Gouge ... 154", "Gouge .... 154GG", "Gouge ... 154"},
		{"Name: __", "Name: ___ 12", "Name: __"},
		{"Name: ______", "Name: _____::", "Name: ______"},
		{"Sign here ______", "Sign here ------ 4", "Sign here ______"},
		{"wait!!!!", "wait!!! 3", "wait!!!!"},
		{"", "--- 1", ""},
	} {
		if got := checkLeader(c.text, c.strips); got != c.want {
			t.Errorf("checkLeader(%q, %q) = %q, want %q", c.text, c.strips, got, c.want)
		}
	}
}

// checksMayChange holds for every text checkStrips changes: a decoder that runs the strip
// predictions only for such texts (Decoder.lazyStrips) reads as one that runs them for every
// line. Random texts and strips over an alphabet of letters, digits, spaces and leader glyphs
// (short, so that repeats and runs are common), and the cases of the two checks' tests.
func TestChecksMayChangeHoldsForEveryTextTheChecksChange(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const alphabet = "ab1 -._"
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	changed, may := 0, 0
	for range 50000 {
		text, strips := word(rng.IntN(12)), word(rng.IntN(14))
		switch rng.IntN(4) { // strips close to the text: the checks' usual evidence
		case 0: // a stretch read twice, held once by the strips
			u, r, v := word(rng.IntN(5)), word(1+rng.IntN(4)), word(rng.IntN(5))
			text, strips = u+r+r+v, u+r+v
		case 1: // a run at the end, a number after it in the strips
			u, g := word(rng.IntN(5)), string(alphabet[4+rng.IntN(3)])
			text, strips = u+strings.Repeat(g, 2+rng.IntN(4)), u+strings.Repeat(g, 3)+" 12"
		}
		got := checkStrips(text, strips)
		if checksMayChange(text) {
			may++
		} else {
			require.Equal(t, text, got, "%q changed with strips %q, but checksMayChange says it cannot", text, strips)
		}
		if got != text {
			changed++
		}
	}
	t.Logf("%d of 50000 texts changed, checksMayChange held for %d", changed, may)
	require.Greater(t, changed, 5000, "the random cases exercise the checks")
	require.Less(t, may, 50000/2, "most random texts need no strips")
	for _, c := range []struct {
		text string
		want bool
	}{
		{"ANYWAY, IT, IT", true}, {"IT, IT", false}, {"Table 16.6.7", true}, {"Honduras ---------", true}, {"Tale . . . ", true},
		{"Liinus", false}, {"-- -- --x", false}, {"a -- -- b", false}, {"Honduras --", false}, {"", false},
	} {
		require.Equal(t, c.want, checksMayChange(c.text), "%q", c.text)
	}
}
