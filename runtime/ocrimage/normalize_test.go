package ocrimage

import (
	"image"
	"image/color"
	"image/draw"
	"testing"
)

// Every degradation must leave the cores of strokes (pixels black in the clean render) at a
// mean ink of at least inkCore and the paper (white, two pixels or more from any ink) at a
// mean of at most paperMax, with the right polarity.
const (
	inkCore  = 0.75
	paperMax = 0.15
)

func TestNormalizeFindsPaperAndInkUnderDegradations(t *testing.T) {
	clean := textPage(t, []string{"Polarity, contrast: 0123 ijk QWERTY"}, 22, 0, 8, 6, 440, 40).img
	core, paper := masks(clean)
	for _, c := range []struct {
		name     string
		img      image.Image
		inverted bool
	}{
		{"clean", clean, false},
		{"inverted", inverted(clone(clean)), true},
		{"40 grey levels", lowContrast(clone(clean), 210, 40), false},
		{"40 grey levels inverted", inverted(lowContrast(clone(clean), 210, 40)), true},
		{"noise σ60", noisy(clone(clean), 60, 1), false},
		{"noise σ60 on grey paper", noisy(lowContrast(clone(clean), 200, 160), 60, 2), false},
		{"noise σ60 inverted", noisy(inverted(clone(clean)), 60, 3), true},
		{"dark UI (grey text on near-black)", remap(clone(clean), func(v float64) float64 { return 30 + (255-v)*0.7 }), true},
		{"tinted yellow paper, blue ink", tinted(clean, color.RGBA{250, 235, 190, 255}, color.RGBA{40, 30, 120, 255}), false},
		{"tinted dark green, light text", tinted(clean, color.RGBA{20, 60, 40, 255}, color.RGBA{230, 230, 200, 255}), true},
		{"jpeg q20", jpegged(t, clean, 20), false},
		{"jpeg q40, 40 grey levels", jpegged(t, lowContrast(clone(clean), 210, 40), 40), false},
		{"jpeg q40, noise σ30, inverted", jpegged(t, noisy(inverted(clone(clean)), 30, 4), 40), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := Normalize(Gray(c.img))
			if k.Inverted != c.inverted || k.Blank {
				t.Fatalf("inverted %v blank %v (paper %d, full %d); want inverted %v", k.Inverted, k.Blank, k.Paper, k.Full, c.inverted)
			}
			inkMean, paperMean := meanOver(k, core), meanOver(k, paper)
			if inkMean < inkCore || paperMean > paperMax {
				t.Errorf("mean ink %.3f on stroke cores (want ≥ %v), %.3f on paper (want ≤ %v); paper level %d, full %d",
					inkMean, inkCore, paperMean, paperMax, k.Paper, k.Full)
			}
			for i, v := range k.Pix {
				if !(v >= 0 && v <= 1) {
					t.Fatalf("value %v at %d outside [0,1]", v, i)
				}
			}
		})
	}
}

func TestNormalizeCallsFlatImagesBlank(t *testing.T) {
	flat := func(v uint8) *image.Gray {
		g := image.NewGray(image.Rect(0, 0, 200, 50))
		draw.Draw(g, g.Rect, image.NewUniform(color.Gray{v}), image.Point{}, draw.Src)
		return g
	}
	for name, g := range map[string]*image.Gray{
		"white":          flat(255),
		"black":          flat(0),
		"grey":           flat(120),
		"grey, noise σ1": noisy(flat(120), 1, 5),
		"faint mark (4 grey)": func() *image.Gray {
			g := flat(200)
			draw.Draw(g, image.Rect(50, 20, 150, 30), image.NewUniform(color.Gray{196}), image.Point{}, draw.Src)
			return g
		}(),
		"1×1": image.NewGray(image.Rect(0, 0, 1, 1)),
	} {
		k := Normalize(g)
		if !k.Blank {
			t.Errorf("%s: not blank (paper %d, full %d)", name, k.Paper, k.Full)
		}
		for _, v := range k.Pix {
			if v != 0 {
				t.Errorf("%s: blank ink map holds %v", name, v)
				break
			}
		}
	}
	if k := Normalize(nil); !k.Blank || len(k.Pix) != 0 {
		t.Errorf("nil: %+v", k)
	}
}

// A tight crop of bold text is more than half ink at its centre, yet the border says paper.
func TestNormalizeOnInkHeavyTightCrop(t *testing.T) {
	p := textPage(t, []string{"MW■"}, 48, 0, 4, 4, 200, 70)
	tight := p.img.SubImage(p.lines[0].Inset(-1)).(*image.Gray)
	k := Normalize(tight)
	if k.Inverted || k.Paper < 250 {
		t.Fatalf("paper %d inverted %v: want white paper, dark ink", k.Paper, k.Inverted)
	}
}

// masks returns the stroke cores (black in the clean render) and clear paper (white, with
// nothing darker within two pixels) of g.
func masks(g *image.Gray) (core, paper []bool) {
	w, h := g.Rect.Dx(), g.Rect.Dy()
	core, paper = make([]bool, w*h), make([]bool, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			core[y*w+x] = g.Pix[y*g.Stride+x] < 40
			clear := true
			for dy := -2; dy <= 2 && clear; dy++ {
				for dx := -2; dx <= 2; dx++ {
					if xx, yy := x+dx, y+dy; xx >= 0 && yy >= 0 && xx < w && yy < h && g.Pix[yy*g.Stride+xx] < 255 {
						clear = false
						break
					}
				}
			}
			paper[y*w+x] = clear
		}
	}
	return core, paper
}

func meanOver(k *Ink, mask []bool) float64 {
	var s float64
	n := 0
	for i, m := range mask {
		if m {
			s += float64(k.Pix[i])
			n++
		}
	}
	return s / float64(max(n, 1))
}
