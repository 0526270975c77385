package ocrimage

import (
	"image"
	"math"
	"slices"
)

// Bounds of Panels.
const (
	panelRows    = 12   // least height, in pixels: a line of small text and a little room
	panelAspect  = 2.0  // least width over height: a bar, a button, a box of code, a card
	panelFill    = 0.65 // least share of its box the panel's colour covers (text leaves holes)
	panelRim     = 2    // pixels along a panel's edges taken as its colour (an outline, antialiasing)
	panelMargin  = 3    // least paper, in pixels, left and right of a line of a panel's text (LocatePage)
	panelSoftRim = 3    // pixels of a panel's soft edge taken as its colour where the edge is not the box's (PanelInk)
	panelSolid   = 0.9  // least ink of a pixel of the panel's full colour (PanelInk)
)

// Panels finds the areas of a page filled with the ink's colour on which text may be drawn in
// the paper's colour: a dark title bar, code box or button on a light page, a white card or a
// light title bar on a dark one, a coloured banner. They are the 4-connected components of
// solid pixels (above 0.5) at least panelRows tall, panelAspect times as wide as tall (a
// button; or a quarter of the page: a sheet of paper photographed on a darker table, a dialog
// on a dimmed backdrop), whose pixels cover at least panelFill of their box, in reading order
// (top to bottom, then left to right). A glyph, however bold, is not as wide as that and full at once;
// a square icon or a tall sidebar is left to SplitPage. The page's lines are found with the
// panels erased (Erase), and each panel's text, paper-coloured holes in it, from its own ink
// (PanelInk). Noise does not make panels: on paragraphs at 10 to 40 px with Gaussian noise
// of σ up to 60 grey levels (the training data's heaviest), no noise or noise-joined strokes
// fill a box as a panel does, so a noisy photograph of a sheet on a table is read from its
// sheet (TestLocatePageReadsANoisyPhotographOfASheet).
func Panels(k *Ink) []image.Rectangle {
	if k == nil || k.Blank || k.Rect.Empty() || len(k.Pix) < k.Rect.Dx()*k.Rect.Dy() {
		return nil
	}
	w, h := k.Rect.Dx(), k.Rect.Dy()
	if h < panelRows {
		return nil
	}
	seen := make([]bool, w*h)
	solid := func(i int) bool { return k.Pix[i] > 0.5 }
	var out []image.Rectangle
	var c component
	for seed := range w * h {
		if seen[seed] || !solid(seed) {
			continue
		}
		c.flood(w, h, seed, seen, solid)
		bw, bh := c.box.Dx(), c.box.Dy()
		wide := float64(bw) >= panelAspect*float64(bh) || 4*bw*bh >= w*h // or a quarter of the page
		if bh >= panelRows && wide && float64(len(c.pixels)) >= panelFill*float64(bw*bh) {
			out = append(out, c.box.Add(k.Rect.Min))
		}
	}
	// Found in the order of their first pixel: top to bottom already; left to right on a tie.
	slices.SortStableFunc(out, func(a, b image.Rectangle) int {
		if a.Min.Y != b.Min.Y {
			return a.Min.Y - b.Min.Y
		}
		return a.Min.X - b.Min.X
	})
	return out
}

// Erase returns a copy of k with areas (boxes of k, as Panels returns) set to paper, or k itself
// when there are none.
func Erase(k *Ink, areas []image.Rectangle) *Ink {
	if len(areas) == 0 {
		return k
	}
	out := *k
	out.Pix = slices.Clone(k.Pix)
	w := k.Rect.Dx()
	for _, a := range areas {
		a = a.Intersect(k.Rect)
		for y := a.Min.Y; y < a.Max.Y; y++ {
			clear(out.Pix[(y-k.Rect.Min.Y)*w+a.Min.X-k.Rect.Min.X:][:a.Dx()])
		}
	}
	return &out
}

