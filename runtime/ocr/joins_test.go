package ocr

import "testing"

// The cases are cuts from held-out lines (the texts either side, as the shipped model read
// them) and the spacing their references have.
func TestJoinSpaceKeepsWordSpacesAndDropsThoseInsideAddresses(t *testing.T) {
	for _, c := range []struct {
		prev, next string
		want       bool
	}{
		// URLs, addresses, paths and hyphenated words: no space.
		{"follicles.", "org/gamb", false},
		{"catwalk@lozenges.", "io", false},
		{"empanel-", "handwork", false},
		{"smiling_", "bobwhite", false},
		{"rocker@", "adulteries", false},
		{"sad.org/", "impracticality/", false},
		{"pampering708@fourfold", ".edu", false},
		{"https", "://unmak", false},
		{"1910-06-08 01", ":02", false},
		{"2005", "-12-11 0", false},
		{"k-Ramsey", "-Romania", false},
		{"Jack Handey", ", The New", false},
		{"maelstrom+", "tenderizes@", false},
		{"correspondents", "+virtuous@", false},
		{"ftp://", "intermingle.info", false},
		{"http:", "//wherefores.org", false},
		{"~~~~~~~", "~~~~~~~", false},
		{"=====", "=======", false},
		// Word spaces: the gap decides.
		{"in the", "world", true},
		{"a nation.", "Understand", true},
		{"Part No.", "491-R", true},
		{"Vol. VI, No.", "6", true},
		{"wear my red shoes.", "-- E.", true},
		{"Is There A", "--now-dammit", true},
		{"jelly. --", "Anonymous", true},
		{"peach /", "wearer!", true},
		{"dodgson", "/ evening", true},
		{"realization", "/", true},
		{"Open the log at", "/var/log/build.txt", true},
		{"Kasparov", "Yachts", true},
		{"rgh: 923", "465 4672", true},
		{". . . .", "261", true},
		{"IT?", "-- ANN", true},
		{"Tel. +", "49 98 8057", true},
		{"1 +", "1", true},
		{"x", "", true},
		{"", "x", true},
	} {
		if got := joinSpace(c.prev, c.next); got != c.want {
			t.Errorf("joinSpace(%q, %q) = %v, want %v", c.prev, c.next, got, c.want)
		}
	}
}
