package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/moegpu/moegpu/internal/atomicfile"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Layout of the MoE picture.
const (
	moeWidth       = 10 * vg.Inch
	moeRowHeight   = 2.6 * vg.Inch
	moeMaxColumns  = 200  // heatmap columns at most; more steps are averaged together
	moeMaxLinePts  = 1000 // line points at most; more steps are averaged together
	moeRasterWidth = 1200 // heatmap raster width in pixels, scaled to the data area
)

// PlotMoE draws how the router of each MoE layer behaved over a run, from a metrics file whose
// records carry per-layer extras "moe.L.load.E" (expert E's share of layer L's routed slots),
// "moe.L.max_vio" and "moe.L.skip_rate", into one PNG at pngPath, written atomically.
//
// There is one row per MoE layer, in layer order, titled "model.layers.L.mlp". On the left, a
// heatmap of expert load over training: x is the step, y the expert index, and the colour is the
// expert's share relative to the uniform share 1/E on a log2 scale centred on it (white = 1/E,
// red = more, blue = less; the colour bar beside it gives the scale, and shares beyond its ends
// take the end colours). Runs with more than 200 logged steps are averaged into 200 columns. On
// the right, MaxVio and skip rate against step. All layers share one colour scale, so rows
// compare. Non-finite values are left out (a heatmap cell with none left is grey).
//
// It is an error when the file cannot be read, holds no moe.* extras (a dense run: call it only
// for MoE runs), or the PNG cannot be written.
func PlotMoE(metricsPath, pngPath string) error {
	recs, err := ReadJSONL(metricsPath)
	if err != nil {
		return err
	}
	layers := collectMoE(recs)
	if len(layers) == 0 {
		return fmt.Errorf("metrics: %s: no moe.* extras to plot (not an MoE run?)", metricsPath)
	}
	png, err := drawMoE(layers)
	if err != nil {
		return fmt.Errorf("metrics: moe plot: %w", err)
	}
	if err := atomicfile.Write(pngPath, png); err != nil {
		return fmt.Errorf("metrics: write %s: %w", pngPath, err)
	}
	return nil
}

// moeLayer is one MoE layer's series, one entry per record that mentions the layer, in step
// order. Missing or non-finite values are NaN.
type moeLayer struct {
	index   int
	experts int
	steps   []float64
	load    [][]float64 // [record][expert]
	maxVio  []float64
	skip    []float64
}

// collectMoE gathers the moe.L.* extras of the records by layer, in layer order. Records are
// taken in step order; a step recorded twice keeps its last record.
func collectMoE(recs []Record) []*moeLayer {
	byStep := make(map[int]int, len(recs))
	var order []int
	for i, r := range recs {
		if _, ok := byStep[r.Step]; !ok {
			order = append(order, r.Step)
		}
		byStep[r.Step] = i
	}
	sort.Ints(order)

	type value struct {
		kind   string // "load", "max_vio", "skip_rate"
		expert int
		v      float64
	}
	layers := map[int]*moeLayer{}
	for _, step := range order {
		r := recs[byStep[step]]
		vals := map[int][]value{}
		for k, v := range r.Extras {
			layer, kind, expert, ok := parseMoEKey(k)
			if !ok {
				continue
			}
			vals[layer] = append(vals[layer], value{kind, expert, v})
		}
		for layer, vs := range vals {
			l := layers[layer]
			if l == nil {
				l = &moeLayer{index: layer}
				layers[layer] = l
			}
			n := len(l.steps)
			l.steps = append(l.steps, float64(step))
			l.maxVio = append(l.maxVio, math.NaN())
			l.skip = append(l.skip, math.NaN())
			row := []float64{}
			for _, x := range vs {
				switch x.kind {
				case "max_vio":
					l.maxVio[n] = x.v
				case "skip_rate":
					l.skip[n] = x.v
				case "load":
					for len(row) <= x.expert {
						row = append(row, math.NaN())
					}
					row[x.expert] = x.v
				}
			}
			l.load = append(l.load, row)
			l.experts = max(l.experts, len(row))
		}
	}
	out := make([]*moeLayer, 0, len(layers))
	for _, l := range layers {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].index < out[j].index })
	return out
}

