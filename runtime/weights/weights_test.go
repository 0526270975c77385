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

// A fused tensor (graph parts) is written part by part under the parts'
// names and shapes and read back into one tensor; a missing or misshapen
// part is refused naming it.
func TestFusedTensorsRoundTripPartByPart(t *testing.T) {
	g := graph.New()
	w := g.Param("attn.qkv_proj.weight", graph.F32(5, 3))
	g.SetParts(w, graph.Part{Name: "attn.q_proj.weight", Rows: 2}, graph.Part{Name: "attn.k_proj.weight", Rows: 1},
		graph.Part{Name: "attn.v_proj.weight", Rows: 2})
	x := g.Input("x", graph.F32(1, 3))
	y := g.Apply1(graph.MatMul{TransB: true}, x, w)
	require.NoError(t, g.Err())
	p, err := g.Plan([]*graph.Tensor{y}, 256)
	require.NoError(t, err)
	ref := graph.NewReference(p)
	vals := make([]float64, 15)
	for i := range vals {
		vals[i] = float64(i) * 0.25
	}
	ts, err := weights.Tensors([]*graph.Tensor{w}, [][]float64{vals})
	require.NoError(t, err)
	require.Len(t, ts, 3)
	require.Equal(t, "attn.q_proj.weight", ts[0].Name)
	require.Equal(t, []int{2, 3}, ts[0].Shape)
	require.Equal(t, []int{1, 3}, ts[1].Shape)
	k, err := ts[1].Float32()
	require.NoError(t, err)
	require.Equal(t, []float32{1.5, 1.75, 2}, k)
	path := write(t, ts...)
	require.NoError(t, weights.Load(ref, path, []*graph.Tensor{w}))
	got, err := ref.Get(w)
	require.NoError(t, err)
	require.Equal(t, vals, got[0])

	require.ErrorContains(t, weights.Load(ref, write(t, ts[0], ts[2]), []*graph.Tensor{w}), "missing tensor attn.k_proj.weight")
	bad := tensor(t, "attn.k_proj.weight", []int{2, 3}, 6)
	require.ErrorContains(t, weights.Load(ref, write(t, ts[0], bad, ts[2]), []*graph.Tensor{w}), "tensor attn.k_proj.weight has shape [2 3], the model needs [1 3]")
}

// SetParts refuses parts that do not add up, repeat a graph name, or sit
// on an activation.
func TestSetPartsRefusesBadParts(t *testing.T) {
	for _, c := range []struct {
		parts []graph.Part
		want  string
	}{
		{[]graph.Part{{Name: "a", Rows: 2}, {Name: "b", Rows: 2}}, "parts of 4 rows in all for a tensor of 5"},
		{[]graph.Part{{Name: "a", Rows: 5}, {Name: "b", Rows: 0}}, "want a name and a positive row count"},
		{[]graph.Part{{Name: "x", Rows: 5}}, "part name x is already a tensor"},
	} {
		g := graph.New()
		w := g.Param("w", graph.F32(5, 3))
		g.Input("x", graph.F32(1, 3))
		g.SetParts(w, c.parts...)
		require.ErrorContains(t, g.Err(), c.want)
	}
	g := graph.New()
	x := g.Input("x", graph.F32(2, 3))
	y := g.Apply1(graph.Scale{Factor: 2}, x)
	g.SetParts(y, graph.Part{Name: "p", Rows: 2})
	require.ErrorContains(t, g.Err(), "only a parameter or state tensor")
}

// Read returns the values by tensor name without an executor; Set loads them into one (or
// several graphs over the same names) and names a tensor it has no values for or the wrong
// number of.
func TestReadThenSetLoadsEveryTensorAndRefusesMissingOrMisshapenValues(t *testing.T) {
	ex, a, b := plan(t)
	path := write(t, tensor(t, "a.weight", []int{2, 3}, 6), tensor(t, "b.weight", []int{4}, 4))
	vals, err := weights.Read(path, []*graph.Tensor{a, b}, nil)
	require.NoError(t, err)
	require.Equal(t, []float64{0.5, 1.5, 2.5, 3.5}, vals["b.weight"])
	require.NoError(t, weights.Set(ex, []*graph.Tensor{a, b}, vals))
	got, err := ex.Get(a, b)
	require.NoError(t, err)
	require.Equal(t, []float64{0.5, 1.5, 2.5, 3.5, 4.5, 5.5}, got[0])
	require.Equal(t, []float64{0.5, 1.5, 2.5, 3.5}, got[1])

	require.ErrorContains(t, weights.Set(ex, []*graph.Tensor{a, b}, map[string][]float64{"a.weight": vals["a.weight"]}), "no values read for tensor b.weight")
	require.ErrorContains(t, weights.Set(ex, []*graph.Tensor{a, b}, map[string][]float64{"a.weight": vals["a.weight"], "b.weight": {1}}), "1 values read for tensor b.weight of 4")
	_, err = weights.Read(path, []*graph.Tensor{a}, nil)
	require.ErrorContains(t, err, "unexpected tensor b.weight")
	_, err = weights.Read(path, []*graph.Tensor{a}, func(name string) bool { return name == "b.weight" })
	require.NoError(t, err)
}
