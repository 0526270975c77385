package ablate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/moegpu/moegpu/internal/atomicfile"
	"github.com/moegpu/moegpu/runtime/metrics"
	"github.com/moegpu/moegpu/runtime/textdata"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Files the report writes into the output directory.
const (
	ReportFile = "report.md"
	PlotDir    = "plots"
)

// spread summarises one quantity over seeds.
type spread struct {
	Mean, SD, Min, Max float64
	N                  int
}

// spreadOf is the mean, sample standard deviation (0 for one value), minimum and maximum
// of the finite values.
func spreadOf(v []float64) spread {
	s := spread{Min: math.Inf(1), Max: math.Inf(-1)}
	for _, x := range v {
		if finiteF(x) {
			s.Mean += x
			s.N++
			s.Min, s.Max = math.Min(s.Min, x), math.Max(s.Max, x)
		}
	}
	if s.N == 0 {
		return spread{Mean: math.NaN(), SD: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	s.Mean /= float64(s.N)
	if s.N > 1 {
		for _, x := range v {
			if finiteF(x) {
				s.SD += (x - s.Mean) * (x - s.Mean)
			}
		}
		s.SD = math.Sqrt(s.SD / float64(s.N-1))
	}
	return s
}

// cell writes mean ± sd with the seeds' range, or "–" with no value.
func (s spread) cell(prec int) string {
	if s.N == 0 {
		return "–"
	}
	if s.N == 1 {
		return fmt.Sprintf("%.*f (n=1)", prec, s.Mean)
	}
	return fmt.Sprintf("%.*f ± %.*f (%.*f–%.*f)", prec, s.Mean, prec, s.SD, prec, s.Min, prec, s.Max)
}

// short writes mean ± sd only.
func (s spread) short(prec int) string {
	if s.N == 0 {
		return "–"
	}
	if s.N == 1 {
		return fmt.Sprintf("%.*f", prec, s.Mean)
	}
	return fmt.Sprintf("%.*f ± %.*f", prec, s.Mean, prec, s.SD)
}

// runData is one run of the plan with what its seeds left on disk.
type runData struct {
	plan    RunPlan
	results []*Result          // finished seeds, in plan order
	recs    [][]metrics.Record // every seed's metrics (finished or not)
	dirs    []string           // every seed's directory
	missing []int64
}

func (d *runData) values(f func(*Result) float64) []float64 {
	out := make([]float64, 0, len(d.results))
	for _, r := range d.results {
		out = append(out, f(r))
	}
	return out
}

func (d *runData) spread(f func(*Result) float64) spread { return spreadOf(d.values(f)) }

// ReadPlan reads an ablation directory's plan.json.
func ReadPlan(out string) (*Plan, error) {
	b, err := os.ReadFile(filepath.Join(out, PlanFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("ablate: %s holds no ablation (no %s; moegpu ablate --spec writes it)", out, PlanFile)
		}
		return nil, fmt.Errorf("ablate: %w", err)
	}
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("ablate: %s: %w", filepath.Join(out, PlanFile), err)
	}
	return &p, nil
}

// Report writes out/report.md and its plots under out/plots from the plan and whatever runs
// have finished (unfinished seeds are listed as missing), and returns the report's path.
func Report(out string) (string, error) {
	plan, err := ReadPlan(out)
	if err != nil {
		return "", err
	}
	var runs []*runData
	finished := 0
	for _, rp := range plan.Runs {
		d := &runData{plan: rp}
		for _, seed := range rp.Seeds {
			dir := filepath.Join(out, "runs", rp.Name, fmt.Sprintf("seed-%d", seed))
			d.dirs = append(d.dirs, dir)
			recs, err := metrics.ReadJSONL(filepath.Join(dir, metrics.FileName))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return "", err
			}
			d.recs = append(d.recs, recs)
			r, err := ReadResult(dir)
			switch {
			case err == nil:
				d.results = append(d.results, r)
				finished++
			case errors.Is(err, os.ErrNotExist):
				d.missing = append(d.missing, seed)
			default:
				return "", err
			}
		}
		runs = append(runs, d)
	}
	if err := os.MkdirAll(filepath.Join(out, PlotDir), 0o755); err != nil {
		return "", fmt.Errorf("ablate: %w", err)
	}
	w := &reportWriter{out: out, plan: plan, runs: runs}
	w.header(finished)
	if err := w.results(); err != nil {
		return "", err
	}
	if err := w.longContext(); err != nil {
		return "", err
	}
	if err := w.routing(); err != nil {
		return "", err
	}
	if err := w.copyExpert(); err != nil {
		return "", err
	}
	if err := w.mtp(); err != nil {
		return "", err
	}
	if err := w.timing(); err != nil {
		return "", err
	}
	w.files()
	path := filepath.Join(out, ReportFile)
	if err := atomicfile.Write(path, w.buf.Bytes()); err != nil {
		return "", fmt.Errorf("ablate: %w", err)
	}
	return path, nil
}

