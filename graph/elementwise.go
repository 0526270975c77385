package graph

import (
	"fmt"
	"math"
	"slices"

	"github.com/moegpu/moegpu/gpu"
)

// Elementwise ops: the arithmetic glue of a transformer (residual adds,
// gating products, scaling) and its activations (ReLU², SiLU, SwiGLU) with
// their backwards. All take f32 tensors of any shape; the inputs of an op
// must have identical shapes (no broadcasting) and the outputs have that
// shape too. Every op dispatches one family of kernels from
// shaders/elementwise.wgsl.
//
// Gradients that need no kernel of their own:
//   - Add:   da = dy, db = dy (identity; pass dy on, or AddInto to accumulate).
//   - Mul:   da = Mul(dy, b), db = Mul(dy, a).
//   - Scale: da = Scale{Factor}(dy).
// Activation gradients are written (=); AddInto accumulates (+=) for
// parameter gradients.

// Elementwise kernel variants, for the Variant field of every elementwise op.
const (
	// ElementwiseAuto picks the variant that is fastest on lavapipe
	// (ElementwiseVec4).
	ElementwiseAuto = 0
	// ElementwiseScalar is one f32 at a time, several per invocation.
	ElementwiseScalar = 1
	// ElementwiseVec4 loads and stores vec4s, with a scalar dispatch for
	// the n mod 4 tail.
	ElementwiseVec4 = 2
)

// Work per invocation and workgroup size of the elementwise kernels
// (overrides WG and PER in the shader). PER counts f32s for the scalar
// variant and vec4s for the vec4 variant. On lavapipe (2 cores, n = 1<<20)
// the vec4 variant streams ~4.5–7 GB/s against ~2–3.5 GB/s for the scalar
// one; for vec4, one vec4 per invocation beat 2 and 4 (the loop is not
// free there), and WG 64/128/256 were within noise.
const (
	ewWG      = 256
	ewPerS    = 4
	ewPerVec4 = 1
)

// Add is y = a + b, the residual connection. Inputs (a, b); output y.
type Add struct{ Variant int }

// Mul is y = a · b, elementwise gating. Inputs (a, b); output y.
type Mul struct{ Variant int }

// Scale is y = Factor · a, for loss scaling and residual scaling. Input
// (a); output y. Its backward is Scale with the same Factor.
type Scale struct {
	Factor  float32
	Variant int
}

// AddInto accumulates y += a in place, for summing gradients contributed
// by several uses of one tensor (parameter gradients, tied weights). It is
// an Accumulator: inputs (a, prev), where prev is the previous value of
// output 0; on the GPU the output buffer already holds prev.
type AddInto struct{ Variant int }

// ReLUSquared is y = relu(x)², the squared-ReLU activation. Input (x);
// output y.
type ReLUSquared struct{ Variant int }

// ReLUSquaredBackward is dx = 2·relu(x)·dy. Inputs (x, dy); output dx.
type ReLUSquaredBackward struct{ Variant int }

// SiLU is y = x·σ(x), the activation of SwiGLU feed-forwards. Input (x);
// output y.
type SiLU struct{ Variant int }

// SiLUBackward is dx = dy·σ(x)·(1 + x·(1−σ(x))). Inputs (x, dy); output dx.
type SiLUBackward struct{ Variant int }

// SwiGLU is y = silu(gate)·up, the gated activation of an expert's
// feed-forward, fused so the silu(gate) intermediate never reaches memory.
// Inputs (gate, up); output y.
type SwiGLU struct{ Variant int }

// SwiGLUBackward gives both input gradients of SwiGLU in one pass:
// dgate = dy·up·σ(g)·(1 + g·(1−σ(g))), dup = dy·silu(gate). Inputs
// (gate, up, dy); outputs (dgate, dup).
type SwiGLUBackward struct{ Variant int }

// Name implements Op.
func (Add) Name() string { return "add" }

// Name implements Op.
func (Mul) Name() string { return "mul" }

