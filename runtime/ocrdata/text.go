package ocrdata

import (
	_ "embed"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// MaxTextLen is the longest line Text returns, in characters (bytes: the
// text is ASCII).
const MaxTextLen = 32

// Default locations of the text sources (Debian packages fortunes and
// wamerican).
const (
	DefaultFortuneDir = "/usr/share/games/fortunes"
	DefaultWordsFile  = "/usr/share/dict/words"
)

//go:embed sample.txt
var sampleText string

// TextSource draws line texts. It holds the English paragraphs and the word
// list it samples from; build one with NewTextSource. A TextSource is
// read-only after construction and safe for concurrent use.
type TextSource struct {
	paras  []string // English paragraphs, ASCII, single-spaced
	words  []string // ASCII words
	origin string
}

// NewTextSource reads fortune files from fortuneDir (text separated by
// lines holding "%"; *.dat and *.u8 files are skipped) and a word list, one
// word a line, from wordsFile. Either may be absent: the missing part is
// replaced by the embedded sample of plain English sentences (and the words
// in it), so a TextSource always works. Origin says what was used.
func NewTextSource(fortuneDir, wordsFile string) *TextSource {
	s := &TextSource{}
	var from []string
	s.paras = readFortunes(fortuneDir)
	if len(s.paras) > 0 {
		from = append(from, fmt.Sprintf("%d fortunes from %s", len(s.paras), fortuneDir))
	} else {
		for _, l := range strings.Split(sampleText, "\n") {
			if l = ToASCII(l); l != "" {
				s.paras = append(s.paras, l)
			}
		}
		from = append(from, fmt.Sprintf("%d embedded sentences (no fortunes in %s)", len(s.paras), fortuneDir))
	}
	s.words = readWords(wordsFile)
	if len(s.words) > 0 {
		from = append(from, fmt.Sprintf("%d words from %s", len(s.words), wordsFile))
	} else {
		seen := map[string]bool{}
		for _, p := range s.paras {
			for _, w := range strings.Fields(p) {
				w = strings.Trim(w, ".,;:!?\"'()")
				if w != "" && !seen[w] {
					seen[w] = true
					s.words = append(s.words, w)
				}
			}
		}
		slices.Sort(s.words) // map order must not leak into the sample
		from = append(from, fmt.Sprintf("%d words from the paragraphs (no word list at %s)", len(s.words), wordsFile))
	}
	s.origin = strings.Join(from, "; ")
	return s
}

// Origin describes where the texts come from, e.g. "4231 fortunes from
// /usr/share/games/fortunes; 74011 words from /usr/share/dict/words".
func (s *TextSource) Origin() string { return s.origin }

// readFortunes returns the fortunes in dir as single-spaced ASCII
// paragraphs, files in name order; nil when there are none.
func readFortunes(dir string) []string {
	files, err := FortuneFiles(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, lines := range FortuneLines(string(data)) {
			if p := ToASCII(strings.Join(lines, " ")); len(p) >= 8 {
				out = append(out, p)
			}
		}
	}
	return out
}

// Overstrike applies backspaces the way a terminal would ("_\bw" and
// "w\bw" both print "w"), as fortune files use them for underline and bold.
func Overstrike(line string) string {
	if !strings.Contains(line, "\b") {
		return line
	}
	out := make([]rune, 0, len(line))
	for _, r := range line {
		if r == '\b' {
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			continue
		}
		out = append(out, r)
	}
	return string(out)
}

// readWords returns the ASCII words of a word list, without possessives
// ("dog's"), in file order; nil when the file is absent.
func readWords(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, w := range strings.Split(string(data), "\n") {
		w = strings.TrimSpace(w)
		if w == "" || strings.HasSuffix(w, "'s") || !isPrintableASCII(w) || strings.Contains(w, " ") {
			continue
		}
		out = append(out, w)
	}
	return out
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < firstASCII || s[i] > lastASCII {
			return false
		}
	}
	return true
}

