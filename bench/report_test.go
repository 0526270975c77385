package bench_test

import (
	"bytes"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/assets"
	"github.com/moegpu/moegpu/bench"
	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/runtime/config"
)

// synthetic builds a small result file as one adapter would write it:
// kernel rows with FLOPs and bytes, two models with profiles, and a
// support table with one refused and (optionally) one failing op.
func synthetic(backend string, scale float64, failing bool) *bench.Report {
	r := bench.NewReport(nil, bench.SuiteModel)
	r.Adapter = bench.Adapter{Name: "llvmpipe (LLVM 15.0.6, 256 bits)", Backend: backend, DeviceType: "cpu", Driver: "llvmpipe",
		Features: []string{"timestamp-query"}, Limits: &gpu.Limits{MaxStorageBufferBindingSize: 128 << 20, MaxStorageBuffersPerShaderStage: 8}}
	r.Host = bench.Host{Machine: "box", OS: "linux", Arch: "amd64", CPUs: 2}
	r.Date = time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	r.Command = []string{"moegpu", "bench", "model"}
	r.Peak = bench.Peak{FMAGflops: 100 * scale, CopyGBps: 9 * scale}
	r.Kernels = []bench.Kernel{
		{Name: "matmul_nn", Shape: "512x512x512", Variant: "auto", Ms: 10 / scale, GFlops: 27 * scale, PctOfPeak: 27, Best: true, Flops: 2.7e8, Bytes: 3 << 20},
		{Name: "matmul_nn", Shape: "512x512x512", Variant: "v1 naive", Ms: 50 / scale, GFlops: 5 * scale, PctOfPeak: 5, Flops: 2.7e8, Bytes: 3 << 20},
		{Name: "softmax", Shape: "1024x1024", Variant: "auto", Ms: 2 / scale, GBps: 4 * scale, PctOfPeak: 44, Best: true},
	}
	for i, name := range []string{"tiny-dense", "small-dense"} {
		step := (60 + 1000*float64(i)) / scale
		r.Models = append(r.Models, bench.Model{Config: name, Task: "reverse", Params: 80000, ActiveParams: 80000, BatchSize: 32, SeqLen: 24,
			Steps: 10, StepMs: step, StepMsMin: step * 0.9, SubmitMs: step * 0.8, TokensPerS: 768 / step * 1e3, GFlops: 5 * scale, PctOfPeak: 5,
			Dispatches: 96 + i, PrefillTokens: 32, PrefillTokensPerS: 5000, DecodeTokens: 32, DecodeTokensPerS: 400 * scale, DecodeDispatches: 37,
			Memory: bench.Memory{Params: 300 << 10, Grads: 300 << 10, Optimizer: 600 << 10, ActivationsPlanned: 6 << 20, ActivationsUnplanned: 12 << 20},
			Profile: &bench.Profile{Source: "timestamp", TotalMs: step * 0.8, Families: []bench.Family{
				{Name: "matmul A·Bᵀ", Launches: 15, Ms: step * 0.4, Share: 0.5}, {Name: "attention backward", Launches: 6, Ms: step * 0.2, Share: 0.25},
				{Name: "rmsnorm", Launches: 15, Ms: step * 0.2, Share: 0.25}}}})
	}
	r.Support = []bench.Support{
		{Op: "matmul A·B", Variant: "auto", Shape: "37×68×132", Status: bench.Supported},
		{Op: "topk", Variant: "v2 selection passes", Shape: "3×4096 k=32", Status: bench.Unsupported,
			Detail: "topk32 gpu: topk32: topk variant 2, n=4096, K=32: up to 131104 loop iterations per invocation; llvmpipe stops loops after 60000: unsupported on this adapter"},
	}
	if failing {
		r.Support = append(r.Support, bench.Support{Op: "softmax", Variant: "v2 row per workgroup", Shape: "17×1031", Status: bench.Failing,
			Detail: "softmax output 0 [17 1031]: 3/17527 values outside atol=1e-06 rtol=1e-05"})
	}
	return r
}

func TestResultFileRoundTripsThroughJSON(t *testing.T) {
	r := synthetic("vulkan", 1, true)
	path := filepath.Join(t.TempDir(), "r.json")
	require.NoError(t, r.WriteJSON(path))
	back, err := bench.ReadReport(path)
	require.NoError(t, err)
	require.Equal(t, path, back.Path)
	require.Equal(t, bench.SchemaName, back.Schema)
	require.Equal(t, bench.SchemaVersion, back.SchemaVersion)
	back.Path = ""
	r.Path = ""
	require.Equal(t, r, back)
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, key := range []string{`"schema": "moegpu-bench"`, `"schema_version": 2`, `"moegpu"`, `"command"`, `"host"`, `"limits"`, `"features"`, `"models"`, `"support"`} {
		require.Contains(t, string(raw), key)
	}
}