// parseMoEKey splits "moe.L.load.E", "moe.L.max_vio" and "moe.L.skip_rate"; other moe.L.*
// keys (entropy, dropped) report kind "" with ok, so the layer still counts as MoE.
func parseMoEKey(k string) (layer int, kind string, expert int, ok bool) {
	rest, found := strings.CutPrefix(k, "moe.")
	if !found {
		return 0, "", 0, false
	}
	ls, name, found := strings.Cut(rest, ".")
	if !found {
		return 0, "", 0, false
	}
	layer, err := strconv.Atoi(ls)
	if err != nil || layer < 0 {
		return 0, "", 0, false
	}
	switch {
	case name == "max_vio", name == "skip_rate":
		return layer, name, 0, true
	case strings.HasPrefix(name, "load."):
		e, err := strconv.Atoi(name[len("load."):])
		if err != nil || e < 0 || e > 1<<16 {
			return 0, "", 0, false
		}
		return layer, "load", e, true
	}
	return layer, "", 0, true
}

// group is a run of consecutive records averaged into one heatmap column or line point.
type group struct{ lo, hi int } // records [lo, hi)

// groups splits n records into at most maxN runs of (nearly) equal length.
func groups(n, maxN int) []group {
	k := max(1, (n+maxN-1)/maxN)
	var out []group
	for lo := 0; lo < n; lo += k {
		out = append(out, group{lo, min(n, lo+k)})
	}
	return out
}

