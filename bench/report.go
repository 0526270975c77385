package bench

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moegpu/moegpu/internal/atomicfile"
)

// Column is what one adapter on one machine measured: the rows of every
// result file that shares its machine, adapter and driver, merged (a
// kernels file, a model file and a support file of one run become one
// column of the report).
type Column struct {
	Label   string // column header: "llvmpipe [vulkan]", with the machine when labels would collide
	Machine string
	Adapter Adapter
	Peak    Peak
	Kernels []Kernel
	Models  []Model
	Support []Support
	Files   []*Report
	Smoke   bool // some file of the run was a --quick smoke run
}

// Slug is the run's label as a file-name part.
func (r *Column) Slug() string {
	var b strings.Builder
	for _, c := range strings.ToLower(r.Label) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteRune(c)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-")
}

// GroupRuns merges result files into runs, one per (machine, adapter,
// backend, driver), in the order they first appear. The column's peak is
// the kernel file's (whose rows the roofline plots), else the first
// measured one; a config, kernel or op
// measured by two files of one run keeps the later row.
func GroupRuns(reports []*Report) []*Column {
	var runs []*Column
	byKey := map[string]*Column{}
	for _, rep := range reports {
		key := strings.Join([]string{rep.Host.Machine, rep.Adapter.Name, rep.Adapter.Backend, rep.Adapter.Driver}, "|")
		r := byKey[key]
		if r == nil {
			r = &Column{Machine: rep.Host.Machine, Adapter: rep.Adapter}
			byKey[key] = r
			runs = append(runs, r)
		}
		r.Files = append(r.Files, rep)
		r.Smoke = r.Smoke || rep.Smoke
		if rep.Peak.FMAGflops > 0 && (r.Peak.FMAGflops == 0 || rep.Suite == SuiteKernels) {
			r.Peak = rep.Peak // the roofline's ceilings: the kernel suite's own peak where there is one
		}
		if r.Adapter.Limits == nil && rep.Adapter.Limits != nil {
			r.Adapter = rep.Adapter
		}
		r.Kernels = mergeRows(r.Kernels, rep.Kernels, func(k Kernel) string { return k.Name + "|" + k.Shape + "|" + k.Variant })
		r.Models = mergeRows(r.Models, rep.Models, func(m Model) string { return m.Config + "|" + m.Task })
		r.Support = mergeRows(r.Support, rep.Support, func(s Support) string { return s.Op + "|" + s.Variant + "|" + s.Shape })
	}
	labels := map[string]int{}
	for _, r := range runs {
		r.Label = shortAdapter(r.Adapter)
		labels[r.Label]++
	}
	for _, r := range runs {
		if labels[r.Label] > 1 && r.Machine != "" {
			r.Label = r.Machine + " " + r.Label
		}
	}
	return runs
}

// mergeRows appends rows to have, replacing a row with the same key.
func mergeRows[T any](have, rows []T, key func(T) string) []T {
	at := map[string]int{}
	for i, h := range have {
		at[key(h)] = i
	}
	for _, r := range rows {
		if i, ok := at[key(r)]; ok {
			have[i] = r
			continue
		}
		at[key(r)] = len(have)
		have = append(have, r)
	}
	return have
}

// shortAdapter is an adapter's name without its parenthesised details,
// with the backend: "llvmpipe [vulkan]".
func shortAdapter(a Adapter) string {
	name := a.Name
	if i := strings.Index(name, " ("); i > 0 {
		name = name[:i]
	}
	if name == "" {
		name = "unknown adapter"
	}
	return fmt.Sprintf("%s [%s]", name, a.Backend)
}

