package bench

import (
	"fmt"
	"io"
	"math/rand"
	"strings"
	"time"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
)

// Kernel is one timed kernel in a report.
type Kernel struct {
	Name      string  `json:"name"`
	Shape     string  `json:"shape"`
	Variant   string  `json:"variant,omitempty"`
	Ms        float64 `json:"ms"`
	GFlops    float64 `json:"gflops,omitempty"`
	GBps      float64 `json:"gbps,omitempty"`
	PctOfPeak float64 `json:"pct_of_peak"`
	Best      bool    `json:"best,omitempty"` // the variant the runtime picks for this shape
	// Note compares with another runtime at this shape, e.g. "2.1× ggml
	// Vulkan MUL_MAT_ID (6.2 GFLOP/s)".
	Note string `json:"note,omitempty"`
	// Flops and Bytes are the work of one op: floating-point operations
	// (0 for memory-bound kernels) and the bytes it must move at least
	// (each input read once, each output written once); Flops/Bytes is
	// the arithmetic intensity the roofline plots. Absent (0) in schema
	// version 1 files.
	Flops float64 `json:"flops,omitempty"`
	Bytes float64 `json:"bytes,omitempty"`
}

// Options control a kernel bench run.
type Options struct {
	MinTime time.Duration // per measurement
	Quick   bool          // small shapes only (for tests and smoke runs)
	Filter  string        // run only kernels whose name or variant contains this
	Log     io.Writer     // progress lines; nil for none
}

// Run measures the peak and every kernel on dev.
func Run(dev *gpu.Device, opt Options) (*Report, error) {
	if opt.MinTime == 0 {
		opt.MinTime = 300 * time.Millisecond
	}
	logf := func(format string, args ...any) {
		if opt.Log != nil {
			fmt.Fprintf(opt.Log, format, args...)
		}
	}
	r := NewReport(dev, SuiteKernels)
	r.Smoke = opt.Quick
	logf("measuring peak on %s …\n", dev.Info.Label())
	p, err := MeasurePeak(dev, opt.MinTime)
	if err != nil {
		return nil, fmt.Errorf("peak: %w", err)
	}
	r.Peak = p
	logf("peak: %.1f GFLOP/s FMA, %.2f GB/s copy\n", p.FMAGflops, p.CopyGBps)
	for _, c := range cases(opt.Quick) {
		if opt.Filter != "" && !strings.Contains(c.name, opt.Filter) && !strings.Contains(c.variant, opt.Filter) {
			continue
		}
		logf("  %-28s %-22s %-12s", c.name, c.shape, c.variant)
		rng := rand.New(rand.NewSource(1))
		in := make([]*graph.Host, len(c.in))
		for i, s := range c.in {
			in[i] = random(rng, s)
		}
		if c.hosts != nil {
			in = c.hosts(rng)
		}
		sec, err := timeOp(dev, c.op, in, c.reps, opt.MinTime)
		if err != nil {
			logf(" failed: %v\n", err)
			return nil, fmt.Errorf("%s %s: %w", c.name, c.shape, err)
		}
		k := Kernel{Name: c.name, Shape: c.shape, Variant: c.variant, Ms: sec * 1e3, Best: c.best, Flops: c.flops, Bytes: c.traffic()}
		if c.flops > 0 {
			k.GFlops = c.flops / sec / 1e9
			k.PctOfPeak = 100 * k.GFlops / p.FMAGflops
			if c.peer.gflops > 0 {
				k.Note = fmt.Sprintf("%.1f× %s (%.1f GFLOP/s)", k.GFlops/c.peer.gflops, c.peer.name, c.peer.gflops)
			}
			logf(" %8.3f ms %8.2f GFLOP/s %5.1f%% %s\n", k.Ms, k.GFlops, k.PctOfPeak, k.Note)
		} else {
			k.GBps = c.bytes / sec / 1e9
			k.PctOfPeak = 100 * k.GBps / p.CopyGBps
			logf(" %8.3f ms %8.3f GB/s    %5.1f%%\n", k.Ms, k.GBps, k.PctOfPeak)
		}
		r.Kernels = append(r.Kernels, k)
	}
	layers, err := runLayers(dev, opt, p, logf)
	if err != nil {
		return nil, err
	}
	r.Kernels = append(r.Kernels, layers...)
	return r, nil
}

func random(rng *rand.Rand, s graph.Spec) *graph.Host {
	h := graph.NewHost(s)
	for i := range h.Data {
		if s.DType == gpu.U32 || s.DType == gpu.I32 {
			h.Data[i] = float64(rng.Intn(2))
		} else {
			h.Data[i] = float64(float32(rng.Float64()*2 - 1))
		}
	}
	return h
}

// Markdown renders the report as a table for people.
func (r *Report) Markdown(w io.Writer) {
	fmt.Fprintf(w, "Adapter: %s (%s, %s)\n\n", r.Adapter.Name, r.Adapter.Backend, r.Adapter.DeviceType)
	fmt.Fprintf(w, "Peak: %.1f GFLOP/s FMA, %.2f GB/s copy\n\n", r.Peak.FMAGflops, r.Peak.CopyGBps)
	fmt.Fprintln(w, "| kernel | shape | variant | ms | GFLOP/s | GB/s | % of peak |")
	fmt.Fprintln(w, "|---|---|---|---:|---:|---:|---:|")
	for _, k := range r.Kernels {
		gf, gb := "", ""
		if k.GFlops > 0 {
			gf = fmt.Sprintf("%.2f", k.GFlops)
		}
		if k.GBps > 0 {
			gb = fmt.Sprintf("%.3f", k.GBps)
		}
		v := k.Variant
		if k.Best {
			v += " ✓"
		}
		if k.Note != "" {
			v += "; " + k.Note
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.3f | %s | %s | %.1f |\n", k.Name, k.Shape, v, k.Ms, gf, gb, k.PctOfPeak)
	}
}