// PanelInk is the ink map of panel (a box of k, as Panels returns) with its own paper and
// ink: k's values there turned back into grey levels (ink black; what lies around the panel
// in its box, thin regions reached from the box's edge without crossing it, and a rim of
// panelRim pixels along the box's edges in the panel's colour) and
// given to NormalizePage, so a
// dark panel's light text becomes ink, as a light-on-dark page's does. Rect is panel (clipped
// to k.Rect). It is Blank when the panel holds no text: no ink, or no vertical run of ink
// narrow enough for a stroke (stemRun), as in a flat bar or a photo's shapes.
func PanelInk(k *Ink, panel image.Rectangle) *Ink {
	panel = panel.Intersect(k.Rect)
	if panel.Empty() {
		return &Ink{Blank: true}
	}
	g := image.NewGray(panel)
	kw := k.Rect.Dx()
	pw, ph := panel.Dx(), panel.Dy()
	at := func(x, y int) float32 { return k.Pix[(y+panel.Min.Y-k.Rect.Min.Y)*kw+x+panel.Min.X-k.Rect.Min.X] }
	// What lies around the panel inside its box (the page beside a sheet photographed at a
	// slant, past a card's rounded corners) is reached from the box's edge without crossing
	// the panel; it takes the panel's colour, or its edge would read as a stroke.
	outside := make([]bool, pw*ph)
	seen := make([]bool, pw*ph)
	var seeds []int
	for x := range pw {
		seeds = append(seeds, x, (ph-1)*pw+x)
	}
	for y := range ph {
		seeds = append(seeds, y*pw, y*pw+pw-1)
	}
	// Each region of paper-valued pixels reached from the box's edge is outside when it is
	// thin, at most a tenth of the box's smaller side across (a wedge of table beside a
	// slanted sheet), small, under half the box's width and height (a rounded corner, a
	// pill's end), or hugs the box's edges, none of its pixels farther than that tenth from
	// them (the wedges and rounded corners of a card photographed at a slant, which join into
	// a ring around it). A thick band across the box (a card's title bar of the other
	// polarity, along its top) is part of the panel's content.
	thin := max(panelRim+1, (min(pw, ph)+9)/10)
	paperValued := func(i int) bool { return at(i%pw, i/pw) <= 0.5 }
	var c component
	for _, seed := range seeds {
		if seen[seed] || !paperValued(seed) {
			continue
		}
		c.flood(pw, ph, seed, seen, paperValued)
		if min(c.box.Dx(), c.box.Dy()) <= thin || 2*c.box.Dx() < pw && 2*c.box.Dy() < ph || edgeDepth(c.pixels, pw, ph) <= thin {
			for _, i := range c.pixels {
				outside[i] = true
			}
		}
	}
	softRim(outside, pw, ph, func(i int) float32 { return at(i%pw, i/pw) })
	for y := range ph {
		dst := g.Pix[y*g.Stride:][:pw]
		for x := range dst {
			v := at(x, y)
			if outside[y*pw+x] || min(x, y, pw-1-x, ph-1-y) < panelRim {
				v = 1
			}
			dst[x] = uint8(math.Round(255 * float64(1-min(max(v, 0), 1))))
		}
	}
	pk := NormalizePage(g)
	if !pk.Blank && !hasStrokes(pk) {
		pk.Blank = true
		clear(pk.Pix)
	}
	return pk
}

// hasStrokes says whether k holds a vertical run of solid pixels (> 0.5) at least 3 long and
// narrower than it is tall (by the median width stemRun measures): a small bold word's strokes
// are, a photo's shapes are not.
func hasStrokes(k *Ink) bool {
	w, h := k.Rect.Dx(), k.Rect.Dy()
	for x := 0; x < w; x++ {
		for y := 0; y < h; {
			if k.Pix[y*w+x] <= 0.5 {
				y++
				continue
			}
			y0 := y
			for y < h && k.Pix[y*w+x] > 0.5 {
				y++
			}
			if n := y - y0; n >= 3 && medianWidth(k.Pix, w, x, y0, n, 0.5) < n {
				return true
			}
		}
	}
	return false
}

// Located is a text line of a page and the ink to cut it from (LineStrips): the page's own,
// its panels erased, or a panel's (PanelInk).
type Located struct {
	Box   image.Rectangle // in the page's (k's) pixels
	Ink   *Ink
	Panel image.Rectangle // the panel the line lies on; empty for the page's own lines
}

// LocatePage finds the text lines of a page (k, levelled if it slopes: LevelPage) in reading
// order (ReadingOrder): the page's own, by SplitPage on k with its panels erased (Erase), and
// each panel's, found the same way in its PanelInk (panels nest, maxPanelDepth deep: a button
// on a card on a dimmed backdrop); a dark frame around the page (withoutFrame), vertical
// rules (WithoutVerticalRules) and horizontal rules (Rule) left out. keep, if not
// nil, filters the page's own lines before the panels' are added (the recognizer drops the
// slivers of lines that an image's edge cut through). It also returns the panels.
func LocatePage(k *Ink, keep func(boxes []image.Rectangle) []image.Rectangle) (lines []Located, panels []image.Rectangle) {
	return locate(k, keep, 0)
}