// fold maps common non-ASCII runes to ASCII. Anything not here and not
// ASCII is dropped by ToASCII.
var fold = func() map[rune]string {
	m := map[rune]string{
		'‘': "'", '’': "'", '‚': "'", '‛': "'", '′': "'",
		'“': `"`, '”': `"`, '„': `"`, '‟': `"`, '″': `"`, '«': `"`, '»': `"`,
		'‐': "-", '‑': "-", '‒': "-", '–': "-", '—': "-", '―': "-", '−': "-",
		'…': "...", '•': "*", '·': ".", '×': "x", '÷': "/",
		'©': "(c)", '®': "(R)", '™': "TM", '€': "EUR", '£': "GBP", '¥': "JPY",
		'½': "1/2", '¼': "1/4", '¾': "3/4", 'ß': "ss",
		'Æ': "AE", 'æ': "ae", 'Œ': "OE", 'œ': "oe", 'Ø': "O", 'ø': "o",
	}
	for base, accented := range map[string]string{
		"A": "ÀÁÂÃÄÅ", "a": "àáâãäå", "C": "Ç", "c": "ç", "E": "ÈÉÊË", "e": "èéêë",
		"I": "ÌÍÎÏ", "i": "ìíîï", "N": "Ñ", "n": "ñ", "O": "ÒÓÔÕÖ", "o": "òóôõö",
		"U": "ÙÚÛÜ", "u": "ùúûü", "Y": "Ý", "y": "ýÿ",
	} {
		for _, r := range accented {
			m[r] = base
		}
	}
	return m
}()

// ToASCII folds s to printable ASCII: curly quotes become straight ones,
// dashes '-', "…" "...", accented Latin letters their base letter, any run
// of white space (tabs, newlines, no-break spaces) one space; other runes
// and control characters are dropped. The result is trimmed. This is the
// only normalisation applied to ground truth.
func ToASCII(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		var rep string
		switch {
		case unicode.IsSpace(r):
			space = true
			continue
		case r >= firstASCII && r <= lastASCII:
			rep = string(r)
		default:
			rep = fold[r]
		}
		if rep == "" {
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteString(rep)
	}
	return b.String()
}

// finish folds t to ASCII and cuts it to MaxTextLen, at a space when that
// keeps most of it.
func finish(t string) string {
	t = ToASCII(t)
	if len(t) > MaxTextLen {
		cut := strings.LastIndexByte(t[:MaxTextLen+1], ' ')
		if cut >= MaxTextLen/2 {
			t = t[:cut]
		} else {
			t = t[:MaxTextLen]
		}
		t = strings.TrimSpace(t)
	}
	return t
}

// Text draws one line of text: printable ASCII (32..126), 1 to MaxTextLen
// characters, no leading or trailing space, single spaces between words.
// The mix is about 50 % English windows (some in ALL CAPS or Title Case),
// 12 % word-list words, and the rest numbers, dates, prices, codes,
// e-mail addresses, URLs, labelled values and punctuation runs.
func (s *TextSource) Text(rng *rand.Rand) string {
	for range 100 {
		if t := finish(s.raw(rng)); t != "" {
			return t
		}
	}
	return "text" // unreachable in practice: every generator yields ASCII
}

func (s *TextSource) raw(rng *rand.Rand) string {
	switch k := rng.IntN(100); {
	case k < 39:
		return s.window(rng)
	case k < 44:
		return strings.ToUpper(s.window(rng))
	case k < 49:
		return titleCase(s.window(rng))
	case k < 61:
		return s.wordRun(rng)
	case k < 67:
		return number(rng)
	case k < 73:
		return date(rng)
	case k < 79:
		return price(rng)
	case k < 84:
		return code(rng)
	case k < 87:
		return s.email(rng)
	case k < 90:
		return s.url(rng)
	case k < 94:
		return s.punct(rng)
	default:
		return s.labelled(rng)
	}
}

