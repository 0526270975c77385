package ocrdata

import (
	"math/rand/v2"
	"testing"
)

// Each character's CharX lies over that character's ink: for a line of well-separated capitals
// the column at CharX holds ink, and the positions increase along the line.
func TestCharXPointsAtEachCharacter(t *testing.T) {
	faces, err := Load(Train)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 5))
	for _, f := range faces[:6] {
		for _, cond := range []string{Clean, Rotate} {
			l, err := Render(rng, "HOME TOWN", f, 24, cond)
			if err != nil {
				t.Fatal(err)
			}
			if len(l.CharX) != len(l.Text) {
				t.Fatalf("%s: %d positions for %d characters", f.Name(), len(l.CharX), len(l.Text))
			}
			w, h := l.Image.Rect.Dx(), l.Image.Rect.Dy()
			for i, x := range l.CharX {
				if i > 0 && x <= l.CharX[i-1] {
					t.Fatalf("%s %s: CharX not increasing at %d: %v", f.Name(), cond, i, l.CharX)
				}
				if l.Text[i] == ' ' {
					continue
				}
				// the darkest pixel within ±1 column of CharX, over all rows, must be ink
				dark := uint8(255)
				for dx := -1; dx <= 1; dx++ {
					c := int(x) + dx
					if c < 0 || c >= w {
						continue
					}
					for y := 0; y < h; y++ {
						dark = min(dark, l.Image.GrayAt(c, y).Y)
					}
				}
				if dark > 128 {
					t.Errorf("%s %s: no ink at CharX %.1f of %q (darkest %d)", f.Name(), cond, x, l.Text[i], dark)
				}
			}
		}
	}
}
