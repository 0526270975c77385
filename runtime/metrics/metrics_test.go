package metrics

import (
	"bytes"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/plot"
)

func TestWriterAppendsOneJSONObjectPerStepVisibleBeforeClose(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "nested")
	w, err := NewWriter(dir)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "metrics.jsonl"), w.Path())

	require.NoError(t, w.Write(Record{Step: 1, Loss: 3.5, LR: 1e-4, GradNorm: 0.7, TokensPerS: 1234.5}))
	require.NoError(t, w.Write(Record{Step: 2, Loss: 3.25, LR: 2e-4, GradNorm: 0.6, TokensPerS: 1300,
		Extras: map[string]float64{"skip_rate": 0.25, "aux_loss": 1e-3}}))

	// Flushed per line: readable while the writer is still open.
	b, err := os.ReadFile(w.Path())
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	require.Len(t, lines, 2)
	var first map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &first))
	assert.Equal(t, map[string]any{"step": 1.0, "loss": 3.5, "lr": 1e-4, "grad_norm": 0.7, "tokens_per_s": 1234.5}, first)
	var second map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &second))
	assert.Equal(t, map[string]any{"skip_rate": 0.25, "aux_loss": 1e-3}, second["extras"])

	require.NoError(t, w.Close())
	require.NoError(t, w.Close(), "closing twice is harmless")
	err = w.Write(Record{Step: 3})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "write after Close")
}

func TestReadJSONLRoundTripsRecordsIncludingNonFiniteValues(t *testing.T) {
	dir := t.TempDir()
	w, err := NewWriter(dir)
	require.NoError(t, err)
	in := []Record{
		{Step: 0, Loss: 10.25, LR: 0, GradNorm: 5, TokensPerS: 0},
		{Step: 1, Loss: math.NaN(), LR: 1e-3, GradNorm: math.Inf(1), TokensPerS: 99,
			Extras: map[string]float64{"bias_min": math.Inf(-1), "x": 0.1}},
	}
	for _, r := range in {
		require.NoError(t, w.Write(r))
	}
	require.NoError(t, w.Close())

	got, err := ReadJSONL(w.Path())
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, in[0], got[0])
	assert.True(t, math.IsNaN(got[1].Loss))
	assert.True(t, math.IsInf(got[1].GradNorm, 1))
	assert.True(t, math.IsInf(got[1].Extras["bias_min"], -1))
	assert.Equal(t, 0.1, got[1].Extras["x"])
	assert.Equal(t, 1e-3, got[1].LR)
}

func TestNewWriterResumesAppendingAndCutsAPartialLastLine(t *testing.T) {
	dir := t.TempDir()
	w, err := NewWriter(dir)
	require.NoError(t, err)
	require.NoError(t, w.Write(Record{Step: 1, Loss: 2}))
	require.NoError(t, w.Close())

	// A crash mid-write leaves half a line.
	f, err := os.OpenFile(filepath.Join(dir, FileName), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"step":2,"lo`)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	w, err = NewWriter(dir)
	require.NoError(t, err)
	require.NoError(t, w.Write(Record{Step: 2, Loss: 1.5}))
	require.NoError(t, w.Close())

	got, err := ReadJSONL(w.Path())
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, 1, got[0].Step)
	assert.Equal(t, 2, got[1].Step)
	assert.Equal(t, 1.5, got[1].Loss)
}

func TestNewWriterCutsAPartialLineLongerThanItsReadBuffer(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	content := `{"step":1,"loss":1}` + "\n" + strings.Repeat("x", 10000)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	w, err := NewWriter(dir)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, `{"step":1,"loss":1}`+"\n", string(b))

	// A file with no newline at all is one partial line: cut to empty.
	require.NoError(t, os.WriteFile(path, []byte(`{"st`), 0o644))
	w, err = NewWriter(dir)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	b, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Empty(t, b)
}

func TestWriterIsSafeForConcurrentUse(t *testing.T) {
	w, err := NewWriter(t.TempDir())
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				assert.NoError(t, w.Write(Record{Step: g*1000 + i, Loss: 1,
					Extras: map[string]float64{"pad": float64(i)}}))
			}
		}(g)
	}
	wg.Wait()
	require.NoError(t, w.Close())
	got, err := ReadJSONL(w.Path())
	require.NoError(t, err)
	assert.Len(t, got, 200)
}

func TestNewWriterReportsUnusableDirectories(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plain-file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	_, err := NewWriter(filepath.Join(file, "run"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "plain-file")
}

func TestReadJSONLErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	for _, tc := range []struct {
		name    string
		path    string
		want    string
		records int
	}{
		{"missing file", filepath.Join(dir, "nope.jsonl"), "no such file", 0},
		{"malformed middle line", write("a.jsonl", "{\"step\":1}\nnot json\n{\"step\":3}\n"), "line 2", 0},
		{"bad number", write("b.jsonl", "{\"step\":1,\"loss\":\"abc\"}\n"), "line 1", 0},
		{"partial last line skipped", write("c.jsonl", "{\"step\":1}\n{\"step\":2,\"lo"), "", 1},
		{"blank lines ignored", write("d.jsonl", "\n{\"step\":1}\n\n{\"step\":2}\n"), "", 2},
		{"unknown keys ignored", write("e.jsonl", "{\"step\":1,\"new_field\":[1]}\n"), "", 1},
		{"empty file", write("f.jsonl", ""), "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadJSONL(tc.path)
			if tc.want != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.want)
				assert.Contains(t, err.Error(), tc.path)
				return
			}
			require.NoError(t, err)
			assert.Len(t, got, tc.records)
		})
	}
}

