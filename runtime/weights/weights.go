// Package weights moves tensors between safetensors files and executors,
// checking names and shapes so that a checkpoint of another model is
// refused with a clear error instead of loaded wrongly.
package weights

import (
	"fmt"
	"math"
	"slices"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/runtime/safetensors"
)

// Load reads a safetensors file and sets each listed tensor from
// it by name (a fused tensor from its parts, see graph.Tensor.Parts), checking that the file holds exactly these tensors, each
// with the model's shape and only finite values (a NaN or ±Inf is refused
// naming the tensor and element).
func Load(ex graph.Executor, path string, want []*graph.Tensor) error {
	return LoadIgnoring(ex, path, want, nil)
}

// LoadIgnoring is Load for a graph that uses only part of a checkpoint:
// tensors in the file for which ignore returns true may be absent from
// want (a generator without the multi-token-prediction modules reads a
// checkpoint that has them). Every other rule of Load holds.
func LoadIgnoring(ex graph.Executor, path string, want []*graph.Tensor, ignore func(name string) bool) error {
	vals, err := Read(path, want, ignore)
	if err != nil {
		return err
	}
	return Set(ex, want, vals)
}

// Read reads a safetensors file for the tensors of want, with every check of LoadIgnoring,
// and returns their values by tensor name (a fused tensor whole, its parts in place), for Set
// to load into one executor or several (graphs of different batch sizes over the same
// weights) without reading the file again.
func Read(path string, want []*graph.Tensor, ignore func(name string) bool) (map[string][]float64, error) {
	f, err := safetensors.Read(path)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	vals := make(map[string][]float64, len(want))
	for _, tn := range want {
		d := make([]float64, tn.Len())
		// A fused tensor (graph.Tensor.Parts) is read part by part.
		for _, part := range tn.Split() {
			names[part.Name] = true
			st, ok := f.Get(part.Name)
			if !ok {
				return nil, fmt.Errorf("%s: missing tensor %s", path, part.Name)
			}
			if !slices.Equal(st.Shape, part.Shape) {
				return nil, fmt.Errorf("%s: tensor %s has shape %v, the model needs %v", path, part.Name, st.Shape, part.Shape)
			}
			v, err := st.Float32()
			if err != nil {
				return nil, fmt.Errorf("%s: tensor %s: %w", path, part.Name, err)
			}
			for i, x := range v {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					return nil, fmt.Errorf("%s: tensor %s holds %v at element %d (index %v): a checkpoint with a non-finite weight is refused",
						path, part.Name, x, i, unflatten(i, st.Shape))
				}
				d[part.Lo+i] = float64(x)
			}
		}
		vals[tn.Name] = d
	}
	for _, st := range f.Tensors {
		if !names[st.Name] && (ignore == nil || !ignore(st.Name)) {
			return nil, fmt.Errorf("%s: unexpected tensor %s (checkpoint of a different model?)", path, st.Name)
		}
	}
	return vals, nil
}

// Set loads values that Read returned into ex, for each tensor of want by name; a tensor
// Read did not return, or of another length, is an error naming it.
func Set(ex graph.Executor, want []*graph.Tensor, vals map[string][]float64) error {
	for _, tn := range want {
		v, ok := vals[tn.Name]
		if !ok {
			return fmt.Errorf("weights: no values read for tensor %s", tn.Name)
		}
		if len(v) != tn.Len() {
			return fmt.Errorf("weights: %d values read for tensor %s of %d", len(v), tn.Name, tn.Len())
		}
		if err := ex.Set(tn, v); err != nil {
			return err
		}
	}
	return nil
}

// unflatten turns a row-major flat index into per-dimension indices.
func unflatten(i int, shape []int) []int {
	idx := make([]int, len(shape))
	for d := len(shape) - 1; d >= 0; d-- {
		if shape[d] > 0 {
			idx[d] = i % shape[d]
			i /= shape[d]
		}
	}
	return idx
}

// Tensors lists tensors with their values as a safetensors file holds
// them: a fused tensor (graph.Tensor.Parts) as one tensor per part, each
// under its own name and shape. vals[i] holds want[i]'s values.
func Tensors(want []*graph.Tensor, vals [][]float64) ([]safetensors.Tensor, error) {
	var out []safetensors.Tensor
	for i, tn := range want {
		for _, part := range tn.Split() {
			v := make([]float32, part.Hi-part.Lo)
			for j := range v {
				v[j] = float32(vals[i][part.Lo+j])
			}
			st, err := safetensors.FromFloat32(part.Name, part.Shape, v)
			if err != nil {
				return nil, err
			}
			out = append(out, st)
		}
	}
	return out, nil
}
