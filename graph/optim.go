package graph

import (
	"fmt"
	"math"

	"github.com/moegpu/moegpu/gpu"
)

// AdamW is one optimizer step for one parameter tensor, with decoupled
// weight decay (Loshchilov & Hutter) and optional clipping by the global
// gradient norm (as torch.nn.utils.clip_grad_norm_). It is an InPlace op:
// it updates param, m and v and has no outputs, so graph.Apply returns an
// empty slice and the planner always keeps it.
//
// Inputs, in order:
//
//	0 param  (any shape) f32, updated
//	1 grad   (param's shape) f32
//	2 m      (param's shape) f32, first moment, updated
//	3 v      (param's shape) f32, second moment, updated
//	4 hyper  (4) f32: lr, 1−β1^t, 1−β2^t, decay flag (1 or 0); the host
//	         writes it before every step (see Hyper), so one recorded
//	         dispatch serves every step and every learning-rate schedule
//	5 gnorm2 (1) f32: Σ grad² over all parameters (sum of SumSquares)
//
// Per element:
//
//	clip = MaxGradNorm > 0 ? min(1, MaxGradNorm/(sqrt(gnorm2)+1e-6)) : 1
//	g = grad·clip
//	m = β1·m + (1−β1)·g
//	v = β2·v + (1−β2)·g²
//	p = p − lr·(decay·WeightDecay·p + (m/bc1)/(sqrt(v/bc2)+Eps))
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float32
	// MaxGradNorm clips the global gradient norm to this value; 0 means
	// no clipping.
	MaxGradNorm float32
}

// Name implements Op.
func (AdamW) Name() string { return "adamw" }

// Updates implements InPlace: param, m and v.
func (AdamW) Updates() []int { return []int{0, 2, 3} }

// Hyper returns the hyper input for a step: lr, the bias corrections
// 1−β1^t and 1−β2^t for step t ≥ 1 (computed in float64), and the decay
// flag. Parameters excluded from weight decay (Tensor.NoDecay) get a hyper
// tensor with decay = false.
func (o AdamW) Hyper(lr float64, step int, decay bool) ([]float64, error) {
	if step < 1 {
		return nil, fmt.Errorf("adamw: step %d: steps count from 1", step)
	}
	d := 0.0
	if decay {
		d = 1
	}
	return []float64{lr,
		1 - math.Pow(float64(o.Beta1), float64(step)),
		1 - math.Pow(float64(o.Beta2), float64(step)), d}, nil
}

// Outputs implements Op: no outputs.
func (o AdamW) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 6); err != nil {
		return nil, err
	}
	for _, b := range []struct {
		name string
		v    float32
	}{{"beta1", o.Beta1}, {"beta2", o.Beta2}} {
		if !(b.v >= 0 && b.v < 1) {
			return nil, fmt.Errorf("%s %g: want 0 ≤ β < 1", b.name, b.v)
		}
	}
	for _, c := range []struct {
		name string
		v    float32
	}{{"eps", o.Eps}, {"weight decay", o.WeightDecay}, {"max grad norm", o.MaxGradNorm}} {
		if !(c.v >= 0) || math.IsInf(float64(c.v), 0) {
			return nil, fmt.Errorf("%s %g: want a finite value ≥ 0", c.name, c.v)
		}
	}
	if _, err := sameShape(in[:4], 0, "param", "grad", "m", "v"); err != nil {
		return nil, err
	}
	if in[4].DType != gpu.F32 || len(in[4].Shape) != 1 || in[4].Shape[0] != 4 {
		return nil, fmt.Errorf("hyper: want f32[4] (lr, 1−β1^t, 1−β2^t, decay), got %s", in[4])
	}
	if in[5].DType != gpu.F32 || in[5].Len() != 1 {
		return nil, fmt.Errorf("gnorm2: want a one-element f32, got %s", in[5])
	}
	return []Spec{}, nil
}

// adamwClip is the factor the gradient is scaled by.
func (o AdamW) adamwClip(gnorm2 float64) float64 {
	if o.MaxGradNorm <= 0 {
		return 1
	}
	return math.Min(1, float64(o.MaxGradNorm)/(math.Sqrt(gnorm2)+1e-6))
}

// Reference implements Op: it updates the param, m and v host tensors in
// place and returns no outputs.
func (o AdamW) Reference(in []*Host) ([]*Host, error) {
	p, gr, m, v, hy := in[0].Data, in[1].Data, in[2].Data, in[3].Data, in[4].Data
	lr, bc1, bc2, decay := hy[0], hy[1], hy[2], hy[3]
	b1, b2, eps, wd := float64(o.Beta1), float64(o.Beta2), float64(o.Eps), float64(o.WeightDecay)
	clip := o.adamwClip(in[5].Data[0])
	for i := range p {
		g := gr[i] * clip
		m[i] = b1*m[i] + (1-b1)*g
		v[i] = b2*v[i] + (1-b2)*g*g
		p[i] -= lr * (decay*wd*p[i] + (m[i]/bc1)/(math.Sqrt(v[i]/bc2)+eps))
	}
	return []*Host{}, nil
}

// optimWG is the workgroup size of the optimizer kernels (override WG).
const optimWG = 256

var optimConsts = map[string]string{"WG": fmt.Sprintf("%du", optimWG)}