// maxPanelDepth is how deep panels nest: a button on a card on a dimmed backdrop.
const maxPanelDepth = 3

func locate(k *Ink, keep func(boxes []image.Rectangle) []image.Rectangle, depth int) (lines []Located, panels []image.Rectangle) {
	if k == nil || k.Blank {
		return nil, nil
	}
	// A dark frame around the whole page goes first: it is no panel, and it fills every row.
	// Thin vertical rules go (WithoutVerticalRules). A panel that such a rule joins to other
	// ink (a table's dark header row, its column rules running down through the rows below)
	// is found once they are erased; one whose own thin edge they would take (a card's
	// one-pixel side beside its dark title bar) is found before.
	if depth == 0 {
		k = withoutFrame(k)
	}
	ruled := WithoutVerticalRules(k)
	if depth < maxPanelDepth {
		panels = Panels(k)
		if ruled != k {
			for _, p := range Panels(ruled) {
				if !slices.ContainsFunc(panels, p.Overlaps) {
					panels = append(panels, p)
				}
			}
			slices.SortStableFunc(panels, func(a, b image.Rectangle) int {
				if a.Min.Y != b.Min.Y {
					return a.Min.Y - b.Min.Y
				}
				return a.Min.X - b.Min.X
			})
		}
	}
	k = ruled
	// Each panel's lines, from its own ink. A blob of ink is no panel: the letters of a bold
	// or blurred word run together into a solid area as wide as a button, and its "lines" (the
	// gaps between its letters) reach its sides, where a panel's text keeps a margin (in one
	// line at least); it stays in the page and is read there.
	var inners [][]Located
	kept := panels[:0]
	for _, p := range panels {
		var inner []Located
		if pk := PanelInk(k, p); !pk.Blank {
			inner, _ = locate(pk, nil, depth+1) // its own panels: a button on a card
			inside := func(l Located) bool {
				return l.Box.Min.X-p.Min.X >= panelMargin && p.Max.X-l.Box.Max.X >= panelMargin
			}
			if len(inner) > 0 && !slices.ContainsFunc(inner, inside) {
				continue
			}
		}
		kept = append(kept, p)
		inners = append(inners, inner)
	}
	panels = kept
	rest := Erase(k, panels)
	boxes := SplitPage(rest)
	if keep != nil {
		boxes = keep(boxes)
	}
	for _, b := range boxes {
		if !Rule(rest, b) {
			lines = append(lines, Located{Box: b, Ink: rest})
		}
	}
	for i, p := range panels {
		for _, l := range inners[i] {
			if l.Panel.Empty() {
				l.Panel = p
			}
			lines = append(lines, l)
		}
	}
	if len(panels) > 0 {
		boxes := make([]image.Rectangle, len(lines))
		for i, l := range lines {
			boxes[i] = l.Box
		}
		ordered := make([]Located, len(lines))
		for i, j := range ReadingOrder(boxes) {
			ordered[i] = lines[j]
		}
		lines = ordered
	}
	return lines, panels
}

// ReadingOrder is the order to read line boxes in: top to bottom, and lines side by side (rows
// overlapping by half the shorter one's height or more, as buttons in a row) left to right.
func ReadingOrder(boxes []image.Rectangle) []int {
	order := make([]int, len(boxes))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return boxes[a].Min.Y - boxes[b].Min.Y })
	sideBySide := func(a, b image.Rectangle) bool {
		return 2*(min(a.Max.Y, b.Max.Y)-max(a.Min.Y, b.Min.Y)) >= min(a.Dy(), b.Dy())
	}
	for i := 1; i < len(order); i++ {
		for j := i; j > 0; j-- {
			a, b := boxes[order[j-1]], boxes[order[j]]
			if !sideBySide(a, b) || a.Min.X <= b.Min.X {
				break
			}
			order[j-1], order[j] = order[j], order[j-1]
		}
	}
	return order
}