// Name implements Op.
func (Scale) Name() string { return "scale" }

// Name implements Op.
func (AddInto) Name() string { return "add_into" }

// Name implements Op.
func (ReLUSquared) Name() string { return "relu2" }

// Name implements Op.
func (ReLUSquaredBackward) Name() string { return "relu2_bwd" }

// Name implements Op.
func (SiLU) Name() string { return "silu" }

// Name implements Op.
func (SiLUBackward) Name() string { return "silu_bwd" }

// Name implements Op.
func (SwiGLU) Name() string { return "swiglu" }

// Name implements Op.
func (SwiGLUBackward) Name() string { return "swiglu_bwd" }

// Accumulates implements Accumulator: AddInto always updates in place.
func (AddInto) Accumulates() bool { return true }

// Outputs implements Op.
func (Add) Outputs(in []Spec) ([]Spec, error) { return sameShape(in, 1, "a", "b") }

// Outputs implements Op.
func (Mul) Outputs(in []Spec) ([]Spec, error) { return sameShape(in, 1, "a", "b") }

// Outputs implements Op.
func (Scale) Outputs(in []Spec) ([]Spec, error) { return sameShape(in, 1, "a") }

// Outputs implements Op.
func (AddInto) Outputs(in []Spec) ([]Spec, error) { return sameShape(in, 1, "a", "prev") }

// Outputs implements Op.
func (ReLUSquared) Outputs(in []Spec) ([]Spec, error) { return sameShape(in, 1, "x") }

// Outputs implements Op.
func (ReLUSquaredBackward) Outputs(in []Spec) ([]Spec, error) { return sameShape(in, 1, "x", "dy") }

// Outputs implements Op.
func (SiLU) Outputs(in []Spec) ([]Spec, error) { return sameShape(in, 1, "x") }

// Outputs implements Op.
func (SiLUBackward) Outputs(in []Spec) ([]Spec, error) { return sameShape(in, 1, "x", "dy") }

// Outputs implements Op.
func (SwiGLU) Outputs(in []Spec) ([]Spec, error) { return sameShape(in, 1, "gate", "up") }

// Outputs implements Op.
func (SwiGLUBackward) Outputs(in []Spec) ([]Spec, error) {
	return sameShape(in, 2, "gate", "up", "dy")
}

// sameShape checks that the inputs, named in order, are f32 tensors of one
// shape, and returns nOut outputs of that shape.
func sameShape(in []Spec, nOut int, names ...string) ([]Spec, error) {
	if len(in) != len(names) {
		return nil, fmt.Errorf("want %d inputs (%v), got %d", len(names), names, len(in))
	}
	for i, s := range in {
		if s.DType != gpu.F32 {
			return nil, fmt.Errorf("input %d (%s): want f32, got %s", i, names[i], s)
		}
		if !slices.Equal(s.Shape, in[0].Shape) {
			return nil, fmt.Errorf("input %d (%s) has shape %v, input 0 (%s) has shape %v: elementwise inputs must match",
				i, names[i], s.Shape, names[0], in[0].Shape)
		}
	}
	out := make([]Spec, nOut)
	for i := range out {
		out[i] = F32(append([]int(nil), in[0].Shape...)...)
	}
	return out, nil
}