// Encode implements Op: adamw_v4 over the whole vec4s, adamw_s over the
// n mod 4 tail.
func (o AdamW) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	n := in[0].Len()
	bind := []gpu.Access{gpu.ReadWrite, gpu.Read, gpu.ReadWrite, gpu.ReadWrite, gpu.Read, gpu.Read}
	params := func(n, start int) []uint32 {
		return []uint32{uint32(n), uint32(start), math.Float32bits(o.Beta1), math.Float32bits(o.Beta2),
			math.Float32bits(o.Eps), math.Float32bits(o.WeightDecay), math.Float32bits(o.MaxGradNorm), 0}
	}
	start := 0
	if n4 := n / 4; n4 > 0 {
		k, err := kernel(dev, "optim", "adamw_v4", "adamw_v4", bind, true, optimConsts)
		if err != nil {
			return err
		}
		if err := rec.Dispatch(k, dev.Grid1D(gpu.CeilDiv(n4, optimWG)), params(n4, 0), in...); err != nil {
			return err
		}
		start = 4 * n4
	}
	if start == n {
		return nil
	}
	k, err := kernel(dev, "optim", "adamw_s", "adamw_s", bind, true, optimConsts)
	if err != nil {
		return err
	}
	return rec.Dispatch(k, dev.Grid1D(gpu.CeilDiv(n-start, optimWG)), params(n, start), in...)
}

// SumSquares kernel variants, for SumSquares.Variant.
const (
	// SumSquaresAuto picks SumSquaresChunks on CPU adapters and
	// SumSquaresStrided elsewhere.
	SumSquaresAuto = 0
	// SumSquaresChunks has many invocations each sum a contiguous chunk of
	// x into its own partial sum (no barriers), then one workgroup adds
	// the partials: every core takes part and each streams its own
	// memory, which is what a CPU driver runs best (3–5× the others on
	// lavapipe).
	SumSquaresChunks = 1
	// SumSquaresStrided is SumSquaresChunks with invocation j summing
	// elements j, j+parts, …: adjacent invocations read adjacent memory,
	// the coalesced pattern of discrete GPUs.
	SumSquaresStrided = 2
	// SumSquaresWorkgroup has one workgroup stride over x and tree-reduce
	// in shared memory: one core on a CPU driver, one SM on a GPU.
	SumSquaresWorkgroup = 3
)

// sumsqMaxParts caps the partial sums of the many-invocation variants;
// sumsqPerPart is the fewest vec4s each partial covers before the cap is
// reached.
const (
	sumsqMaxParts = 4096
	sumsqPerPart  = 64
)

// SumSquares is y = Σ x² over an f32 tensor of any shape, giving shape (1):
// the squared gradient norm that global-norm clipping needs (summed over
// parameters with Add) and a building block for L2 penalties. The result
// is deterministic: the summation order depends only on the size of x.
type SumSquares struct {
	// Variant selects the kernel: SumSquaresAuto, SumSquaresChunks,
	// SumSquaresStrided or SumSquaresWorkgroup.
	Variant int
}

// Name implements Op.
func (SumSquares) Name() string { return "sum_squares" }

// Outputs implements Op.
func (SumSquares) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	if in[0].DType != gpu.F32 {
		return nil, fmt.Errorf("x: want f32, got %s", in[0])
	}
	return []Spec{F32(1)}, nil
}

// Reference implements Op.
func (SumSquares) Reference(in []*Host) ([]*Host, error) {
	y := NewHost(F32(1))
	for _, v := range in[0].Data {
		y.Data[0] += v * v
	}
	return []*Host{y}, nil
}

// sumsqParts is the number of partial sums for n4 vec4s.
func sumsqParts(variant, n4 int) int {
	if n4 == 0 {
		return 0
	}
	if variant == SumSquaresWorkgroup {
		return 1
	}
	return min(sumsqMaxParts, gpu.CeilDiv(n4, sumsqPerPart))
}

// Encode implements Op: a partial-sum pass over the whole vec4s of x into
// a scratch buffer, then sumsq_final adds the partials and the tail.
func (o SumSquares) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	v := o.Variant
	switch v {
	case SumSquaresAuto:
		v = SumSquaresStrided
		if dev.Info.DeviceType == "cpu" {
			v = SumSquaresChunks
		}
	case SumSquaresChunks, SumSquaresStrided, SumSquaresWorkgroup:
	default:
		return fmt.Errorf("unknown variant %d (want %d, %d, %d or %d)", v,
			SumSquaresAuto, SumSquaresChunks, SumSquaresStrided, SumSquaresWorkgroup)
	}
	n := in[0].Len()
	n4 := n / 4
	parts := sumsqParts(v, n4)
	part, err := rec.Scratch("sum_squares.partials", gpu.F32, max(parts, 1))
	if err != nil {
		return err
	}
	params := []uint32{uint32(n4), uint32(n), uint32(parts), 0}
	if parts > 0 {
		entry, grid := "sumsq_part_chunk", dev.Grid1D(gpu.CeilDiv(parts, optimWG))
		switch v {
		case SumSquaresStrided:
			entry = "sumsq_part_strided"
		case SumSquaresWorkgroup:
			entry, grid = "sumsq_part_wg", [3]uint32{1, 1, 1}
		}
		k, err := kernel(dev, "optim", entry, entry, []gpu.Access{gpu.Read, gpu.ReadWrite}, true, optimConsts)
		if err != nil {
			return err
		}
		if err := rec.Dispatch(k, grid, params, in[0], part); err != nil {
			return err
		}
	}
	k, err := kernel(dev, "optim", "sumsq_final", "sumsq_final", []gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite}, true, optimConsts)
	if err != nil {
		return err
	}
	return rec.Dispatch(k, [3]uint32{1, 1, 1}, params, part, in[0], out[0])
}

// Backward implements Differentiable: dx = 2·x·g, as MulScalar then Scale.
func (SumSquares) Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor {
	return []*Tensor{g.Apply1(Scale{Factor: 2}, g.Apply1(MulScalar{}, n.In[0], dOut[0]))}
}
