package ocrdata

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// RepeatText draws one line rich in runs of one character, the text a reader
// must count rather than recognise: round and repeated-digit numbers
// ("4,380,000", "$1,500.00", "333", "11:11", "1999"), words with doubled letters
// ("Tweedledee", "HILLSIDE"), drawn-out interjections ("Hmmm", "Sooo"), Roman
// numerals ("VIII", "MMXXIII"), and runs of punctuation of exact lengths
// ("--------", "Total ........ 12", "!!!"), alone or several on a line.
// The result obeys Text's rules: printable ASCII, 1 to MaxTextLen characters,
// no leading or trailing space, single spaces.
//
// Text draws such runs only as often as English, uniform digits and the
// punctuation generators happen to; a model trained on Text alone reads
// "4,380,000" as "4,380,00" now and then. Options.Repeats mixes RepeatText
// into a Generator's lines.
func (s *TextSource) RepeatText(rng *rand.Rand) string {
	for range 100 {
		var parts []string
		n := 1 + rng.IntN(3)
		if rng.IntN(3) == 0 {
			n = 1
		}
		for range n {
			parts = append(parts, s.repeatItem(rng))
		}
		if t := finish(strings.Join(parts, " ")); t != "" {
			return t
		}
	}
	return "1000"
}

func (s *TextSource) repeatItem(rng *rand.Rand) string {
	switch k := rng.IntN(100); {
	case k < 22:
		return roundNumber(rng)
	case k < 40:
		return repeatedDigits(rng)
	case k < 60:
		return s.doubledWords(rng)
	case k < 66:
		return drawnOut(rng)
	case k < 74:
		return romanNumeral(rng)
	default:
		return s.punctRun(rng)
	}
}

// run returns c repeated: 2 to 4 times, sometimes up to 7.
func run(rng *rand.Rand, c byte) string {
	n := 2 + rng.IntN(3)
	if rng.IntN(5) == 0 {
		n = 2 + rng.IntN(6)
	}
	return strings.Repeat(string(c), n)
}

// roundNumber draws a number with trailing zeros: a few leading digits
// times a power of ten, formatted as a count, a grouped figure, a price or a
// percentage.
func roundNumber(rng *rand.Rand) string {
	lead := 1 + rng.IntN(9)
	if rng.IntN(2) == 0 {
		lead = 1 + rng.IntN(999)
	}
	v := lead
	for range 1 + rng.IntN(6) {
		v *= 10
	}
	switch rng.IntN(10) {
	case 0:
		return fmt.Sprint(v)
	case 1, 2:
		return grouped(v, ",")
	case 3:
		return "$" + grouped(v, ",")
	case 4:
		return fmt.Sprintf("$%s.00", grouped(v, ","))
	case 5:
		return fmt.Sprintf("%s,00 EUR", grouped(v, "."))
	case 6:
		return fmt.Sprintf("%s%d.00", pick(rng, "EUR ", "USD ", "GBP ", "Total $"), v)
	case 7:
		return fmt.Sprintf("%d%%", []int{10, 20, 25, 50, 75, 100, 200, 1000}[rng.IntN(8)])
	case 8:
		return fmt.Sprintf("%s%s", pick(rng, "0.", "0.0", "0.00", "1.", "10."), strings.Repeat("0", rng.IntN(4))+fmt.Sprint(1+rng.IntN(9)))
	default:
		return grouped(v, pick(rng, " ", ".", "'"))
	}
}

// repeatedDigits draws a digit string built from runs (each digit written 1
// to 4 times), formatted as a plain number, a grouped one, a phone number,
// a year, a time or a date.
func repeatedDigits(rng *rand.Rand) string {
	digitRuns := func(n int) string {
		var b strings.Builder
		for b.Len() < n {
			c := byte('0' + rng.IntN(10))
			if rng.IntN(2) == 0 {
				b.WriteString(run(rng, c))
			} else {
				b.WriteByte(c)
			}
		}
		return b.String()[:n]
	}
	d := byte('0' + rng.IntN(10))
	switch rng.IntN(9) {
	case 0:
		return digitRuns(2 + rng.IntN(9))
	case 1:
		v := digitRuns(4 + rng.IntN(6))
		v = strings.TrimLeft(v, "0")
		if v == "" {
			v = "0"
		}
		var x int
		fmt.Sscan(v, &x)
		return grouped(x, ",")
	case 2:
		return fmt.Sprintf("%s %s %s", digitRuns(3), digitRuns(3), digitRuns(4))
	case 3:
		return fmt.Sprint([]string{"1999", "2000", "1888", "1900", "2011", "2022", "1955", "1977", "1666", "2111"}[rng.IntN(10)])
	case 4:
		return pick(rng, "00:00", "11:11", "22:22", "12:00", "10:00", "05:55", "00:00:00", "11:00", "23:33", "14:44")
	case 5:
		return fmt.Sprintf("%s.%s.%s", pick(rng, "01", "11", "22", "10", "12"), pick(rng, "01", "11", "10", "12"),
			pick(rng, "1999", "2000", "2011", "2022", "1988", "1911", "2001"))
	case 6:
		return strings.Repeat(string(d), 3+rng.IntN(6))
	case 7:
		return fmt.Sprintf("%s%s", pick(rng, "No. ", "#", "Room ", "Tel. ", "Floor "), digitRuns(2+rng.IntN(4)))
	default:
		return fmt.Sprintf("%s.%s", digitRuns(1+rng.IntN(4)), digitRuns(2))
	}
}