// finiteMean is the mean of the finite values of f(i) for i in g, NaN when there are none.
func finiteMean(g group, f func(i int) float64) float64 {
	sum, n := 0.0, 0
	for i := g.lo; i < g.hi; i++ {
		if v := f(i); !math.IsNaN(v) && !math.IsInf(v, 0) {
			sum += v
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

// loadGrid is a layer's load heatmap: columns of averaged records, value = log2(share·E).
type loadGrid struct {
	lo, hi []float64   // step extent of each column
	z      [][]float64 // [column][expert]; NaN: no data; -Inf: zero share
}

func (l *moeLayer) grid() loadGrid {
	gs := groups(len(l.steps), moeMaxColumns)
	var g loadGrid
	e := float64(l.experts)
	for _, gr := range gs {
		col := make([]float64, l.experts)
		for ex := range col {
			m := finiteMean(gr, func(i int) float64 {
				if ex < len(l.load[i]) {
					return l.load[i][ex]
				}
				return math.NaN()
			})
			if m < 0 {
				m = 0
			}
			col[ex] = math.Log2(m * e) // NaN stays NaN, 0 becomes -Inf
		}
		g.z = append(g.z, col)
		g.lo = append(g.lo, l.steps[gr.lo])
		g.hi = append(g.hi, l.steps[gr.hi-1])
	}
	// Widen each column to meet its neighbours halfway, and the ends by half a typical gap, so
	// the columns tile the step axis.
	n := len(l.steps)
	gap := 1.0
	if n > 1 {
		gap = max(1e-9, (l.steps[n-1]-l.steps[0])/float64(n-1))
	}
	for c := range g.lo {
		if c == 0 {
			g.lo[c] -= gap / 2
		} else {
			mid := (l.steps[gs[c-1].hi-1] + l.steps[gs[c].lo]) / 2
			g.lo[c] = mid
			g.hi[c-1] = mid
		}
	}
	g.hi[len(g.hi)-1] += gap / 2
	return g
}

// lineXYs averages a series into at most moeMaxLinePts points, leaving out non-finite ones.
func lineXYs(steps, ys []float64) plotter.XYs {
	var pts plotter.XYs
	for _, gr := range groups(len(steps), moeMaxLinePts) {
		y := finiteMean(gr, func(i int) float64 { return ys[i] })
		if math.IsNaN(y) {
			continue
		}
		x := finiteMean(gr, func(i int) float64 { return steps[i] })
		pts = append(pts, plotter.XY{X: x, Y: y})
	}
	return pts
}

// colourLimit picks the half-range L of the log2 colour scale (±L = ×2^±L of uniform): the
// smallest whole number that covers every finite, non-zero cell of every layer, at least 1 and
// at most log2 of the largest expert count (a share can exceed uniform by at most E×), rounded
// up to even above 2.
func colourLimit(grids []loadGrid, experts int) float64 {
	ext := 0.0
	for _, g := range grids {
		for _, col := range g.z {
			for _, v := range col {
				if !math.IsNaN(v) && !math.IsInf(v, 0) {
					ext = math.Max(ext, math.Abs(v))
				}
			}
		}
	}
	most := evenAbove2(math.Max(1, math.Ceil(math.Log2(float64(experts)))))
	return math.Min(most, evenAbove2(math.Max(1, math.Ceil(ext-1e-9))))
}

// evenAbove2 rounds a whole number above 2 up to even, so a wide colour bar can be labelled at
// every other power of two and still show both ends.
func evenAbove2(v float64) float64 {
	if v > 2 {
		return 2 * math.Ceil(v/2)
	}
	return v
}

// ratioLabel names 2^k as a multiple of the uniform share: "1/4×", "1×", "2×".
func ratioLabel(k int) string {
	if k < 0 {
		return fmt.Sprintf("1/%d×", 1<<(-k))
	}
	return fmt.Sprintf("%d×", 1<<k)
}

var noData = color.NRGBA{R: 0xd0, G: 0xd0, B: 0xd0, A: 0xff}

// heatImage renders a grid as an image spanning [g.lo[0], g.hi[last]] × [-0.5, E-0.5], one
// pixel column per slice of the step axis, so uneven columns keep their true widths and the
// scaling done when drawing cannot blur neighbouring experts into each other.
func heatImage(g loadGrid, experts int, cmap palette.ColorMap, lim float64) image.Image {
	const rowPx = 24
	w, h := moeRasterWidth, experts*rowPx
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	xmin, xmax := g.lo[0], g.hi[len(g.hi)-1]
	colours := make([][]color.Color, len(g.z))
	for c, col := range g.z {
		colours[c] = make([]color.Color, experts)
		for ex, v := range col {
			if math.IsNaN(v) {
				colours[c][ex] = noData
				continue
			}
			v = math.Max(-lim, math.Min(lim, v)) // -Inf (an idle expert) takes the low end
			cl, err := cmap.At(v)
			if err != nil {
				cl = noData
			}
			colours[c][ex] = cl
		}
	}
	c := 0
	for px := range w {
		x := xmin + (float64(px)+0.5)*(xmax-xmin)/float64(w)
		for c < len(g.hi)-1 && x > g.hi[c] {
			c++
		}
		for ex := range experts {
			cl := colours[c][ex]
			for py := (experts - 1 - ex) * rowPx; py < (experts-ex)*rowPx; py++ {
				img.Set(px, py, cl)
			}
		}
	}
	return img
}

// expertTicks labels expert indices, every one when there are few, else a round subset.
func expertTicks(experts int) plot.Ticker {
	return plot.TickerFunc(func(lo, hi float64) []plot.Tick {
		every := 1
		for (experts+every-1)/every > 8 {
			every *= 2
		}
		var ts []plot.Tick
		for e := 0; e < experts; e++ {
			t := plot.Tick{Value: float64(e)}
			if e%every == 0 {
				t.Label = strconv.Itoa(e)
			}
			ts = append(ts, t)
		}
		return ts
	})
}

// stepTicks is niceTicks without a "-0" where the axis starts just below zero.
var stepTicks = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
	ts := niceTicks(lo, hi)
	for i := range ts {
		if ts[i].Label == "-0" {
			ts[i].Label = "0"
		}
	}
	return ts
})

// moeRow is the three plots of one layer's row.
type moeRow struct {
	title               string
	heat, bar, balances *plot.Plot
}

func buildRow(l *moeLayer, g loadGrid, lim float64) (moeRow, error) {
	row := moeRow{title: fmt.Sprintf("model.layers.%d.mlp", l.index)}

	cmap := moreland.SmoothBlueRed()
	cmap.SetMin(-lim)
	cmap.SetMax(lim)
	cmap.SetConvergePoint(0)

	heat := plot.New()
	heat.Title.Text = fmt.Sprintf("expert load share vs uniform 1/%d", l.experts)
	heat.Title.TextStyle.Font.Size = 10
	heat.X.Label.Text = "step"
	heat.X.Tick.Marker = stepTicks
	heat.Y.Label.Text = "expert"
	if l.experts > 0 {
		img := heatImage(g, l.experts, cmap, lim)
		heat.Add(plotter.NewImage(img, g.lo[0], -0.5, g.hi[len(g.hi)-1], float64(l.experts)-0.5))
		heat.Y.Tick.Marker = expertTicks(l.experts)
		heat.X.Min, heat.X.Max = g.lo[0], g.hi[len(g.hi)-1]
		heat.Y.Min, heat.Y.Max = -0.5, float64(l.experts)-0.5
	} else {
		heat.Title.Text = "no moe.*.load.* extras for this layer"
	}
	heat.X.Padding, heat.Y.Padding = 0, 0
	row.heat = heat

	bar := plot.New()
	bar.Add(&plotter.ColorBar{ColorMap: cmap, Vertical: true})
	bar.HideX()
	bar.Y.Padding = 0
	bar.Y.Label.Text = "load ÷ uniform"
	bar.Y.Label.TextStyle.Font.Size = 10
	bar.Y.Tick.Marker = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
		var ts []plot.Tick
		every := 1
		if lim > 2 {
			every = 2
		}
		for k := -int(lim); k <= int(lim); k++ {
			t := plot.Tick{Value: float64(k)}
			if k%every == 0 {
				t.Label = ratioLabel(k)
			}
			ts = append(ts, t)
		}
		return ts
	})
	row.bar = bar

	bal := plot.New()
	bal.Title.Text = "routing balance"
	bal.Title.TextStyle.Font.Size = 10
	bal.X.Label.Text = "step"
	bal.Y.Label.Text = "ratio"
	bal.X.Tick.Marker = stepTicks
	bal.Y.Tick.Marker = stepTicks
	bal.Add(plotter.NewGrid())
	bal.Y.Min = 0
	series := []struct {
		name string
		ys   []float64
		c    color.Color
	}{
		{"MaxVio", l.maxVio, color.NRGBA{R: 0xc0, G: 0x30, B: 0x20, A: 0xff}},
		{"skip rate", l.skip, color.NRGBA{R: 0x20, G: 0x60, B: 0xb0, A: 0xff}},
	}
	for _, s := range series {
		pts := lineXYs(l.steps, s.ys)
		if len(pts) == 0 {
			continue
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return row, err
		}
		line.LineStyle.Width = vg.Points(1.2)
		line.LineStyle.Color = s.c
		bal.Add(line)
		bal.Legend.Add(s.name, line)
		if len(pts) == 1 { // a single point draws no line; mark it
			sc, err := plotter.NewScatter(pts)
			if err != nil {
				return row, err
			}
			sc.GlyphStyle.Color = s.c
			bal.Add(sc)
		}
	}
	if bal.Y.Max < 0.1 { // an all-zero series still gets a readable axis
		bal.Y.Max = 0.1
	}
	bal.Y.Max *= 1.3 // headroom for the legend, so it never hides the lines
	bal.X.Min = math.Min(bal.X.Min, l.steps[0])
	bal.X.Max = math.Max(bal.X.Max, l.steps[len(l.steps)-1])
	bal.Legend.Top = true
	bal.Legend.TextStyle.Font.Size = 9
	bal.Legend.ThumbnailWidth = 0.25 * vg.Inch
	row.balances = bal
	return row, nil
}

