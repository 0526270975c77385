package ocr

import "strings"

// joinSpace says whether the texts of two pieces of one line, cut at a gap LineStrips took for
// a word space (ocrimage.Segment.Space), join with a space. The gap alone decides, except
// where the texts show a URL, an e-mail address, a path, a hyphenated word or a rule: the gaps
// beside their full stops, hyphens, slashes, underscores, plus and at signs reach 0.2–0.4 line
// heights, as wide as word spaces (from 0.15). Such pieces join without a space when
//
//   - prev ends in one of . - _ @ / + right after a letter or digit, and next starts with a
//     letter or digit ("lozenges." + "io", "hostage-" + "chits", "smiling_" + "bobwhite");
//     after a full stop only a lowercase letter counts, since a sentence ("nation." +
//     "Understand") or an abbreviation before a number ("No." + "6") goes on after a space;
//   - next starts with one of . - _ @ : + followed by a letter, a digit or a slash, and prev
//     ends in a letter or digit ("mentions" + ".de/", "https" + "://", "2005" + "-12-11");
//     not a slash: a path after a word keeps its space ("at" + "/var/log");
//   - next starts with a comma or semicolon and prev ends in a letter or digit;
//   - the cut splits a URL's "://" ("ftp://" + "intermingle", "http:" + "//where");
//   - both sides are a run of one of ~ = _ - + * # ("~~~~~~~" + "~~~~~~~");
//   - the cut is inside a token: prev's last word already holds a letter or digit, one of
//     . @ / - _ ? = + ~ and a letter or digit ("reconvene.smok", "rocker@adultere"), prev ends
//     and next starts with a letter or digit, and the gap (Segment.Gap, columns at the model's
//     line height) is at most 0.22 line heights, as the letter gaps of a cut address are
//     (word spaces are mostly wider).
//
// A gap of two line heights or more (ocrimage cuts every such blank: a receipt's columns, two
// columns of text) always keeps its space: "home." + "thirty" there are two cells, not a URL.
//
// Measured with the ocr-small shipped before the current one, on held-out sets written by
// `moegpu ocr --write-eval`:
// designed on the 1577 cuts of seeds 1–5, where it drops 82 spaces: 71 wrong, 3 right ("rm" +
// "-i", "that's" + ".debbed", "Lucreti_" + "rakishness") and 8 where the reference cannot
// tell; checked on the 303 cuts of seed 6, where it drops 21: 16 wrong and 5 unclear. CER on
// seeds 1–6: 2.00, 2.18, 2.39, 3.03, 2.04, 2.73 % without it; 1.93, 2.04, 2.32, 2.91, 1.94,
// 2.57 % with it.
func joinSpace(prev, next string, gap, height int) bool {
	if prev == "" || next == "" || gap >= 2*height {
		return true
	}
	at := func(s string, i int) byte { // s[i], or a space past either end
		if i < 0 || i >= len(s) {
			return ' '
		}
		return s[i]
	}
	a, a2 := at(prev, len(prev)-1), at(prev, len(prev)-2)
	b, b2 := at(next, 0), at(next, 1)
	switch {
	case strings.IndexByte(".-_@/+", a) >= 0 && isAlnum(a2) && isAlnum(b):
		return a == '.' && !(b >= 'a' && b <= 'z')
	case strings.IndexByte(".-_@:+", b) >= 0 && isAlnum(a) && (isAlnum(b2) || b2 == '/'):
		return false
	case (b == ',' || b == ';') && isAlnum(a):
		return false
	case a == '/' && (a2 == '/' || a2 == ':'), a == ':' && b == '/' && b2 == '/':
		return false
	case a == b && strings.IndexByte("~=_-+*#", a) >= 0:
		return false
	case isAlnum(a) && isAlnum(b) && 100*gap <= 22*height && inAddress(prev[strings.LastIndexByte(prev, ' ')+1:]):
		return false
	}
	return true
}

// inAddress says whether word holds a letter or digit, one of . @ / - _ ? = + ~ and a letter or
// digit, in a row: a URL, address or compound.
func inAddress(word string) bool {
	for i := 1; i+1 < len(word); i++ {
		if strings.IndexByte(".@/-_?=+~", word[i]) >= 0 && isAlnum(word[i-1]) && isAlnum(word[i+1]) {
			return true
		}
	}
	return false
}

// isAlnum says whether c is an ASCII letter or digit.
func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