// sigmoid64 is the reference logistic; IEEE float64 makes the plain formula
// safe for every x (exp(-x) = +Inf gives 0, not NaN).
func sigmoid64(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// mapReference is the shared CPU reference: for every element index i it
// calls f with the inputs' values at i and stores f's results in the
// outputs at i.
func mapReference(op Op, in []*Host, f func(x []float64) []float64) ([]*Host, error) {
	specs := make([]Spec, len(in))
	for i, h := range in {
		specs[i] = h.Spec
	}
	outSpecs, err := op.Outputs(specs)
	if err != nil {
		return nil, err
	}
	out := make([]*Host, len(outSpecs))
	for i, s := range outSpecs {
		out[i] = NewHost(s)
	}
	x := make([]float64, len(in))
	for i := range out[0].Data {
		for j, h := range in {
			x[j] = h.Data[i]
		}
		for j, y := range f(x) {
			out[j].Data[i] = y
		}
	}
	return out, nil
}

// Reference implements Op.
func (o Add) Reference(in []*Host) ([]*Host, error) {
	return mapReference(o, in, func(x []float64) []float64 { return []float64{x[0] + x[1]} })
}

// Reference implements Op.
func (o Mul) Reference(in []*Host) ([]*Host, error) {
	return mapReference(o, in, func(x []float64) []float64 { return []float64{x[0] * x[1]} })
}

// Reference implements Op.
func (o Scale) Reference(in []*Host) ([]*Host, error) {
	return mapReference(o, in, func(x []float64) []float64 { return []float64{float64(o.Factor) * x[0]} })
}

// Reference implements Op: inputs (a, prev), output prev + a.
func (o AddInto) Reference(in []*Host) ([]*Host, error) {
	return mapReference(o, in, func(x []float64) []float64 { return []float64{x[1] + x[0]} })
}

// Reference implements Op.
func (o ReLUSquared) Reference(in []*Host) ([]*Host, error) {
	return mapReference(o, in, func(x []float64) []float64 {
		r := math.Max(x[0], 0)
		return []float64{r * r}
	})
}

// Reference implements Op.
func (o ReLUSquaredBackward) Reference(in []*Host) ([]*Host, error) {
	return mapReference(o, in, func(x []float64) []float64 {
		return []float64{2 * math.Max(x[0], 0) * x[1]}
	})
}

// Reference implements Op.
func (o SiLU) Reference(in []*Host) ([]*Host, error) {
	return mapReference(o, in, func(x []float64) []float64 { return []float64{x[0] * sigmoid64(x[0])} })
}

// Reference implements Op.
func (o SiLUBackward) Reference(in []*Host) ([]*Host, error) {
	return mapReference(o, in, func(x []float64) []float64 {
		s := sigmoid64(x[0])
		return []float64{x[1] * s * (1 + x[0]*(1-s))}
	})
}

// Reference implements Op.
func (o SwiGLU) Reference(in []*Host) ([]*Host, error) {
	return mapReference(o, in, func(x []float64) []float64 {
		g, u := x[0], x[1]
		return []float64{g * sigmoid64(g) * u}
	})
}

// Reference implements Op.
func (o SwiGLUBackward) Reference(in []*Host) ([]*Host, error) {
	return mapReference(o, in, func(x []float64) []float64 {
		g, u, dy := x[0], x[1], x[2]
		s := sigmoid64(g)
		return []float64{dy * u * s * (1 + g*(1-s)), dy * g * s}
	})
}

// Encode implements Op.
func (o Add) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	return encodeElementwise(dev, rec, "add", o.Variant, 0, in, out)
}

// Encode implements Op.
func (o Mul) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	return encodeElementwise(dev, rec, "mul", o.Variant, 0, in, out)
}

// Encode implements Op.
func (o Scale) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	return encodeElementwise(dev, rec, "scale", o.Variant, o.Factor, in, out)
}

// Encode implements Op: in is (a) only; out[0] holds prev and receives
// prev + a.
func (o AddInto) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	return encodeElementwise(dev, rec, "add_into", o.Variant, 0, in, out)
}

// Encode implements Op.
func (o ReLUSquared) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	return encodeElementwise(dev, rec, "relu2", o.Variant, 0, in, out)
}

// Encode implements Op.
func (o ReLUSquaredBackward) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	return encodeElementwise(dev, rec, "relu2_bwd", o.Variant, 0, in, out)
}

// Encode implements Op.
func (o SiLU) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	return encodeElementwise(dev, rec, "silu", o.Variant, 0, in, out)
}

