package ocrdata

import (
	"bytes"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
)

// The named conditions. Each is drawn with a random intensity in the range
// its comment gives.
const (
	// Clean is a born-digital render: antialiased, white or slightly grey
	// paper, near-black ink.
	Clean = "clean"
	// Noise adds gaussian noise, sigma 5–60 grey levels (of 255), at most
	// 0.35 times the ink contrast.
	Noise = "noise"
	// Blur applies a gaussian blur, sigma 0.5–1.5 px.
	Blur = "blur"
	// LowContrast puts ink within 40–90 grey levels of grey or tinted paper
	// (converted to grey), with an uneven illumination gradient.
	LowContrast = "low_contrast"
	// JPEG round-trips the image through JPEG at quality 10–40.
	JPEG = "jpeg"
	// LowRes downscales by 2–3× (area filter) and scales back up
	// (bilinear, or nearest-neighbour a third of the time). The factor is
	// capped so the capital height stays at least about 4.5 px (2× for the
	// smallest text).
	LowRes = "lowres"
	// Rotate turns the line by up to ±2° and, half the time, shears it
	// horizontally by up to ±0.08 (about ±4.6° of slant).
	Rotate = "rotate"
	// Inverted draws light text on dark paper.
	Inverted = "inverted"
	// Mixed combines two or three of the other non-clean conditions, each
	// at up to 60 % of its own intensity range (rotation keeps its full
	// range).
	Mixed = "mixed"
)

// conditions is the fixed order of Conditions.
var conditions = []string{Clean, Noise, Blur, LowContrast, JPEG, LowRes, Rotate, Inverted, Mixed}

// mixable are the conditions Mixed draws from, in the order the pipeline
// applies them.
var mixable = []string{Rotate, Inverted, LowContrast, Blur, LowRes, Noise, JPEG}

// mixedStrength scales the intensities of Mixed's parts, so that two or
// three effects together stay legible.
const mixedStrength = 0.6

// Conditions returns every condition name, Clean first and Mixed last.
func Conditions() []string { return slices.Clone(conditions) }

// params are the drawn settings of one render. Zero values mean "off".
type params struct {
	effects     []string // names in pipeline order, for Detail
	notes       []string // intensities, parallel to effects
	paper, ink  float32  // grey levels
	tilt        float64  // illumination change across the line, grey levels
	rotate      float64  // degrees
	shear       float64
	lowContrast bool
	inverted    bool
	blur        float64 // sigma, px
	lowres      float64 // downscale factor
	nearest     bool    // nearest-neighbour upscale after lowres
	noise       float64 // sigma, grey levels
	jpeg        int     // quality
	weight      float64 // coverage exponent: >1 thinner strokes, <1 heavier
	stretch     float64 // horizontal glyph scale (Options.Stretch); 1: none
}

// drawParams draws the settings of cond for a line of capital height
// capPx pixels: paper and ink levels, then each effect's intensity.
func drawParams(rng *rand.Rand, cond string, capPx float64) (params, error) {
	p := params{weight: 1, stretch: 1}
	var parts []string
	strength := 1.0
	switch cond {
	case Clean:
	case Mixed:
		k := 2 + rng.IntN(2)
		perm := rng.Perm(len(mixable))[:k]
		slices.Sort(perm) // pipeline order, and a stable Detail
		for _, i := range perm {
			parts = append(parts, mixable[i])
		}
		strength = mixedStrength
	default:
		if !slices.Contains(mixable, cond) {
			return p, fmt.Errorf("unknown condition %q (want one of %s)", cond, strings.Join(conditions, ", "))
		}
		parts = []string{cond}
	}
	if cond != Clean && rng.IntN(10) < 3 { // worn or heavy ink
		p.weight = math.Exp(0.45 * (2*rng.Float64() - 1))
	}
	p.lowContrast = slices.Contains(parts, LowContrast)
	p.inverted = slices.Contains(parts, Inverted)
	p.levels(rng)
	contrast := math.Abs(float64(p.paper - p.ink))
	for _, c := range parts {
		t := strength * rng.Float64() // intensity, 0..1
		var note string
		switch c {
		case Noise:
			// Noise beyond about a third of the contrast hides small text.
			p.noise = min(5+55*t, 0.35*contrast)
			note = fmt.Sprintf("sigma=%.0f", p.noise)
		case Blur:
			p.blur = 0.5 + t
			note = fmt.Sprintf("sigma=%.2f", p.blur)
		case LowContrast:
			note = fmt.Sprintf("paper=%.0f ink=%.0f", p.paper, p.ink)
		case JPEG:
			p.jpeg = 40 - int(math.Round(30*t))
			note = fmt.Sprintf("q=%d", p.jpeg)
		case LowRes:
			// At most 3x, and small text keeps a capital height of about
			// 4.5 px at low resolution: below that nobody can read it.
			p.lowres = 2 + t*min(1, max(0, capPx/4.5-2))
			p.nearest = rng.IntN(3) == 0
			note = fmt.Sprintf("%.2fx", p.lowres)
			if p.nearest {
				note += " nearest"
			}
		case Rotate:
			p.rotate = 4*t/strength - 2 // geometry keeps its full range
			if rng.IntN(2) == 0 {
				p.shear = 0.16*rng.Float64() - 0.08
			}
			note = fmt.Sprintf("%.2fdeg shear=%.3f", p.rotate, p.shear)
		case Inverted:
		}
		p.effects = append(p.effects, c)
		p.notes = append(p.notes, note)
	}
	return p, nil
}