// drawMoE lays the rows out on one canvas and encodes it as PNG.
func drawMoE(layers []*moeLayer) ([]byte, error) {
	grids := make([]loadGrid, len(layers))
	experts := 0
	for i, l := range layers {
		if l.experts > 0 {
			grids[i] = l.grid()
		}
		experts = max(experts, l.experts)
	}
	lim := colourLimit(grids, experts)

	rows := make([]moeRow, len(layers))
	for i, l := range layers {
		r, err := buildRow(l, grids[i], lim)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", l.index, err)
		}
		rows[i] = r
	}

	height := moeRowHeight * vg.Length(len(rows))
	img := vgimg.New(moeWidth, height)
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())

	titleStyle := rows[0].heat.Title.TextStyle
	titleStyle.Font = font.From(plot.DefaultFont, 13)
	titleStyle.XAlign = draw.XLeft
	titleStyle.YAlign = draw.YTop

	const titleH = 0.28 * vg.Inch
	// Column extents as fractions of the width: heatmap, colour bar, balance lines.
	cols := [3][2]float64{{0.005, 0.60}, {0.605, 0.685}, {0.70, 0.99}}
	cells := make([][]draw.Canvas, len(rows))
	plots := make([][]*plot.Plot, len(rows))
	for r, row := range rows {
		top := dc.Max.Y - moeRowHeight*vg.Length(r)
		bottom := top - moeRowHeight
		dc.FillText(titleStyle, vg.Point{X: dc.Min.X + moeWidth*vg.Length(cols[0][0]) + 4, Y: top - 4}, row.title)
		plots[r] = []*plot.Plot{row.heat, row.bar, row.balances}
		cells[r] = make([]draw.Canvas, 3)
		for c := range cols {
			cells[r][c] = draw.Canvas{Canvas: dc.Canvas, Rectangle: vg.Rectangle{
				Min: vg.Point{X: dc.Min.X + moeWidth*vg.Length(cols[c][0]), Y: bottom + 0.04*vg.Inch},
				Max: vg.Point{X: dc.Min.X + moeWidth*vg.Length(cols[c][1]), Y: top - titleH},
			}}
		}
	}
	alignCells(plots, cells)
	for r := range plots {
		for c, p := range plots[r] {
			p.Draw(cells[r][c])
		}
	}

	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, err
	}
	if buf.Len() == 0 {
		return nil, errors.New("empty PNG")
	}
	return buf.Bytes(), nil
}