// ReadReports reads result files (see ReadReport), naming the first that
// fails.
func ReadReports(paths []string) ([]*Report, error) {
	if len(paths) == 0 {
		return nil, errors.New("no result files given")
	}
	var out []*Report
	for _, p := range paths {
		r, err := ReadReport(p)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// WriteReportDir writes report.md and its PNG plots (a roofline and a
// step-time breakdown per run, a step-time comparison across runs) into
// dir, creating it, and returns the paths written. Files are written
// atomically; a failure leaves earlier files in place.
func WriteReportDir(reports []*Report, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	runs := GroupRuns(reports)
	var written []string
	plots := map[string]string{} // key → file name, for the Markdown
	fams := familyOrder(runs)
	for _, r := range runs {
		if p := rooflinePoints(r); len(p) > 0 && r.Peak.FMAGflops > 0 {
			name := "roofline-" + r.Slug() + ".png"
			if err := writePNG(filepath.Join(dir, name), func() ([]byte, error) { return rooflinePNG(r) }); err != nil {
				return written, fmt.Errorf("%s: %w", name, err)
			}
			plots["roofline|"+r.Label] = name
			written = append(written, filepath.Join(dir, name))
		}
		if hasProfiles(r) {
			name := "breakdown-" + r.Slug() + ".png"
			if err := writePNG(filepath.Join(dir, name), func() ([]byte, error) { return breakdownPNG(r, fams) }); err != nil {
				return written, fmt.Errorf("%s: %w", name, err)
			}
			plots["breakdown|"+r.Label] = name
			written = append(written, filepath.Join(dir, name))
		}
	}
	if countModels(runs) > 0 {
		name := "training-throughput.png"
		if err := writePNG(filepath.Join(dir, name), func() ([]byte, error) { return stepTimePNG(runs) }); err != nil {
			return written, fmt.Errorf("%s: %w", name, err)
		}
		plots["steptime"] = name
		written = append(written, filepath.Join(dir, name))
	}
	if ns := countSupport(runs); ns > 0 {
		var sb strings.Builder
		fmt.Fprintf(&sb, "# Op support by adapter\n\nGenerated by `moegpu bench report` from `moegpu bench support` results: every op and kernel variant of `internal/optest.Suite`, run on the adapter and checked against its CPU reference with the tolerance its tests state.\n\n")
		SupportSummary(&sb, runs)
		fmt.Fprintf(&sb, "\n## Every variant\n\n")
		SupportTable(&sb, runs)
		path := filepath.Join(dir, "support.md")
		if err := atomicfile.Write(path, []byte(sb.String())); err != nil {
			return written, err
		}
		written = append(written, path)
	}
	var md strings.Builder
	WriteMarkdown(&md, runs, plots)
	path := filepath.Join(dir, "report.md")
	if err := atomicfile.Write(path, []byte(md.String())); err != nil {
		return written, err
	}
	return append(written, path), nil
}

func writePNG(path string, draw func() ([]byte, error)) error {
	b, err := draw()
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b)
}

func hasProfiles(r *Column) bool {
	for _, m := range r.Models {
		if m.Profile != nil && len(m.Profile.Families) > 0 {
			return true
		}
	}
	return false
}

func countSupport(runs []*Column) int {
	n := 0
	for _, r := range runs {
		n += len(r.Support)
	}
	return n
}

func countModels(runs []*Column) int {
	n := 0
	for _, r := range runs {
		n += len(r.Models)
	}
	return n
}

// WriteMarkdown writes the report of runs: where each came from, the
// adapters, models, kernels and the support table side by side; plots
// maps "roofline|<label>", "breakdown|<label>" and "steptime" to the PNG
// files to link (missing keys: no image).
func WriteMarkdown(w io.Writer, runs []*Column, plots map[string]string) {
	fmt.Fprintf(w, "# moegpu benchmark report\n\n")
	for _, r := range runs {
		if r.Smoke {
			fmt.Fprintf(w, "**%s: smoke run (--quick: tiny shapes, few steps). These numbers are not measurements.**\n\n", r.Label)
		}
	}
	writeSources(w, runs)
	writeAdapters(w, runs)
	if countModels(runs) > 0 {
		writeModels(w, runs, plots)
	}
	nk, ns := 0, 0
	for _, r := range runs {
		nk, ns = nk+len(r.Kernels), ns+len(r.Support)
	}
	if nk > 0 {
		writeKernels(w, runs, plots)
	}
	if ns > 0 {
		fmt.Fprintf(w, "## Op support\n\n")
		fmt.Fprintf(w, "Every op and kernel variant, checked against its CPU reference by the op test harness (`internal/optest`, the same cases as `go test ./internal/optest`): ✓ supported, ✗ unsupported (the adapter refused it; the limit is named), FAIL (ran but disagreed with the reference).\n\n")
		SupportSummary(w, runs)
		fmt.Fprintln(w)
		SupportTable(w, runs)
	}
}

// SupportSummary writes the support table one row per op: per run, "✓
// all N" or how many variants are supported, refused and failing, naming
// each that is not supported.
func SupportSummary(w io.Writer, runs []*Column) {
	var ops []string
	variants := map[string]map[string]bool{}
	for _, r := range runs {
		for _, s := range r.Support {
			if variants[s.Op] == nil {
				variants[s.Op] = map[string]bool{}
				ops = append(ops, s.Op)
			}
			variants[s.Op][s.Variant+"|"+s.Shape] = true
		}
	}
	var cols []*Column
	for _, r := range runs {
		if len(r.Support) > 0 {
			cols = append(cols, r)
		}
	}
	fmt.Fprintf(w, "| op | variants |")
	for _, r := range cols {
		fmt.Fprintf(w, " %s |", r.Label)
	}
	fmt.Fprintf(w, "\n|---|---:|")
	for range cols {
		fmt.Fprintf(w, "---|")
	}
	fmt.Fprintln(w)
	for _, op := range ops {
		fmt.Fprintf(w, "| %s | %d |", op, len(variants[op]))
		for _, r := range cols {
			ok, n := 0, 0
			var not []string
			for _, s := range r.Support {
				if s.Op != op {
					continue
				}
				n++
				if s.Status == Supported {
					ok++
					continue
				}
				mark := "✗"
				if s.Status != Unsupported {
					mark = "FAIL"
				}
				detail := shortDetail(s.Detail)
				if s.Status != Unsupported {
					detail = "disagrees with the reference"
				}
				detail = strings.ReplaceAll(detail, r.Adapter.Label()+" ", "the adapter ")
				not = append(not, fmt.Sprintf("%s %s (%s)", mark, s.Variant, detail))
			}
			switch {
			case n == 0:
				fmt.Fprintf(w, " — |")
			case ok == n:
				fmt.Fprintf(w, " ✓ all |")
			default:
				fmt.Fprintf(w, " ✓ %d of %d; %s |", ok, n, strings.ReplaceAll(strings.Join(not, "; "), "|", "\\|"))
			}
		}
		fmt.Fprintln(w)
	}
}

func writeSources(w io.Writer, runs []*Column) {
	fmt.Fprintf(w, "## Sources\n\nLoad: the machine's 1-minute load average at the start and end of the suite; above its CPU count, other work shared the CPUs (and, on a CPU driver, the \"GPU\").\n\n")
	fmt.Fprintf(w, "| run | file | suite | machine | load | moegpu | date | command |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range runs {
		for _, f := range r.Files {
			v := f.Moegpu.Version
			if f.Moegpu.Source != "" && f.Moegpu.Source != "unknown" {
				v += " (" + f.Moegpu.Source + ")"
			}
			if f.SchemaVersion != SchemaVersion {
				v += fmt.Sprintf("; schema v%d", f.SchemaVersion)
			}
			suite := f.Suite
			if f.Smoke {
				suite += " (smoke)"
			}
			load := "—"
			if f.Host.LoadStart > 0 || f.Host.LoadEnd > 0 {
				load = fmt.Sprintf("%.1f → %.1f", f.Host.LoadStart, f.Host.LoadEnd)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | `%s` |\n", r.Label, filepath.Base(f.Path), suite, f.Host.Machine, load, v,
				f.Date.Format("2006-01-02 15:04 MST"), strings.Join(f.Command, " "))
		}
	}
	fmt.Fprintln(w)
}

func writeAdapters(w io.Writer, runs []*Column) {
	fmt.Fprintf(w, "## Adapters\n\n")
	row := func(name string, f func(r *Column) string) {
		fmt.Fprintf(w, "| %s |", name)
		for _, r := range runs {
			fmt.Fprintf(w, " %s |", f(r))
		}
		fmt.Fprintln(w)
	}
	header(w, "", runs)
	row("adapter", func(r *Column) string { return r.Adapter.Name })
	row("backend", func(r *Column) string { return r.Adapter.Backend })
	row("device type", func(r *Column) string { return r.Adapter.DeviceType })
	row("driver", func(r *Column) string { return r.Adapter.Driver })
	row("machine", func(r *Column) string {
		if len(r.Files) == 0 {
			return ""
		}
		h := r.Files[0].Host
		s := r.Machine
		if h.CPUModel != "" {
			s += fmt.Sprintf(" (%s, %d CPUs)", h.CPUModel, h.CPUs)
		}
		return s
	})
	// Each file measured its own peak (its rows' % of peak use it); on a
	// busy CPU driver they differ, so every one is shown.
	peaks := func(r *Column, f func(Peak) float64, unit string) string {
		var parts []string
		for _, file := range r.Files {
			if v := f(file.Peak); v > 0 {
				parts = append(parts, fmt.Sprintf("%.2f %s (%s)", v, unit, file.Suite))
			}
		}
		if len(parts) == 0 {
			return "—"
		}
		return strings.Join(parts, "; ")
	}
	row("FMA peak", func(r *Column) string { return peaks(r, func(p Peak) float64 { return p.FMAGflops }, "GFLOP/s") })
	row("copy bandwidth", func(r *Column) string { return peaks(r, func(p Peak) float64 { return p.CopyGBps }, "GB/s") })
	row("shader-f16", func(r *Column) string { return yesNo(r.Adapter, "shader-f16") })
	row("timestamp-query", func(r *Column) string { return yesNo(r.Adapter, "timestamp-query") })
	row("max storage binding", func(r *Column) string {
		if r.Adapter.Limits == nil {
			return "—"
		}
		return bytesStr(r.Adapter.Limits.MaxStorageBufferBindingSize)
	})
	row("storage buffers / stage", func(r *Column) string {
		if r.Adapter.Limits == nil {
			return "—"
		}
		return fmt.Sprint(r.Adapter.Limits.MaxStorageBuffersPerShaderStage)
	})
	row("workgroup memory", func(r *Column) string {
		if r.Adapter.Limits == nil {
			return "—"
		}
		return bytesStr(uint64(r.Adapter.Limits.MaxComputeWorkgroupStorageSize))
	})
	fmt.Fprintln(w)
}

func yesNo(a Adapter, feature string) string {
	if a.Features == nil {
		return "—"
	}
	for _, f := range a.Features {
		if f == feature {
			return "yes"
		}
	}
	return "no"
}

func header(w io.Writer, first string, runs []*Column) {
	fmt.Fprintf(w, "| %s |", first)
	for _, r := range runs {
		fmt.Fprintf(w, " %s |", r.Label)
	}
	fmt.Fprintf(w, "\n|---|")
	for range runs {
		fmt.Fprintf(w, "---:|")
	}
	fmt.Fprintln(w)
}

func bytesStr(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

// modelConfigs lists every config any run measured, in first-seen order.
func modelConfigs(runs []*Column) []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range runs {
		for _, m := range r.Models {
			if !seen[m.Config] {
				seen[m.Config] = true
				out = append(out, m.Config)
			}
		}
	}
	return out
}

func findModel(r *Column, config string) *Model {
	for i := range r.Models {
		if r.Models[i].Config == config {
			return &r.Models[i]
		}
	}
	return nil
}

func writeModels(w io.Writer, runs []*Column, plots map[string]string) {
	fmt.Fprintf(w, "## Whole models\n\n")
	fmt.Fprintf(w, "A training step is one submission: forward, backward, gradient clipping and AdamW (`moegpu bench model`). "+
		"Model FLOPs per step = 6 × active matmul parameters × tokens + 12 × heads × head_dim × causal (query, key) pairs per layer "+
		"(see `bench.TrainFlops`); %% of peak is against the adapter's measured FMA peak. Prefill and decode: batch 1, KV cache, greedy.\n\n")
	cfgs := modelConfigs(runs)
	metric := func(title string, f func(m *Model, r *Column) string) {
		fmt.Fprintf(w, "**%s**\n\n", title)
		header(w, "config", runs)
		for _, c := range cfgs {
			fmt.Fprintf(w, "| %s |", c)
			for _, r := range runs {
				m := findModel(r, c)
				if m == nil {
					fmt.Fprintf(w, " — |")
					continue
				}
				fmt.Fprintf(w, " %s |", f(m, r))
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w)
	}
	metric("Training step, ms (median)", func(m *Model, _ *Column) string { return fmt.Sprintf("%.1f", m.StepMs) })
	metric("Training tokens/s", func(m *Model, _ *Column) string { return fmt.Sprintf("%.0f", m.TokensPerS) })
	metric("Model GFLOP/s (% of FMA peak)", func(m *Model, _ *Column) string { return fmt.Sprintf("%.2f (%.1f%%)", m.GFlops, m.PctOfPeak) })
	metric("Dispatches per training step", func(m *Model, _ *Column) string { return fmt.Sprint(m.Dispatches) })
	metric("Prefill tokens/s", func(m *Model, _ *Column) string { return fmt.Sprintf("%.0f", m.PrefillTokensPerS) })
	metric("Decode tokens/s", func(m *Model, _ *Column) string { return fmt.Sprintf("%.1f", m.DecodeTokensPerS) })
	if name, ok := plots["steptime"]; ok {
		fmt.Fprintf(w, "![training step time per config and adapter](%s)\n\n", name)
	}
	for _, r := range runs {
		if len(r.Models) == 0 {
			continue
		}
		fmt.Fprintf(w, "### %s\n\n", r.Label)
		ModelTable(w, r.Models)
		fmt.Fprintln(w)
		if name, ok := plots["breakdown|"+r.Label]; ok {
			fmt.Fprintf(w, "![where a training step's time goes on %s](%s)\n\n", r.Label, name)
		}
		FamilyTable(w, r.Models)
	}
}

// ModelTable writes one adapter's model rows: step, throughput, FLOPs,
// dispatches, decoding and memory.
func ModelTable(w io.Writer, models []Model) {
	fmt.Fprintln(w, "| config | task | params (active) | batch × seq | step ms (min) | submission ms | batch making ms | tokens/s | GFLOP/step | GFLOP/s | % peak | dispatches | prefill tok/s | decode tok/s (dispatches) | loss |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, m := range models {
		fmt.Fprintf(w, "| %s | %s | %.2fM (%.2fM) | %d × %d | %.1f (%.1f) | %.1f | %.1f | %.0f | %.3f | %.2f | %.1f | %d | %.0f | %.1f (%d) | %.3f |\n",
			m.Config, m.Task, float64(m.Params)/1e6, float64(m.ActiveParams)/1e6, m.BatchSize, m.SeqLen, m.StepMs, m.StepMsMin, m.SubmitMs, m.DataMs,
			m.TokensPerS, m.Flops.Total/1e9, m.GFlops, m.PctOfPeak, m.Dispatches, m.PrefillTokensPerS, m.DecodeTokensPerS, m.DecodeDispatches, m.Loss)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| config | parameters | gradients | AdamW moments | other state | activations planned | activations unplanned | saved | kernel scratch | total |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, m := range models {
		mm := m.Memory
		saved := 0.0
		if mm.ActivationsUnplanned > 0 {
			saved = 100 * (1 - float64(mm.ActivationsPlanned)/float64(mm.ActivationsUnplanned))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %.0f%% | %s | %s |\n", m.Config, bytesStr(mm.Params), bytesStr(mm.Grads), bytesStr(mm.Optimizer),
			bytesStr(mm.State), bytesStr(mm.ActivationsPlanned), bytesStr(mm.ActivationsUnplanned), saved, bytesStr(mm.Scratch), bytesStr(mm.Total()))
	}
}

// FamilyTable writes each config's profile: the kernel families' share of
// a step, largest first (the five largest, the rest summed).
func FamilyTable(w io.Writer, models []Model) {
	any := false
	for _, m := range models {
		if m.Profile != nil {
			any = true
		}
	}
	if !any {
		return
	}
	fmt.Fprintln(w, "| config | profile | kernel families, share of the profiled step (launches) |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, m := range models {
		if m.Profile == nil {
			continue
		}
		var parts []string
		rest := 0.0
		for i, f := range m.Profile.Families {
			if i < 6 {
				parts = append(parts, fmt.Sprintf("%s %.0f%% (%d)", f.Name, 100*f.Share, f.Launches))
			} else {
				rest += f.Share
			}
		}
		if rest > 0 {
			parts = append(parts, fmt.Sprintf("other %.0f%%", 100*rest))
		}
		fmt.Fprintf(w, "| %s | %s, %.1f ms | %s |\n", m.Config, m.Profile.Source, m.Profile.TotalMs, strings.Join(parts, "; "))
	}
	fmt.Fprintln(w)
}

type kernelKey struct{ name, shape, variant string }

func writeKernels(w io.Writer, runs []*Column, plots map[string]string) {
	fmt.Fprintf(w, "## Kernels\n\n")
	fmt.Fprintf(w, "Each kernel at each shape (`moegpu bench kernels`): GFLOP/s for compute kernels, GB/s (bytes each input read once and each output written once) for memory-bound ones, and %% of the adapter's FMA or copy peak. ✓ marks the variant the runtime picks.\n\n")
	for _, r := range runs {
		if name, ok := plots["roofline|"+r.Label]; ok {
			fmt.Fprintf(w, "![roofline of %s](%s)\n\n", r.Label, name)
		}
	}
	var keys []kernelKey
	seen := map[kernelKey]bool{}
	best := map[kernelKey]bool{}
	for _, r := range runs {
		for _, k := range r.Kernels {
			key := kernelKey{k.Name, k.Shape, k.Variant}
			if !seen[key] {
				seen[key] = true
				keys = append(keys, key)
			}
			best[key] = best[key] || k.Best
		}
	}
	fmt.Fprintf(w, "| kernel | shape | variant |")
	for _, r := range runs {
		fmt.Fprintf(w, " %s |", r.Label)
	}
	fmt.Fprintf(w, "\n|---|---|---|")
	for range runs {
		fmt.Fprintf(w, "---:|")
	}
	fmt.Fprintln(w)
	for _, key := range keys {
		v := key.variant
		if best[key] {
			v += " ✓"
		}
		fmt.Fprintf(w, "| %s | %s | %s |", key.name, key.shape, v)
		for _, r := range runs {
			k := findKernel(r.Kernels, key)
			switch {
			case k == nil:
				fmt.Fprintf(w, " — |")
			case k.GFlops > 0:
				fmt.Fprintf(w, " %.2f GFLOP/s (%.1f%%) |", k.GFlops, k.PctOfPeak)
			default:
				fmt.Fprintf(w, " %.3f GB/s (%.1f%%) |", k.GBps, k.PctOfPeak)
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	for _, r := range runs {
		var notes []string
		for _, k := range r.Kernels {
			if k.Note != "" && strings.Contains(k.Note, "×") && strings.Contains(k.Note, "ggml") {
				notes = append(notes, fmt.Sprintf("%s %s %s: %s", k.Name, k.Shape, k.Variant, k.Note))
			}
		}
		if len(notes) > 0 {
			fmt.Fprintf(w, "Against ggml on %s: %s.\n\n", r.Label, strings.Join(notes, "; "))
		}
	}
}

func findKernel(ks []Kernel, key kernelKey) *Kernel {
	for i := range ks {
		if ks[i].Name == key.name && ks[i].Shape == key.shape && ks[i].Variant == key.variant {
			return &ks[i]
		}
	}
	return nil
}

type supportKey struct{ op, variant, shape string }

// SupportTable writes the op × adapter table: one row per op variant,
// one column per run.
func SupportTable(w io.Writer, runs []*Column) {
	var keys []supportKey
	seen := map[supportKey]bool{}
	for _, r := range runs {
		for _, s := range r.Support {
			k := supportKey{s.Op, s.Variant, s.Shape}
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	var withSupport []*Column
	for _, r := range runs {
		if len(r.Support) > 0 {
			withSupport = append(withSupport, r)
		}
	}
	fmt.Fprintf(w, "| op | variant | shape |")
	for _, r := range withSupport {
		fmt.Fprintf(w, " %s |", r.Label)
	}
	fmt.Fprintf(w, "\n|---|---|---|")
	for range withSupport {
		fmt.Fprintf(w, "---|")
	}
	fmt.Fprintln(w)
	for _, k := range keys {
		fmt.Fprintf(w, "| %s | %s | %s |", k.op, k.variant, k.shape)
		for _, r := range withSupport {
			fmt.Fprintf(w, " %s |", supportCell(findSupport(r.Support, k)))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\n")
	for _, r := range withSupport {
		n := SupportCounts(r.Support)
		fmt.Fprintf(w, "%s: %d supported, %d unsupported, %d failing of %d.  \n", r.Label, n[Supported], n[Unsupported], n[Failing], len(r.Support))
	}
	fmt.Fprintln(w)
}

// Support statuses as the JSON spells them (optest's).
const (
	Supported   = "supported"
	Unsupported = "unsupported"
	Failing     = "failing"
)

func findSupport(rows []Support, k supportKey) *Support {
	for i := range rows {
		if rows[i].Op == k.op && rows[i].Variant == k.variant && rows[i].Shape == k.shape {
			return &rows[i]
		}
	}
	return nil
}

func supportCell(s *Support) string {
	if s == nil {
		return "—"
	}
	esc := func(t string) string { return strings.ReplaceAll(strings.ReplaceAll(t, "|", "\\|"), "\n", " ") }
	switch s.Status {
	case Supported:
		return "✓"
	case Unsupported:
		return "✗ " + esc(shortDetail(s.Detail))
	}
	d := s.Detail
	if len(d) > 160 {
		d = d[:160] + "…"
	}
	return "FAIL: " + esc(d)
}

// Compare writes Markdown comparing result files against the first: per
// config the step time, tokens/s, dispatches and decode speed of each
// run and its ratio to the first run's; per kernel the time; per op a
// changed support status. ratio > 1 in a time column means slower than
// the baseline. Rows that exceed threshold (e.g. 0.05: 5 %) slower are
// marked ▲ (regression), faster ▼.
//
// Files are grouped into runs by machine and adapter; when they all come
// from one machine and adapter (before and after a change), each file is a
// run of its own, labelled by its file name.
func Compare(w io.Writer, reports []*Report, threshold float64) error {
	runs := GroupRuns(reports)
	if len(runs) < 2 && len(reports) >= 2 {
		runs = nil
		for _, rep := range reports {
			r := GroupRuns([]*Report{rep})[0]
			if rep.Path != "" {
				r.Label = filepath.Base(rep.Path)
			}
			runs = append(runs, r)
		}
	}
	if len(runs) < 2 {
		return fmt.Errorf("compare needs results from at least two runs (two files, or files from two machines or adapters); got %d", len(runs))
	}
	base := runs[0]
	fmt.Fprintf(w, "# moegpu bench compare\n\nBaseline: %s%s. Ratios are run ÷ baseline; for times > 1 is slower. ▲ marks a time more than %.0f%% above the baseline, ▼ more than %.0f%% below.\n\n",
		base.Label, fileList(base), 100*threshold, 100*threshold)
	for _, r := range runs {
		if r.Smoke {
			fmt.Fprintf(w, "**%s is a smoke run: not a measurement.**\n\n", r.Label)
		}
	}
	mark := func(ratio float64) string {
		switch {
		case ratio > 1+threshold:
			return " ▲"
		case ratio > 0 && ratio < 1-threshold:
			return " ▼"
		}
		return ""
	}
	if cfgs := modelConfigs(runs); len(cfgs) > 0 {
		fmt.Fprintf(w, "## Training step ms (ratio), dispatches, decode tokens/s\n\n")
		header(w, "config", runs)
		for _, c := range cfgs {
			b := findModel(base, c)
			fmt.Fprintf(w, "| %s |", c)
			for _, r := range runs {
				m := findModel(r, c)
				if m == nil {
					fmt.Fprintf(w, " — |")
					continue
				}
				cell := fmt.Sprintf("%.1f ms", m.StepMs)
				if b != nil && r != base && b.StepMs > 0 {
					ratio := m.StepMs / b.StepMs
					cell += fmt.Sprintf(" (×%.2f%s)", ratio, mark(ratio))
				}
				cell += fmt.Sprintf(", %d disp", m.Dispatches)
				if b != nil && r != base && m.Dispatches != b.Dispatches {
					cell += fmt.Sprintf(" (%+d)", m.Dispatches-b.Dispatches)
				}
				if m.DecodeTokensPerS > 0 {
					cell += fmt.Sprintf(", %.1f tok/s decode", m.DecodeTokensPerS)
				}
				fmt.Fprintf(w, " %s |", cell)
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w)
	}
	var keys []kernelKey
	seen := map[kernelKey]bool{}
	for _, r := range runs {
		for _, k := range r.Kernels {
			key := kernelKey{k.Name, k.Shape, k.Variant}
			if !seen[key] {
				seen[key] = true
				keys = append(keys, key)
			}
		}
	}
	if len(keys) > 0 {
		fmt.Fprintf(w, "## Kernels: ms per op (ratio)\n\n| kernel | shape | variant |")
		for _, r := range runs {
			fmt.Fprintf(w, " %s |", r.Label)
		}
		fmt.Fprintf(w, "\n|---|---|---|")
		for range runs {
			fmt.Fprintf(w, "---:|")
		}
		fmt.Fprintln(w)
		for _, key := range keys {
			b := findKernel(base.Kernels, key)
			fmt.Fprintf(w, "| %s | %s | %s |", key.name, key.shape, key.variant)
			for _, r := range runs {
				k := findKernel(r.Kernels, key)
				if k == nil {
					fmt.Fprintf(w, " — |")
					continue
				}
				cell := fmt.Sprintf("%.3f", k.Ms)
				if b != nil && r != base && b.Ms > 0 {
					ratio := k.Ms / b.Ms
					cell += fmt.Sprintf(" (×%.2f%s)", ratio, mark(ratio))
				}
				fmt.Fprintf(w, " %s |", cell)
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w)
	}
	var changed []string
	for _, r := range runs[1:] {
		for _, s := range r.Support {
			b := findSupport(base.Support, supportKey{s.Op, s.Variant, s.Shape})
			if b == nil || b.Status != s.Status {
				changed = append(changed, fmt.Sprintf("| %s | %s | %s | %s | %s |", s.Op, s.Variant, r.Label, supportCell(b), supportCell(&s)))
			}
		}
	}
	if len(changed) > 0 {
		sort.Strings(changed)
		fmt.Fprintf(w, "## Op support that differs from the baseline\n\n| op | variant | run | baseline | run's |\n|---|---|---|---|---|\n%s\n\n", strings.Join(changed, "\n"))
	}
	return nil
}

// fileList is " (a.json, b.json)": the files a column was read from,
// or "" when it was not read from files.
func fileList(r *Column) string {
	var names []string
	for _, f := range r.Files {
		if f.Path != "" {
			names = append(names, filepath.Base(f.Path))
		}
	}
	if len(names) == 0 {
		return ""
	}
	return " (" + strings.Join(names, ", ") + ")"
}