// Encode implements Op.
func (o SiLUBackward) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	return encodeElementwise(dev, rec, "silu_bwd", o.Variant, 0, in, out)
}

// Encode implements Op.
func (o SwiGLU) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	return encodeElementwise(dev, rec, "swiglu", o.Variant, 0, in, out)
}

// Encode implements Op.
func (o SwiGLUBackward) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	return encodeElementwise(dev, rec, "swiglu_bwd", o.Variant, 0, in, out)
}

// encodeElementwise records entry over all n elements of out[0]: the vec4
// kernel over the first ⌊n/4⌋·4 elements and the scalar kernel over the
// rest, or the scalar kernel over everything. Inputs bind first (read),
// outputs after (read_write), then the parameters.
func encodeElementwise(dev *gpu.Device, rec *gpu.Recorder, entry string, variant int, factor float32,
	in, out []*gpu.Buffer) error {
	switch variant {
	case ElementwiseAuto:
		variant = ElementwiseVec4
	case ElementwiseScalar, ElementwiseVec4:
	default:
		return fmt.Errorf("unknown elementwise variant %d (want %d, %d or %d)",
			variant, ElementwiseAuto, ElementwiseScalar, ElementwiseVec4)
	}
	n := out[0].Len()
	bindings := make([]gpu.Access, 0, len(in)+len(out))
	bufs := make([]*gpu.Buffer, 0, len(in)+len(out))
	for _, b := range in {
		bindings = append(bindings, gpu.Read)
		bufs = append(bufs, b)
	}
	for _, b := range out {
		bindings = append(bindings, gpu.ReadWrite)
		bufs = append(bufs, b)
	}
	fbits := math.Float32bits(factor)
	start := 0
	if variant == ElementwiseVec4 && n >= 4 {
		n4 := n / 4
		k, err := kernel(dev, "elementwise", entry+"_v4", entry+"_v4", bindings, true,
			map[string]string{"WG": fmt.Sprintf("%du", ewWG), "PER": fmt.Sprintf("%du", ewPerVec4)})
		if err != nil {
			return err
		}
		grid := dev.Grid1D(gpu.CeilDiv(n4, ewWG*ewPerVec4))
		if err := rec.Dispatch(k, grid, []uint32{uint32(n4), 0, fbits, 0}, bufs...); err != nil {
			return err
		}
		start = 4 * n4
	}
	if start == n {
		return nil
	}
	k, err := kernel(dev, "elementwise", entry+"_s", entry+"_s", bindings, true,
		map[string]string{"WG": fmt.Sprintf("%du", ewWG), "PER": fmt.Sprintf("%du", ewPerS)})
	if err != nil {
		return err
	}
	grid := dev.Grid1D(gpu.CeilDiv(n-start, ewWG*ewPerS))
	return rec.Dispatch(k, grid, []uint32{uint32(n), uint32(start), fbits, 0}, bufs...)
}

// Backward implements Differentiable: both inputs receive dy.
func (Add) Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor {
	return []*Tensor{dOut[0], dOut[0]}
}

// Backward implements Differentiable: da = dy·b, db = dy·a.
func (Mul) Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor {
	return []*Tensor{g.Apply1(Mul{}, dOut[0], n.In[1]), g.Apply1(Mul{}, dOut[0], n.In[0])}
}

// Backward implements Differentiable: da = Factor·dy.
func (o Scale) Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor {
	return []*Tensor{g.Apply1(Scale{Factor: o.Factor}, dOut[0])}
}

// Backward implements Differentiable.
func (ReLUSquared) Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor {
	return []*Tensor{g.Apply1(ReLUSquaredBackward{}, n.In[0], dOut[0])}
}

// Backward implements Differentiable.
func (SiLU) Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor {
	return []*Tensor{g.Apply1(SiLUBackward{}, n.In[0], dOut[0])}
}

// Backward implements Differentiable.
func (SwiGLU) Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor {
	return g.Apply(SwiGLUBackward{}, n.In[0], n.In[1], dOut[0])
}