// A `bench kernels --json` file from before the schema had a version.
const version1 = `{
  "adapter": {"name": "llvmpipe (LLVM 15.0.6, 256 bits)", "backend": "vulkan", "device_type": "cpu", "driver": "llvmpipe (LLVM 15.0.6, 256 bits)"},
  "peak": {"fma_gflops": 95.2, "copy_gbps": 9.1},
  "kernels": [
    {"name": "matmul_nn", "shape": "1024x1024x1024", "variant": "auto", "ms": 65.3, "gflops": 32.9, "pct_of_peak": 34.5, "best": true},
    {"name": "softmax", "shape": "1024x1024", "variant": "v1 row/invocation", "ms": 3.1, "gbps": 2.7, "pct_of_peak": 29.6, "best": true}
  ],
  "date": "2026-11-20T10:00:00Z"
}`

func TestVersion1KernelFilesAreReadAndUpgraded(t *testing.T) {
	r, err := bench.DecodeReport([]byte(version1))
	require.NoError(t, err)
	require.Equal(t, 1, r.SchemaVersion)
	require.Equal(t, bench.SuiteKernels, r.Suite)
	require.Equal(t, "vulkan", r.Adapter.Backend)
	require.Nil(t, r.Adapter.Limits)
	require.InDelta(t, 95.2, r.Peak.FMAGflops, 1e-9)
	require.Len(t, r.Kernels, 2)
	require.InDelta(t, 32.9, r.Kernels[0].GFlops, 1e-9)
	require.Equal(t, "unknown", r.Moegpu.Version)
	// A version 1 file takes part in a report (no roofline: it has no bytes).
	var md bytes.Buffer
	bench.WriteMarkdown(&md, bench.GroupRuns([]*bench.Report{r}), nil)
	require.Contains(t, md.String(), "32.90 GFLOP/s (34.5%)")
	require.Contains(t, md.String(), "schema v1")
}

func TestUnreadableResultFilesAreRefusedWithTheReason(t *testing.T) {
	for name, c := range map[string]struct{ doc, want string }{
		"newer version":  {`{"schema": "moegpu-bench", "schema_version": 99, "kernels": []}`, "schema_version 99; this moegpu reads versions 1 to 2"},
		"zero version":   {`{"schema": "moegpu-bench", "schema_version": 0}`, "schema_version 0"},
		"other schema":   {`{"schema": "ggml-bench", "schema_version": 1}`, `schema "ggml-bench", want "moegpu-bench"`},
		"no version":     {`{"schema": "moegpu-bench"}`, "without schema_version"},
		"not a result":   {`{"loss": 1.5}`, "not a version 1 kernels file"},
		"not JSON":       {`step 1 loss 3.2`, "invalid character"},
		"wrong type":     {`{"schema": "moegpu-bench", "schema_version": 2, "models": "none"}`, "version 2"},
		"version string": {`{"schema": "moegpu-bench", "schema_version": "2"}`, "cannot unmarshal"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := bench.DecodeReport([]byte(c.doc))
			require.Error(t, err)
			require.True(t, errors.Is(err, bench.ErrSchema), "%v", err)
			require.Contains(t, err.Error(), c.want)
		})
	}
	_, err := bench.ReadReport(filepath.Join(t.TempDir(), "missing.json"))
	require.Error(t, err)
}