// targetLen draws a line length: short labels, medium and full lines.
func targetLen(rng *rand.Rand) int {
	switch k := rng.IntN(100); {
	case k < 15:
		return 1 + rng.IntN(8)
	case k < 50:
		return 9 + rng.IntN(12)
	default:
		return 21 + rng.IntN(MaxTextLen-20)
	}
}

// window cuts a random stretch out of a random paragraph, usually starting
// at a word and often ending at one.
func (s *TextSource) window(rng *rand.Rand) string {
	p := s.paras[rng.IntN(len(s.paras))]
	n := targetLen(rng)
	start := rng.IntN(len(p))
	if rng.IntN(4) != 0 { // move to the start of the next word (or the first)
		if i := strings.IndexByte(p[start:], ' '); i >= 0 && start+i+1 < len(p) {
			start += i + 1
		} else {
			start = 0
		}
	}
	end := min(len(p), start+n)
	w := p[start:end]
	if end < len(p) && rng.IntN(5) < 3 {
		if i := strings.LastIndexByte(w, ' '); i >= n/2 {
			w = w[:i]
		}
	}
	return w
}

func titleCase(s string) string {
	f := strings.Fields(s)
	for i, w := range f {
		f[i] = strings.ToUpper(w[:1]) + w[1:]
	}
	return strings.Join(f, " ")
}

func (s *TextSource) word(rng *rand.Rand) string { return s.words[rng.IntN(len(s.words))] }

func (s *TextSource) wordRun(rng *rand.Rand) string {
	n := 1 + rng.IntN(5)
	ws := make([]string, n)
	for i := range ws {
		ws[i] = s.word(rng)
	}
	sep := " "
	switch rng.IntN(10) {
	case 0:
		sep = ", "
	case 1:
		sep = "-"
	case 2:
		sep = " / "
	}
	t := strings.Join(ws, sep)
	switch rng.IntN(10) {
	case 0:
		t = strings.ToUpper(t)
	case 1, 2:
		t = titleCase(t)
	case 3:
		t = strings.ToLower(t)
	}
	if rng.IntN(4) == 0 {
		t += pick(rng, ".", ",", ":", ";", "!", "?", "...")
	}
	return t
}

func pick(rng *rand.Rand, opts ...string) string { return opts[rng.IntN(len(opts))] }

// digits returns n random decimal digits.
func digits(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + rng.IntN(10))
	}
	return string(b)
}

// grouped formats v with a thousands separator sep.
func grouped(v int, sep string) string {
	s := fmt.Sprint(v)
	var parts []string
	for len(s) > 3 {
		parts = append([]string{s[len(s)-3:]}, parts...)
		s = s[:len(s)-3]
	}
	return strings.Join(append([]string{s}, parts...), sep)
}

// magnitude draws an integer spread over several orders of magnitude.
func magnitude(rng *rand.Rand) int {
	return rng.IntN([]int{10, 100, 1000, 10000, 100000, 10000000}[rng.IntN(6)])
}

func number(rng *rand.Rand) string {
	v := magnitude(rng)
	switch rng.IntN(12) {
	case 0:
		return fmt.Sprint(v)
	case 1:
		return grouped(v, ",")
	case 2:
		return fmt.Sprintf("%d.%s", v, digits(rng, 1+rng.IntN(4)))
	case 3:
		return fmt.Sprintf("%d.%d%%", rng.IntN(100), rng.IntN(10))
	case 4:
		return fmt.Sprintf("-%d", v)
	case 5:
		n := 1 + rng.IntN(99)
		suf := "th"
		if n%100 < 11 || n%100 > 13 {
			suf = [10]string{"th", "st", "nd", "rd", "th", "th", "th", "th", "th", "th"}[n%10]
		}
		return fmt.Sprintf("%d%s", n, suf)
	case 6:
		a := rng.IntN(100)
		return fmt.Sprintf("%d%s%d", a, pick(rng, "-", " - ", " to ", "/"), a+1+rng.IntN(50))
	case 7:
		return fmt.Sprintf("%s %s %s", digits(rng, 3), digits(rng, 3), digits(rng, 4))
	case 8:
		return fmt.Sprintf("%d.%se%s%d", 1+rng.IntN(9), digits(rng, 2), pick(rng, "", "-", "+"), rng.IntN(30))
	case 9:
		return fmt.Sprintf("%s%d", pick(rng, "No. ", "#", "n. ", "Nr. "), v)
	case 10:
		return grouped(v, pick(rng, ".", " ", "'"))
	default:
		return fmt.Sprintf("%d %d %d", rng.IntN(1000), rng.IntN(1000), rng.IntN(1000))
	}
}