// detail formats the effects for Line.Detail.
func (p *params) detail() string {
	if len(p.effects) == 0 {
		return Clean
	}
	out := make([]string, len(p.effects))
	for i, e := range p.effects {
		out[i] = strings.TrimSpace(e + " " + p.notes[i])
	}
	s := strings.Join(out, " + ")
	if p.weight != 1 {
		s += fmt.Sprintf(" (stroke gamma %.2f)", p.weight)
	}
	return s
}

// apply turns coverage (h rows of w, 0..1) into the degraded grey image:
// paper and ink levels, blur, low resolution, noise. JPEG comes after, on
// the 8-bit image.
func (p *params) apply(rng *rand.Rand, cov []float32, w, h int) *image.Gray {
	paper, ink, tilt := p.paper, p.ink, p.tilt
	buf := make([]float32, len(cov))
	for y := range h {
		for x := range w {
			// tilt: linear illumination change across the line, in levels
			l := float32(tilt * (float64(x)/float64(max(1, w-1)) - 0.5))
			buf[y*w+x] = paper + l + (ink-paper)*cov[y*w+x]
		}
	}
	if p.blur > 0 {
		gaussBlur(buf, w, h, p.blur)
	}
	if p.lowres > 0 {
		sw, sh := max(1, int(math.Round(float64(w)/p.lowres))), max(1, int(math.Round(float64(h)/p.lowres)))
		small := resize(buf, w, h, sw, sh, false)
		buf = resize(small, sw, sh, w, h, p.nearest)
	}
	if p.noise > 0 {
		s := float32(p.noise)
		for i := range buf {
			buf[i] += s * float32(rng.NormFloat64())
		}
	}
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i, v := range buf {
		img.Pix[i] = uint8(min(255, max(0, v+0.5)))
	}
	return img
}

// levels draws the paper and ink grey levels and the illumination tilt.
func (p *params) levels(rng *rand.Rand) {
	switch {
	case p.lowContrast:
		// Tinted paper and coloured ink seen through luma: mixing is linear
		// per channel, so the grey result is the mix of the two lumas.
		var tint [3]float64
		base := 150 + 100*rng.Float64()
		for i := range tint {
			tint[i] = min(255, max(0, base+30*(rng.Float64()-0.5)))
		}
		pl := 0.299*tint[0] + 0.587*tint[1] + 0.114*tint[2]
		d := 40 + 50*rng.Float64()
		if p.inverted {
			pl = 20 + 80*rng.Float64()
			d = -d
		}
		p.paper, p.ink = float32(pl), float32(pl-d)
		p.tilt = 24 * (rng.Float64() - 0.5)
	case p.inverted:
		p.paper, p.ink = float32(rng.IntN(70)), float32(185+rng.IntN(71))
	default:
		p.paper = 255
		if rng.IntN(2) == 0 {
			p.paper = float32(215 + rng.IntN(40))
		}
		p.ink = float32(rng.IntN(20))
		if rng.IntN(4) == 0 {
			p.ink = float32(20 + rng.IntN(45))
		}
	}
}

