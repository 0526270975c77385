package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/bench"
	"github.com/moegpu/moegpu/internal/gputest"
)

// A smoke run of the model suite on one tiny config writes a model row
// with every figure, and report and compare read it.
func TestBenchModelQuickFeedsReportAndCompare(t *testing.T) {
	gputest.Device(t)
	dir := t.TempDir()
	a := filepath.Join(dir, "a.json")
	code, out, errs := runCLI("bench", "model", "--quick", "--config", "tiny-dense", "--machine", "box-a", "--json", a)
	require.Equal(t, 0, code, errs)
	require.Contains(t, errs, "[1/1] tiny-dense")
	require.Contains(t, out, "| tiny-dense | reverse |")
	r, err := bench.ReadReport(a)
	require.NoError(t, err)
	require.True(t, r.Smoke)
	require.Equal(t, bench.SuiteModel, r.Suite)
	require.Equal(t, "box-a", r.Host.Machine)
	require.Contains(t, r.Command, "--quick")
	require.Len(t, r.Models, 1)
	m := r.Models[0]
	require.Greater(t, m.StepMs, 0.0)
	require.Greater(t, m.GFlops, 0.0)
	require.Greater(t, m.Dispatches, 0)
	require.Greater(t, m.DecodeTokensPerS, 0.0)
	require.Greater(t, m.PrefillTokensPerS, 0.0)
	require.Greater(t, m.Memory.ActivationsUnplanned, m.Memory.ActivationsPlanned)
	require.NotNil(t, m.Profile)
	require.NotEmpty(t, m.Profile.Families)

	// The same figures as another machine's, for compare.
	r.Stamp(r.Command, "box-b")
	b := filepath.Join(dir, "b.json")
	require.NoError(t, r.WriteJSON(b))
	code, out, errs = runCLI("bench", "compare", a, b, "--out", filepath.Join(dir, "cmp"))
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "(×1.00)")
	written, err := os.ReadFile(filepath.Join(dir, "cmp", "compare.md"))
	require.NoError(t, err)
	require.Equal(t, out, string(written))
	_, err = os.Stat(filepath.Join(dir, "cmp", "training-throughput.png"))
	require.NoError(t, err)
	code, out, errs = runCLI("bench", "report", a, b, "--out", filepath.Join(dir, "rep"))
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "report.md")
	_, err = os.Stat(filepath.Join(dir, "rep", "training-throughput.png"))
	require.NoError(t, err)
}

func TestBenchReportAndCompareRefuseBadInput(t *testing.T) {
	dir := t.TempDir()
	newer := filepath.Join(dir, "newer.json")
	require.NoError(t, os.WriteFile(newer, []byte(`{"schema": "moegpu-bench", "schema_version": 7}`), 0o644))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "report", "--out", dir}, "no result files"},
		{[]string{"bench", "report", newer}, "--out DIR is required"},
		{[]string{"bench", "report", newer, "--out", dir}, "schema_version 7"},
		{[]string{"bench", "compare", newer}, "at least two result files"},
		{[]string{"bench", "compare", newer, filepath.Join(dir, "missing.json")}, "schema_version 7"},
		{[]string{"bench", "compare", "--threshold", "-1", newer, newer}, "--threshold"},
		{[]string{"bench", "model", "--steps", "1"}, "--steps 1 must be at least 2"},
		{[]string{"bench", "model", "--task", "juggling"}, "juggling"},
	} {
		code, _, errs := runCLI(c.args...)
		require.Equal(t, 1, code, c.args)
		require.Contains(t, errs, c.want, c.args)
	}
}

// The support suite checks every op variant on the test adapter and writes
// the table; no variant may fail where the op tests pass.
func TestBenchSupportWritesTheTable(t *testing.T) {
	gputest.Device(t)
	path := filepath.Join(t.TempDir(), "s.json")
	code, out, errs := runCLI("bench", "support", "--json", path)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "| matmul A·B | auto | 37×68×132 | ✓ |")
	r, err := bench.ReadReport(path)
	require.NoError(t, err)
	require.Equal(t, bench.SuiteSupport, r.Suite)
	require.Zero(t, bench.SupportCounts(r.Support)[bench.Failing])
	require.Greater(t, bench.SupportCounts(r.Support)[bench.Supported], 150)
}