var (
	months    = []string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"}
	weekdays  = []string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}
	ordSuffix = func(d int) string {
		switch {
		case d == 1 || d == 21 || d == 31:
			return "st"
		case d == 2 || d == 22:
			return "nd"
		case d == 3 || d == 23:
			return "rd"
		}
		return "th"
	}
)

func date(rng *rand.Rand) string {
	y := 1900 + rng.IntN(130)
	m := 1 + rng.IntN(12)
	d := 1 + rng.IntN(28)
	mon := months[m-1]
	wd := weekdays[rng.IntN(7)]
	switch rng.IntN(14) {
	case 0:
		return fmt.Sprintf("%04d-%02d-%02d", y, m, d)
	case 1:
		return fmt.Sprintf("%02d/%02d/%04d", d, m, y)
	case 2:
		return fmt.Sprintf("%d/%d/%02d", m, d, y%100)
	case 3:
		return fmt.Sprintf("%02d.%02d.%04d", d, m, y)
	case 4:
		return fmt.Sprintf("%s %d, %d", mon, d, y)
	case 5:
		return fmt.Sprintf("%d %s %d", d, mon[:3], y)
	case 6:
		return fmt.Sprintf("%s, %d %s %d", wd[:3], d, mon[:3], y)
	case 7:
		return fmt.Sprintf("%d%s %s %d", d, ordSuffix(d), mon, y)
	case 8:
		return fmt.Sprintf("%02d:%02d", rng.IntN(24), rng.IntN(60))
	case 9:
		return fmt.Sprintf("%02d:%02d:%02d", rng.IntN(24), rng.IntN(60), rng.IntN(60))
	case 10:
		return fmt.Sprintf("%04d-%02d-%02d %02d:%02d", y, m, d, rng.IntN(24), rng.IntN(60))
	case 11:
		return fmt.Sprintf("Q%d %d", 1+rng.IntN(4), y)
	case 12:
		return fmt.Sprintf("%s. %d%s", mon[:3], d, ordSuffix(d))
	default:
		return fmt.Sprintf("%s, %s %d", wd, mon, d)
	}
}

func price(rng *rand.Rand) string {
	v := magnitude(rng) / 10
	c := rng.IntN(100)
	cents := fmt.Sprintf("%02d", c)
	switch rng.IntN(12) {
	case 0:
		return fmt.Sprintf("$%d.%s", v, cents)
	case 1:
		return fmt.Sprintf("EUR %d,%s", v, cents)
	case 2:
		return fmt.Sprintf("%s,%s EUR", grouped(v, "."), cents)
	case 3:
		return fmt.Sprintf("GBP %s.%s", grouped(v, ","), cents)
	case 4:
		return fmt.Sprintf("USD %s.%s", grouped(v, ","), cents)
	case 5:
		return fmt.Sprintf("%d.%s USD", v, cents)
	case 6:
		return fmt.Sprintf("-$%d.%s", v, cents)
	case 7:
		return fmt.Sprintf("(%s.%s)", grouped(v, ","), cents)
	case 8:
		return fmt.Sprintf("Total $%d.%s", v, cents)
	case 9:
		return fmt.Sprintf("CHF %d.-", v)
	case 10:
		return fmt.Sprintf("%d for $%d", 2+rng.IntN(4), 1+rng.IntN(20))
	default:
		return fmt.Sprintf("$ %s", grouped(v, ","))
	}
}

const (
	upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
)

func randFrom(rng *rand.Rand, set string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = set[rng.IntN(len(set))]
	}
	return string(b)
}

