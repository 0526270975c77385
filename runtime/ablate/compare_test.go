package ablate

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// PlotLoss draws a panel per entry from run directories' metrics and names what is missing.
func TestPlotLossDrawsPanelsAndNamesMissingRuns(t *testing.T) {
	dir := t.TempDir()
	var dirs []string
	for i, seed := range []float64{1, 2, 3} {
		d := filepath.Join(dir, string(rune('a'+i)))
		require.NoError(t, fakeMetrics(d, 50, seed, false))
		dirs = append(dirs, d)
	}
	out := filepath.Join(dir, "cmp.png")
	require.NoError(t, PlotLoss(out, []Panel{
		{Title: "sort", Series: []Series{{Name: "dense", Dirs: dirs[:2]}, {Name: "moe", Dirs: dirs[2:]}}},
		{Title: "add", Series: []Series{{Name: "moe", Dirs: dirs[2:]}}},
	}))
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	assert.Greater(t, img.Bounds().Dx(), 2*img.Bounds().Dy(), "two panels side by side")

	err = PlotLoss(out, []Panel{{Title: "x", Series: []Series{{Name: "gone", Dirs: []string{filepath.Join(dir, "nope")}}}}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `series "gone"`)
	assert.Contains(t, err.Error(), "nope")
	assert.ErrorContains(t, PlotLoss(out, nil), "no panels")
	assert.ErrorContains(t, PlotLoss(out, []Panel{{Title: "empty"}}), `panel "empty" has no series`)
	assert.ErrorContains(t, PlotLoss(out, []Panel{{Title: "p", Series: []Series{{Name: "s"}}}}), `series "s" has no run directory`)
}
