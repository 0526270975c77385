package ocrimage

import (
	"image"
	"image/color"
	"image/draw"
	"math/rand/v2"
	"testing"
)

// Each fast path of Gray must agree with the plain one (every pixel's colour composited over
// white, then color.GrayModel's luminance) to within one grey level of rounding.
func TestGrayFastPathsMatchThePlainConversion(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	r := image.Rect(3, -2, 40, 17) // not at the origin
	byte8 := func() uint8 { return uint8(rng.IntN(256)) }

	nrgba := image.NewNRGBA(r)
	rgba := image.NewRGBA(r)
	gray := image.NewGray(r)
	gray16 := image.NewGray16(r)
	ycc := image.NewYCbCr(r, image.YCbCrSubsampleRatio420)
	nycca := image.NewNYCbCrA(r, image.YCbCrSubsampleRatio444)
	pal := image.NewPaletted(r, color.Palette{color.Black, color.White, color.Transparent, color.NRGBA{200, 10, 10, 128}})
	cmyk := image.NewCMYK(r)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			a := byte8()
			switch rng.IntN(3) {
			case 0:
				a = 0
			case 1:
				a = 255
			}
			nrgba.SetNRGBA(x, y, color.NRGBA{byte8(), byte8(), byte8(), a})
			rgba.Set(x, y, nrgba.At(x, y))
			gray.SetGray(x, y, color.Gray{byte8()})
			gray16.SetGray16(x, y, color.Gray16{uint16(rng.IntN(65536))})
			pal.SetColorIndex(x, y, uint8(rng.IntN(4)))
			cmyk.SetCMYK(x, y, color.CMYK{byte8(), byte8(), byte8(), byte8()})
		}
	}
	for i := range ycc.Y {
		ycc.Y[i] = byte8()
	}
	for i := range ycc.Cb {
		ycc.Cb[i], ycc.Cr[i] = byte8(), byte8()
	}
	for i := range nycca.Y {
		nycca.Y[i], nycca.Cb[i], nycca.Cr[i], nycca.A[i] = byte8(), byte8(), byte8(), byte8()
	}
	for name, img := range map[string]image.Image{
		"NRGBA": nrgba, "RGBA": rgba, "Gray": gray, "Gray16": gray16, "YCbCr": ycc,
		"NYCbCrA": nycca, "Paletted": pal, "CMYK": cmyk, "SubImage of RGBA": rgba.SubImage(image.Rect(5, 0, 20, 9)),
	} {
		t.Run(name, func(t *testing.T) {
			g := Gray(img)
			if g.Rect != img.Bounds() {
				t.Fatalf("bounds %v, want %v", g.Rect, img.Bounds())
			}
			b := img.Bounds()
			for y := b.Min.Y; y < b.Max.Y; y++ {
				for x := b.Min.X; x < b.Max.X; x++ {
					want := int(overWhite(img.At(x, y)))
					// Y is the luma the file stored; converting random (out-of-gamut) chroma
					// to RGB clamps and moves it, so Y is the reference for these two.
					switch m := img.(type) {
					case *image.YCbCr:
						want = int(m.Y[m.YOffset(x, y)])
					case *image.NYCbCrA:
						a := int(m.A[m.AOffset(x, y)])
						want = (int(m.Y[m.YOffset(x, y)])*a + 255*(255-a) + 127) / 255
					}
					if d := int(g.GrayAt(x, y).Y) - want; d > 1 || d < -1 {
						t.Fatalf("(%d,%d): %d, want %d ± 1 (colour %v)", x, y, g.GrayAt(x, y).Y, want, img.At(x, y))
					}
				}
			}
		})
	}
}

func TestGrayPutsTransparencyOnWhitePaper(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 3, 1))
	img.SetNRGBA(0, 0, color.NRGBA{0, 0, 0, 0})   // transparent black: paper
	img.SetNRGBA(1, 0, color.NRGBA{0, 0, 0, 255}) // black ink
	img.SetNRGBA(2, 0, color.NRGBA{0, 0, 0, 128}) // half-transparent black: mid grey
	got := Gray(img).Pix
	if got[0] != 255 || got[1] != 0 || got[2] < 125 || got[2] > 129 {
		t.Fatalf("grey levels %v, want [255 0 ~127]", got)
	}
	if g := Gray(nil); !g.Rect.Empty() {
		t.Fatalf("Gray(nil) has bounds %v", g.Rect)
	}
}

// White ink on a transparent background vanishes over white paper, so it is put over black
// (light on dark, which Normalize then inverts); a transparent image that shows over white
// stays over white, and an image with nothing on it stays flat.
func TestGrayPutsLightInkOnTransparencyOverBlack(t *testing.T) {
	for _, c := range []struct {
		name      string
		ink       color.NRGBA
		want, bgr uint8 // the ink's and the background's grey level
	}{
		{"white ink", color.NRGBA{255, 255, 255, 255}, 255, 0},
		{"black ink", color.NRGBA{0, 0, 0, 255}, 0, 255},
		{"no ink", color.NRGBA{255, 255, 255, 0}, 255, 255},
	} {
		for _, paletted := range []bool{false, true} {
			var img draw.Image = image.NewNRGBA(image.Rect(0, 0, 8, 4))
			if paletted {
				img = image.NewPaletted(image.Rect(0, 0, 8, 4), color.Palette{color.NRGBA{}, c.ink})
			}
			img.Set(3, 1, c.ink)
			img.Set(4, 2, c.ink)
			g := Gray(img)
			if g.GrayAt(3, 1).Y != c.want || g.GrayAt(0, 0).Y != c.bgr {
				t.Fatalf("%s (paletted %v): ink %d, background %d; want %d and %d", c.name, paletted, g.GrayAt(3, 1).Y, g.GrayAt(0, 0).Y, c.want, c.bgr)
			}
		}
	}
}