// component is a 4-connected region of a w×h grid, found by flood.
type component struct {
	pixels []int           // its cells, row-major indices
	box    image.Rectangle // their bounding box, in grid cells
	stack  []int           // flood's work list, kept for the next call
}

// flood finds the component of seed among the cells where in holds, skipping and marking
// cells in seen, and keeps it in c (reusing c's slices).
func (c *component) flood(w, h, seed int, seen []bool, in func(i int) bool) {
	c.pixels = c.pixels[:0]
	x0, y0, x1, y1 := w, h, 0, 0
	seen[seed] = true
	c.stack = append(c.stack[:0], seed)
	for len(c.stack) > 0 {
		i := c.stack[len(c.stack)-1]
		c.stack = c.stack[:len(c.stack)-1]
		c.pixels = append(c.pixels, i)
		x, y := i%w, i/w
		x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x+1), max(y1, y+1)
		for _, j := range [4]int{i - 1, i + 1, i - w, i + w} {
			if j < 0 || j >= w*h || j == i-1 && x == 0 || j == i+1 && x == w-1 {
				continue
			}
			if !seen[j] && in(j) {
				seen[j] = true
				c.stack = append(c.stack, j)
			}
		}
	}
	c.box = image.Rect(x0, y0, x1, y1)
}

// softRim grows outside (a w×h mask of what lies around a panel in its box) by up to
// panelSoftRim pixels into its soft edge: pixels not yet of the panel's full colour (v, the
// ink, under panelSolid) that lie between outside and the panel, the ink rising from an
// outside neighbour across them. A blurred or antialiased edge that does not run along the
// box's sides (a card photographed at a slant, a bubble's rounded end) is such a band of
// part-coloured pixels, and in the panel's own ink it would read as a faint line of text; a
// thin line of another colour running in from the edge (a table header's column rule) is not:
// its ink does not rise along it.
func softRim(outside []bool, w, h int, v func(i int) float32) {
	next := slices.Clone(outside)
	for range panelSoftRim {
		changed := false
		for i, o := range outside {
			if o || v(i) >= panelSolid {
				continue
			}
			x, y := i%w, i/w
			// from is an outside neighbour at offset -d; the pixel at +d must be inkier.
			rises := func(ok bool, d int, far bool) bool {
				return ok && outside[i-d] && (!far || v(i+d) > v(i))
			}
			if rises(x > 0, 1, x < w-1) || rises(x < w-1, -1, x > 0) || rises(y > 0, w, y < h-1) || rises(y < h-1, -w, y > 0) {
				next[i], changed = true, true
			}
		}
		if !changed {
			return
		}
		copy(outside, next)
	}
}

// edgeDepth is how far the pixels (row-major indices in a w×h box) reach in from the box's
// edges: the largest distance, in pixels, from one of them to its nearest edge.
func edgeDepth(pixels []int, w, h int) int {
	d := 0
	for _, i := range pixels {
		x, y := i%w, i/w
		d = max(d, min(x, y, w-1-x, h-1-y))
	}
	return d
}

// withoutFrame returns k with its frame erased, or k itself when it has none: a component of
// solid pixels (above 0.5) that touches all four edges of k and covers under panelFill of its
// box, as the dark surround of a page shown in a viewer does, or a dark border around a
// photographed or scanned sheet. Such a ring is not a panel (it is mostly hole), and left in it
// fills every row of the page, which then reads as one line.
func withoutFrame(k *Ink) *Ink {
	w, h := k.Rect.Dx(), k.Rect.Dy()
	if k.Blank || w < 3 || h < 3 || len(k.Pix) < w*h {
		return k
	}
	solid := func(i int) bool { return k.Pix[i] > 0.5 }
	seen := make([]bool, w*h)
	var c component
	var out *Ink
	for i := range w * h {
		if x, y := i%w, i/w; (x > 0 && x < w-1 && y > 0 && y < h-1) || seen[i] || !solid(i) {
			continue
		}
		c.flood(w, h, i, seen, solid)
		// A box of the whole of k is a component on each of its four edges.
		if c.box != image.Rect(0, 0, w, h) || float64(len(c.pixels)) >= panelFill*float64(w*h) {
			continue
		}
		if out == nil {
			o := *k
			o.Pix = slices.Clone(k.Pix)
			out = &o
		}
		for _, j := range c.pixels {
			out.Pix[j] = 0
		}
	}
	if out == nil {
		return k
	}
	return out
}