func code(rng *rand.Rand) string {
	switch rng.IntN(12) {
	case 0:
		return fmt.Sprintf("%s-%s-%s", randFrom(rng, upper, 2), digits(rng, 4), randFrom(rng, upper, 1))
	case 1:
		return fmt.Sprintf("ISBN %s-%s-%s-%s", digits(rng, 1), digits(rng, 3), digits(rng, 5), digits(rng, 1))
	case 2:
		return fmt.Sprintf("SN: %s-%s-%s", randFrom(rng, alnum, 4), randFrom(rng, alnum, 4), digits(rng, 2))
	case 3:
		return fmt.Sprintf("INV/%d/%s", 1990+rng.IntN(40), digits(rng, 4))
	case 4:
		return fmt.Sprintf("ref#%s%s", randFrom(rng, upper, 1), digits(rng, 3))
	case 5:
		return fmt.Sprintf("Part No. %s-%s", digits(rng, 3), randFrom(rng, upper, 1))
	case 6:
		return fmt.Sprintf("v%d.%d.%d", rng.IntN(10), rng.IntN(20), rng.IntN(100))
	case 7:
		return fmt.Sprintf("%s_%s", randFrom(rng, alnum, 2+rng.IntN(3)), randFrom(rng, alnum, 2+rng.IntN(3)))
	case 8:
		return fmt.Sprintf("%s%s", randFrom(rng, upper, 1+rng.IntN(3)), digits(rng, 1+rng.IntN(6)))
	case 9:
		return randFrom(rng, alnum+"-", 5+rng.IntN(12))
	case 10:
		return fmt.Sprintf("%s %s %s", randFrom(rng, upper, 3), digits(rng, 3), randFrom(rng, upper, 2))
	default:
		return fmt.Sprintf("%s/%s-%s", randFrom(rng, upper, 3), digits(rng, 2), randFrom(rng, alnum, 3))
	}
}

// slug turns a word into a lower-case identifier usable in addresses.
func slug(w string) string {
	var b strings.Builder
	for i := 0; i < len(w); i++ {
		c := w[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteByte(c)
		case c >= 'A' && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		}
	}
	if b.Len() == 0 {
		return "x"
	}
	return b.String()
}

func (s *TextSource) domain(rng *rand.Rand) string {
	name := slug(s.word(rng))
	if rng.IntN(4) == 0 {
		name += pick(rng, "-", "") + slug(s.word(rng))
	}
	return name + pick(rng, ".com", ".org", ".net", ".de", ".co.uk", ".io", ".fr", ".edu", ".info")
}

func (s *TextSource) email(rng *rand.Rand) string {
	user := slug(s.word(rng))
	switch rng.IntN(4) {
	case 0:
		user = user[:1] + "." + slug(s.word(rng))
	case 1:
		user += digits(rng, 1+rng.IntN(3))
	case 2:
		user += pick(rng, "_", ".", "+") + slug(s.word(rng))
	}
	return user + "@" + s.domain(rng)
}

func (s *TextSource) url(rng *rand.Rand) string {
	u := pick(rng, "https://", "http://", "www.", "", "ftp://") + s.domain(rng)
	switch rng.IntN(5) {
	case 0:
		u += "/" + slug(s.word(rng))
	case 1:
		u += fmt.Sprintf("/%s?id=%d", slug(s.word(rng)), rng.IntN(1000))
	case 2:
		u += "/~" + slug(s.word(rng)) + "/index.html"
	case 3:
		u += "/" + slug(s.word(rng)) + "_" + slug(s.word(rng)) + "#" + slug(s.word(rng))
	}
	return u
}

const punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

