package ocrdata

import (
	"os"
	"path/filepath"
	"strings"
)

// FortuneFiles lists the fortune files of a fortune directory (Debian's fortunes:
// /usr/share/games/fortunes) in name order: every plain file except the *.dat indexes, the
// *.u8 links, hidden files and ascii-art, which holds pictures rather than text. It returns
// the directory's read error, if any.
func FortuneFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents { // ReadDir sorts by name
		n := e.Name()
		if e.IsDir() || strings.HasSuffix(n, ".dat") || strings.HasSuffix(n, ".u8") || strings.HasPrefix(n, ".") || n == "ascii-art" {
			continue
		}
		out = append(out, filepath.Join(dir, n))
	}
	return out, nil
}

// FortuneLines cuts a fortune file's text into its fortunes (separated by lines holding only
// "%"), each the list of its lines with backspace overstrikes applied (Overstrike), blank
// lines kept. Empty fortunes are included; callers fold and filter.
func FortuneLines(file string) [][]string {
	var out [][]string
	var cur []string
	for _, line := range strings.Split(file, "\n") {
		if strings.TrimSpace(line) == "%" {
			out = append(out, cur)
			cur = nil
			continue
		}
		cur = append(cur, Overstrike(line))
	}
	return append(out, cur)
}