type reportWriter struct {
	out  string
	plan *Plan
	runs []*runData
	buf  bytes.Buffer
}

func (w *reportWriter) p(format string, a ...any) { fmt.Fprintf(&w.buf, format, a...) }

func (w *reportWriter) names() []string {
	out := make([]string, len(w.runs))
	for i, d := range w.runs {
		out[i] = d.plan.Name
	}
	return out
}

// plot writes a figure under plots/ and links it; a figure with nothing to draw is left out.
func (w *reportWriter) plot(name, alt string, wIn, hIn float64, plots [][]*plot.Plot) error {
	return w.plotWithFooter(name, alt, wIn, hIn, plots, nil)
}

// plotWithFooter is plot with a footer strip (a colour bar) under the grid.
func (w *reportWriter) plotWithFooter(name, alt string, wIn, hIn float64, plots [][]*plot.Plot, footer *plot.Plot) error {
	for _, row := range plots {
		for _, p := range row {
			if p == nil {
				return nil
			}
		}
	}
	footerH := vg.Length(0)
	if footer != nil {
		footerH = 0.75 * vg.Inch
		hIn += 0.75
	}
	if err := writePNG(filepath.Join(w.out, PlotDir, name), vg.Length(wIn)*vg.Inch, vg.Length(hIn)*vg.Inch, plots, footer, footerH); err != nil {
		return err
	}
	w.p("![%s](%s/%s)\n\n", alt, PlotDir, name)
	return nil
}

// noData tells a missing-data error (left out) from a real one.
func noData(err error) bool {
	return err != nil && (strings.HasPrefix(err.Error(), "no values") || strings.HasPrefix(err.Error(), "no finite"))
}

func (w *reportWriter) header(finished int) {
	pl := w.plan
	total := 0
	for _, d := range w.runs {
		total += len(d.plan.Seeds)
	}
	w.p("# Ablation: %s\n\n", pl.Name)
	if pl.Question != "" {
		w.p("**Question.** %s\n\n", pl.Question)
	}
	if pl.Description != "" {
		w.p("%s\n\n", pl.Description)
	}
	w.p("%d of %d runs × seeds finished.", finished, total)
	if finished < total {
		var miss []string
		for _, d := range w.runs {
			for _, s := range d.missing {
				miss = append(miss, fmt.Sprintf("%s seed %d", d.plan.Name, s))
			}
		}
		w.p(" Not yet: %s (moegpu ablate --resume continues them).", strings.Join(miss, ", "))
	}
	w.p("\n\n## Setup\n\n")
	if len(pl.BaseOverrides) > 0 {
		w.p("Every run starts from its config with the base overrides `%s`.\n\n", compact(pl.BaseOverrides))
	}
	w.p("Parameters are the main model's, all and those one token uses (MTP modules not counted).\n\n")
	w.p("| run | config | task | steps | seeds | overrides | parameters (active) | note |\n|---|---|---|---:|---|---|---:|---|\n")
	for _, d := range w.runs {
		rp := d.plan
		seeds := make([]string, len(rp.Seeds))
		for i, s := range rp.Seeds {
			seeds[i] = fmt.Sprint(s)
		}
		w.p("| %s | %s | %s | %d | %s | %s | %s (%s) | %s |\n", rp.Name, rp.Config, rp.Task, rp.Steps, strings.Join(seeds, ", "),
			code(compact(rp.Overrides)), humanCount(rp.Params), humanCount(rp.Active), rp.Note)
	}
	w.p("\n")
}

