package ablate

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/moegpu/moegpu/runtime/metrics"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
)

// Series is one line of a comparison plot: a name and the run directories of its seeds
// (each written by moegpu train, with a metrics.jsonl), averaged step by step.
type Series struct {
	Name string
	Dirs []string
}

// Panel is one plot of a comparison figure: a title and its series.
type Panel struct {
	Title  string
	Series []Series
}

// PlotLoss writes one PNG (to pngPath, through a temporary file) with a panel per entry of
// panels, side by side, each overlaying its series' training loss: the mean over the series'
// run directories step by step, smoothed as in the report's loss plot, on a log axis when
// the losses span more than 4×. Series keep their colour across panels when they share a
// name. It returns an error naming the directory whose metrics.jsonl is missing or
// unreadable, or the panel with nothing to draw.
func PlotLoss(pngPath string, panels []Panel) error {
	if len(panels) == 0 {
		return errors.New("ablate: nothing to plot (no panels)")
	}
	index := map[string]int{}
	var row []*plot.Plot
	for _, pn := range panels {
		if len(pn.Series) == 0 {
			return fmt.Errorf("ablate: panel %q has no series", pn.Title)
		}
		var cs []curve
		for _, s := range pn.Series {
			if len(s.Dirs) == 0 {
				return fmt.Errorf("ablate: series %q has no run directory", s.Name)
			}
			var seeds [][]metrics.Record
			for _, d := range s.Dirs {
				recs, err := metrics.ReadJSONL(filepath.Join(d, "metrics.jsonl"))
				if err != nil {
					return fmt.Errorf("ablate: series %q: %w", s.Name, err)
				}
				seeds = append(seeds, recs)
			}
			if _, ok := index[s.Name]; !ok {
				index[s.Name] = len(index)
			}
			xs, ys := meanCurve(seeds, func(r metrics.Record) float64 { return r.Loss })
			cs = append(cs, curve{run: index[s.Name], name: s.Name, xs: xs, ys: ys})
		}
		p, err := curvesPlot(pn.Title, "step", "training loss", cs, true)
		if err != nil {
			return fmt.Errorf("ablate: panel %q: %w", pn.Title, err)
		}
		row = append(row, p)
	}
	w := vg.Length(len(row)) * 6 * vg.Inch
	return writePNG(pngPath, w, 4.5*vg.Inch, [][]*plot.Plot{row}, nil, 0)
}
