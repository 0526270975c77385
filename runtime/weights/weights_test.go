package weights_test

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/runtime/safetensors"
	"github.com/moegpu/moegpu/runtime/weights"
)

func plan(t *testing.T) (*graph.Reference, *graph.Tensor, *graph.Tensor) {
	g := graph.New()
	a := g.Param("a.weight", graph.F32(2, 3))
	b := g.Param("b.weight", graph.F32(4))
	x := g.Input("x", graph.F32(4))
	y := g.Apply1(graph.Add{}, x, b)
	p, err := g.Plan([]*graph.Tensor{y}, 256)
	require.NoError(t, err)
	return graph.NewReference(p), a, b
}

func write(t *testing.T, tensors ...safetensors.Tensor) string {
	path := filepath.Join(t.TempDir(), "w.safetensors")
	require.NoError(t, safetensors.Write(path, tensors, nil))
	return path
}

func tensor(t *testing.T, name string, shape []int, n int) safetensors.Tensor {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i) + 0.5
	}
	st, err := safetensors.FromFloat32(name, shape, v)
	require.NoError(t, err)
	return st
}

func TestLoadSetsEveryTensorByName(t *testing.T) {
	ex, a, b := plan(t)
	path := write(t, tensor(t, "a.weight", []int{2, 3}, 6), tensor(t, "b.weight", []int{4}, 4))
	require.NoError(t, weights.Load(ex, path, []*graph.Tensor{a, b}))
	got, err := ex.Get(a, b)
	require.NoError(t, err)
	require.Equal(t, []float64{0.5, 1.5, 2.5, 3.5, 4.5, 5.5}, got[0])
	require.Equal(t, []float64{0.5, 1.5, 2.5, 3.5}, got[1])
}

func TestLoadRefusesMissingExtraAndMisshapenTensors(t *testing.T) {
	ex, a, b := plan(t)
	only := write(t, tensor(t, "a.weight", []int{2, 3}, 6))
	require.ErrorContains(t, weights.Load(ex, only, []*graph.Tensor{a, b}), "missing tensor b.weight")
	extra := write(t, tensor(t, "a.weight", []int{2, 3}, 6), tensor(t, "b.weight", []int{4}, 4), tensor(t, "c.weight", []int{1}, 1))
	require.ErrorContains(t, weights.Load(ex, extra, []*graph.Tensor{a, b}), "unexpected tensor c.weight")
	shape := write(t, tensor(t, "a.weight", []int{3, 2}, 6), tensor(t, "b.weight", []int{4}, 4))
	require.ErrorContains(t, weights.Load(ex, shape, []*graph.Tensor{a, b}), "shape [3 2]")
	require.Error(t, weights.Load(ex, filepath.Join(t.TempDir(), "none"), []*graph.Tensor{a, b}))
}

func TestLoadRefusesNonFiniteWeightsNamingTheTensor(t *testing.T) {
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		ex, a, b := plan(t)
		st := tensor(t, "a.weight", []int{2, 3}, 6)
		v, err := st.Float32()
		require.NoError(t, err)
		v[4] = bad
		st, err = safetensors.FromFloat32("a.weight", []int{2, 3}, v)
		require.NoError(t, err)
		path := write(t, st, tensor(t, "b.weight", []int{4}, 4))
		err = weights.Load(ex, path, []*graph.Tensor{a, b})
		require.Error(t, err)
		require.Contains(t, err.Error(), "tensor a.weight holds")
		require.Contains(t, err.Error(), "element 4 (index [1 1])")
	}
}
