package graph

import "github.com/moegpu/moegpu/gpu"

// Helpers for op packages outside graph (moe/): the same kernel lookup,
// loop budget and shape checks graph's own ops use, so an op written
// elsewhere follows the same rules.

// Kernel compiles (or fetches from the device's cache) the entry point
// entry of the WGSL family shaders/<family>.wgsl. bindings lists the
// storage bindings in @binding order; params adds a uniform block after
// them; consts specialise `override` declarations (see gpu.Specialise).
func Kernel(dev *gpu.Device, family, entry, name string, bindings []gpu.Access, params bool, consts map[string]string) (*gpu.Kernel, error) {
	return kernel(dev, family, entry, name, bindings, params, consts)
}

// LoopBudget is the most loop iterations one invocation may run on dev's
// shader compiler (llvmpipe stops loops silently past it), or 0 when the
// device has no such limit.
func LoopBudget(dev *gpu.Device) int { return loopBudget(dev) }

// OverBudget is the ErrUnsupported error for a kernel whose worst-case
// loop count per invocation, iters, exceeds dev's LoopBudget.
func OverBudget(dev *gpu.Device, what string, iters int) error { return overBudget(dev, what, iters) }

// WantInputs checks an op's input count.
func WantInputs(in []Spec, n int) error { return wantInputs(in, n) }

// WantRank checks one input's rank and dtype; what names it in the error.
func WantRank(what string, s Spec, rank int, t gpu.DType) error { return wantRank(what, s, rank, t) }
