package graph

import (
	"fmt"

	"github.com/moegpu/moegpu/gpu"
)

// SiluAndMul is SwiGLU on the output of a fused gate/up projection (vLLM's
// gate_up_proj and SiluAndMul): input x (rows, 2I), each row [gate | up];
// output y (rows, I) = silu(gate)·up, computed with SwiGLU's expression, so
// it equals SwiGLU of the two halves bit for bit. Its backward,
// SiluAndMulBackward, writes both halves' gradients into one (rows, 2I)
// tensor laid out as x. Variant as for the elementwise ops; the vec4 kernel
// needs I % 4 == 0 (Auto falls back to the scalar one otherwise).
type SiluAndMul struct{ Variant int }

// SiluAndMulBackward is SiluAndMul's gradient: inputs (x (rows, 2I), dy
// (rows, I)), output dx (rows, 2I) = [dgate | dup] with dgate = dy·up·
// silu'(gate) and dup = dy·silu(gate), as SwiGLUBackward computes them.
type SiluAndMulBackward struct{ Variant int }

// Name implements Op.
func (SiluAndMul) Name() string { return "silu_and_mul" }

// Name implements Op.
func (SiluAndMulBackward) Name() string { return "silu_and_mul_backward" }

func siluAndMulX(x Spec) error {
	if err := wantRank("x", x, 2, gpu.F32); err != nil {
		return err
	}
	if x.Shape[1]%2 != 0 {
		return fmt.Errorf("x %v: want an even number of columns ([gate | up])", x.Shape)
	}
	return nil
}

// Outputs implements Op.
func (SiluAndMul) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	if err := siluAndMulX(in[0]); err != nil {
		return nil, err
	}
	return []Spec{F32(in[0].Shape[0], in[0].Shape[1]/2)}, nil
}

// Outputs implements Op.
func (SiluAndMulBackward) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 2); err != nil {
		return nil, err
	}
	if err := siluAndMulX(in[0]); err != nil {
		return nil, err
	}
	if err := wantRank("dy", in[1], 2, gpu.F32); err != nil {
		return nil, err
	}
	if in[1].Shape[0] != in[0].Shape[0] || 2*in[1].Shape[1] != in[0].Shape[1] {
		return nil, fmt.Errorf("dy %v: want (%d, %d) for x %v", in[1].Shape, in[0].Shape[0], in[0].Shape[1]/2, in[0].Shape)
	}
	return []Spec{in[0]}, nil
}

// Reference implements Op.
func (SiluAndMul) Reference(in []*Host) ([]*Host, error) {
	x := in[0]
	rows, i2 := x.Shape[0], x.Shape[1]
	n := i2 / 2
	y := NewHost(F32(rows, n))
	for r := 0; r < rows; r++ {
		for c := 0; c < n; c++ {
			g, u := x.Data[r*i2+c], x.Data[r*i2+n+c]
			y.Data[r*n+c] = g * sigmoid64(g) * u
		}
	}
	return []*Host{y}, nil
}

// Reference implements Op.
func (SiluAndMulBackward) Reference(in []*Host) ([]*Host, error) {
	x, dy := in[0], in[1]
	rows, i2 := x.Shape[0], x.Shape[1]
	n := i2 / 2
	dx := NewHost(x.Spec)
	for r := 0; r < rows; r++ {
		for c := 0; c < n; c++ {
			g, u, d := x.Data[r*i2+c], x.Data[r*i2+n+c], dy.Data[r*n+c]
			s := sigmoid64(g)
			dx.Data[r*i2+c] = d * u * s * (1 + g*(1-s))
			dx.Data[r*i2+n+c] = d * g * s
		}
	}
	return []*Host{dx}, nil
}

// encodeSiluAndMul dispatches entry over y's rows·I elements: the vec4
// kernel when I % 4 == 0 (and the variant allows it), else the scalar one.
func encodeSiluAndMul(dev *gpu.Device, rec *gpu.Recorder, entry string, variant, rows, cols int, bindings []gpu.Access, bufs ...*gpu.Buffer) error {
	switch variant {
	case ElementwiseAuto:
		variant = ElementwiseScalar
		if cols%4 == 0 {
			variant = ElementwiseVec4
		}
	case ElementwiseScalar:
	case ElementwiseVec4:
		if cols%4 != 0 {
			return fmt.Errorf("%s: the vec4 variant needs I %% 4 == 0, got I = %d", entry, cols)
		}
	default:
		return fmt.Errorf("unknown elementwise variant %d (want %d, %d or %d)", variant, ElementwiseAuto, ElementwiseScalar, ElementwiseVec4)
	}
	n := rows * cols
	if n == 0 {
		return nil
	}
	per, name := ewPerS, entry+"_s"
	if variant == ElementwiseVec4 {
		per, name, n, cols = ewPerVec4, entry+"_v4", n/4, cols/4
	}
	k, err := kernel(dev, "elementwise", name, name, bindings, true,
		map[string]string{"WG": fmt.Sprintf("%du", ewWG), "PER": fmt.Sprintf("%du", per)})
	if err != nil {
		return err
	}
	return rec.Dispatch(k, dev.Grid1D(gpu.CeilDiv(n, ewWG*per)), []uint32{uint32(n), 0, 0, uint32(cols)}, bufs...)
}

// Encode implements Op.
func (o SiluAndMul) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	return encodeSiluAndMul(dev, rec, "silu_and_mul", o.Variant, out[0].Shape[0], out[0].Shape[1],
		[]gpu.Access{gpu.Read, gpu.ReadWrite}, in[0], out[0])
}

// Encode implements Op.
func (o SiluAndMulBackward) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	return encodeSiluAndMul(dev, rec, "silu_and_mul_bwd", o.Variant, in[1].Shape[0], in[1].Shape[1],
		[]gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite}, in[0], in[1], out[0])
}

// Backward implements Differentiable.
func (o SiluAndMul) Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor {
	return []*Tensor{g.Apply1(SiluAndMulBackward{Variant: o.Variant}, n.In[0], dOut[0])}
}
