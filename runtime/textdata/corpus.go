package textdata

import (
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"

	"github.com/moegpu/moegpu/runtime/ocrdata"
)

// DefaultFortuneDir is where Debian's fortunes and fortunes-min packages put their text.
const DefaultFortuneDir = ocrdata.DefaultFortuneDir

// HeldOutShare is 1 in how many fortunes go to the held-out split.
const HeldOutShare = 10

// Corpus is the lm task's text: every fortune of a fortune directory, folded to the
// vocabulary, split into a training and a held-out stream by a hash of the fortune's text
// (HeldOut), so the split is the same on every machine with the same files, a fortune that
// occurs twice lands on one side only, and adding a file moves no other fortune across.
//
// A fortune is the text between lines holding "%"; each of its lines is folded to printable
// ASCII (curly quotes straightened, accents dropped, backspace overstrikes applied, runs of
// white space made one space: ocrdata.ToASCII), empty lines at its ends are dropped, and its
// lines are joined by '\n'. The stream joins fortunes with a blank line ("\n\n").
type Corpus struct {
	Dir   string
	Files []string // the files read, in name order
	// Train and HeldOut are the two streams as token ids (each < VocabSize).
	Train, HeldOut []byte
	// TrainFortunes and HeldOutFortunes count the fortunes on each side.
	TrainFortunes, HeldOutFortunes int
}

// HeldOut reports whether a fortune (its folded text) belongs to the held-out split: 1 in
// HeldOutShare of them, by an FNV-1a hash of the text.
func HeldOut(fortune string) bool {
	h := fnv.New64a()
	h.Write([]byte(fortune))
	return h.Sum64()%HeldOutShare == 0
}

// LoadCorpus reads every fortune file of dir (skipping *.dat index files, *.u8 links,
// hidden files and ascii-art, which holds pictures). A directory without fortunes is an
// error saying how to get them.
func LoadCorpus(dir string) (*Corpus, error) {
	files, err := ocrdata.FortuneFiles(dir)
	if err != nil {
		return nil, fmt.Errorf("textdata: the lm task reads Debian's fortunes (apt-get install fortunes): %w", err)
	}
	c := &Corpus{Dir: dir}
	for _, path := range files {
		n := filepath.Base(path)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("textdata: %w", err)
		}
		fortunes := SplitFortunes(string(data))
		if len(fortunes) == 0 {
			continue
		}
		c.Files = append(c.Files, n)
		for _, f := range fortunes {
			ids, err := Encode(f)
			if err != nil { // cannot happen after folding; refuse rather than hide it
				return nil, fmt.Errorf("textdata: %s: %w", n, err)
			}
			if HeldOut(f) {
				c.HeldOut = appendFortune(c.HeldOut, ids)
				c.HeldOutFortunes++
			} else {
				c.Train = appendFortune(c.Train, ids)
				c.TrainFortunes++
			}
		}
	}
	if c.TrainFortunes == 0 || c.HeldOutFortunes == 0 {
		return nil, fmt.Errorf("textdata: %s holds %d fortunes; the lm task needs Debian's fortunes (apt-get install fortunes)", dir, c.TrainFortunes+c.HeldOutFortunes)
	}
	return c, nil
}

func appendFortune(stream []byte, ids []int) []byte {
	if len(stream) > 0 {
		stream = append(stream, Newline, Newline)
	}
	for _, id := range ids {
		stream = append(stream, byte(id))
	}
	return stream
}

// SplitFortunes cuts a fortune file into its fortunes, each folded as Corpus describes;
// fortunes that fold to nothing are dropped.
func SplitFortunes(file string) []string {
	var out []string
	for _, lines := range ocrdata.FortuneLines(file) {
		folded := make([]string, len(lines))
		for i, l := range lines {
			folded[i] = ocrdata.ToASCII(l)
		}
		for len(folded) > 0 && folded[0] == "" {
			folded = folded[1:]
		}
		for len(folded) > 0 && folded[len(folded)-1] == "" {
			folded = folded[:len(folded)-1]
		}
		if len(folded) > 0 {
			out = append(out, strings.Join(folded, "\n"))
		}
	}
	return out
}
