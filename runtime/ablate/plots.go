package ablate

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"sort"
	"strconv"

	"github.com/moegpu/moegpu/internal/atomicfile"
	"github.com/moegpu/moegpu/runtime/metrics"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// palette is Tableau's ten categorical colours: one per run, in spec order.
var palette = []color.Color{
	color.RGBA{31, 119, 180, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{44, 160, 44, 255},
	color.RGBA{214, 39, 40, 255}, color.RGBA{148, 103, 189, 255}, color.RGBA{140, 86, 75, 255},
	color.RGBA{227, 119, 194, 255}, color.RGBA{127, 127, 127, 255}, color.RGBA{188, 189, 34, 255},
	color.RGBA{23, 190, 207, 255},
}

func colour(i int) color.Color { return palette[i%len(palette)] }

// dashes gives runs past the tenth a dashed line, so colours that repeat still differ.
func dashes(i int) []vg.Length {
	if i < len(palette) {
		return nil
	}
	return []vg.Length{vg.Points(5), vg.Points(3)}
}

// writePNG renders plots (rows × columns, aligned) into one PNG of the given size; a footer
// plot, if given, is drawn in a strip footerH high across the middle of the bottom.
func writePNG(path string, w, h vg.Length, plots [][]*plot.Plot, footer *plot.Plot, footerH vg.Length) error {
	img := vgimg.New(w, h)
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	rows, cols := len(plots), 0
	for _, r := range plots {
		cols = max(cols, len(r))
	}
	area := dc
	if footer != nil {
		area.Min.Y += footerH
		fc := dc
		fc.Max.Y = dc.Min.Y + footerH
		fc.Min.X, fc.Max.X = dc.Min.X+w/4, dc.Min.X+3*w/4
		footer.Draw(fc)
	}
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(12), PadY: vg.Points(12), PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	canvases := plot.Align(plots, tiles, area)
	for r := range plots {
		for c, p := range plots[r] {
			if p != nil {
				p.Draw(canvases[r][c])
			}
		}
	}
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return fmt.Errorf("ablate: plot %s: %w", path, err)
	}
	if buf.Len() == 0 {
		return fmt.Errorf("ablate: plot %s: empty PNG", path)
	}
	return atomicfile.Write(path, buf.Bytes())
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = 12
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Add(plotter.NewGrid())
	p.X.Tick.Marker = plot.TickerFunc(niceTicks)
	p.Y.Tick.Marker = plot.TickerFunc(niceTicks)
	p.Legend.TextStyle.Font.Size = 9
	p.Legend.ThumbnailWidth = 0.3 * vg.Inch
	return p
}

// curve is one run's series over training.
type curve struct {
	run    int // index in the plan, for its colour
	name   string
	xs, ys []float64
}

// meanCurve averages f over the seeds' records step by step, then smooths it with a
// centred moving mean over about a fiftieth of the steps. Steps where f is not finite in a
// seed are left out of that seed.
func meanCurve(seeds [][]metrics.Record, f func(metrics.Record) float64) (xs, ys []float64) {
	sum, n := map[int]float64{}, map[int]int{}
	for _, recs := range seeds {
		for _, r := range recs {
			if v := f(r); !math.IsNaN(v) && !math.IsInf(v, 0) {
				sum[r.Step] += v
				n[r.Step]++
			}
		}
	}
	steps := make([]int, 0, len(n))
	for s := range n {
		steps = append(steps, s)
	}
	sort.Ints(steps)
	raw := make([]float64, len(steps))
	for i, s := range steps {
		raw[i] = sum[s] / float64(n[s])
	}
	half := len(steps) / 100
	for i, s := range steps {
		lo, hi := max(0, i-half), min(len(raw), i+half+1)
		m := 0.0
		for _, v := range raw[lo:hi] {
			m += v
		}
		xs = append(xs, float64(s))
		ys = append(ys, m/float64(hi-lo))
	}
	return xs, ys
}

