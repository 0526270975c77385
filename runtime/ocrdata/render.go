package ocrdata

import (
	"errors"
	"fmt"
	"image"
	"image/draw"
	"math"
	"math/rand/v2"
	"strings"
	"sync"

	"golang.org/x/image/font/sfnt"
	"golang.org/x/image/vector"
)

// Line is one rendered, degraded text line.
type Line struct {
	// Image is the line crop, 8-bit grey, at its natural size: the height
	// follows the font size and margins, the width the text (no scaling to
	// a fixed height). Image.Bounds().Min is (0, 0).
	Image *image.Gray
	// Text is the ground truth: printable ASCII, exactly what was drawn.
	Text string
	// Font is the face's "Family Style", e.g. "Lato Bold Italic".
	Font string
	// Condition is the named condition (one of Conditions()).
	Condition string
	// Detail lists the effects and their drawn intensities, e.g.
	// "blur sigma=0.83 + jpeg q=17"; "clean" for a clean line.
	Detail string
	// CapHeight is the rendered height of a capital 'H' in pixels.
	CapHeight float64
	// CharX holds, per byte of Text, the x (in Image pixels) of the middle of that character's
	// advance at half the cap height, after rotation and shear: where a reader would point at
	// it. Degradations do not move pixels, so it holds for every condition. Training can use it
	// to tell which image columns show which character.
	CharX []float64
}

// MinCapHeight and MaxCapHeight bound the size Render accepts, in pixels of
// capital-letter height.
const (
	MinCapHeight = 4
	MaxCapHeight = 200
)

// inkThreshold is the coverage (of 255) from which a pixel counts as ink
// when the crop is fitted to the text.
const inkThreshold = 32

// geometry is how a line is laid out: size, spacing and the affine
// distortion of the rotate condition.
type geometry struct {
	capPx      float64 // height of 'H' in pixels
	tracking   float64 // pixels added after every character
	spaceScale float64 // multiplier of the space advance (justified text)
	rotate     float64 // degrees, positive clockwise on screen
	shear      float64 // horizontal shear: x += shear * height above baseline
	stretch    float64 // horizontal scale of the glyphs and advances (1: the font as drawn)
}

// raster is one line's coverage mask.
type raster struct {
	mask *image.Alpha    // coverage, 0..255
	ink  image.Rectangle // pixels with coverage >= inkThreshold
	box  image.Rectangle // the font's ascent..descent box around the line
	// centers holds, per byte of the text, the x of the middle of its advance at half the cap
	// height, in mask pixels (after rotation and shear).
	centers []float64
}

var (
	rasterizers = sync.Pool{New: func() any { return vector.NewRasterizer(0, 0) }}
	sfntBuffers = sync.Pool{New: func() any { return new(sfnt.Buffer) }}
)

