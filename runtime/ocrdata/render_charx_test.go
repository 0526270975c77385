package ocrdata

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
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
		for _, cond := range []string{Clean, Rotate, "stretched 0.8", "stretched 1.25"} {
			var l Line
			switch cond {
			case "stretched 0.8":
				l, err = render(rng, "HOME TOWN", f, 24, Clean, 0.8)
			case "stretched 1.25":
				l, err = render(rng, "HOME TOWN", f, 24, Rotate, 1.25)
			default:
				l, err = Render(rng, "HOME TOWN", f, 24, cond)
			}
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

// A stretch scales the line horizontally and nothing else: a clean line drawn from the same rng
// state at 0.8 and 1.25 has its characters' spread scaled by exactly their ratio, its height
// unchanged; a stretch of 1 is Render itself.
func TestStretchScalesTheLineHorizontally(t *testing.T) {
	faces, err := Load(Train)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range faces[:8] {
		const text = "Stretch me, 1959!"
		narrow, err := render(rand.New(rand.NewPCG(7, 1)), text, f, 20, Clean, 0.8)
		if err != nil {
			t.Fatal(err)
		}
		wide, err := render(rand.New(rand.NewPCG(7, 1)), text, f, 20, Clean, 1.25)
		if err != nil {
			t.Fatal(err)
		}
		n := len(text) - 1
		got := (wide.CharX[n] - wide.CharX[0]) / (narrow.CharX[n] - narrow.CharX[0])
		if math.Abs(got-1.25/0.8) > 1e-3 {
			t.Errorf("%s: spread ratio %.4f, want %.4f", f.Name(), got, 1.25/0.8)
		}
		if wide.Image.Rect.Dy() != narrow.Image.Rect.Dy() {
			t.Errorf("%s: heights %d and %d differ", f.Name(), wide.Image.Rect.Dy(), narrow.Image.Rect.Dy())
		}
		if w, nw := wide.Image.Rect.Dx(), narrow.Image.Rect.Dx(); float64(w) < 1.4*float64(nw) {
			t.Errorf("%s: widths %d (1.25) and %d (0.8)", f.Name(), w, nw)
		}
		one, err := render(rand.New(rand.NewPCG(7, 1)), text, f, 20, Noise, 1)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := Render(rand.New(rand.NewPCG(7, 1)), text, f, 20, Noise)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(one.Image.Pix, plain.Image.Pix) {
			t.Errorf("%s: stretch 1 differs from Render", f.Name())
		}
	}
}

// Options.Stretch draws a factor only when set, so a generator without it gives the lines it
// always gave (the evaluation sets stay the same), and one with it gives other, wider or
// narrower lines; a value outside [0, 1] is refused.
func TestGeneratorStretchOption(t *testing.T) {
	plain, err := New(Options{Conditions: []string{Clean}})
	if err != nil {
		t.Fatal(err)
	}
	stretched, err := New(Options{Conditions: []string{Clean}, Stretch: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	differ := 0
	for i := range 8 {
		rng := rand.New(rand.NewPCG(uint64(i), 9))
		p, err := plain.Sample(rng)
		if err != nil {
			t.Fatal(err)
		}
		// the same draws as SampleCondition, by hand
		rng = rand.New(rand.NewPCG(uint64(i), 9))
		rng.Float64() // Sample's condition draw
		text := plain.text.Text(rng)
		fam := plain.families[rng.IntN(len(plain.families))]
		face := fam[rng.IntN(len(fam))]
		size := plain.opts.MinCap * math.Exp(rng.Float64()*math.Log(plain.opts.MaxCap/plain.opts.MinCap))
		direct, err := Render(rng, text, face, size, Clean)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p.Image.Pix, direct.Image.Pix) || p.Text != direct.Text {
			t.Fatalf("line %d: a generator without Stretch no longer draws what Render draws", i)
		}
		s, err := stretched.Sample(rand.New(rand.NewPCG(uint64(i), 9)))
		if err != nil {
			t.Fatal(err)
		}
		if s.Text != p.Text {
			t.Fatalf("line %d: stretch changed the text %q -> %q", i, p.Text, s.Text)
		}
		if s.Image.Rect.Dx() != p.Image.Rect.Dx() {
			differ++
		}
	}
	if differ < 6 {
		t.Errorf("only %d of 8 stretched lines differ in width", differ)
	}
	for _, bad := range []float64{-0.1, 1.5, math.NaN()} {
		if _, err := New(Options{Stretch: bad}); err == nil || !strings.Contains(err.Error(), "Stretch") {
			t.Errorf("Stretch %v: err %v, want one naming Stretch", bad, err)
		}
	}
}
