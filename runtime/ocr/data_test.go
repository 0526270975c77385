package ocr

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/runtime/ocrdata"
	"github.com/moegpu/moegpu/runtime/ocrimage"
)

// A rendered line too wide for the model is prepared as the recognizer's pieces, and the
// pieces' texts (characters by their centres) hold every character of the line once.
func TestPrepareLineCutsAWideLineIntoPiecesThatShareItsText(t *testing.T) {
	gen, err := ocrdata.New(ocrdata.Options{Split: ocrdata.Train})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(5, 6))
	wide := 0
	for i := 0; i < 400 && wide < 20; i++ {
		l, err := gen.SampleCondition(rng, "clean")
		require.NoError(t, err)
		pieces, ok := PrepareLine(l.Image, 32, 320)
		if !ok || len(pieces) < 2 {
			continue
		}
		wide++
		var joined strings.Builder
		for k, p := range pieces {
			require.LessOrEqual(t, p.Width, 320)
			require.Len(t, p.Pix, 32*p.Width)
			txt, xs := pieceText(l.Text, l.CharX, p)
			require.Len(t, xs, len(txt))
			assert.Equal(t, strings.TrimSpace(txt), txt, "piece %d of %q", k, l.Text)
			joined.WriteString(txt)
		}
		assert.Equal(t, strings.ReplaceAll(l.Text, " ", ""), strings.ReplaceAll(joined.String(), " ", ""),
			"%q (%s) in %d pieces", l.Text, l.Font, len(pieces))
	}
	require.GreaterOrEqual(t, wide, 20, "wide lines in 400 draws")
}

// The task trains on a piece of a wide line: its text is the piece's, its strips label that
// piece's characters.
func TestTaskSamplesAPieceOfAWideLine(t *testing.T) {
	gen, err := ocrdata.New(ocrdata.Options{Split: ocrdata.Train})
	require.NoError(t, err)
	// A long text of x-height letters only: scaled to the model's height, every line is about 900
	// pixels wide, far more than its 320.
	render := func(rng *rand.Rand) (Rendered, error) {
		face := gen.Faces()[rng.IntN(len(gen.Faces()))]
		l, err := ocrdata.Render(rng, "wow we saw new acorns near a ram", face, 40, "clean")
		return Rendered{Image: l.Image, Text: l.Text, CharX: l.CharX}, err
	}
	c := tinyImageConfig(t)
	c.ImageHeight, c.MaxImageWidth, c.PatchWidth = 32, 320, 8
	task, err := NewTaskWith(c, render, PrepareLine)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(7, 8))
	texts := map[string]bool{}
	for i := 0; i < 12; i++ {
		l, err := task.Sample(rng)
		require.NoError(t, err)
		require.NotEqual(t, "wow we saw new acorns near a ram", l.Text)
		assert.Contains(t, "wow we saw new acorns near a ram", l.Text)
		texts[l.Text] = true
		labelled := 0
		for _, id := range l.Strips {
			if id != PAD {
				labelled++
			}
		}
		assert.Equal(t, len(l.Text), labelled, "%q: one strip per character", l.Text)
	}
	assert.Greater(t, len(texts), 1, "pieces are drawn at random")
}

// A line of capitals and digits has its densest rows at its top and its baseline, a stem's
// height apart, like two touching lines. Rendered alone (with whatever slivers of neighbouring
// lines the renderer adds), it must stay one line at its full height: line finding used to cut
// 101 of these 1764 clean lines (every font of both splits, seven texts, three sizes) through
// the middle; 15 of them still come out below the capitals' height.
func TestALineOfCapitalsAndDigitsKeepsItsHeight(t *testing.T) {
	var faces []*ocrdata.Face
	for _, sp := range []ocrdata.Split{ocrdata.Train, ocrdata.Validation} {
		f, err := ocrdata.Load(sp)
		require.NoError(t, err)
		faces = append(faces, f...)
	}
	texts := []string{"USD 936,086.93", "Quonset: 33.9%", "OF YOU ... MAY HAVE DECIDED", "Abbesses: _________",
		"THE CARBURETOR NEEDS", "07/08/1910", "ISBN 0-326-48552-6"}
	short, n := 0, 0
	for i, f := range faces {
		for j, txt := range texts {
			for _, size := range []float64{14, 22, 34} {
				l, err := ocrdata.Render(rand.New(rand.NewPCG(uint64(i), uint64(j))), txt, f, size, "clean")
				require.NoError(t, err)
				tallest := 0
				for _, b := range ocrimage.SplitLines(ocrimage.Normalize(l.Image)) {
					tallest = max(tallest, b.Dy())
				}
				n++
				if float64(tallest) < 0.95*l.CapHeight {
					short++
				}
			}
		}
	}
	// 2 %: the 15 left (0.9 %) with room, far under the 101 (5.7 %) of a split at any row.
	assert.LessOrEqual(t, float64(short), 0.02*float64(n), "%d of %d lines lost their capitals' height", short, n)
}