func writeRun(t *testing.T, dir string, losses []float64) string {
	t.Helper()
	w, err := NewWriter(dir)
	require.NoError(t, err)
	for i, l := range losses {
		require.NoError(t, w.Write(Record{Step: i, Loss: l, LR: 1e-3}))
	}
	require.NoError(t, w.Close())
	return w.Path()
}

func TestPlotLossWritesAReadablePNG(t *testing.T) {
	dir := t.TempDir()
	losses := make([]float64, 300)
	for i := range losses {
		losses[i] = 0.05 + 4*math.Exp(-float64(i)/40) + 0.02*math.Sin(float64(i))
	}
	losses[150] = math.NaN()
	path := writeRun(t, dir, losses)
	png1 := filepath.Join(dir, "loss.png")
	require.NoError(t, PlotLoss(path, png1))

	b, err := os.ReadFile(png1)
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	assert.Greater(t, img.Bounds().Dx(), 300)
	assert.Greater(t, img.Bounds().Dy(), 200)

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	names := []string{}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"metrics.jsonl", "loss.png"}, names, "no temp files left")

	if out := os.Getenv("MOEGPU_METRICS_PLOT_OUT"); out != "" { // to look at the plot by eye
		require.NoError(t, os.WriteFile(out, b, 0o644))
	}
}

func TestPlotLossDrawsDegenerateRuns(t *testing.T) {
	for _, tc := range []struct {
		name   string
		losses []float64
	}{
		{"single step", []float64{2.5}},
		{"flat loss", []float64{1, 1, 1, 1}},
		{"negative and zero losses", []float64{0, -1, 0.5}},
		{"huge values", []float64{1e300, 1e-300}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeRun(t, dir, tc.losses)
			out := filepath.Join(dir, "loss.png")
			require.NoError(t, PlotLoss(path, out))
			f, err := os.Open(out)
			require.NoError(t, err)
			defer f.Close()
			_, err = png.Decode(f)
			require.NoError(t, err)
		})
	}
}

func TestNiceTicksLabelsRoundValues(t *testing.T) {
	for _, tc := range []struct {
		lo, hi float64
		want   []string
	}{
		{0, 299, []string{"0", "50", "100", "150", "200", "250"}},
		{0.03, 0.12, []string{"0.04", "0.06", "0.08", "0.1", "0.12"}},
		{-3, 3, []string{"-3", "-2", "-1", "0", "1", "2", "3"}},
		{5, 5, []string{"5"}},
		{1e15, 1e15 + 1, []string{"1e+15", "1e+15"}},
	} {
		var labels []string
		for _, tk := range niceTicks(tc.lo, tc.hi) {
			if tk.Label != "" {
				labels = append(labels, tk.Label)
			}
		}
		assert.Equal(t, tc.want, labels, "[%g, %g]", tc.lo, tc.hi)
	}
}

func TestLossPlotUsesALogAxisOnlyWhenTheRangeSpansMoreThanTenfold(t *testing.T) {
	for _, tc := range []struct {
		name   string
		losses []float64
		log    bool
	}{
		{"hundredfold", []float64{10, 1, 0.1}, true},
		{"exactly tenfold", []float64{10, 5, 1}, false},
		{"narrow", []float64{3, 2.5, 2.4}, false},
		{"zero loss", []float64{10, 0}, false},
		{"negative loss", []float64{10, -1, 0.01}, false},
		{"non-finite ignored", []float64{2, math.Inf(1), 1.5}, false},
		{"single step", []float64{4}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs := make([]Record, len(tc.losses))
			for i, l := range tc.losses {
				recs[i] = Record{Step: i, Loss: l}
			}
			p, err := lossPlot(recs)
			require.NoError(t, err)
			_, isLog := p.Y.Scale.(plot.LogScale)
			assert.Equal(t, tc.log, isLog)
		})
	}
}

func TestPlotLossErrors(t *testing.T) {
	dir := t.TempDir()
	good := writeRun(t, filepath.Join(dir, "good"), []float64{3, 2, 1})
	allNaN := writeRun(t, filepath.Join(dir, "nan"), []float64{math.NaN(), math.Inf(1)})
	empty := writeRun(t, filepath.Join(dir, "empty"), nil)
	for _, tc := range []struct {
		name, metrics, png, want string
	}{
		{"missing metrics", filepath.Join(dir, "missing.jsonl"), filepath.Join(dir, "a.png"), "no such file"},
		{"only non-finite losses", allNaN, filepath.Join(dir, "b.png"), "no finite loss values"},
		{"no records", empty, filepath.Join(dir, "c.png"), "no finite loss values"},
		{"png directory missing", good, filepath.Join(dir, "no-such-dir", "d.png"), "no-such-dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := PlotLoss(tc.metrics, tc.png)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			_, statErr := os.Stat(tc.png)
			assert.True(t, os.IsNotExist(statErr), "no PNG written on error")
		})
	}
}

func TestResetAndKeepUpTo(t *testing.T) {
	dir := t.TempDir()
	w, err := NewWriter(dir)
	require.NoError(t, err)
	for s := 1; s <= 5; s++ {
		require.NoError(t, w.Write(Record{Step: s, Loss: float64(s)}))
	}
	require.NoError(t, w.Close())
	require.NoError(t, KeepUpTo(dir, 3))
	recs, err := ReadJSONL(filepath.Join(dir, FileName))
	require.NoError(t, err)
	require.Len(t, recs, 3)
	require.Equal(t, 3, recs[2].Step)
	require.NoError(t, Reset(dir))
	_, err = os.Stat(filepath.Join(dir, FileName))
	require.True(t, os.IsNotExist(err))
	require.NoError(t, Reset(dir)) // nothing to remove is fine
	require.NoError(t, KeepUpTo(dir, 1))
}