// curvesPlot overlays one line per run.
func curvesPlot(title, x, y string, cs []curve, logY bool) (*plot.Plot, error) {
	p := newPlot(title, x, y)
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, c := range cs {
		for _, v := range c.ys {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	if logY && lo > 0 && hi/lo > 4 {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Label.Text += " (log scale)"
	}
	any := false
	for _, c := range cs {
		pts := make(plotter.XYs, 0, len(c.xs))
		for i := range c.xs {
			if p.Y.Scale != nil && c.ys[i] <= 0 {
				if _, isLog := p.Y.Scale.(plot.LogScale); isLog {
					continue
				}
			}
			pts = append(pts, plotter.XY{X: c.xs[i], Y: c.ys[i]})
		}
		if len(pts) == 0 {
			continue
		}
		any = true
		l, err := plotter.NewLine(pts)
		if err != nil {
			return nil, err
		}
		l.Color, l.Width, l.Dashes = colour(c.run), vg.Points(1.4), dashes(c.run)
		p.Add(l)
		p.Legend.Add(c.name, l)
		if len(pts) <= 12 { // few points (a grid of lengths, or one step): mark them
			sc, _ := plotter.NewScatter(pts)
			sc.GlyphStyle = draw.GlyphStyle{Color: colour(c.run), Radius: vg.Points(2.5), Shape: draw.CircleGlyph{}}
			p.Add(sc)
		}
	}
	if !any {
		return nil, errors.New("no finite values to plot")
	}
	p.Legend.Top = true
	headroom(p, lo, hi)
	return p, nil
}

// headroom raises a linear y axis by a fifth of its range, so the legend in the top corner
// sits above the data.
func headroom(p *plot.Plot, lo, hi float64) {
	if _, isLog := p.Y.Scale.(plot.LogScale); isLog || !(hi >= lo) {
		return
	}
	span := hi - lo
	if span == 0 {
		span = math.Max(math.Abs(hi), 1) * 0.1
	}
	p.Y.Min, p.Y.Max = lo-0.05*span, hi+0.25*span
}

// dotSeries is one quantity per run: every seed's value and their mean ± sd.
type dotSeries struct {
	name   string
	perRun [][]float64 // per run, one value per seed
}

// dotPlot draws, for each run (an x position named by the run), each series' seed values as
// small hollow marks and their mean as a filled mark with a ±1 sd error bar; series of one
// run sit side by side.
func dotPlot(title, y string, runs []string, series []dotSeries) (*plot.Plot, error) {
	p := newPlot(title, "", y)
	p.NominalX(runs...)
	if len(runs) > 5 {
		p.X.Tick.Label.Rotation = math.Pi / 6
		p.X.Tick.Label.XAlign = draw.XRight
		p.X.Tick.Label.YAlign = draw.YCenter
	}
	width := 0.6
	any := false
	for si, s := range series {
		off := 0.0
		if len(series) > 1 {
			off = -width/2 + width*(float64(si)+0.5)/float64(len(series))
		}
		var means plotter.XYs
		var errs plotter.YErrors
		var seeds plotter.XYs
		for ri, vals := range s.perRun {
			st := spreadOf(vals)
			if st.N == 0 {
				continue
			}
			means = append(means, plotter.XY{X: float64(ri) + off, Y: st.Mean})
			errs = append(errs, struct{ Low, High float64 }{st.SD, st.SD})
			for _, v := range vals {
				if finiteF(v) {
					seeds = append(seeds, plotter.XY{X: float64(ri) + off + 0.04, Y: v})
				}
			}
		}
		if len(means) == 0 {
			continue
		}
		any = true
		c := colour(si)
		if len(series) == 1 {
			c = color.Black
		}
		eb, err := plotter.NewYErrorBars(errPoints{means, errs})
		if err != nil {
			return nil, err
		}
		eb.Color, eb.Width = c, vg.Points(1.2)
		mk, _ := plotter.NewScatter(means)
		mk.GlyphStyle = draw.GlyphStyle{Color: c, Radius: vg.Points(3.5), Shape: draw.CircleGlyph{}}
		sd, _ := plotter.NewScatter(seeds)
		sd.GlyphStyle = draw.GlyphStyle{Color: c, Radius: vg.Points(2.5), Shape: draw.RingGlyph{}}
		p.Add(eb, mk, sd)
		if len(series) > 1 {
			p.Legend.Add(s.name, mk)
		}
	}
	if !any {
		return nil, errors.New("no values to plot")
	}
	p.X.Min, p.X.Max = -0.6, float64(len(runs))-0.4
	p.Legend.Top = true
	return p, nil
}

type errPoints struct {
	plotter.XYs
	plotter.YErrors
}

// scatterRuns draws one point per seed, coloured by run, with the run's mean joined to
// nothing: the x–y relation across runs is the point.
func scatterRuns(title, x, y string, names []string, xs, ys [][]float64) (*plot.Plot, error) {
	p := newPlot(title, x, y)
	any := false
	for ri := range names {
		var pts plotter.XYs
		for i := range xs[ri] {
			if finiteF(xs[ri][i]) && finiteF(ys[ri][i]) {
				pts = append(pts, plotter.XY{X: xs[ri][i], Y: ys[ri][i]})
			}
		}
		if len(pts) == 0 {
			continue
		}
		any = true
		sc, _ := plotter.NewScatter(pts)
		sc.GlyphStyle = draw.GlyphStyle{Color: colour(ri), Radius: vg.Points(4), Shape: draw.CircleGlyph{}}
		p.Add(sc)
		p.Legend.Add(names[ri], sc)
	}
	if !any {
		return nil, errors.New("no values to plot")
	}
	p.Legend.Top = true
	lo, hi := math.Inf(1), math.Inf(-1)
	for ri := range names {
		for _, v := range ys[ri] {
			if finiteF(v) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	headroom(p, lo, hi)
	return p, nil
}

// loadGridOf bins a seed's expert load (mean over its MoE layers) into at most cols
// columns of steps: z[column][expert] is log2(share × experts), 0 = an even share.
func loadGridOf(recs []metrics.Record, cols int) (z [][]float64, experts int, x0, x1 float64) {
	if len(recs) == 0 {
		return nil, 0, 0, 0
	}
	layers := moeLayers(recs[len(recs)-1])
	if len(layers) == 0 {
		return nil, 0, 0, 0
	}
	experts = len(loads(recs[len(recs)-1], "moe."+layers[0]+"."))
	if experts == 0 {
		return nil, 0, 0, 0
	}
	cols = min(cols, len(recs))
	for c := 0; c < cols; c++ {
		lo, hi := c*len(recs)/cols, (c+1)*len(recs)/cols
		col := make([]float64, experts)
		n := 0.0
		for _, r := range recs[lo:hi] {
			for _, l := range layers {
				ls := loads(r, "moe."+l+".")
				if len(ls) != experts {
					continue
				}
				for e, v := range ls {
					col[e] += v
				}
				n++
			}
		}
		for e := range col {
			col[e] = math.Log2(math.Max(col[e]/math.Max(n, 1)*float64(experts), 1.0/64))
		}
		z = append(z, col)
	}
	return z, experts, float64(recs[0].Step), float64(recs[len(recs)-1].Step)
}

// heatPlot draws a load grid as an image: x the step, y the expert, colour the share
// against an even one on a log2 scale (blue below, white even, red above; ±lim).
func heatPlot(title string, z [][]float64, experts int, x0, x1, lim float64) *plot.Plot {
	p := newPlot(title, "step", "expert")
	cmap := moreland.SmoothBlueRed()
	cmap.SetMin(-lim)
	cmap.SetMax(lim)
	// A raster about as large as the drawn panel, so scaling does not smear neighbouring
	// cells into each other.
	colPx, rowPx := max(1, 1000/max(len(z), 1)), max(1, 400/experts)
	img := image.NewNRGBA(image.Rect(0, 0, len(z)*colPx, experts*rowPx))
	for c, col := range z {
		for e, v := range col {
			cl, err := cmap.At(math.Max(-lim, math.Min(lim, v)))
			if err != nil {
				cl = color.Gray{Y: 200}
			}
			for px := c * colPx; px < (c+1)*colPx; px++ {
				for py := (experts - 1 - e) * rowPx; py < (experts-e)*rowPx; py++ {
					img.Set(px, py, cl)
				}
			}
		}
	}
	if x1 <= x0 {
		x1 = x0 + 1
	}
	p.Add(plotter.NewImage(img, x0, -0.5, x1, float64(experts)-0.5))
	p.Y.Min, p.Y.Max = -0.5, float64(experts)-0.5
	p.X.Min, p.X.Max = x0, x1
	return p
}

// colourBar is the legend of the heat plots: the share against an even one.
func colourBar(lim float64) *plot.Plot {
	p := plot.New()
	p.Title.Text = "load ÷ even share"
	p.Title.TextStyle.Font = font.From(plot.DefaultFont, 10)
	cmap := moreland.SmoothBlueRed()
	cmap.SetMin(-lim)
	cmap.SetMax(lim)
	cb := &plotter.ColorBar{ColorMap: cmap, Vertical: false}
	p.Add(cb)
	p.HideY()
	var ticks []plot.Tick
	for k := -int(lim); k <= int(lim); k++ {
		lbl := fmt.Sprintf("%g×", math.Pow(2, float64(k)))
		if k < 0 {
			lbl = fmt.Sprintf("1/%d×", 1<<(-k))
		}
		ticks = append(ticks, plot.Tick{Value: float64(k), Label: lbl})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	return p
}

func finiteF(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// niceTicks labels about six round values (1, 2 or 5 times a power of ten) across [lo, hi]
// with enough digits to tell them apart, and unlabelled minor ticks between them.
func niceTicks(lo, hi float64) []plot.Tick {
	if !(hi > lo) || math.IsInf(hi-lo, 0) {
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'g', 6, 64)}}
	}
	raw := (hi - lo) / 6
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{2, 5, 10} {
		if step >= raw {
			break
		}
		step = m * mag
	}
	minor := step / 5
	if math.Abs(lo/minor) > 1e12 || math.Abs(hi/minor) > 1e12 {
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'g', 8, 64)}, {Value: hi, Label: strconv.FormatFloat(hi, 'g', 8, 64)}}
	}
	var ticks []plot.Tick
	for i := math.Ceil(lo / minor); i*minor <= hi+minor*1e-9; i++ {
		v := i * minor
		t := plot.Tick{Value: v}
		if k := v / step; math.Abs(k-math.Round(k)) < 1e-9 {
			t.Label = strconv.FormatFloat(math.Round(k)*step, 'g', 6, 64)
			if t.Label == "-0" {
				t.Label = "0"
			}
		}
		ticks = append(ticks, t)
	}
	return ticks
}