func (s *TextSource) punct(rng *rand.Rand) string {
	switch rng.IntN(10) {
	case 0:
		return randFrom(rng, punctuation, 1+rng.IntN(6))
	case 1: // dot leaders
		return fmt.Sprintf("%s %s %d", titleCase(s.word(rng)), strings.Repeat(pick(rng, ".", ". ", "-", "_"), 3+rng.IntN(12)), 1+rng.IntN(300))
	case 2:
		return fmt.Sprintf("%s: %s", titleCase(s.word(rng)), strings.Repeat("_", 4+rng.IntN(14)))
	case 3:
		return pick(rng, "if (a < b) { c = d; }", "i++;", "x^2 + y^2", "~/bin/run.sh", "a|b|c", "#include <stdio.h>",
			"`make all`", "C:\\Temp\\log.txt", "{\"key\": 1}", "[1], [2], [3]", "<br/>", "$@ && exit", "100% & more",
			"(see p. 12)", "x = y * 2", "a[i] = b[j];", "@home", "--verbose", "*** END ***", "#!/bin/sh")
	case 4:
		return s.word(rng) + pick(rng, "!!", "?!", "...", "!?", "?", ";", ":") + " " + s.word(rng)
	case 5:
		return pick(rng, "(", "[", "{", "<", "\"", "'") + s.word(rng) + pick(rng, ")", "]", "}", ">", "\"", "'")
	case 6: // footnote or reference markers
		return s.word(rng) + pick(rng, "*", "**", "[1]", "(a)", "^2", "(1)") + " " + s.word(rng)
	case 7:
		return strings.Repeat(pick(rng, "-", "=", "*", "~", "#", "+-", ". "), 2+rng.IntN(15))
	case 8:
		return fmt.Sprintf("%s %s %s", randFrom(rng, punctuation, 1+rng.IntN(3)), s.word(rng), randFrom(rng, punctuation, 1+rng.IntN(3)))
	default:
		w := []byte(s.word(rng) + " " + s.word(rng))
		w[rng.IntN(len(w))] = punctuation[rng.IntN(len(punctuation))]
		return string(w)
	}
}

var roman = []string{"I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII", "XIV", "XIX", "XX", "XL", "L", "XC", "C", "MCMXC"}

func (s *TextSource) labelled(rng *rand.Rand) string {
	switch rng.IntN(10) {
	case 0:
		return fmt.Sprintf("Page %d of %d", 1+rng.IntN(20), 20+rng.IntN(100))
	case 1:
		return fmt.Sprintf("Tel. +%d %s %s %s", 1+rng.IntN(99), digits(rng, 2), digits(rng, 4), digits(rng, 4))
	case 2:
		return fmt.Sprintf("Qty: %d x %d.%s", 1+rng.IntN(20), rng.IntN(100), digits(rng, 2))
	case 3:
		return fmt.Sprintf("%s %d.%d", pick(rng, "Fig.", "Table", "Section", "Eq.", "Art."), 1+rng.IntN(20), 1+rng.IntN(9))
	case 4:
		return fmt.Sprintf("Vol. %s, No. %d", roman[rng.IntN(len(roman))], 1+rng.IntN(12))
	case 5:
		a := 1 + rng.IntN(500)
		return fmt.Sprintf("pp. %d-%d", a, a+1+rng.IntN(30))
	case 6:
		return fmt.Sprintf("%s: %s", titleCase(s.word(rng)), number(rng))
	case 7:
		return fmt.Sprintf("Room %d%s", 1+rng.IntN(400), randFrom(rng, upper, rng.IntN(2)))
	case 8:
		return fmt.Sprintf("Chapter %s", roman[rng.IntN(len(roman))])
	default:
		return fmt.Sprintf("%s %s", s.word(rng), date(rng))
	}
}

var (
	defaultTextOnce sync.Once
	defaultText     *TextSource
)

// DefaultTextSource returns the TextSource over DefaultFortuneDir and
// DefaultWordsFile, read once on first use.
func DefaultTextSource() *TextSource {
	defaultTextOnce.Do(func() { defaultText = NewTextSource(DefaultFortuneDir, DefaultWordsFile) })
	return defaultText
}

// Text draws one line of text from DefaultTextSource; see TextSource.Text.
func Text(rng *rand.Rand) string { return DefaultTextSource().Text(rng) }