// doubledWords draws one to three words of the word list that hold a doubled
// letter, in any case.
func (s *TextSource) doubledWords(rng *rand.Rand) string {
	var ws []string
	for range 1 + rng.IntN(3) {
		w := s.word(rng)
		for range 50 {
			if hasDouble(w) {
				break
			}
			w = s.word(rng)
		}
		ws = append(ws, w)
	}
	t := strings.Join(ws, " ")
	switch rng.IntN(6) {
	case 0:
		t = strings.ToUpper(t)
	case 1:
		t = titleCase(t)
	}
	return t
}

func hasDouble(w string) bool {
	for i := 1; i < len(w); i++ {
		if w[i] == w[i-1] {
			return true
		}
	}
	return false
}

// drawnOut draws an interjection with a drawn-out letter ("Hmmm", "Sooo",
// "ZZZZ", "Aaaah").
func drawnOut(rng *rand.Rand) string {
	w := pick(rng, "Hm", "So", "No", "Oh", "Ah", "Zz", "Whe", "Yes", "Bo", "Gr", "Ow", "Ye", "Uh")
	i := rng.IntN(len(w))
	c := w[i]
	if i == 0 {
		c = c | 0x20 // the run continues in lower case
	}
	t := w[:i+1] + run(rng, c) + w[i+1:]
	if rng.IntN(4) == 0 {
		t = strings.ToUpper(t)
	}
	if rng.IntN(3) == 0 {
		t += pick(rng, "!", "...", "?", "!!")
	}
	return t
}

// romanNumeral draws a number from 1 to 3999 in Roman numerals, sometimes
// after a label.
func romanNumeral(rng *rand.Rand) string {
	v := 1 + rng.IntN(40)
	if rng.IntN(4) == 0 {
		v = 1 + rng.IntN(3999)
	}
	var b strings.Builder
	for _, p := range []struct {
		v int
		s string
	}{{1000, "M"}, {900, "CM"}, {500, "D"}, {400, "CD"}, {100, "C"}, {90, "XC"}, {50, "L"}, {40, "XL"}, {10, "X"}, {9, "IX"}, {5, "V"}, {4, "IV"}, {1, "I"}} {
		for ; v >= p.v; v -= p.v {
			b.WriteString(p.s)
		}
	}
	r := b.String()
	if rng.IntN(2) == 0 {
		r = pick(rng, "Chapter ", "Part ", "Henry ", "Louis ", "Vol. ", "Act ", "Book ") + r
	}
	if rng.IntN(6) == 0 {
		r = strings.ToLower(r)
	}
	return r
}

// punctRun draws a run of one punctuation mark (or the digit 1) of
// an exact length, alone, as leaders between a word and a number, or as a
// blank to fill in.
func (s *TextSource) punctRun(rng *rand.Rand) string {
	const marks = "-=_.*~#+!?'\"/:)(]1"
	c := marks[rng.IntN(len(marks))]
	n := 2 + rng.IntN(7)
	if rng.IntN(3) == 0 {
		n = 2 + rng.IntN(24)
	}
	r := strings.Repeat(string(c), n)
	switch rng.IntN(5) {
	case 0:
		return fmt.Sprintf("%s %s %d", titleCase(s.word(rng)), r, 1+rng.IntN(300))
	case 1:
		return fmt.Sprintf("%s: %s", titleCase(s.word(rng)), r)
	case 2:
		return s.word(rng) + r
	default:
		return r
	}
}
