package ocr

import "testing"

// The cases are cuts from held-out lines (the texts either side, as the shipped model read
// them) and the spacing their references have.
func TestJoinSpaceKeepsWordSpacesAndDropsThoseInsideAddresses(t *testing.T) {
	for _, c := range []struct {
		prev, next string
		want       bool
		gap        int // the cut's gap at a 32-pixel line height; 0 means 10, a word space's
	}{
		// URLs, addresses, paths and hyphenated words: no space.
		{"follicles.", "org/gamb", false, 0},
		{"catwalk@lozenges.", "io", false, 0},
		{"empanel-", "handwork", false, 0},
		{"smiling_", "bobwhite", false, 0},
		{"rocker@", "adulteries", false, 0},
		{"sad.org/", "impracticality/", false, 0},
		{"pampering708@fourfold", ".edu", false, 0},
		{"https", "://unmak", false, 0},
		{"1910-06-08 01", ":02", false, 0},
		{"2005", "-12-11 0", false, 0},
		{"k-Ramsey", "-Romania", false, 0},
		{"Jack Handey", ", The New", false, 0},
		{"maelstrom+", "tenderizes@", false, 0},
		{"correspondents", "+virtuous@", false, 0},
		{"ftp://", "intermingle.info", false, 0},
		{"http:", "//wherefores.org", false, 0},
		{"~~~~~~~", "~~~~~~~", false, 0},
		{"=====", "=======", false, 0},
		{"reconvene.smok", "ing@cursed.fr", false, 5},
		{"rocker@adultere", "ies-woodcock", false, 7},
		// A blank of two line heights (64 columns) or more: the cells of a row, never joined.
		{"schools sent home.", "thirty days of purchase.", true, 64},
		{"Total ------", "------", true, 90},
		{"schools sent home.", "thirty days", false, 63},
		// Word spaces: the gap decides.
		{"in the", "world", true, 0},
		{"a nation.", "Understand", true, 0},
		{"Part No.", "491-R", true, 0},
		{"Vol. VI, No.", "6", true, 0},
		{"wear my red shoes.", "-- E.", true, 0},
		{"Is There A", "--now-dammit", true, 0},
		{"jelly. --", "Anonymous", true, 0},
		{"peach /", "wearer!", true, 0},
		{"dodgson", "/ evening", true, 0},
		{"realization", "/", true, 0},
		{"Open the log at", "/var/log/build.txt", true, 0},
		{"Kasparov", "Yachts", true, 0},
		{"rgh: 923", "465 4672", true, 0},
		{". . . .", "261", true, 0},
		{"IT?", "-- ANN", true, 0},
		{"Tel. +", "49 98 8057", true, 0},
		{"1 +", "1", true, 0},
		{"rocker@adultere", "ies-woodcock", true, 8},
		{"EXPEDITION", "ARY", true, 5},
		{"mail bob@example.org", "today", true, 8},
		{"x", "", true, 0},
		{"", "x", true, 0},
	} {
		gap := c.gap
		if gap == 0 {
			gap = 10
		}
		if got := joinSpace(c.prev, c.next, gap, 32); got != c.want {
			t.Errorf("joinSpace(%q, %q) = %v, want %v", c.prev, c.next, got, c.want)
		}
	}
}
