package ocrimage

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
	"golang.org/x/image/tiff"
)

var (
	fontOnce sync.Once
	fontSrc  *opentype.Font
	fontErr  error
)

// face is Go Regular at size pixels per em.
func face(t testing.TB, size float64) font.Face {
	t.Helper()
	fontOnce.Do(func() { fontSrc, fontErr = opentype.Parse(goregular.TTF) })
	if fontErr != nil {
		t.Fatalf("parse Go Regular: %v", fontErr)
	}
	f, err := opentype.NewFace(fontSrc, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		t.Fatalf("face of size %v: %v", size, err)
	}
	return f
}

// page is a synthetic test picture with the true ink box of each of its lines.
type page struct {
	img   *image.Gray
	lines []image.Rectangle // ink bounding box of each line, top to bottom
	alone []*image.Gray     // each line drawn alone on a canvas of img's size
}

// textPage renders lines of text black on white at size px/em, the baselines pitch pixels
// apart, with the given left and top margins, on a w×h canvas. The truth boxes come from
// rendering each line alone.
func textPage(t testing.TB, text []string, size, pitch float64, left, top, w, h int) page {
	t.Helper()
	f := face(t, size)
	defer f.Close()
	img := image.NewGray(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Rect, image.White, image.Point{}, draw.Src)
	ascent := f.Metrics().Ascent.Ceil()
	var boxes []image.Rectangle
	var alones []*image.Gray
	for i, s := range text {
		alone := image.NewGray(img.Rect)
		draw.Draw(alone, alone.Rect, image.White, image.Point{}, draw.Src)
		base := fixed.P(left, top+ascent+int(math.Round(float64(i)*pitch)))
		for _, dst := range []*image.Gray{img, alone} {
			d := &font.Drawer{Dst: dst, Src: image.Black, Face: f, Dot: base}
			d.DrawString(s)
		}
		boxes = append(boxes, inkBox(alone, 128))
		alones = append(alones, alone)
	}
	return page{img, boxes, alones}
}

// inkBox is the bounding box of the pixels of g darker than thresh.
func inkBox(g *image.Gray, thresh uint8) image.Rectangle {
	var r image.Rectangle
	for y := g.Rect.Min.Y; y < g.Rect.Max.Y; y++ {
		for x := g.Rect.Min.X; x < g.Rect.Max.X; x++ {
			if g.GrayAt(x, y).Y < thresh {
				r = r.Union(image.Rect(x, y, x+1, y+1))
			}
		}
	}
	return r
}

func iou(a, b image.Rectangle) float64 {
	in := a.Intersect(b)
	if in.Empty() {
		return 0
	}
	ai, bi, ii := a.Dx()*a.Dy(), b.Dx()*b.Dy(), in.Dx()*in.Dy()
	return float64(ii) / float64(ai+bi-ii)
}

// remap applies f to every grey level of g (in place) and returns g.
func remap(g *image.Gray, f func(v float64) float64) *image.Gray {
	for i, v := range g.Pix {
		g.Pix[i] = clamp8(f(float64(v)))
	}
	return g
}

func clamp8(v float64) uint8 { return uint8(math.Round(min(max(v, 0), 255))) }

// noisy adds Gaussian noise of standard deviation sigma grey levels.
func noisy(g *image.Gray, sigma float64, seed uint64) *image.Gray {
	rng := rand.New(rand.NewPCG(seed, 1))
	return remap(g, func(v float64) float64 { return v + sigma*rng.NormFloat64() })
}

// lowContrast maps black..white to paper-levels..paper.
func lowContrast(g *image.Gray, paper, levels float64) *image.Gray {
	return remap(g, func(v float64) float64 { return paper - levels*(255-v)/255 })
}

// inverted swaps black and white.
func inverted(g *image.Gray) *image.Gray { return remap(g, func(v float64) float64 { return 255 - v }) }

// tinted paints g's paper in colour paper and its ink in colour ink (an RGBA image).
func tinted(g *image.Gray, paper, ink color.RGBA) *image.RGBA {
	out := image.NewRGBA(g.Rect)
	for y := g.Rect.Min.Y; y < g.Rect.Max.Y; y++ {
		for x := g.Rect.Min.X; x < g.Rect.Max.X; x++ {
			a := float64(g.GrayAt(x, y).Y) / 255 // 1 = paper
			mix := func(p, i uint8) uint8 { return clamp8(a*float64(p) + (1-a)*float64(i)) }
			out.SetRGBA(x, y, color.RGBA{mix(paper.R, ink.R), mix(paper.G, ink.G), mix(paper.B, ink.B), 255})
		}
	}
	return out
}

