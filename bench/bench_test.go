package bench_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/bench"
	"github.com/moegpu/moegpu/internal/gputest"
)

// A quick run measures the peak, times every kernel, and writes a JSON
// report with the fields other tools read.
func TestQuickBenchWritesReportWithPeakAndEveryKernel(t *testing.T) {
	dev := gputest.Device(t)
	r, err := bench.Run(dev, bench.Options{MinTime: time.Millisecond, Quick: true})
	require.NoError(t, err)
	require.Greater(t, r.Peak.FMAGflops, 0.0)
	require.Greater(t, r.Peak.CopyGBps, 0.0)
	names := map[string]bool{}
	for _, k := range r.Kernels {
		names[k.Name] = true
		require.Greater(t, k.PctOfPeak, 0.0, k.Name)
		require.True(t, k.GFlops > 0 || k.GBps > 0, k.Name)
	}
	for _, want := range []string{"matmul_nn", "matmul_nt", "matmul_tn", "matmul_nn_f16", "softmax", "rmsnorm", "topk"} {
		require.True(t, names[want], "missing %s", want)
	}
	path := filepath.Join(t.TempDir(), "bench.json")
	require.NoError(t, r.WriteJSON(path))
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	for _, key := range []string{"adapter", "peak", "kernels"} {
		require.Contains(t, doc, key)
	}
	require.Contains(t, doc["adapter"], "name")
	require.Contains(t, doc["adapter"], "backend")
	require.Contains(t, doc["peak"], "fma_gflops")
	require.Contains(t, doc["peak"], "copy_gbps")
	k0 := doc["kernels"].([]any)[0].(map[string]any)
	for _, key := range []string{"name", "shape", "pct_of_peak"} {
		require.Contains(t, k0, key)
	}
	var md strings.Builder
	r.Markdown(&md)
	require.Contains(t, md.String(), "| kernel | shape |")
}
