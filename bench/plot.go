package bench

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"math"
	"sort"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// palette holds distinguishable colours (Tableau 10, then darker
// variants) for plot series, in order.
var palette = []color.RGBA{
	{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255}, {148, 103, 189, 255},
	{140, 86, 75, 255}, {227, 119, 194, 255}, {188, 189, 34, 255}, {23, 190, 207, 255}, {127, 127, 127, 255},
	{57, 59, 121, 255}, {99, 121, 57, 255}, {140, 109, 49, 255}, {132, 60, 57, 255},
}

func paletteColor(i int) color.RGBA { return palette[i%len(palette)] }

// legendWidth is the strip right of each plot that holds its legend, so
// the legend never covers data.
const legendWidth = 2.6 * vg.Inch

// render draws p with its legend in a strip on the right and encodes the
// image as PNG.
func render(p *plot.Plot, width, height vg.Length) ([]byte, error) {
	img := vgimg.New(width, height)
	dc := draw.New(img)
	// White background: PNG viewers with dark themes otherwise show black text on black.
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	leg := p.Legend
	p.Legend = plot.NewLegend() // drawn beside the plot below, not over it
	p.Draw(draw.Crop(dc, 0.15*vg.Inch, -legendWidth, 0.05*vg.Inch, -0.1*vg.Inch))
	p.Legend = leg
	lc := draw.Crop(dc, width-legendWidth+6, 0, 0, -0.5*vg.Inch)
	leg.Left, leg.Top = true, true
	leg.Draw(lc)
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// smokeNote marks plots of --quick runs, whose numbers are not measurements.
func smokeNote(r *Column) string {
	if r.Smoke {
		return " (SMOKE RUN: not a measurement)"
	}
	return ""
}

func newPlot(title string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	p.X.Label.TextStyle.Font.Size = vg.Points(11)
	p.Y.Label.TextStyle.Font.Size = vg.Points(11)
	return p
}

// rooflinePoint is one kernel row placed on the roofline.
type rooflinePoint struct {
	name      string
	intensity float64 // FLOP per byte
	gflops    float64
	best      bool
}

// rooflinePoints are a run's compute kernel rows with both FLOPs and
// bytes (schema version 1 files have neither: no points).
func rooflinePoints(r *Column) []rooflinePoint {
	var ps []rooflinePoint
	for _, k := range r.Kernels {
		if k.Flops > 0 && k.Bytes > 0 && k.GFlops > 0 {
			ps = append(ps, rooflinePoint{name: k.Name, intensity: k.Flops / k.Bytes, gflops: k.GFlops, best: k.Best})
		}
	}
	return ps
}

// rooflinePNG plots achieved GFLOP/s against arithmetic intensity (log-log)
// under the run's two measured ceilings: the FMA peak and copy bandwidth ×
// intensity. Each kernel has a colour; the variant the runtime picks is a
// filled dot, the other variants small crosses.
func rooflinePNG(r *Column) ([]byte, error) {
	ps := rooflinePoints(r)
	if len(ps) == 0 || r.Peak.FMAGflops <= 0 || r.Peak.CopyGBps <= 0 {
		return nil, errors.New("no kernel rows with FLOPs, bytes and a measured peak")
	}
	p := newPlot("Roofline: " + r.Label + smokeNote(r))
	p.X.Label.Text = "arithmetic intensity (FLOP per byte moved, log)"
	p.Y.Label.Text = "achieved GFLOP/s (log)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.TickerFunc(logTicks125), plot.TickerFunc(logTicks125)
	p.Add(plotter.NewGrid())
	lo, hi := math.Inf(1), 0.0
	ylo := math.Inf(1)
	for _, q := range ps {
		lo, hi = math.Min(lo, q.intensity), math.Max(hi, q.intensity)
		ylo = math.Min(ylo, q.gflops)
	}
	ridge := r.Peak.FMAGflops / r.Peak.CopyGBps
	lo, hi = math.Min(lo, ridge)/2, math.Max(hi, ridge)*2
	p.X.Min, p.X.Max = lo, hi
	p.Y.Min, p.Y.Max = math.Min(ylo, lo*r.Peak.CopyGBps)/1.5, r.Peak.FMAGflops*2
	// Ceilings.
	var roof plotter.XYs
	for i := 0; i <= 200; i++ {
		x := lo * math.Pow(hi/lo, float64(i)/200)
		roof = append(roof, plotter.XY{X: x, Y: math.Min(r.Peak.FMAGflops, x*r.Peak.CopyGBps)})
	}
	line, err := plotter.NewLine(roof)
	if err != nil {
		return nil, err
	}
	line.LineStyle.Width = vg.Points(2)
	line.LineStyle.Color = color.Black
	p.Add(line)
	p.Legend.Add(fmt.Sprintf("ceiling: FMA %.1f GFLOP/s,", r.Peak.FMAGflops), line)
	p.Legend.Add(fmt.Sprintf("  copy %.2f GB/s × intensity", r.Peak.CopyGBps))
	// Kernels, one colour each, in first-seen order.
	var names []string
	seen := map[string]bool{}
	for _, q := range ps {
		if !seen[q.name] {
			seen[q.name] = true
			names = append(names, q.name)
		}
	}
	others := false
	for i, n := range names {
		var best, rest plotter.XYs
		for _, q := range ps {
			if q.name != n {
				continue
			}
			if q.best {
				best = append(best, plotter.XY{X: q.intensity, Y: q.gflops})
			} else {
				rest = append(rest, plotter.XY{X: q.intensity, Y: q.gflops})
			}
		}
		c := paletteColor(i)
		var thumb plot.Thumbnailer
		if len(rest) > 0 {
			sc, err := plotter.NewScatter(rest)
			if err != nil {
				return nil, err
			}
			sc.GlyphStyle = draw.GlyphStyle{Color: c, Radius: vg.Points(3), Shape: draw.CrossGlyph{}}
			p.Add(sc)
			others, thumb = true, sc
		}
		if len(best) > 0 {
			sc, err := plotter.NewScatter(best)
			if err != nil {
				return nil, err
			}
			sc.GlyphStyle = draw.GlyphStyle{Color: c, Radius: vg.Points(4.5), Shape: draw.CircleGlyph{}}
			p.Add(sc)
			thumb = sc
		}
		p.Legend.Add(n, thumb)
	}
	if others {
		p.Legend.Add("")
		p.Legend.Add("● the runtime's default variant")
		p.Legend.Add("× other variants")
	}
	return render(p, 10*vg.Inch, 6*vg.Inch)
}

// familyOrder ranks kernel families by their summed share over every
// profiled model of every run, so all breakdown charts of one report name
// the same families in the same colours.
func familyOrder(runs []*Column) []string {
	total := map[string]float64{}
	for _, r := range runs {
		for _, m := range r.Models {
			if m.Profile == nil {
				continue
			}
			for _, f := range m.Profile.Families {
				total[f.Name] += f.Share
			}
		}
	}
	var fams []string
	for n := range total {
		fams = append(fams, n)
	}
	sort.Slice(fams, func(i, j int) bool {
		if total[fams[i]] != total[fams[j]] {
			return total[fams[i]] > total[fams[j]]
		}
		return fams[i] < fams[j]
	})
	return fams
}

// breakdownPNG draws, per config, where a training step's time goes: each
// bar is one step as 100 %, split into the kernel families of the
// profile (scaled to the submission's share of the step) and the host's
// part (batch upload, loss readback and waiting: step minus submission).
// fams ranks the families (familyOrder): the first nine get a bar colour
// each, the rest are summed as "other kernels".
func breakdownPNG(r *Column, fams []string) ([]byte, error) {
	var models []Model
	for _, m := range r.Models {
		if m.Profile != nil && len(m.Profile.Families) > 0 && m.StepMs > 0 {
			models = append(models, m)
		}
	}
	if len(models) == 0 {
		return nil, errors.New("no profiled models")
	}
	const named = 9
	series := append([]string{}, fams[:min(named, len(fams))]...)
	if len(fams) > named {
		series = append(series, "other kernels")
	}
	series = append(series, "host: upload, readback, wait")
	vals := make([]plotter.Values, len(series))
	for si := range series {
		vals[si] = make(plotter.Values, len(models))
	}
	// The first config on top: bar i is drawn at y = i, from the bottom.
	for i, j := 0, len(models)-1; i < j; i, j = i+1, j-1 {
		models[i], models[j] = models[j], models[i]
	}
	labels := make([]string, len(models))
	for mi, m := range models {
		kernels := math.Min(1, m.SubmitMs/m.StepMs)
		if m.SubmitMs <= 0 {
			kernels = 1
		}
		for _, f := range m.Profile.Families {
			si := indexOf(series, f.Name)
			if si < 0 {
				si = len(series) - 2
			}
			vals[si][mi] += 100 * f.Share * kernels
		}
		vals[len(series)-1][mi] = 100 * (1 - kernels)
		labels[mi] = fmt.Sprintf("%s (%.0f ms)", m.Config, m.StepMs)
	}
	p := newPlot("Where a training step's time goes: " + r.Label + smokeNote(r))
	p.X.Label.Text = fmt.Sprintf("share of the step (%%); kernels from %s profiles", profileSources(models))
	p.X.Min, p.X.Max = 0, 100
	p.Add(plotter.NewGrid())
	var prev *plotter.BarChart
	for si, s := range series {
		bc, err := plotter.NewBarChart(vals[si], vg.Points(18))
		if err != nil {
			return nil, err
		}
		bc.Horizontal = true
		bc.LineStyle.Width = 0
		bc.Color = paletteColor(si)
		if s == "host: upload, readback, wait" {
			bc.Color = color.RGBA{200, 200, 200, 255}
		}
		if prev != nil {
			bc.StackOn(prev)
		}
		prev = bc
		p.Add(bc)
		p.Legend.Add(s, bc)
	}
	p.NominalY(labels...)
	p.Y.Min, p.Y.Max = -0.6, float64(len(models))-0.4
	return render(p, 10*vg.Inch, vg.Length(max(3.2, 1.4+0.5*float64(len(models))))*vg.Inch)
}

func profileSources(models []Model) string {
	set := map[string]bool{}
	var out []string
	for _, m := range models {
		if !set[m.Profile.Source] {
			set[m.Profile.Source] = true
			out = append(out, m.Profile.Source)
		}
	}
	sort.Strings(out)
	s := ""
	for i, x := range out {
		if i > 0 {
			s += " and "
		}
		s += x
	}
	return s
}

func indexOf(s []string, x string) int {
	for i, v := range s {
		if v == x {
			return i
		}
	}
	return -1
}

// stepTimePNG is a dot plot of training tokens/s per config (log scale),
// one colour per run, so adapters and builds read side by side.
func stepTimePNG(runs []*Column) ([]byte, error) {
	cfgs := modelConfigs(runs)
	if len(cfgs) == 0 {
		return nil, errors.New("no model rows")
	}
	title := "Training throughput per config"
	for _, r := range runs {
		if r.Smoke {
			title += " (SMOKE RUNS: not measurements)"
			break
		}
	}
	p := newPlot(title)
	p.X.Label.Text = "training tokens/s (log scale; right is faster)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.TickerFunc(logTicks125)
	p.Add(plotter.NewGrid())
	lo, hi := math.Inf(1), 0.0
	for ri, r := range runs {
		var pts plotter.XYs
		for ci, c := range cfgs {
			m := findModel(r, c)
			if m == nil || m.TokensPerS <= 0 {
				continue
			}
			off := 0.0
			if len(runs) > 1 {
				off = 0.5 * (float64(ri)/float64(len(runs)-1) - 0.5)
			}
			pts = append(pts, plotter.XY{X: m.TokensPerS, Y: float64(len(cfgs)-1-ci) - off})
			lo, hi = math.Min(lo, m.TokensPerS), math.Max(hi, m.TokensPerS)
		}
		if len(pts) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return nil, err
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: paletteColor(ri), Radius: vg.Points(5), Shape: draw.CircleGlyph{}}
		p.Add(sc)
		label := r.Label
		if r.Smoke {
			label += " (smoke)"
		}
		p.Legend.Add(label, sc)
	}
	if hi == 0 {
		return nil, errors.New("no model rows with a throughput")
	}
	p.X.Min, p.X.Max = lo/2, hi*2
	rev := make([]string, len(cfgs))
	for i, c := range cfgs {
		rev[len(cfgs)-1-i] = c
	}
	p.NominalY(rev...)
	p.Y.Min, p.Y.Max = -0.7, float64(len(cfgs))-0.3
	return render(p, 10*vg.Inch, vg.Length(max(3, 1.4+0.5*float64(len(cfgs))))*vg.Inch)
}

// logTicks125 labels 1, 2 and 5 times each power of ten in [lo, hi] (only
// the powers of ten when the range spans more than three decades), with
// unlabelled minor ticks at the other integer multiples.
func logTicks125(lo, hi float64) []plot.Tick {
	if !(lo > 0) || !(hi > lo) {
		return nil
	}
	labelled := map[float64]bool{1: true, 2: true, 5: true}
	if math.Log10(hi/lo) > 3 {
		labelled = map[float64]bool{1: true}
	}
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		p := math.Pow(10, e)
		for m := 1.0; m < 10; m++ {
			v := m * p
			if v < lo*(1-1e-9) || v > hi*(1+1e-9) {
				continue
			}
			t := plot.Tick{Value: v}
			if labelled[m] {
				t.Label = strconv.FormatFloat(v, 'f', -1, 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}
