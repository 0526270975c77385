package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/moegpu/moegpu/assets"
	"github.com/moegpu/moegpu/bench"
	"github.com/moegpu/moegpu/internal/atomicfile"
)

// commandLine is what result files record as the command that made
// them: "moegpu bench <suite>" and the suite's arguments as given.
func commandLine(suite string, args []string) []string {
	return append([]string{"moegpu", "bench", suite}, args...)
}

// runBenchModel is `moegpu bench model`: whole training steps, prefill,
// decode, memory and the step's kernel families, per config.
func runBenchModel(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench model", "bench model [--config NAME|FILE]… [--task T] [--json FILE] [--steps N] [--quick] [--machine NAME] [--backend B]", stderr)
	var cfgs multiFlag
	fs.Var(&cfgs, "config", "a shipped config name ("+strings.Join(assets.Configs(), ", ")+") or a config file; repeat for several (default: every shipped config)")
	task := fs.String("task", "", "training task for every config (default: ocr for image configs, add for small*, reverse otherwise)")
	jsonPath := fs.String("json", "", "also write the results as JSON (the bench schema, see bench/schema.go) to this file")
	steps := fs.Int("steps", 10, "training steps to time per config, ≥ 2 (after one warm-up step)")
	decode := fs.Int("decode", 32, "new tokens to decode per run, ≥ 1 (fewer where the config's positions end)")
	quick := fs.Bool("quick", false, "smoke test: 2 timed steps, 4 decoded tokens, short peak measurement; marked smoke in the JSON, not a measurement")
	noProfile := fs.Bool("no-profile", false, "skip the kernel-by-kernel profile of a step")
	machine := fs.String("machine", "", "a short name for this machine, recorded in the JSON and used by bench report (default: the hostname)")
	minTime := fs.Duration("time", 300*time.Millisecond, "minimum time per peak measurement, > 0")
	var dev deviceFlags
	addDeviceFlags(fs, &dev)
	var prof profiling
	prof.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *steps < 2 {
		return fmt.Errorf("--steps %d must be at least 2", *steps)
	}
	if *decode < 1 {
		return fmt.Errorf("--decode %d must be at least 1", *decode)
	}
	if *minTime <= 0 {
		return fmt.Errorf("--time %v must be positive", *minTime)
	}
	if *task != "" {
		if err := checkTaskName(*task); err != nil {
			return err
		}
	}
	names := []string(cfgs)
	if len(names) == 0 {
		names = assets.Configs()
	}
	var list []bench.NamedConfig
	for _, n := range names {
		c, err := loadConfig(n)
		if err != nil {
			return err
		}
		list = append(list, bench.NamedConfig{Name: strings.TrimSuffix(filepath.Base(n), ".json"), Config: c})
	}
	opt := bench.ModelOptions{Steps: *steps, Task: *task, Decode: *decode, NoProfile: *noProfile, Log: stderr}
	if *quick {
		opt.Steps, opt.Decode, opt.Runs, *minTime = 2, 4, 1, 20*time.Millisecond
	}
	defer prof.start()()
	d, err := dev.open()
	if err != nil {
		return err
	}
	defer d.Close()
	r, err := bench.RunModels(d, list, *minTime, opt)
	if err != nil {
		return err
	}
	r.Smoke = *quick
	r.Stamp(commandLine("model", args), *machine)
	fmt.Fprintf(stdout, "\nAdapter: %s; peak %.1f GFLOP/s FMA, %.2f GB/s copy\n\n", d.Info.Label(), r.Peak.FMAGflops, r.Peak.CopyGBps)
	bench.ModelTable(stdout, r.Models)
	fmt.Fprintln(stdout)
	bench.FamilyTable(stdout, r.Models)
	if *jsonPath != "" {
		if err := r.WriteJSON(*jsonPath); err != nil {
			return fmt.Errorf("write %s: %w", *jsonPath, err)
		}
		fmt.Fprintf(stderr, "wrote %s\n", *jsonPath)
	}
	return nil
}