// rasterLine lays text out with face under g and rasterises it; fx, fy in
// [0, 1) shift it by a fraction of a pixel so antialiasing varies.
func rasterLine(face *Face, text string, g geometry, fx, fy float64) (raster, error) {
	if text == "" {
		return raster{}, errors.New("empty text")
	}
	for i := 0; i < len(text); i++ {
		if c := text[i]; c < firstASCII || c > lastASCII {
			return raster{}, fmt.Errorf("text %q: byte %#x at %d is not printable ASCII", text, c, i)
		}
	}
	scale := float32(g.capPx) / face.capHeight // pixels per font unit
	sin, cos := math.Sincos(g.rotate * math.Pi / 180)
	m00, m01 := float32(cos*g.stretch), float32(-cos*g.shear-sin)
	m10, m11 := float32(sin*g.stretch), float32(-sin*g.shear+cos)
	xf := func(x, y float32) (float32, float32) { return m00*x + m01*y, m10*x + m11*y }

	buf := sfntBuffers.Get().(*sfnt.Buffer)
	pens := make([]float32, len(text))
	mids := make([]float32, len(text)) // middle of each advance, font x in pixels
	var pen float32
	for i := 0; i < len(text); i++ {
		if i > 0 {
			pen += face.kern(buf, text[i-1], text[i]) * scale
		}
		pens[i] = pen
		adv := face.glyphs[text[i]-firstASCII].advance * scale
		if text[i] == ' ' {
			adv *= float32(g.spaceScale)
		}
		mids[i] = pen + adv/2
		pen += adv + float32(g.tracking)
	}
	sfntBuffers.Put(buf)

	// Bounds of the transformed control points: the canvas.
	minX, minY, maxX, maxY := float32(math.Inf(1)), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.Inf(-1))
	grow := func(x, y float32) {
		minX, maxX = min(minX, x), max(maxX, x)
		minY, maxY = min(minY, y), max(maxY, y)
	}
	inked := false
	for i := 0; i < len(text); i++ {
		gl := &face.glyphs[text[i]-firstASCII]
		if len(gl.segs) == 0 {
			continue
		}
		inked = true
		for _, c := range [4][2]float32{{gl.minX, gl.minY}, {gl.maxX, gl.minY}, {gl.minX, gl.maxY}, {gl.maxX, gl.maxY}} {
			grow(xf(pens[i]+c[0]*scale, c[1]*scale))
		}
	}
	if !inked {
		return raster{}, fmt.Errorf("text %q has no visible characters", text)
	}
	const pad = 2
	ox := pad - float32(math.Floor(float64(minX))) + float32(fx)
	oy := pad - float32(math.Floor(float64(minY))) + float32(fy)
	w := int(math.Ceil(float64(maxX-minX))) + 2*pad + 2
	h := int(math.Ceil(float64(maxY-minY))) + 2*pad + 2

	z := rasterizers.Get().(*vector.Rasterizer)
	defer rasterizers.Put(z)
	z.Reset(w, h)
	z.DrawOp = draw.Src
	for i := 0; i < len(text); i++ {
		gl := &face.glyphs[text[i]-firstASCII]
		p := pens[i]
		pt := func(q [2]float32) (float32, float32) {
			x, y := xf(p+q[0]*scale, q[1]*scale)
			return x + ox, y + oy
		}
		open := false
		for _, s := range gl.segs {
			switch s.op {
			case sfnt.SegmentOpMoveTo:
				if open {
					z.ClosePath()
				}
				z.MoveTo(pt(s.pts[0]))
				open = true
			case sfnt.SegmentOpLineTo:
				z.LineTo(pt(s.pts[0]))
			case sfnt.SegmentOpQuadTo:
				bx, by := pt(s.pts[0])
				cx, cy := pt(s.pts[1])
				z.QuadTo(bx, by, cx, cy)
			case sfnt.SegmentOpCubeTo:
				bx, by := pt(s.pts[0])
				cx, cy := pt(s.pts[1])
				dx, dy := pt(s.pts[2])
				z.CubeTo(bx, by, cx, cy, dx, dy)
			}
		}
		if open {
			z.ClosePath()
		}
	}
	mask := image.NewAlpha(image.Rect(0, 0, w, h))
	z.Draw(mask, mask.Bounds(), image.Opaque, image.Point{})

	r := raster{mask: mask, ink: inkBounds(mask), centers: make([]float64, len(text))}
	for i, m := range mids {
		x, _ := xf(m, -float32(g.capPx)/2) // half the cap height above the baseline
		r.centers[i] = float64(x + ox)
	}
	if r.ink.Empty() {
		return raster{}, fmt.Errorf("text %q rendered no ink at cap height %.1f px", text, g.capPx)
	}
	// The font's line box, transformed; its bounds.
	asc, desc := -face.ascent*scale, face.descent*scale
	bx0, by0, bx1, by1 := float32(math.Inf(1)), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.Inf(-1))
	for _, c := range [4][2]float32{{0, asc}, {pen, asc}, {0, desc}, {pen, desc}} {
		x, y := xf(c[0], c[1])
		bx0, bx1 = min(bx0, x+ox), max(bx1, x+ox)
		by0, by1 = min(by0, y+oy), max(by1, y+oy)
	}
	r.box = image.Rect(int(math.Floor(float64(bx0))), int(math.Floor(float64(by0))),
		int(math.Ceil(float64(bx1))), int(math.Ceil(float64(by1))))
	return r, nil
}

