// Package weights moves tensors between safetensors files and executors,
// checking names and shapes so that a checkpoint of another model is
// refused with a clear error instead of loaded wrongly.
package weights

import (
	"fmt"
	"slices"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/runtime/safetensors"
)

// Load reads a safetensors file and sets each listed tensor from
// it by name, checking that the file holds exactly these tensors.
func Load(ex graph.Executor, path string, want []*graph.Tensor) error {
	f, err := safetensors.Read(path)
	if err != nil {
		return err
	}
	names := map[string]bool{}
	for _, tn := range want {
		names[tn.Name] = true
		st, ok := f.Get(tn.Name)
		if !ok {
			return fmt.Errorf("%s: missing tensor %s", path, tn.Name)
		}
		if !slices.Equal(st.Shape, tn.Shape) {
			return fmt.Errorf("%s: tensor %s has shape %v, the model needs %v", path, tn.Name, st.Shape, tn.Shape)
		}
		v, err := st.Float32()
		if err != nil {
			return fmt.Errorf("%s: tensor %s: %w", path, tn.Name, err)
		}
		d := make([]float64, len(v))
		for i, x := range v {
			d[i] = float64(x)
		}
		if err := ex.Set(tn, d); err != nil {
			return err
		}
	}
	for _, st := range f.Tensors {
		if !names[st.Name] {
			return fmt.Errorf("%s: unexpected tensor %s (checkpoint of a different model?)", path, st.Name)
		}
	}
	return nil
}
