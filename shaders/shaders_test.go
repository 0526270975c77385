package shaders_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/shaders"
)

// Every embedded family compiles on the test adapter, entry points that no
// test dispatches included.
func TestEveryShaderFamilyCompiles(t *testing.T) {
	dev := gputest.Device(t)
	fams := shaders.Families()
	require.Contains(t, fams, "matmul")
	require.Contains(t, fams, "attention")
	for _, f := range fams {
		src, err := shaders.Source(f)
		require.NoError(t, err)
		require.NoError(t, dev.CheckShader(f, src), f)
	}
}

func TestTemplatesRenderAndCompile(t *testing.T) {
	dev := gputest.Device(t)
	seq := func(n int) []int {
		s := make([]int, n)
		for i := range s {
			s[i] = i
		}
		return s
	}
	src, err := shaders.Template("matmul_unrolled", map[string]any{"TM": 4, "TNV": 2, "WGX": 8, "WGY": 8, "UniformA": false, "Rows": seq(4), "Cols": seq(2)})
	require.NoError(t, err)
	require.NoError(t, dev.CheckShader("matmul_unrolled", src))
	src, err = shaders.Template("matmul_ubo", map[string]any{"TM": 16, "TNV": 2, "WGX": 16, "Rows": 16, "AVec4": 4096, "RowsPerLane": 32,
		"BBinding": 2, "CBinding": 3, "PBinding": 4, "Rows0": seq(16), "Cols": seq(2), "Wins": seq(2)})
	require.NoError(t, err)
	require.NoError(t, dev.CheckShader("matmul_ubo", src))
}

func TestMissingFamiliesAreErrors(t *testing.T) {
	_, err := shaders.Source("nope")
	require.Error(t, err)
	_, err = shaders.Template("nope", nil)
	require.Error(t, err)
	require.Panics(t, func() { shaders.MustSource("nope") })
}