// inkBounds returns the smallest rectangle holding every pixel of m with
// coverage >= inkThreshold.
func inkBounds(m *image.Alpha) image.Rectangle {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	x0, y0, x1, y1 := w, h, -1, -1
	for y := range h {
		row := m.Pix[y*m.Stride : y*m.Stride+w]
		first := -1
		for x, a := range row {
			if a >= inkThreshold {
				first = x
				break
			}
		}
		if first < 0 {
			continue
		}
		last := first
		for x := w - 1; x > first; x-- {
			if row[x] >= inkThreshold {
				last = x
				break
			}
		}
		x0, x1 = min(x0, first), max(x1, last)
		y0, y1 = min(y0, y), max(y1, y)
	}
	if x1 < 0 {
		return image.Rectangle{}
	}
	return image.Rect(x0, y0, x1+1, y1+1)
}

// margin draws one crop margin in pixels: tight (0–2 px) about 30 % of the
// time, up to half a cap height half the time, generous (up to
// generous·cap) otherwise.
func margin(rng *rand.Rand, capPx, generous float64) int {
	switch k := rng.IntN(10); {
	case k < 3:
		return rng.IntN(3)
	case k < 8:
		return 2 + rng.IntN(int(0.5*capPx)+1)
	default:
		return int(capPx * (0.5 + generous*rng.Float64()))
	}
}

// sampleLines are the embedded sentences, the text of neighbouring lines.
var sampleLines = strings.Split(strings.TrimSpace(sampleText), "\n")

// fragmentText returns about n characters of English for a neighbouring
// line whose descenders or ascenders show at the edge of a crop.
func fragmentText(rng *rand.Rand, n int) string {
	var b strings.Builder
	for b.Len() < n {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(sampleLines[rng.IntN(len(sampleLines))])
	}
	t := b.String()
	start := rng.IntN(max(1, len(t)-n))
	return strings.TrimSpace(t[start : start+min(n, len(t)-start)])
}

// Render draws text in face at a capital height of size pixels under the
// named condition (one of Conditions()) and returns the degraded crop.
// Margins, letter spacing, the sub-pixel phase, paper and ink levels, the
// condition's intensity and the rare slivers of neighbouring lines are all
// drawn from rng, so the same rng state gives the same image.
//
// text must be printable ASCII with at least one visible character; size
// must lie in [MinCapHeight, MaxCapHeight]. Errors name the problem.
func Render(rng *rand.Rand, text string, face *Face, size float64, cond string) (Line, error) {
	return render(rng, text, face, size, cond, 1)
}

// render is Render with the glyphs scaled horizontally by stretch (1: as the font draws them).
func render(rng *rand.Rand, text string, face *Face, size float64, cond string, stretch float64) (Line, error) {
	if face == nil {
		return Line{}, errors.New("ocrdata.Render: nil face")
	}
	if !(size >= MinCapHeight && size <= MaxCapHeight) {
		return Line{}, fmt.Errorf("ocrdata.Render: cap height %g px outside [%d, %d]", size, MinCapHeight, MaxCapHeight)
	}
	p, err := drawParams(rng, cond, size)
	if err != nil {
		return Line{}, fmt.Errorf("ocrdata.Render: %w", err)
	}
	p.stretch = stretch
	c, err := compose(rng, text, face, size, &p)
	if err != nil {
		return Line{}, fmt.Errorf("ocrdata.Render %s: %w", face.Name(), err)
	}
	cov, w, h := c.cov, c.w, c.h
	if p.weight != 1 { // heavier or lighter strokes: reshape the coverage
		for i, a := range cov {
			if a > 0 {
				cov[i] = float32(math.Pow(float64(a), p.weight))
			}
		}
	}
	img := p.apply(rng, cov, w, h)
	if p.jpeg > 0 {
		if img, err = jpegRoundTrip(img, p.jpeg); err != nil {
			return Line{}, fmt.Errorf("ocrdata.Render: %w", err)
		}
	}
	return Line{Image: img, Text: text, Font: face.Name(), Condition: cond, Detail: p.detail(), CapHeight: size, CharX: c.centers}, nil
}