// gaussBlur blurs buf (h rows of w) in place with a separable gaussian of
// the given sigma in pixels; edges repeat the border pixel.
func gaussBlur(buf []float32, w, h int, sigma float64) {
	r := int(math.Ceil(3 * sigma))
	k := make([]float32, 2*r+1)
	var sum float32
	for i := range k {
		d := float64(i - r)
		k[i] = float32(math.Exp(-d * d / (2 * sigma * sigma)))
		sum += k[i]
	}
	for i := range k {
		k[i] /= sum
	}
	tmp := make([]float32, len(buf))
	for y := range h {
		row := buf[y*w : (y+1)*w]
		out := tmp[y*w : (y+1)*w]
		for x := range w {
			var s float32
			for i, kv := range k {
				s += kv * row[min(w-1, max(0, x+i-r))]
			}
			out[x] = s
		}
	}
	for x := range w {
		for y := range h {
			var s float32
			for i, kv := range k {
				s += kv * tmp[min(h-1, max(0, y+i-r))*w+x]
			}
			buf[y*w+x] = s
		}
	}
}

// taps are the filter weights of one output sample.
type taps struct {
	first int
	w     []float32
}

// filterTaps maps n source samples to m output samples. Shrinking uses a
// tent filter as wide as the scale (area-like averaging); enlarging is
// linear interpolation, or nearest-neighbour when nearest is set.
func filterTaps(n, m int, nearest bool) []taps {
	out := make([]taps, m)
	scale := float64(n) / float64(m)
	support := max(1, scale)
	for i := range out {
		c := (float64(i)+0.5)*scale - 0.5 // source coordinate of the centre
		if nearest {
			j := min(n-1, max(0, int(math.Floor(c+0.5))))
			out[i] = taps{first: j, w: []float32{1}}
			continue
		}
		lo := int(math.Ceil(c - support))
		hi := int(math.Floor(c + support))
		lo, hi = max(0, lo), min(n-1, hi)
		t := taps{first: lo, w: make([]float32, hi-lo+1)}
		var sum float32
		for j := lo; j <= hi; j++ {
			v := float32(1 - math.Abs(float64(j)-c)/support)
			if v < 0 {
				v = 0
			}
			t.w[j-lo] = v
			sum += v
		}
		if sum == 0 { // centre beyond the edge: take the nearest sample
			j := min(n-1, max(0, int(math.Round(c))))
			t = taps{first: j, w: []float32{1}}
			sum = 1
		}
		for j := range t.w {
			t.w[j] /= sum
		}
		out[i] = t
	}
	return out
}

// resize scales src (sh rows of sw) to dh rows of dw, separably.
func resize(src []float32, sw, sh, dw, dh int, nearest bool) []float32 {
	tx, ty := filterTaps(sw, dw, nearest), filterTaps(sh, dh, nearest)
	mid := make([]float32, dw*sh)
	for y := range sh {
		row := src[y*sw : (y+1)*sw]
		for x, t := range tx {
			var s float32
			for j, v := range t.w {
				s += v * row[t.first+j]
			}
			mid[y*dw+x] = s
		}
	}
	out := make([]float32, dw*dh)
	for y, t := range ty {
		o := out[y*dw : (y+1)*dw]
		for j, v := range t.w {
			r := mid[(t.first+j)*dw : (t.first+j+1)*dw]
			for x := range o {
				o[x] += v * r[x]
			}
		}
	}
	return out
}

// jpegRoundTrip encodes img as a greyscale JPEG at quality q and decodes it.
func jpegRoundTrip(img *image.Gray, q int) (*image.Gray, error) {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: q}); err != nil {
		return nil, fmt.Errorf("jpeg encode at quality %d: %w", q, err)
	}
	dec, err := jpeg.Decode(&b)
	if err != nil {
		return nil, fmt.Errorf("jpeg decode: %w", err)
	}
	if g, ok := dec.(*image.Gray); ok && g.Rect == img.Rect && g.Stride == g.Rect.Dx() {
		g.Pix = g.Pix[:g.Stride*g.Rect.Dy()] // the decoder pads to whole 8×8 blocks
		return g, nil
	}
	g := image.NewGray(img.Rect)
	draw.Draw(g, g.Rect, dec, dec.Bounds().Min, draw.Src)
	return g, nil
}
