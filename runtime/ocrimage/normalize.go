package ocrimage

import (
	"image"
	"math"
)

// Ink is a grey image turned into the model's ink map: Pix holds Rect.Dy() rows of Rect.Dx()
// float32 values, row-major, in [0,1], 1 = ink, 0 = paper. Rect is the source image's bounds
// (not moved to the origin), so the value of source pixel (x, y) is
// Pix[(y−Rect.Min.Y)·Rect.Dx() + (x−Rect.Min.X)], and rectangles found in an Ink are in the
// source image's pixel coordinates.
type Ink struct {
	Rect image.Rectangle
	Pix  []float32

	// Paper and Full are the grey levels (0–255) that became 0 and 1; Inverted says the source
	// was light text on a dark ground (Full > Paper). Blank says no ink was found (the image
	// is flat to within MinContrast grey levels) and Pix is all 0.
	Paper, Full uint8
	Inverted    bool
	Blank       bool
}

// MinContrast is the smallest difference in grey levels (of 255) between paper and ink that
// Normalize treats as text; a flatter image is blank.
const MinContrast = 8

// At is the ink value of source pixel (x, y), 0 outside Rect.
func (k *Ink) At(x, y int) float32 {
	if !(image.Point{x, y}.In(k.Rect)) {
		return 0
	}
	return k.Pix[(y-k.Rect.Min.Y)*k.Rect.Dx()+x-k.Rect.Min.X]
}

// Normalize decides which grey level is paper and which is ink and stretches the contrast
// between them to [0,1]. It measures a grid of at most about 300 000 points, each point's
// level averaged over 3×3 pixels when the page is noisy (the median difference between
// horizontal neighbours above 6 grey levels; averaging leaves noise a third as strong and
// strokes at their level), and:
//
//   - Paper is the mode of the grey-level histogram, with the points of a thin border ring
//     counted four times (borders are mostly paper) and the histogram smoothed so that a noisy
//     page still has one clear peak.
//   - Polarity: the side of the paper level with the larger spread, Σ(v−paper)² over the
//     points on that side, holds the ink. Symmetric noise adds equally to both sides; ink adds
//     to one. A page darker than its text (a dark-mode screenshot, a negative) is inverted.
//   - Contrast: Otsu's threshold, or three deviations of the paper's noise (the root mean
//     square distance on the paper's side of the mode, where there is no ink; NormalizePage
//     differs here) if that is larger, splits the points,
//     by distance from paper, into paper and ink; the 75th percentile of the ink class's own (not averaged) distances maps to 1, so
//     the core of a stroke is 1 even under noise and JPEG ringing while a few outliers cannot
//     stretch the scale, and the paper level maps to 0. Values are clamped to [0,1].
//
// Low contrast (40 grey levels), tinted paper, Gaussian noise (σ 60/255) and JPEG artefacts
// all come out with ink near 1 and paper near 0; noise is kept, not removed. An image whose
// ink is within MinContrast of its paper is Blank. A nil or empty g gives an empty Ink.
func Normalize(g *image.Gray) *Ink { return normalize(g, false) }

// NormalizePage is Normalize for a page, which may hold text of both polarities (a dark title
// bar on a light page; a light card on a dark one): the paper's noise is the smaller of the
// root mean square and the median's estimate of the distances on paper's side (a half-normal's
// median is 0.674 deviations), so that the other polarity's text and bars there do not pass
// for noise and leave no ink. A crop of one line keeps Normalize's (the estimates differ on its
// few paper pixels among degraded strokes).
func NormalizePage(g *image.Gray) *Ink { return normalize(g, true) }