// runBenchSupport is `moegpu bench support`: the op × adapter table.
func runBenchSupport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench support", "bench support [--json FILE] [--machine NAME] [--backend B] [--adapter N|name]", stderr)
	jsonPath := fs.String("json", "", "also write the table as JSON (the bench schema) to this file")
	machine := fs.String("machine", "", "a short name for this machine, recorded in the JSON (default: the hostname)")
	var dev deviceFlags
	addDeviceFlags(fs, &dev)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	d, err := dev.open()
	if err != nil {
		return err
	}
	defer d.Close()
	fmt.Fprintf(stderr, "checking every op variant on %s …\n", d.Info.Label())
	r := bench.RunSupport(d, stderr)
	r.Stamp(commandLine("support", args), *machine)
	fmt.Fprintln(stdout)
	bench.SupportTable(stdout, bench.GroupRuns([]*bench.Report{r}))
	if *jsonPath != "" {
		if err := r.WriteJSON(*jsonPath); err != nil {
			return fmt.Errorf("write %s: %w", *jsonPath, err)
		}
		fmt.Fprintf(stderr, "wrote %s\n", *jsonPath)
	}
	if n := bench.SupportCounts(r.Support)[bench.Failing]; n > 0 {
		return fmt.Errorf("%d op variants fail their reference check on %s", n, d.Info.Label())
	}
	return nil
}

// runBenchReport is `moegpu bench report`: Markdown and PNG plots from
// result files.
func runBenchReport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench report", "bench report A.json [B.json …] --out DIR", stderr)
	out := fs.String("out", "", "directory for report.md and the PNG plots (created; files in it of the same names are replaced)")
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return errors.New("no result files given: moegpu bench report A.json [B.json …] --out DIR")
	}
	if *out == "" {
		return errors.New("--out DIR is required")
	}
	reports, err := bench.ReadReports(files)
	if err != nil {
		return err
	}
	written, err := bench.WriteReportDir(reports, *out)
	for _, p := range written {
		fmt.Fprintf(stdout, "wrote %s\n", p)
	}
	return err
}

// runBenchCompare is `moegpu bench compare`: result files side by side,
// with ratios against the first; with --out also as compare.md beside the
// report's PNG plots of the same files.
func runBenchCompare(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench compare", "bench compare BASELINE.json OTHER.json … [--threshold 0.05] [--out DIR]", stderr)
	threshold := fs.Float64("threshold", 0.05, "mark times more than this fraction slower (▲) or faster (▼) than the baseline, ≥ 0")
	out := fs.String("out", "", "also write the comparison to DIR/compare.md, with the report of the same files (report.md, roofline, breakdown and throughput PNGs) beside it")
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if !(*threshold >= 0) {
		return fmt.Errorf("--threshold %v must be ≥ 0", *threshold)
	}
	if len(files) < 2 {
		return fmt.Errorf("want at least two result files, got %d", len(files))
	}
	reports, err := bench.ReadReports(files)
	if err != nil {
		return err
	}
	var md strings.Builder
	if err := bench.Compare(io.MultiWriter(stdout, &md), reports, *threshold); err != nil {
		return err
	}
	if *out == "" {
		return nil
	}
	written, err := bench.WriteReportDir(reports, *out)
	if err == nil {
		path := filepath.Join(*out, "compare.md")
		if err = atomicfile.Write(path, []byte(md.String())); err == nil {
			written = append(written, path)
		}
	}
	for _, p := range written {
		fmt.Fprintf(stderr, "wrote %s\n", p)
	}
	return err
}

// parseInterleaved parses flags that may come before, between or after
// the positional file arguments, and returns the files.
func parseInterleaved(fs interface {
	Parse([]string) error
	Args() []string
}, args []string) ([]string, error) {
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return files, nil
		}
		files = append(files, rest[0])
		args = rest[1:]
	}
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }

func (m *multiFlag) Set(v string) error {
	*m = append(*m, v)
	return nil
}