func compact(b json.RawMessage) string {
	if len(b) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return string(b)
	}
	return buf.String()
}

func code(s string) string {
	if s == "" {
		return "–"
	}
	return "`" + strings.ReplaceAll(s, "|", "\\|") + "`"
}

func humanCount(n int64) string {
	switch {
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

// metricInfo is the metric the runs were scored with (the first finished run's).
func (w *reportWriter) metricInfo() (name string, lower bool, ok bool) {
	for _, d := range w.runs {
		if len(d.results) > 0 {
			return d.results[0].Metric, d.results[0].LowerIsBetter, true
		}
	}
	return "", false, false
}

func metricTitle(name string) string {
	switch name {
	case "bits_per_char":
		return "held-out bits per character"
	case "exact_match":
		return "held-out exact match"
	case "cer":
		return "held-out character error rate"
	}
	return "held-out " + name
}

func (w *reportWriter) results() error {
	metric, lower, ok := w.metricInfo()
	w.p("## Results\n\n")
	if !ok {
		w.p("No run has finished yet.\n\n")
		return nil
	}
	dir := "higher is better"
	if lower {
		dir = "lower is better"
	}
	w.p("%s (%s), mean ± sd over seeds (range). \"vs best\" compares each run with the best run's mean: a difference smaller than the two runs' standard deviations added is inside the spread, and says nothing.\n\n", strings.ToUpper(metricTitle(metric)[:1])+metricTitle(metric)[1:], dir)
	best, bestI := math.NaN(), -1
	for i, d := range w.runs {
		m := d.spread(func(r *Result) float64 { return r.Value })
		if m.N > 0 && (bestI < 0 || (lower && m.Mean < best) || (!lower && m.Mean > best)) {
			best, bestI = m.Mean, i
		}
	}
	w.p("| run | %s | vs best | final training loss | step ms | FFN ms (alone) | tokens/s |\n|---|---:|---|---:|---:|---:|---:|\n", metric)
	for i, d := range w.runs {
		m := d.spread(func(r *Result) float64 { return r.Value })
		vs := "–"
		if m.N > 0 && bestI >= 0 {
			b := w.runs[bestI].spread(func(r *Result) float64 { return r.Value })
			switch {
			case i == bestI:
				vs = "best"
			case m.N < 2 || b.N < 2:
				vs = fmt.Sprintf("%+.4f (one seed: no spread)", m.Mean-b.Mean)
			case math.Abs(m.Mean-b.Mean) <= m.SD+b.SD:
				vs = fmt.Sprintf("%+.4f, inside the spread", m.Mean-b.Mean)
			default:
				vs = fmt.Sprintf("%+.4f, outside the spread", m.Mean-b.Mean)
			}
		}
		ffn := d.spread(func(r *Result) float64 {
			if r.FFN == nil {
				return math.NaN()
			}
			return r.FFN.Ms
		})
		w.p("| %s | %s | %s | %s | %s | %s | %s |\n", d.plan.Name, m.cell(4), vs,
			d.spread(func(r *Result) float64 { return r.Train.FinalLoss }).short(4),
			d.spread(func(r *Result) float64 { return r.Train.StepMs }).short(1), ffn.short(2),
			d.spread(func(r *Result) float64 { return r.Train.TokensPerS }).short(0))
	}
	w.p("\n")
	var cs []curve
	for i, d := range w.runs {
		xs, ys := meanCurve(d.recs, func(r metrics.Record) float64 { return r.Loss })
		if len(xs) > 0 {
			cs = append(cs, curve{run: i, name: d.plan.Name, xs: xs, ys: ys})
		}
	}
	loss, err := curvesPlot("training loss (mean over seeds, smoothed)", "step", "loss", cs, true)
	if err != nil && !noData(err) {
		return err
	}
	if err := w.plot("loss.png", "training loss of every run", 9, 5, [][]*plot.Plot{{loss}}); err != nil {
		return err
	}
	var vals [][]float64
	for _, d := range w.runs {
		vals = append(vals, d.values(func(r *Result) float64 { return r.Value }))
	}
	mp, err := dotPlot(metricTitle(metric)+" (mean ± sd; rings: seeds)", metric, w.names(), []dotSeries{{name: metric, perRun: vals}})
	if err != nil && !noData(err) {
		return err
	}
	return w.plot("metric.png", metricTitle(metric)+" per run", 9, 4.5, [][]*plot.Plot{{mp}})
}

func (w *reportWriter) longContext() error {
	lengths, depths := map[int]bool{}, map[float64]bool{}
	for _, d := range w.runs {
		for _, r := range d.results {
			for _, c := range r.Cells {
				lengths[c.Length], depths[c.Depth] = true, true
			}
		}
	}
	if len(lengths) == 0 {
		return nil
	}
	ls := sortedInts(lengths)
	ds := sortedFloats(depths)
	chance := w.chance()
	w.p("## Long context\n\nExact match by context length (all depths), mean ± sd over seeds")
	if chance > 0 {
		w.p(" (guessing scores %.3g)", chance)
	}
	w.p(":\n\n| run |")
	for _, l := range ls {
		w.p(" %d |", l)
	}
	w.p("\n|---|%s\n", strings.Repeat("---:|", len(ls)))
	cellAcc := func(r *Result, keep func(Cell) bool) float64 {
		c, n := 0, 0
		for _, x := range r.Cells {
			if keep(x) {
				c += x.Correct
				n += x.Total
			}
		}
		if n == 0 {
			return math.NaN()
		}
		return float64(c) / float64(n)
	}
	var byLen []curve
	for i, d := range w.runs {
		w.p("| %s |", d.plan.Name)
		var xs, ys []float64
		for _, l := range ls {
			s := d.spread(func(r *Result) float64 { return cellAcc(r, func(c Cell) bool { return c.Length == l }) })
			w.p(" %s |", s.short(3))
			if s.N > 0 {
				xs, ys = append(xs, float64(l)), append(ys, s.Mean)
			}
		}
		w.p("\n")
		if len(xs) > 0 {
			byLen = append(byLen, curve{run: i, name: d.plan.Name, xs: xs, ys: ys})
		}
	}
	w.p("\nBy depth of the answer (all lengths):\n\n| run |")
	for _, dp := range ds {
		w.p(" %.2f |", dp)
	}
	w.p("\n|---|%s\n", strings.Repeat("---:|", len(ds)))
	var byDepth []curve
	for i, d := range w.runs {
		w.p("| %s |", d.plan.Name)
		var xs, ys []float64
		for _, dp := range ds {
			s := d.spread(func(r *Result) float64 { return cellAcc(r, func(c Cell) bool { return c.Depth == dp }) })
			w.p(" %s |", s.short(3))
			if s.N > 0 {
				xs, ys = append(xs, dp), append(ys, s.Mean)
			}
		}
		w.p("\n")
		if len(xs) > 0 {
			byDepth = append(byDepth, curve{run: i, name: d.plan.Name, xs: xs, ys: ys})
		}
	}
	w.p("\n")
	pl, err := curvesPlot("exact match by context length", "context length (tokens)", "exact match", byLen, false)
	if err != nil && !noData(err) {
		return err
	}
	if pl != nil {
		pl.X.Scale = plot.LogScale{}
		pl.X.Tick.Marker = lengthTicks(ls)
		pl.Y.Min, pl.Y.Max = 0, 1.25 // room for the legend above 1
	}
	pd, err := curvesPlot("exact match by depth of the answer", "depth (0 = start of the context)", "exact match", byDepth, false)
	if err != nil && !noData(err) {
		return err
	}
	if pd != nil {
		pd.Y.Min, pd.Y.Max = 0, 1.25
	}
	for _, p := range []*plot.Plot{pl, pd} {
		if p != nil && chance >= minChanceLine {
			if err := chanceLine(p, chance); err != nil {
				return err
			}
		}
	}
	return w.plot("long_context.png", "exact match by context length and by depth", 12, 4.5, [][]*plot.Plot{{pl, pd}})
}

// minChanceLine is the smallest chance level the long-context plots draw a line at; lower
// ones would sit on the axis.
const minChanceLine = 0.01

// chance is the exact match of guessing on the runs' long-context task (textdata.Long.Chance),
// or 0 when the runs do not all share one such task.
func (w *reportWriter) chance() float64 {
	task := ""
	for _, d := range w.runs {
		if task != "" && d.plan.Task != task {
			return 0
		}
		task = d.plan.Task
	}
	t, ok, err := textdata.ParseLong(task)
	if !ok || err != nil {
		return 0
	}
	return t.Chance()
}

// chanceLine draws a dashed grey line at y = level across p, labelled "chance" in its legend.
func chanceLine(p *plot.Plot, level float64) error {
	l, err := plotter.NewLine(plotter.XYs{{X: p.X.Min, Y: level}, {X: p.X.Max, Y: level}})
	if err != nil {
		return err
	}
	l.Color, l.Width, l.Dashes = color.Gray{Y: 120}, vg.Points(1), []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(l)
	p.Legend.Add("chance", l)
	return nil
}

func lengthTicks(ls []int) plot.Ticker {
	return plot.TickerFunc(func(lo, hi float64) []plot.Tick {
		var ts []plot.Tick
		for _, l := range ls {
			ts = append(ts, plot.Tick{Value: float64(l), Label: fmt.Sprint(l)})
		}
		return ts
	})
}

func sortedInts(m map[int]bool) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

func sortedFloats(m map[float64]bool) []float64 {
	var out []float64
	for k := range m {
		out = append(out, k)
	}
	sort.Float64s(out)
	return out
}

func (w *reportWriter) moeRuns() []int {
	var out []int
	for i, d := range w.runs {
		for _, r := range d.results {
			if r.Train.MoE {
				out = append(out, i)
				break
			}
		}
	}
	return out
}

func (w *reportWriter) routing() error {
	moeIdx := w.moeRuns()
	if len(moeIdx) == 0 {
		return nil
	}
	w.p("## Routing\n\nAt the end of training (the last tenth of the steps), mean over MoE layers and seeds. MaxVio = (max load − mean load) / mean load; min load = the least-loaded expert's share ÷ the even share (1 = even, 0 = an idle expert); dropped = slots over capacity per step; ReLU² zeros/small = the share of the experts' activations that are exactly zero / below 1 %% of their row's largest.\n\n")
	w.p("| run | MaxVio | min load | skip rate | dropped/step | balance loss | ReLU² zeros | ReLU² small |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, i := range moeIdx {
		d := w.runs[i]
		t := func(f func(TrainSummary) float64) string {
			return d.spread(func(r *Result) float64 { return f(r.Train) }).short(3)
		}
		w.p("| %s | %s | %s | %s | %s | %s | %s | %s |\n", d.plan.Name, t(func(s TrainSummary) float64 { return s.MaxVio }),
			t(func(s TrainSummary) float64 { return s.MinLoad }), t(func(s TrainSummary) float64 { return s.SkipRate }),
			t(func(s TrainSummary) float64 { return s.Dropped }), t(func(s TrainSummary) float64 { return s.AuxLoss }),
			t(func(s TrainSummary) float64 { return s.ActZero }), t(func(s TrainSummary) float64 { return s.ActSmall }))
	}
	w.p("\n")
	var vio []curve
	for _, i := range moeIdx {
		d := w.runs[i]
		xs, ys := meanCurve(d.recs, func(r metrics.Record) float64 {
			ls := moeLayers(r)
			s := 0.0
			for _, l := range ls {
				s += r.Extras["moe."+l+".max_vio"]
			}
			return s / float64(max(len(ls), 1))
		})
		if len(xs) > 0 {
			vio = append(vio, curve{run: i, name: d.plan.Name, xs: xs, ys: ys})
		}
	}
	vp, err := curvesPlot("MaxVio over training (mean over layers and seeds, smoothed)", "step", "MaxVio", vio, false)
	if err != nil && !noData(err) {
		return err
	}
	if err := w.plot("maxvio.png", "MaxVio over training", 9, 4.5, [][]*plot.Plot{{vp}}); err != nil {
		return err
	}
	// Expert load over training: one heatmap per run (its first seed with metrics), two
	// per row, and the colour bar.
	const lim = 3.0
	var grid [][]*plot.Plot
	var row []*plot.Plot
	for _, i := range moeIdx {
		d := w.runs[i]
		for s, recs := range d.recs {
			z, experts, x0, x1 := loadGridOf(recs, 120)
			if experts == 0 {
				continue
			}
			row = append(row, heatPlot(fmt.Sprintf("%s (seed %d): expert load", d.plan.Name, d.plan.Seeds[s]), z, experts, x0, x1, lim))
			break
		}
		if len(row) == 2 {
			grid, row = append(grid, row), nil
		}
	}
	if len(row) > 0 {
		grid = append(grid, row)
	}
	if len(grid) == 0 {
		return nil
	}
	for i := range grid { // plot.Align wants a full grid: pad the last row with an empty plot
		for len(grid[i]) < 2 {
			e := plot.New()
			e.HideAxes()
			grid[i] = append(grid[i], e)
		}
	}
	w.p("Expert load over training (mean over MoE layers; colour: each expert's share against an even share, log scale; per-layer pictures are each run's moe.png):\n\n")
	return w.plotWithFooter("load.png", "expert load over training", 12, 3.2*float64(len(grid)), grid, colourBar(lim))
}

func (w *reportWriter) copyExpert() error {
	skipping := false
	classes := map[string]bool{}
	for _, d := range w.runs {
		for _, r := range d.results {
			if r.Train.SkipRate > 0 || len(r.ClassSkip) > 0 {
				skipping = true
			}
			for c := range r.ClassSkip {
				classes[c] = true
			}
		}
	}
	if !skipping {
		return nil
	}
	metric, _, _ := w.metricInfo()
	w.p("## Copy expert\n\nSkip rate in training (the last tenth of the steps) and on the held-out data by token class (mean over MoE layers and seeds); the FFN time is the step's FFN blocks timed alone at the skip rate reached.\n\n")
	order := []string{"lower", "upper", "digit", "space", "newline", "punct", "special", "image", "text"}
	var cls []string
	for _, c := range order {
		if classes[c] {
			cls = append(cls, c)
			delete(classes, c)
		}
	}
	for c := range classes {
		cls = append(cls, c)
	}
	w.p("| run | skip (training) | FFN ms |")
	for _, c := range cls {
		w.p(" %s |", c)
	}
	w.p("\n|---|---:|---:|%s\n", strings.Repeat("---:|", len(cls)))
	var xs, ys, fx [][]float64
	for _, d := range w.runs {
		w.p("| %s | %s | %s |", d.plan.Name, d.spread(func(r *Result) float64 { return r.Train.SkipRate }).short(3),
			d.spread(func(r *Result) float64 {
				if r.FFN == nil {
					return math.NaN()
				}
				return r.FFN.Ms
			}).short(2))
		for _, c := range cls {
			w.p(" %s |", d.spread(func(r *Result) float64 {
				v, ok := r.ClassSkip[c]
				if !ok {
					return math.NaN()
				}
				return v
			}).short(3))
		}
		w.p("\n")
		xs = append(xs, d.values(func(r *Result) float64 { return r.Train.SkipRate }))
		ys = append(ys, d.values(func(r *Result) float64 { return r.Value }))
		fx = append(fx, d.values(func(r *Result) float64 {
			if r.FFN == nil {
				return math.NaN()
			}
			return r.FFN.Ms
		}))
	}
	w.p("\n")
	a, err := scatterRuns("skip rate against "+metricTitle(metric), "skip rate (training, end)", metric, w.names(), xs, ys)
	if err != nil && !noData(err) {
		return err
	}
	b, err := scatterRuns("FFN time against "+metricTitle(metric), "FFN ms per step (alone)", metric, w.names(), fx, ys)
	if err != nil && !noData(err) {
		return err
	}
	if a != nil && b != nil {
		return w.plot("skip.png", "skip rate and FFN time against the held-out metric", 12, 4.5, [][]*plot.Plot{{a, b}})
	}
	if a != nil {
		return w.plot("skip.png", "skip rate against the held-out metric", 9, 4.5, [][]*plot.Plot{{a}})
	}
	return nil
}

func (w *reportWriter) mtp() error {
	maxD := 0
	var base *runData
	for _, d := range w.runs {
		for _, r := range d.results {
			if r.MTP != nil {
				maxD = max(maxD, len(r.MTP.Heads))
			}
			if len(r.Train.MTPLoss) == 0 && base == nil {
				base = d
			}
		}
	}
	if maxD == 0 {
		return nil
	}
	w.p("## Multi-token prediction\n\nSpeculative decoding with the MTP modules drafting, greedy, on held-out prompts (outputs identical to plain greedy decoding). Per head k: conditional acceptance (given heads 1…k−1 accepted), cumulative acceptance, the measured cost of the module as a share of a main forward, the cumulative acceptance it needs to break even, and the seed's rule of thumb (cost / k).")
	if base != nil {
		w.p(" Training overhead is the step time against %s (no MTP).", base.plan.Name)
	}
	w.p("\n\n| run | D | step ms | training overhead | decode speed-up | accepted drafts / round |\n|---|---:|---:|---:|---:|---:|\n")
	var accSeries []dotSeries
	for k := 0; k < maxD; k++ {
		accSeries = append(accSeries, dotSeries{name: fmt.Sprintf("head %d", k+1)})
	}
	mtOf := func(d *runData, f func(*MTPResult) float64) spread {
		return d.spread(func(r *Result) float64 {
			if r.MTP == nil {
				return math.NaN()
			}
			return f(r.MTP)
		})
	}
	var heads bytes.Buffer
	fmt.Fprintf(&heads, "| run | head | acceptance | cumulative | cost (main forwards) | break-even cumulative | seed's rule (cost / k) |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, d := range w.runs {
		D := 0
		for _, r := range d.results {
			D = max(D, len(r.Train.MTPLoss))
		}
		step := d.spread(func(r *Result) float64 { return r.Train.StepMs })
		over := "–"
		if base != nil && base != d {
			b := base.spread(func(r *Result) float64 { return r.Train.StepMs })
			if b.N > 0 && step.N > 0 {
				over = fmt.Sprintf("%+.1f%%", 100*(step.Mean/b.Mean-1))
			}
		}
		w.p("| %s | %d | %s | %s | %s | %s |\n", d.plan.Name, D, step.short(1), over,
			mtOf(d, func(m *MTPResult) float64 { return m.DecodeSpeedup }).short(2), mtOf(d, func(m *MTPResult) float64 { return m.MeanAccepted }).short(2))
		for k := 0; k < maxD; k++ {
			h := func(f func(MTPHead) float64) spread {
				return mtOf(d, func(m *MTPResult) float64 {
					if k >= len(m.Heads) {
						return math.NaN()
					}
					return f(m.Heads[k])
				})
			}
			if acc := h(func(x MTPHead) float64 { return x.Acceptance }); acc.N > 0 {
				fmt.Fprintf(&heads, "| %s | %d | %s | %s | %s | %s | %s |\n", d.plan.Name, k+1, acc.short(3),
					h(func(x MTPHead) float64 { return x.Cumulative }).short(3), h(func(x MTPHead) float64 { return x.Cost }).short(3),
					h(func(x MTPHead) float64 { return x.BreakEven }).short(3), h(func(x MTPHead) float64 { return x.SeedFigure }).short(3))
			}
			accSeries[k].perRun = append(accSeries[k].perRun, d.values(func(r *Result) float64 {
				if r.MTP == nil || k >= len(r.MTP.Heads) {
					return math.NaN()
				}
				return r.MTP.Heads[k].Acceptance
			}))
		}
	}
	w.p("\nPer head:\n\n%s", heads.String())
	w.p("\n")
	p, err := dotPlot("MTP acceptance per head (conditional; mean ± sd, rings: seeds)", "acceptance", w.names(), accSeries)
	if err != nil && !noData(err) {
		return err
	}
	if p != nil {
		p.Y.Min, p.Y.Max = 0, 1.25
	}
	return w.plot("mtp.png", "MTP acceptance per head", 9, 4.5, [][]*plot.Plot{{p}})
}

func (w *reportWriter) timing() error {
	w.p("## Time\n\nStep time is the median over the second half of training; FFN time is the step's FFN blocks (forward and backward) timed alone, at the skip rate the run reached; wall time is training plus scoring of one seed.\n\n")
	w.p("| run | step ms | FFN ms | FFN share | training s | scoring s | wall s |\n|---|---:|---:|---:|---:|---:|---:|\n")
	totalWall := 0.0
	var step, ffn [][]float64
	for _, d := range w.runs {
		f := d.spread(func(r *Result) float64 {
			if r.FFN == nil {
				return math.NaN()
			}
			return r.FFN.Ms
		})
		s := d.spread(func(r *Result) float64 { return r.Train.StepMs })
		share := "–"
		if f.N > 0 && s.N > 0 {
			share = fmt.Sprintf("%.0f%%", 100*f.Mean/s.Mean)
		}
		w.p("| %s | %s | %s | %s | %s | %s | %s |\n", d.plan.Name, s.short(1), f.short(2), share,
			d.spread(func(r *Result) float64 { return r.Train.TrainSeconds }).short(0),
			d.spread(func(r *Result) float64 { return r.EvalSeconds }).short(1),
			d.spread(func(r *Result) float64 { return r.WallSeconds }).short(0))
		for _, r := range d.results {
			totalWall += r.WallSeconds
		}
		step = append(step, d.values(func(r *Result) float64 { return r.Train.StepMs }))
		ffn = append(ffn, d.values(func(r *Result) float64 {
			if r.FFN == nil {
				return math.NaN()
			}
			return r.FFN.Ms
		}))
	}
	w.p("\nMeasured: %s of training and scoring in all (the sessions that finished each run).", time.Duration(totalWall*float64(time.Second)).Round(time.Second))
	if e := w.plan.Estimate; e != nil {
		w.p(" Estimated beforehand: %.0f min", e.Minutes)
		if e.How != "" {
			w.p(" (%s)", e.How)
		}
		w.p(".")
	}
	w.p("\n\n")
	p, err := dotPlot("time per training step (mean ± sd; rings: seeds)", "ms", w.names(), []dotSeries{{name: "whole step", perRun: step}, {name: "FFN blocks alone", perRun: ffn}})
	if err != nil && !noData(err) {
		return err
	}
	if p != nil {
		p.Y.Min = 0
	}
	return w.plot("time.png", "step and FFN time per run", 9, 4.5, [][]*plot.Plot{{p}})
}

func (w *reportWriter) files() {
	w.p("## Files\n\nEach seed's directory holds its checkpoint, metrics.jsonl, loss.png (and moe.png for MoE runs), the config it trained (%s) and its result.json:\n\n", ConfigFile)
	for _, d := range w.runs {
		var links []string
		for i, dir := range d.dirs {
			rel, err := filepath.Rel(w.out, dir)
			if err != nil {
				rel = dir
			}
			links = append(links, fmt.Sprintf("[seed %d](%s/)", d.plan.Seeds[i], filepath.ToSlash(rel)))
		}
		w.p("- %s: %s\n", d.plan.Name, strings.Join(links, ", "))
	}
}
