package metrics

import (
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeMoEMetrics writes a synthetic run of steps records with layers MoE layers of experts
// experts each: loads drift from skewed to balanced (layer 1 keeps expert 0 hot), MaxVio follows
// the skew, skip rate decays, and a few values are non-finite.
func writeMoEMetrics(t *testing.T, dir string, steps, layers, experts int) string {
	t.Helper()
	w, err := NewWriter(dir)
	require.NoError(t, err)
	defer w.Close()
	for s := 1; s <= steps; s++ {
		frac := float64(s) / float64(steps)
		ex := map[string]float64{"step_ms": 170}
		for l := range layers {
			raw := make([]float64, experts)
			sum := 0.0
			for e := range experts {
				skew := math.Exp(-3*frac) * float64(e) / float64(experts)
				if l == 1 && e == 0 {
					skew += 0.8
				}
				raw[e] = 1 + 2*skew + 0.15*math.Sin(float64(s)/7+float64(e))
				sum += raw[e]
			}
			hi := 0.0
			for e := range experts {
				share := raw[e] / sum
				ex[fmt.Sprintf("moe.%d.load.%d", l, e)] = share
				hi = math.Max(hi, share)
			}
			ex[fmt.Sprintf("moe.%d.max_vio", l)] = hi*float64(experts) - 1
			ex[fmt.Sprintf("moe.%d.skip_rate", l)] = 0.2 * math.Exp(-4*frac)
			ex[fmt.Sprintf("moe.%d.entropy", l)] = 2
			ex[fmt.Sprintf("moe.%d.dropped", l)] = 0
		}
		if s == 17 {
			ex["moe.0.max_vio"] = math.NaN()
			ex[fmt.Sprintf("moe.%d.load.3", layers-1)] = math.Inf(1)
		}
		require.NoError(t, w.Write(Record{Step: s, Loss: 3 - frac, LR: 1e-3, Extras: ex}))
	}
	return w.Path()
}

func TestPlotMoEDrawsAHeatmapRowPerLayer(t *testing.T) {
	dir := t.TempDir()
	if keep := os.Getenv("MOEGPU_KEEP_PLOTS"); keep != "" { // to look at the picture
		dir = keep
		require.NoError(t, Reset(dir))
	}
	path := writeMoEMetrics(t, dir, 300, 2, 8)
	out := filepath.Join(dir, "moe.png")
	require.NoError(t, PlotMoE(path, out))

	f, err := os.Open(out)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	b := img.Bounds()
	// 10 in wide, 2.6 in per layer, at gonum's default 96 dpi.
	assert.InDelta(t, 960, b.Dx(), 2)
	assert.InDelta(t, 2*2.6*96, b.Dy(), 4)

	// The heatmap sits in the left part of each row: it must show many colours, not a blank.
	for row := range 2 {
		y0 := b.Min.Y + row*b.Dy()/2
		region := image.Rect(b.Min.X+b.Dx()/10, y0+b.Dy()/8, b.Min.X+b.Dx()/2, y0+b.Dy()/3)
		colours := map[[3]uint32]bool{}
		for y := region.Min.Y; y < region.Max.Y; y += 2 {
			for x := region.Min.X; x < region.Max.X; x += 2 {
				r, g, bl, _ := img.At(x, y).RGBA()
				colours[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
			}
		}
		assert.Greater(t, len(colours), 20, "row %d heatmap looks blank", row)
	}
}

func TestPlotMoEDownsamplesLongRuns(t *testing.T) {
	dir := t.TempDir()
	path := writeMoEMetrics(t, dir, 1500, 1, 4)
	recs, err := ReadJSONL(path)
	require.NoError(t, err)
	layers := collectMoE(recs)
	require.Len(t, layers, 1)
	g := layers[0].grid()
	assert.LessOrEqual(t, len(g.z), 200)
	assert.GreaterOrEqual(t, len(g.z), 150)
	assert.InDelta(t, 0.5, g.lo[0], 1e-9)
	assert.InDelta(t, 1500.5, g.hi[len(g.hi)-1], 1e-9)
	require.NoError(t, PlotMoE(path, filepath.Join(dir, "moe.png")))
}

func TestPlotMoEOrdersLayersNumerically(t *testing.T) {
	recs := []Record{{Step: 1, Extras: map[string]float64{
		"moe.10.load.0": 1, "moe.2.load.0": 0.5, "moe.2.load.1": 0.5, "moe.x.load.0": 1, "aux_loss": 1}}}
	layers := collectMoE(recs)
	require.Len(t, layers, 2)
	assert.Equal(t, 2, layers[0].index)
	assert.Equal(t, 2, layers[0].experts)
	assert.Equal(t, 10, layers[1].index)
}

func TestPlotMoERejectsADenseRun(t *testing.T) {
	dir := t.TempDir()
	w, err := NewWriter(dir)
	require.NoError(t, err)
	for s := 1; s <= 5; s++ {
		require.NoError(t, w.Write(Record{Step: s, Loss: 2, Extras: map[string]float64{"step_ms": 10}}))
	}
	require.NoError(t, w.Close())
	out := filepath.Join(dir, "moe.png")
	err = PlotMoE(w.Path(), out)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no moe.* extras")
	_, statErr := os.Stat(out)
	assert.True(t, os.IsNotExist(statErr), "no PNG for a dense run")
}

func TestPlotMoEDrawsOneStepAndALayerWithoutLoads(t *testing.T) {
	dir := t.TempDir()
	w, err := NewWriter(dir)
	require.NoError(t, err)
	require.NoError(t, w.Write(Record{Step: 7, Loss: 2, Extras: map[string]float64{
		"moe.0.load.0": 0.75, "moe.0.load.1": 0.25, "moe.0.max_vio": 0.5, "moe.0.skip_rate": math.NaN(),
		"moe.1.max_vio": 0.1, "moe.1.act_zero": 0.3}}))
	require.NoError(t, w.Close())
	out := filepath.Join(dir, "moe.png")
	require.NoError(t, PlotMoE(w.Path(), out))
	f, err := os.Open(out)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	assert.InDelta(t, 2*2.6*96, img.Bounds().Dy(), 4)
}
