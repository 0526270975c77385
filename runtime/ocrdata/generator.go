package ocrdata

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
)

// Options configure a Generator. The zero value is the training set-up:
// training fonts, cap heights 10–40 px, the training mix of conditions, and
// the system font and text files.
type Options struct {
	// Split selects the font families (Train or Validation).
	Split Split
	// MinCap and MaxCap bound the capital-letter height in pixels; the size
	// is drawn log-uniformly between them. Zero means 10 and 40.
	MinCap, MaxCap float64
	// Conditions restricts Sample to these condition names; nil means all
	// of Conditions(). Clean, when listed with others, gets CleanShare of
	// the samples and the rest share the remainder equally.
	Conditions []string
	// CleanShare is Clean's share of Sample; zero means 0.25.
	CleanShare float64
	// Stretch widens or narrows each line's glyphs and advances by a factor drawn log-uniformly
	// in [1/(1+Stretch), 1+Stretch]: faces wider or narrower than any in the split, an
	// augmentation for training (0: the fonts as drawn; the evaluation sets use 0). It must lie
	// in [0, 1].
	Stretch float64
	// FontRoot is prefixed to the Debian font paths (for tests and
	// chroots); "" means the real root, and faces are then parsed once per
	// process.
	FontRoot string
	// FortuneDir and WordsFile locate the text sources; "" means
	// DefaultFortuneDir and DefaultWordsFile.
	FortuneDir, WordsFile string
}

// Generator draws random lines: text, face, size and condition. It is
// read-only after New and safe for concurrent use, each goroutine with its
// own *rand.Rand.
type Generator struct {
	opts     Options
	families [][]*Face // faces grouped by family, catalog order
	text     *TextSource
	conds    []string
	weights  []float64 // cumulative, parallel to conds
}

// New builds a Generator. It fails when the split has no installed faces
// (naming the Debian packages to install), when a condition is unknown, or
// when the size range is not within [MinCapHeight, MaxCapHeight].
func New(o Options) (*Generator, error) {
	if o.MinCap == 0 {
		o.MinCap = 10
	}
	if o.MaxCap == 0 {
		o.MaxCap = 40
	}
	if !(o.MinCap >= MinCapHeight && o.MaxCap <= MaxCapHeight && o.MinCap <= o.MaxCap) {
		return nil, fmt.Errorf("ocrdata.New: cap height range [%g, %g] px not within [%d, %d]",
			o.MinCap, o.MaxCap, MinCapHeight, MaxCapHeight)
	}
	if o.CleanShare == 0 {
		o.CleanShare = 0.25
	}
	if !(o.CleanShare > 0 && o.CleanShare < 1) {
		return nil, fmt.Errorf("ocrdata.New: CleanShare %g not in (0, 1)", o.CleanShare)
	}
	if !(o.Stretch >= 0 && o.Stretch <= 1) {
		return nil, fmt.Errorf("ocrdata.New: Stretch %g not in [0, 1]", o.Stretch)
	}
	faces, err := fontsUnder(o.FontRoot).split(o.Split)
	if err != nil {
		return nil, err
	}
	g := &Generator{opts: o}
	for _, f := range faces {
		if n := len(g.families); n > 0 && g.families[n-1][0].Family == f.Family {
			g.families[n-1] = append(g.families[n-1], f)
		} else {
			g.families = append(g.families, []*Face{f})
		}
	}
	if o.FortuneDir == "" && o.WordsFile == "" {
		g.text = DefaultTextSource()
	} else {
		fd, wf := o.FortuneDir, o.WordsFile
		if fd == "" {
			fd = DefaultFortuneDir
		}
		if wf == "" {
			wf = DefaultWordsFile
		}
		g.text = NewTextSource(fd, wf)
	}
	g.conds = o.Conditions
	if g.conds == nil {
		g.conds = Conditions()
	}
	if len(g.conds) == 0 {
		return nil, fmt.Errorf("ocrdata.New: empty condition list")
	}
	hasClean := false
	for _, c := range g.conds {
		if !slices.Contains(conditions, c) {
			return nil, fmt.Errorf("ocrdata.New: unknown condition %q (want one of %s)", c, strings.Join(conditions, ", "))
		}
		hasClean = hasClean || c == Clean
	}
	var acc float64
	for _, c := range g.conds {
		w := 1 / float64(len(g.conds))
		if hasClean && len(g.conds) > 1 {
			w = (1 - o.CleanShare) / float64(len(g.conds)-1)
			if c == Clean {
				w = o.CleanShare
			}
		}
		acc += w
		g.weights = append(g.weights, acc)
	}
	return g, nil
}

// Faces returns the generator's faces in catalog order.
func (g *Generator) Faces() []*Face {
	var out []*Face
	for _, fam := range g.families {
		out = append(out, fam...)
	}
	return out
}

// TextSource returns the source the generator draws texts from.
func (g *Generator) TextSource() *TextSource { return g.text }

// Sample draws a line with a random condition from the configured mix.
func (g *Generator) Sample(rng *rand.Rand) (Line, error) {
	u := rng.Float64() * g.weights[len(g.weights)-1]
	i, _ := slices.BinarySearch(g.weights, u)
	return g.SampleCondition(rng, g.conds[min(i, len(g.conds)-1)])
}

// SampleCondition draws a line under the named condition: a random text
// from the generator's TextSource, a family (uniformly, so families with
// many styles are not favoured) and one of its faces, and a log-uniform
// cap height (and, with Options.Stretch, a horizontal scale). It fails only for an unknown
// condition.
func (g *Generator) SampleCondition(rng *rand.Rand, cond string) (Line, error) {
	if !slices.Contains(conditions, cond) {
		return Line{}, fmt.Errorf("ocrdata: unknown condition %q (want one of %s)", cond, strings.Join(conditions, ", "))
	}
	text := g.text.Text(rng)
	fam := g.families[rng.IntN(len(g.families))]
	face := fam[rng.IntN(len(fam))]
	size := g.opts.MinCap * math.Exp(rng.Float64()*math.Log(g.opts.MaxCap/g.opts.MinCap))
	stretch := 1.0
	if g.opts.Stretch > 0 { // drawn only then, so sets without it keep their lines
		stretch = math.Exp((2*rng.Float64() - 1) * math.Log1p(g.opts.Stretch))
	}
	return render(rng, text, face, size, cond, stretch)
}