// addMask merges m into the coverage buffer cov (h rows of w, 0..1), where
// cov's (0, 0) is m's point at; parts outside either are ignored.
func addMask(cov []float32, w, h int, m *image.Alpha, at image.Point) {
	mw, mh := m.Rect.Dx(), m.Rect.Dy()
	for y := range h {
		my := y + at.Y
		if my < 0 || my >= mh {
			continue
		}
		x0, x1 := max(0, -at.X), min(w, mw-at.X)
		row := cov[y*w : (y+1)*w]
		src := m.Pix[my*m.Stride:]
		for x := x0; x < x1; x++ {
			if a := float32(src[x+at.X]) / 255; a > row[x] {
				row[x] = a
			}
		}
	}
}

// composed is a line's ink coverage before paper, ink levels and
// degradation.
type composed struct {
	cov     []float32       // (h, w) row-major coverage, 0..1
	w, h    int             // crop size in pixels
	ink     image.Rectangle // the line's own ink (not its neighbours'), crop coordinates
	centers []float64       // each character's centre x, crop coordinates
}

// compose lays out and rasterises text, fits the crop with random margins
// and adds the occasional slivers of neighbouring lines.
func compose(rng *rand.Rand, text string, face *Face, size float64, p *params) (composed, error) {
	g := geometry{capPx: size, spaceScale: 1, rotate: p.rotate, shear: p.shear, stretch: p.stretch}
	if rng.IntN(5) < 3 {
		g.tracking = -0.5 + 2.5*rng.Float64()
	}
	if rng.IntN(5) == 0 {
		g.spaceScale = 0.8 + rng.Float64()
	}
	main, err := rasterLine(face, text, g, rng.Float64(), rng.Float64())
	if err != nil {
		return composed{}, err
	}

	// The crop: ink bounds, or the font's line box vertically, plus margins.
	ref := main.ink
	// Short punctuation ("--", "...") would give a crop a few pixels high;
	// a line finder would have kept the line's height.
	if rng.IntN(2) == 0 || float64(ref.Dy()) < 0.6*size {
		ref.Min.Y, ref.Max.Y = min(ref.Min.Y, main.box.Min.Y), max(ref.Max.Y, main.box.Max.Y)
	}
	left, right := margin(rng, size, 2), margin(rng, size, 2)
	top, bottom := margin(rng, size, 1), margin(rng, size, 1)
	crop := image.Rect(ref.Min.X-left, ref.Min.Y-top, ref.Max.X+right, ref.Max.Y+bottom)
	w, h := crop.Dx(), crop.Dy()
	cov := make([]float32, w*h)
	addMask(cov, w, h, main.mask, crop.Min)

	// Slivers of the lines above and below, inside the top/bottom margin.
	for _, above := range []bool{true, false} {
		// Rows the neighbour may use: the margin less a gap of leading, so
		// it never touches this line's ink.
		room := top - int(0.2*size)
		if !above {
			room = bottom - int(0.2*size)
		}
		if rng.IntN(100) >= 12 || room < 1 {
			continue
		}
		n := 4 + int(float64(w)/(0.45*size))
		fr, err := rasterLine(face, fragmentText(rng, n), g, rng.Float64(), rng.Float64())
		if err != nil {
			return composed{}, fmt.Errorf("neighbour line: %w", err)
		}
		k := 1 + rng.IntN(min(room, max(1, int(0.3*size)))) // rows of the neighbour that show
		shift := rng.IntN(w/2+1) - w/4
		// origin of the crop in the fragment's mask coordinates
		var at image.Point
		if above {
			at = image.Pt(fr.ink.Min.X-shift, fr.ink.Max.Y-k)
		} else {
			at = image.Pt(fr.ink.Min.X-shift, fr.ink.Min.Y-(h-k))
		}
		addMask(cov, w, h, fr.mask, at)
	}

	centers := make([]float64, len(main.centers))
	for i, x := range main.centers {
		centers[i] = x - float64(crop.Min.X)
	}
	return composed{cov: cov, w: w, h: h, ink: main.ink.Sub(crop.Min), centers: centers}, nil
}