func normalize(g *image.Gray, page bool) *Ink {
	if g == nil || g.Rect.Empty() {
		return &Ink{Blank: true}
	}
	b := g.Rect
	w, h := b.Dx(), b.Dy()
	k := &Ink{Rect: b, Pix: make([]float32, w*h)}

	// Sample a grid of points. On a noisy page (the median difference between horizontal
	// neighbours above 6 grey levels: about σ) each point's level for the statistics below is
	// its 3×3 average, which cuts the noise to a third while strokes keep their level; a clean
	// page uses its own levels, since averaging would wash out the thin strokes of small text.
	step := 1
	for (w/step)*(h/step) > 300_000 {
		step++
	}
	var diffs [256]int
	nd := 0
	for y := step / 2; y < h; y += step {
		row := g.Pix[y*g.Stride:][:w]
		for x := step / 2; x+1 < w; x += step {
			diffs[abs(int(row[x])-int(row[x+1]))]++
			nd++
		}
	}
	c, medDiff := 0, 0
	for d, n := range diffs {
		c += n
		if 2*c > nd {
			medDiff = d
			break
		}
	}
	noisy := medDiff > 6 && min(w, h) >= 12 // a tiny crop is all edges, not noise
	ring := max(1, min(w, h)/16)
	var hist, ringHist [256]int64 // levels of the points (averaged if noisy); of the border ring
	var own, avg []uint8          // each point's own and averaged level, kept only if noisy
	if noisy {
		n := ((h + step - 1) / step) * ((w + step - 1) / step)
		own, avg = make([]uint8, 0, n), make([]uint8, 0, n)
	}
	for y := step / 2; y < h; y += step {
		row := g.Pix[y*g.Stride:][:w]
		inRing := y < ring || y >= h-ring
		if !noisy {
			for x := step / 2; x < w; x += step {
				hist[row[x]]++
			}
			if inRing {
				for x := step / 2; x < w; x += step {
					ringHist[row[x]]++
				}
				continue
			}
			for x := step / 2; x < min(ring, w); x += step {
				ringHist[row[x]]++
			}
			right := max(ring, w-ring) // the first grid point at or after it
			for x := step/2 + max(0, (right-step/2+step-1)/step)*step; x < w; x += step {
				ringHist[row[x]]++
			}
			continue
		}
		y0, y1 := max(0, y-1), min(h, y+2)
		for x := step / 2; x < w; x += step {
			x0, x1 := max(0, x-1), min(w, x+2)
			sum := 0
			for yy := y0; yy < y1; yy++ {
				for _, v := range g.Pix[yy*g.Stride+x0 : yy*g.Stride+x1] {
					sum += int(v)
				}
			}
			n := (y1 - y0) * (x1 - x0)
			a := uint8((sum + n/2) / n)
			own = append(own, row[x])
			avg = append(avg, a)
			hist[a]++
			if inRing || x < ring || x >= w-ring {
				ringHist[a]++
			}
		}
	}
	var weighted [256]int64
	for v := range weighted {
		weighted[v] = hist[v] + 3*ringHist[v]
	}

	// Paper: the mode of the weighted histogram smoothed with a triangle of radius 4.
	const r = 4
	paper, best := 0, int64(-1)
	for v := 0; v < 256; v++ {
		var s int64
		for d := -r; d <= r; d++ {
			if u := v + d; u >= 0 && u < 256 {
				s += weighted[u] * int64(r+1-abs(d))
			}
		}
		if s > best {
			paper, best = v, s
		}
	}

	// Polarity: which side of paper spreads further.
	var dark, light float64
	for v, n := range hist {
		d := float64(v - paper)
		if d < 0 {
			dark += d * d * float64(n)
		} else {
			light += d * d * float64(n)
		}
	}
	k.Inverted = light > dark
	k.Paper = uint8(paper)
	toInk := func(v int) int {
		if k.Inverted {
			return max(0, v-paper)
		}
		return max(0, paper-v)
	}

	// Contrast: Otsu on the distances, the 75th percentile of the ink class's own distances.
	// Otsu alone, with a few percent of ink against a wide noise peak, cuts inside the noise;
	// the threshold is at least three deviations of paper's noise, measured on paper's own
	// side of the mode, where no ink is.
	var dist, inkDist [256]int64
	var spread float64
	var sideN, paperN int64
	var side [256]int64 // distances from paper on paper's own side, paper itself included
	for v, n := range hist {
		dist[toInk(v)] += n
		if d := v - paper; d == 0 || (d > 0) != k.Inverted {
			side[abs(d)] += n
			paperN += n
			if d != 0 {
				spread += float64(d*d) * float64(n)
				sideN += n
			}
		}
	}
	t := otsu(&dist)
	if sideN > 0 {
		// The paper's noise: the root mean square of those distances, or for a page, if
		// less, the median's (NormalizePage).
		sigma := math.Sqrt(spread / float64(sideN))
		c := int64(0)
		for d, n := range side {
			if c += n; page && 2*c >= paperN {
				sigma = min(sigma, float64(d)/0.674)
				break
			}
		}
		t = max(t, int(math.Ceil(3*sigma)))
	}
	var inkN int64
	if noisy {
		for i, v := range avg {
			if toInk(int(v)) > t {
				inkDist[toInk(int(own[i]))]++
				inkN++
			}
		}
	} else {
		for d := t + 1; d < 256; d++ {
			inkDist[d] = dist[d]
			inkN += dist[d]
		}
	}
	full := 0
	if inkN > 0 {
		want, c := (inkN*3+3)/4, int64(0)
		for d, n := range inkDist {
			c += n
			if c >= want {
				full = d
				break
			}
		}
	}
	if full < MinContrast {
		k.Blank = true
		k.Full = k.Paper
		return k
	}
	if k.Inverted {
		k.Full = uint8(min(255, paper+full))
	} else {
		k.Full = uint8(max(0, paper-full))
	}
	var lut [256]float32
	for v := range lut {
		lut[v] = min(1, float32(toInk(v))/float32(full))
	}
	parallel(h, rowChunk(w), func(lo, hi int) {
		for y := lo; y < hi; y++ {
			out := k.Pix[y*w:][:w]
			for x, v := range g.Pix[y*g.Stride:][:w] {
				out[x] = lut[v]
			}
		}
	})
	return k
}

// otsu is Otsu's threshold of a 256-bin histogram: the t that maximises the between-class
// variance of bins ≤ t and bins > t. It returns 0 when every count is in one bin.
func otsu(hist *[256]int64) int {
	var total, sum float64
	for v, n := range hist {
		total += float64(n)
		sum += float64(v) * float64(n)
	}
	var w0, sum0, bestVar float64
	best := 0
	for t := 0; t < 255; t++ {
		w0 += float64(hist[t])
		sum0 += float64(t) * float64(hist[t])
		w1 := total - w0
		if w0 == 0 || w1 == 0 {
			continue
		}
		m0, m1 := sum0/w0, (sum-sum0)/w1
		if v := w0 * w1 * (m0 - m1) * (m0 - m1); v > bestVar {
			bestVar, best = v, t
		}
	}
	return best
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