func TestReportFromTwoAdaptersWritesMarkdownAndReadablePNGs(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i, backend := range []string{"vulkan", "gl"} {
		p := filepath.Join(dir, backend+".json")
		require.NoError(t, synthetic(backend, 1+float64(i), i == 1).WriteJSON(p))
		paths = append(paths, p)
	}
	reports, err := bench.ReadReports(paths)
	require.NoError(t, err)
	out := filepath.Join(dir, "report")
	written, err := bench.WriteReportDir(reports, out)
	require.NoError(t, err)
	var names []string
	for _, p := range written {
		names = append(names, filepath.Base(p))
	}
	require.ElementsMatch(t, []string{"report.md", "support.md", "roofline-llvmpipe-vulkan.png", "roofline-llvmpipe-gl.png",
		"breakdown-llvmpipe-vulkan.png", "breakdown-llvmpipe-gl.png", "training-throughput.png"}, names)
	for _, p := range written {
		if strings.HasSuffix(p, ".png") {
			f, err := os.Open(p)
			require.NoError(t, err)
			cfg, err := png.DecodeConfig(f)
			f.Close()
			require.NoError(t, err, p)
			require.Greater(t, cfg.Width, 600, p)
			require.Greater(t, cfg.Height, 200, p)
		}
	}
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	require.NoError(t, err)
	s := string(md)
	for _, want := range []string{
		"| config | llvmpipe [vulkan] | llvmpipe [gl] |", // side by side
		"| tiny-dense | 60.0 | 30.0 |",                   // step ms, both adapters
		"![roofline of llvmpipe [gl]](roofline-llvmpipe-gl.png)",
		"![where a training step's time goes on llvmpipe [vulkan]](breakdown-llvmpipe-vulkan.png)",
		"| matmul_nn | 512x512x512 | auto ✓ | 27.00 GFLOP/s (27.0%) | 54.00 GFLOP/s (27.0%) |",
		"✗ topk variant 2, n=4096, K=32: up to 131104 loop iterations per invocation; llvmpipe stops loops after 60000 |",
		"FAIL: softmax output 0",
		"llvmpipe [gl]: 1 supported, 1 unsupported, 1 failing of 3.",
		"`moegpu bench model`",
		"| topk | 1 | ✓ 0 of 1; ✗ v2 selection passes (topk variant 2, n=4096, K=32: up to 131104 loop iterations per invocation; llvmpipe stops loops after 60000) |",
		"| softmax | 1 | — | ✓ 0 of 1; FAIL v2 row per workgroup (disagrees with the reference) |",
	} {
		require.Contains(t, s, want)
	}
	sup, err := os.ReadFile(filepath.Join(out, "support.md"))
	require.NoError(t, err)
	require.Contains(t, string(sup), "| matmul A·B | 1 | ✓ all | ✓ all |")
}

func TestCompareShowsRatiosAgainstTheFirstRun(t *testing.T) {
	base, other := synthetic("vulkan", 1, false), synthetic("vulkan", 0.5, true)
	other.Host.Machine = "other-box"
	other.Models[0].Dispatches = 60
	s := compareText(t, base, other)
	require.Contains(t, s, "| tiny-dense | 60.0 ms, 96 disp, 400.0 tok/s decode | 120.0 ms (×2.00 ▲), 60 disp (-36), 200.0 tok/s decode |")
	require.Contains(t, s, "| matmul_nn | 512x512x512 | auto | 10.000 | 20.000 (×2.00 ▲) |")
	require.Contains(t, s, "Op support that differs")
	require.NotContains(t, s, "▼)") // nothing got faster
	err := bench.Compare(&bytes.Buffer{}, []*bench.Report{base}, 0.05)
	require.ErrorContains(t, err, "at least two runs")
}

// compareText is bench.Compare's Markdown for reports at the 5 % threshold.
func compareText(t *testing.T, reports ...*bench.Report) string {
	t.Helper()
	var out bytes.Buffer
	require.NoError(t, bench.Compare(&out, reports, 0.05))
	return out.String()
}

// Before and after a change on one machine and adapter: each file is a
// run of its own, labelled by its file name.
func TestCompareTreatsFilesOfOneAdapterAsRuns(t *testing.T) {
	base, after := synthetic("vulkan", 1, false), synthetic("vulkan", 0.5, true)
	base.Path, after.Path = "/x/before.json", "/x/after.json"
	after.Models[0].Dispatches = 60
	s := compareText(t, base, after)
	require.Contains(t, s, "| config | before.json | after.json |")
	require.Contains(t, s, "60 disp (-36)")
}

