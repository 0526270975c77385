package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/moegpu/moegpu/internal/atomicfile"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// PlotLoss draws training loss against step from a metrics file into a PNG at pngPath, written
// atomically. The y axis is logarithmic when the finite, positive losses span more than 10×,
// so both the early drop and the late slope stay visible. Non-finite losses are left out (the
// title says how many).
func PlotLoss(metricsPath, pngPath string) error {
	recs, err := ReadJSONL(metricsPath)
	if err != nil {
		return err
	}
	p, err := lossPlot(recs)
	if err != nil {
		return fmt.Errorf("metrics: %s: %w", metricsPath, err)
	}
	wt, err := p.WriterTo(8*vg.Inch, 5*vg.Inch, "png")
	if err != nil {
		return fmt.Errorf("metrics: plot: %w", err)
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return fmt.Errorf("metrics: plot: %w", err)
	}
	if err := atomicfile.Write(pngPath, buf.Bytes()); err != nil {
		return fmt.Errorf("metrics: write %s: %w", pngPath, err)
	}
	return nil
}

// lossPlot builds the loss-vs-step plot of the records.
func lossPlot(recs []Record) (*plot.Plot, error) {
	pts := make(plotter.XYs, 0, len(recs))
	skipped := 0
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range recs {
		if math.IsNaN(r.Loss) || math.IsInf(r.Loss, 0) {
			skipped++
			continue
		}
		pts = append(pts, plotter.XY{X: float64(r.Step), Y: r.Loss})
		lo, hi = math.Min(lo, r.Loss), math.Max(hi, r.Loss)
	}
	if len(pts) == 0 {
		return nil, errors.New("no finite loss values to plot")
	}

	p := plot.New()
	p.Title.Text = "training loss"
	if skipped > 0 {
		p.Title.Text += fmt.Sprintf(" (%d non-finite step%s left out)", skipped, map[bool]string{true: "", false: "s"}[skipped == 1])
	}
	p.X.Label.Text = "step"
	p.X.Tick.Marker = plot.TickerFunc(niceTicks)
	p.Y.Label.Text = "loss"
	p.Add(plotter.NewGrid())
	if lo > 0 && hi/lo > 10 {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Label.Text = "loss (log scale)"
	} else {
		p.Y.Tick.Marker = plot.TickerFunc(niceTicks)
	}
	line, err := plotter.NewLine(pts)
	if err != nil {
		return nil, err
	}
	line.LineStyle.Width = vg.Points(1.5)
	p.Add(line)
	if len(pts) == 1 { // a single step draws no line; mark it
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return nil, err
		}
		p.Add(sc)
	}
	return p, nil
}

// niceTicks labels about six round values (1, 2 or 5 times a power of ten) across [lo, hi],
// printed without trailing zeros, with unlabelled minor ticks between them.
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
	if math.Abs(lo/minor) > 1e12 || math.Abs(hi/minor) > 1e12 { // too far from 0 to count in minor steps
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'g', 8, 64)},
			{Value: hi, Label: strconv.FormatFloat(hi, 'g', 8, 64)}}
	}
	var ticks []plot.Tick
	for i := math.Ceil(lo / minor); i*minor <= hi+minor*1e-9; i++ {
		v := i * minor
		t := plot.Tick{Value: v}
		if k := v / step; math.Abs(k-math.Round(k)) < 1e-9 {
			t.Label = strconv.FormatFloat(math.Round(k)*step, 'g', 6, 64)
		}
		ticks = append(ticks, t)
	}
	return ticks
}