// jpegged round-trips img through JPEG at quality q.
func jpegged(t testing.TB, img image.Image, q int) image.Image {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	out, err := jpeg.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sample is a small picture with some ink, used to make a valid file of every format.
func sample() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, 24, 10))
	draw.Draw(img, img.Rect, image.White, image.Point{}, draw.Src)
	draw.Draw(img, image.Rect(3, 2, 9, 8), image.Black, image.Point{}, draw.Src)
	draw.Draw(img, image.Rect(13, 2, 21, 8), image.Black, image.Point{}, draw.Src)
	return img
}

// encodings returns img as a file of every format the package reads, by format name.
func encodings(t testing.TB, img image.Image) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	enc := map[string]func(*bytes.Buffer) error{
		"PNG":  func(b *bytes.Buffer) error { return png.Encode(b, img) },
		"JPEG": func(b *bytes.Buffer) error { return jpeg.Encode(b, img, &jpeg.Options{Quality: 90}) },
		"GIF":  func(b *bytes.Buffer) error { return gif.Encode(b, img, nil) },
		"BMP":  func(b *bytes.Buffer) error { return bmp.Encode(b, img) },
		"TIFF": func(b *bytes.Buffer) error { return tiff.Encode(b, img, &tiff.Options{Compression: tiff.Deflate}) },
	}
	for name, f := range enc {
		var b bytes.Buffer
		if err := f(&b); err != nil {
			t.Fatalf("encode %s: %v", name, err)
		}
		out[name] = b.Bytes()
	}
	out["WebP"] = webpLossless(img)
	return out
}

// bitWriter packs bits least-significant first, as VP8L reads them.
type bitWriter struct {
	buf   []byte
	acc   uint64
	nBits uint
}

func (w *bitWriter) write(v uint64, n uint) {
	w.acc |= v << w.nBits
	w.nBits += n
	for w.nBits >= 8 {
		w.buf = append(w.buf, byte(w.acc))
		w.acc >>= 8
		w.nBits -= 8
	}
}

func (w *bitWriter) bytes() []byte {
	if w.nBits > 0 {
		w.buf = append(w.buf, byte(w.acc))
		w.acc, w.nBits = 0, 0
	}
	return w.buf
}

// webpLossless encodes img as a lossless WebP (VP8L) whose pixels are black or white (grey
// below 128 is black), with "simple" prefix codes: one bit a channel for green, red and blue,
// none for alpha and distance. x/image has no WebP encoder; this is the smallest one that
// makes real test files.
func webpLossless(img image.Image) []byte {
	b := img.Bounds()
	w := &bitWriter{}
	w.write(0x2f, 8)
	w.write(uint64(b.Dx()-1), 14)
	w.write(uint64(b.Dy()-1), 14)
	w.write(0, 1)   // alpha unused
	w.write(0, 3)   // version
	w.write(0, 1)   // no transform
	w.write(0, 1)   // no colour cache
	w.write(0, 1)   // no meta prefix codes
	two := func() { // simple code, 2 symbols, 8-bit: 0 and 255 (code 0 → 0, code 1 → 255)
		w.write(1, 1)
		w.write(1, 1)
		w.write(1, 1)
		w.write(0, 8)
		w.write(255, 8)
	}
	one := func(sym uint64) { // simple code, 1 symbol, 8-bit
		w.write(1, 1)
		w.write(0, 1)
		w.write(1, 1)
		w.write(sym, 8)
	}
	two()    // green
	two()    // red
	two()    // blue
	one(255) // alpha
	one(0)   // distance
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			bit := uint64(0)
			if color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y >= 128 {
				bit = 1
			}
			w.write(bit, 1) // green
			w.write(bit, 1) // red
			w.write(bit, 1) // blue
		}
	}
	data := w.bytes()
	chunk := append([]byte("VP8L"), binary.LittleEndian.AppendUint32(nil, uint32(len(data)))...)
	chunk = append(chunk, data...)
	if len(data)%2 == 1 {
		chunk = append(chunk, 0)
	}
	file := append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(4+len(chunk)))...)
	file = append(file, "WEBP"...)
	return append(file, chunk...)
}

// pngHeader is a PNG signature and IHDR chunk (8-bit grey) claiming w×h, with no image data.
func pngHeader(w, h uint32) []byte {
	var ihdr []byte
	ihdr = binary.BigEndian.AppendUint32(ihdr, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 0, 0, 0, 0) // depth 8, grey, deflate, filter 0, no interlace
	out := []byte("\x89PNG\r\n\x1a\n")
	out = binary.BigEndian.AppendUint32(out, uint32(len(ihdr)))
	typed := append([]byte("IHDR"), ihdr...)
	out = append(out, typed...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(typed))
}