func TestTrainFlopsCountsMatmulParametersAndCausalPairs(t *testing.T) {
	raw, ok := assets.Config("tiny-dense")
	require.True(t, ok)
	cfg, err := config.Parse(raw)
	require.NoError(t, err)
	B, T := 2, 8
	f := bench.TrainFlops(cfg, B, T)
	n := float64(cfg.ActiveParamCount())
	if !cfg.TieWordEmbeddings {
		n -= float64(cfg.VocabSize * cfg.HiddenSize)
	}
	require.InDelta(t, n, f.MatmulParams, 0.5)
	require.InDelta(t, 6*n*float64(B*T), f.Dense, 1e-6)
	attn := 0.0
	for i := 0; i < cfg.NumHiddenLayers; i++ {
		pairs := T * (T + 1) / 2 // full attention
		if cfg.IsSliding(i) && cfg.SlidingWindow < T {
			w := cfg.SlidingWindow
			pairs = w*(w+1)/2 + (T-w)*w
		}
		attn += 12 * float64(cfg.NumAttentionHeads*cfg.HeadDim*pairs*B)
	}
	require.InDelta(t, attn, f.Attention, 1e-6)
	require.InDelta(t, f.Dense+f.Attention, f.Total, 1e-6)

	// MTP modules and MoE experts add to N; a copy-expert config counts
	// unskipped tokens, so N is below the total parameter count.
	raw, _ = assets.Config("tiny-moe-mtp")
	moeCfg, err := config.Parse(raw)
	require.NoError(t, err)
	g := bench.TrainFlops(moeCfg, B, T)
	require.Greater(t, g.MatmulParams, float64(moeCfg.ActiveParamCount()))
	require.Less(t, float64(moeCfg.ActiveParamCount()), float64(moeCfg.ParamCount()))
}

func TestKernelFamiliesGroupTheRuntimesKernelNames(t *testing.T) {
	for kernel, family := range map[string]string{
		"matmul_nt_v3_8x8":               "matmul A·Bᵀ",
		"matmul_tn_acc_v2":               "matmul Aᵀ·B",
		"matmul_nn_v7_16x16x1_w1":        "matmul A·B",
		"attn_bwd_dkv_dh16_qb4":          "attention backward",
		"attn_fwd_dh32_qb4_sink":         "attention",
		"rmsnorm_dg_cols":                "rmsnorm",
		"ce_forward_rows_vec4":           "cross-entropy",
		"sumsq_part_chunk":               "optimizer",
		"adamw_v4":                       "optimizer",
		"moe_grouped_wgrad_v3_8x8_wg8x8": "moe experts",
		"moe_dispatch_scatter":           "moe routing",
		"moe_stats_token":                "moe balance & stats",
		"zero_fill":                      "elementwise",
		"brand_new_kernel_v2":            "brand",
	} {
		require.Equal(t, family, bench.KernelFamily(kernel), kernel)
	}
}

const goBenchOutput = `goos: linux
goarch: amd64
pkg: github.com/moegpu/moegpu/runtime/train
cpu: Intel(R) Xeon(R) Processor
BenchmarkTrainStep
    step_bench_test.go:35: adapter: llvmpipe (LLVM 15.0.6, 256 bits) [vulkan]
BenchmarkTrainStep/tiny-dense/group
BenchmarkTrainStep/tiny-dense/group-2         	      10	 66400238 ns/op	        96.00 dispatches/step	         2.214 model-GFLOP/s	       66.4 ms/step	      11566 tokens/s
BenchmarkTrainStep/tiny-dense/per_param-2     	      10	 86400238 ns/op	       179.0 dispatches/step
PASS
`

func TestGoBenchmarkOutputReadsAsAModelReport(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old.txt")
	require.NoError(t, os.WriteFile(old, []byte(goBenchOutput), 0o644))
	r, err := bench.ReadReport(old)
	require.NoError(t, err)
	require.Equal(t, "vulkan", r.Adapter.Backend)
	require.Equal(t, "llvmpipe (LLVM 15.0.6, 256 bits)", r.Adapter.Name)
	require.Len(t, r.Models, 2)
	require.Equal(t, "tiny-dense", r.Models[0].Config)
	require.Equal(t, "tiny-dense/per_param", r.Models[1].Config)
	require.InDelta(t, 66.400238, r.Models[0].StepMs, 1e-9)
	require.Equal(t, 96, r.Models[0].Dispatches)
	require.InDelta(t, 2.214, r.Models[0].GFlops, 1e-9)
	require.Equal(t, 179, r.Models[1].Dispatches)
	// A later run on another machine compares against it.
	newer := filepath.Join(dir, "new.txt")
	text := strings.ReplaceAll(goBenchOutput, "96.00 dispatches", "60.00 dispatches")
	text = strings.ReplaceAll(text, "Intel(R) Xeon(R) Processor", "AMD EPYC")
	require.NoError(t, os.WriteFile(newer, []byte(text), 0o644))
	reports, err := bench.ReadReports([]string{old, newer})
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, bench.Compare(&out, reports, 0.05))
	require.Contains(t, out.String(), "| tiny-dense | 66.4 ms, 96 disp | 66.4 ms (×1.00), 60 disp (-36) |")
	_, err = bench.ParseGoBench([]byte("PASS\nBenchmarkOther-2 10 5 ns/op\n"))
	require.ErrorContains(t, err, "no BenchmarkTrainStep result lines")
}
