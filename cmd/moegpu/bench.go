package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/moegpu/moegpu/bench"
	"github.com/moegpu/moegpu/gpu"
)

// deviceFlags are the adapter-choice flags every GPU command shares.
type deviceFlags struct{ backend, adapter string }

// runFlags are the flags every command that runs a model shares: which
// executor, which adapter, and Go-side profiling.
type runFlags struct {
	executor string
	dev      deviceFlags
	prof     profiling
}

func (r *runFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.executor, "executor", "gpu", "gpu, or reference (pure Go, float64; slow, for checking)")
	addDeviceFlags(fs, &r.dev)
	r.prof.register(fs)
}

// open opens the device the executor needs (nil for the reference).
func (r *runFlags) open() (*gpu.Device, error) { return r.dev.openFor(r.executor) }

// openFor opens the chosen adapter for the gpu executor, and nothing (a
// nil device, which Close accepts) for the reference executor.
func (d *deviceFlags) openFor(executor string) (*gpu.Device, error) {
	if executor == "reference" {
		return nil, nil
	}
	return d.open()
}

func (d *deviceFlags) open() (*gpu.Device, error) {
	b, err := gpu.ParseBackend(d.backend)
	if err != nil {
		return nil, err
	}
	return gpu.Open(gpu.Options{Backend: b, Adapter: d.adapter})
}

func runBench(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "speculative" {
		return runBenchSpeculative(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "ocr" {
		return runBenchOCR(args[1:], stdout, stderr)
	}
	if sub, ok := map[string]func([]string, io.Writer, io.Writer) error{"model": runBenchModel, "support": runBenchSupport,
		"report": runBenchReport, "compare": runBenchCompare}[firstArg(args)]; ok {
		return sub(args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "kernels" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprint(stdout, `Usage: moegpu bench SUITE [flags]   (moegpu bench SUITE --help lists the suite's flags)

  kernels                      the adapter's FMA peak and copy bandwidth, then each kernel's GFLOP/s
                               or GB/s and % of that peak
  model [--config NAME|FILE]   training step, prefill and decode of model configs (default: every
                               shipped one): time, tokens/s, % of peak, memory, kernel shares
  support                      the op × adapter support table
  report A.json [B.json …] --out DIR
                               Markdown and PNG plots from result files (bench --json)
  compare A.json B.json …      result files against the first, with ratios
  speculative --checkpoint DIR --task T
                               MTP speculative decoding against plain decoding
  ocr DIR                      moegpu ocr and Tesseract on an eval folder of NAME.png + NAME.gt.txt
`)
			return nil
		}
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			return fmt.Errorf("unknown suite %q: want kernels, model, support, report, compare, speculative or ocr (moegpu bench --help)", args[0])
		}
		return fmt.Errorf("want a suite: moegpu bench kernels|model|support|report|compare|speculative|ocr (moegpu bench --help)")
	}
	fs := newFlags("bench kernels", "bench kernels [--backend B] [--adapter N|name] [--json FILE] [--quick] [--filter S]", stderr)
	var dev deviceFlags
	addDeviceFlags(fs, &dev)
	jsonPath := fs.String("json", "", "also write the report as JSON to this file")
	quick := fs.Bool("quick", false, "small shapes only: a smoke test, not a measurement")
	filter := fs.String("filter", "", "only kernels whose name or variant contains this (e.g. matmul_tn, small-dense)")
	minTime := fs.Duration("time", 300*time.Millisecond, "minimum time per measurement, > 0")
	machine := fs.String("machine", "", "a short name for this machine, recorded in the JSON (default: the hostname)")
	var prof profiling
	prof.register(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *minTime <= 0 {
		return fmt.Errorf("--time %v must be positive", *minTime)
	}
	defer prof.start()()
	d, err := dev.open()
	if err != nil {
		return err
	}
	defer d.Close()
	r, err := bench.Run(d, bench.Options{MinTime: *minTime, Quick: *quick, Filter: *filter, Log: stderr})
	if err != nil {
		return err
	}
	if *filter != "" && len(r.Kernels) == 0 {
		return fmt.Errorf("no kernel's name or variant contains --filter %q", *filter)
	}
	fmt.Fprintln(stdout)
	r.Markdown(stdout)
	r.Stamp(commandLine("kernels", args[1:]), *machine)
	if *jsonPath != "" {
		if err := r.WriteJSON(*jsonPath); err != nil {
			return fmt.Errorf("write %s: %w", *jsonPath, err)
		}
		fmt.Fprintf(stderr, "wrote %s\n", *jsonPath)
	}
	return nil
}

func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}