// alignCells shrinks each cell so that the data areas of a row share their top and bottom and
// those of a column share their left and right edges, as plot.Align does for equal tiles.
func alignCells(plots [][]*plot.Plot, cells [][]draw.Canvas) {
	if len(plots) == 0 {
		return
	}
	nc := len(plots[0])
	left, right := make([]vg.Length, nc), make([]vg.Length, nc)
	bottom, top := make([]vg.Length, len(plots)), make([]vg.Length, len(plots))
	pad := func(r, c int) (l, rt, b, t vg.Length) {
		cv := cells[r][c]
		d := plots[r][c].DataCanvas(cv)
		return d.Min.X - cv.Min.X, cv.Max.X - d.Max.X, d.Min.Y - cv.Min.Y, cv.Max.Y - d.Max.Y
	}
	for r := range plots {
		for c := range plots[r] {
			l, rt, b, t := pad(r, c)
			left[c], right[c] = max(left[c], l), max(right[c], rt)
			bottom[r], top[r] = max(bottom[r], b), max(top[r], t)
		}
	}
	for r := range plots {
		for c := range plots[r] {
			l, rt, b, t := pad(r, c)
			cv := &cells[r][c]
			cv.Min.X += left[c] - l
			cv.Max.X -= right[c] - rt
			cv.Min.Y += bottom[r] - b
			cv.Max.Y -= top[r] - t
		}
	}
}
