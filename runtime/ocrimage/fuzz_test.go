package ocrimage

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/draw"
	"strings"
	"sync"
	"testing"
)

// fuzzLimits keep each fuzz run cheap: a header may claim up to 1 megapixel, so a mutated
// size field makes the decoder allocate a few MB, not the 160 MB the real limits allow. The
// limit check itself is the same code.
var fuzzLimits = limits{side: 4096, pixels: 1 << 20, bytes: MaxFileBytes}

// FuzzDecode feeds arbitrary bytes to the decoder and, when they decode, the image to the
// whole Prepare chain. It checks that nothing panics, that every error is an *Error naming
// the file with a kind, and that an accepted image is non-empty, within the limits, and
// comes out as segments of the asked height and at most the asked width.
func FuzzDecode(f *testing.F) {
	for _, img := range seedImages(f) {
		for _, data := range encodings(f, img) {
			f.Add(data)
			for _, cut := range []int{1, 2, 8, 16, 33, len(data) / 2, len(data) - 1} {
				if cut < len(data) {
					f.Add(data[:cut])
				}
			}
			for _, at := range []int{12, 20, 30, len(data) / 3, len(data) / 2} {
				if at < len(data) {
					bad := bytes.Clone(data)
					bad[at] ^= 0x5a
					f.Add(bad)
				}
			}
		}
	}
	f.Add(pngHeader(100000, 100000))
	f.Add(pngHeader(0, 0))
	f.Add(pngHeader(1, 1))
	f.Add([]byte("hello"))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := decode(bytes.NewReader(data), "fuzz.bin", fuzzLimits)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.File != "fuzz.bin" || e.Kind == nil || !strings.HasPrefix(err.Error(), "fuzz.bin: ") {
				t.Fatalf("error %q (%T) does not name the file and a kind", err, err)
			}
			return
		}
		b := img.Bounds()
		if b.Empty() || b.Dx() > fuzzLimits.side || b.Dy() > fuzzLimits.side || int64(b.Dx())*int64(b.Dy()) > fuzzLimits.pixels {
			t.Fatalf("accepted a %v image", b)
		}
		lines, err := Prepare(img, 16, 64)
		if err != nil {
			t.Fatalf("prepare: %v", err)
		}
		for _, l := range lines {
			for _, s := range l.Segments {
				if s.Width < 1 || s.Width > 64 || len(s.Pix) != 16*s.Width || !s.Box.In(b) || s.Box.Empty() {
					t.Fatalf("bad segment: width %d, %d values, box %v in %v", s.Width, len(s.Pix), s.Box, b)
				}
			}
		}
	})
}

// seedImages are small pictures of the pixel types decoders produce and encoders take
// (colour, grey, 16-bit, palette, alpha), so that the seeds cover the formats' variants.
func seedImages(t testing.TB) []image.Image {
	line := textLine(t)
	gray := Gray(line)
	gray16 := image.NewGray16(gray.Rect)
	nrgba := image.NewNRGBA(gray.Rect)
	pal := image.NewPaletted(gray.Rect, color.Palette{color.Transparent, color.Black, color.White, color.NRGBA{200, 30, 30, 255}})
	for y := gray.Rect.Min.Y; y < gray.Rect.Max.Y; y++ {
		for x := gray.Rect.Min.X; x < gray.Rect.Max.X; x++ {
			v := gray.GrayAt(x, y).Y
			gray16.SetGray16(x, y, color.Gray16{uint16(v) * 257})
			nrgba.SetNRGBA(x, y, color.NRGBA{0, 0, 0, 255 - v}) // ink as opacity
			pal.SetColorIndex(x, y, uint8(int(v)*3/256))
		}
	}
	return []image.Image{sample(), line, gray, gray16, nrgba, pal}
}

// textLine is a small rendered line of text, as an RGBA image.
func textLine(t testing.TB) image.Image {
	p := textPage(t, []string{"Fuzz me, gently."}, 14, 0, 3, 2, 110, 20)
	out := image.NewRGBA(p.img.Rect)
	draw.Draw(out, out.Rect, p.img, image.Point{}, draw.Src)
	return out
}

// turnedInk caches the ink maps FuzzLineStrips cuts from, by angle in tenths of a degree.
var turnedInk sync.Map

// FuzzLineStrips cuts lines out of the ink map of a turned line of text (its Rect moved off the
// origin) with boxes the fuzzer picks, so that deskewing and cutting see every slope and boxes
// at the edges, past them, one pixel tall or empty: segments stay the asked height, at most the
// asked width, with finite values in [0,1]; never a panic.
func FuzzLineStrips(f *testing.F) {
	for _, deg := range []int8{-25, -12, 0, 7, 20, 30} {
		f.Add(deg, int16(20), int16(30), int16(880), int16(110), int16(5), int16(-7), uint8(32), uint16(320))
	}
	f.Add(int8(15), int16(0), int16(0), int16(900), int16(1), int16(0), int16(0), uint8(0), uint16(0))
	f.Add(int8(-20), int16(-50), int16(-50), int16(2000), int16(400), int16(-3), int16(9), uint8(7), uint16(13))
	f.Fuzz(func(t *testing.T, deg int8, x0, y0, x1, y1, ox, oy int16, height uint8, maxWidth uint16) {
		v, ok := turnedInk.Load(deg)
		if !ok {
			v, _ = turnedInk.LoadOrStore(deg, Normalize(rotated(t, "The quick brown fox jumps over the lazy dog", 20, float64(deg)/10)))
		}
		src := v.(*Ink)
		shift := image.Pt(int(ox), int(oy))
		k := &Ink{Rect: src.Rect.Add(shift), Pix: src.Pix}
		box := image.Rect(int(x0), int(y0), int(x1), int(y1)).Add(shift)
		h, mw := int(height), int(maxWidth)
		if h == 0 {
			h = DefaultHeight
		}
		if mw == 0 {
			mw = DefaultMaxWidth
		}
		for i, s := range LineStrips(k, box, int(height), int(maxWidth)) {
			if s.Width < 1 || s.Width > mw || len(s.Pix) != h*s.Width {
				t.Fatalf("segment %d: width %d (max %d), %d values for height %d", i, s.Width, mw, len(s.Pix), h)
			}
			for _, p := range s.Pix {
				if !(p >= 0 && p <= 1) {
					t.Fatalf("segment %d holds %v", i, p)
				}
			}
		}
	})
}
